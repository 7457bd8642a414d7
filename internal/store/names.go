package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/text"
)

// A row may name its configuration, group or filter by display name. Each
// distinct name is read from Graph once per batch and tenant for the whole
// fleet (name_lookups, migration 011), leased as assignment lists are
// (lists.go): one worker reads while the others wait for what it stores.

// NameKey names one lookup of a batch.
type NameKey struct {
	BatchID  string
	TenantID string // the row's tenant, "" for the default
	Kind     string // configuration, group or filter (graph.NameKind's String)
	Name     string
}

// NameLookup is what Graph said of one name: the ids of the objects of its
// kind that carry it (none: not found; two or more: ambiguous). More says
// Graph had more matches than were kept.
type NameLookup struct {
	IDs       []string
	More      bool
	RequestID string
}

// GetNames returns the stored lookups of keys, all of one batch and
// tenant, in one statement; a name with none stored (or whose read is in
// progress) is absent from the map.
func GetNames(ctx context.Context, q Querier, batchID, tenantID string, kinds, names []string) (map[[2]string]*NameLookup, error) {
	rows, err := q.Query(ctx, `SELECT kind, name, ids, more, coalesce(request_id, '') FROM name_lookups
		WHERE batch_id = $1 AND tenant_id = $2 AND (kind, name) IN (SELECT * FROM unnest($3::text[], $4::text[]))
			AND reader IS NULL`, batchID, tenantID, kinds, names)
	if err != nil {
		return nil, fmt.Errorf("error reading name lookups: %w", err)
	}
	out := map[[2]string]*NameLookup{}
	for rows.Next() {
		var kind, name string
		l := &NameLookup{}
		if err := rows.Scan(&kind, &name, &l.IDs, &l.More, &l.RequestID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("error reading name lookups: %w", err)
		}
		out[[2]string{kind, name}] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error reading name lookups: %w", err)
	}
	return out, nil
}

// GetName returns k's stored lookup, or nil when none is stored yet.
func GetName(ctx context.Context, q Querier, k NameKey) (*NameLookup, error) {
	m, err := GetNames(ctx, q, k.BatchID, k.TenantID, []string{k.Kind}, []string{k.Name})
	if err != nil {
		return nil, err
	}
	return m[[2]string{k.Kind, k.Name}], nil
}

// LeaseName makes reader the one worker reading k from Graph until lease
// has passed on the database's clock; false when the lookup is stored
// already or another reader's lease is live.
func LeaseName(ctx context.Context, q Querier, k NameKey, reader string, lease time.Duration) (bool, error) {
	var at time.Time
	err := q.QueryRow(ctx, `INSERT INTO name_lookups (batch_id, tenant_id, kind, name, reader, lease_until)
		VALUES ($1, $2, $3, $4, $5::uuid, now() + $6::interval)
		ON CONFLICT (batch_id, tenant_id, kind, name) DO UPDATE SET reader = excluded.reader,
			lease_until = excluded.lease_until, read_at = now()
			WHERE name_lookups.reader IS NOT NULL AND name_lookups.lease_until <= now()
		RETURNING read_at`, k.BatchID, k.TenantID, k.Kind, k.Name, reader, lease).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("error leasing name lookup: %w", err)
	}
	return true, nil
}

// StoreLeasedName stores what reader read under its lease, ending the
// lease; false (storing nothing) when the lease is no longer reader's.
func StoreLeasedName(ctx context.Context, q Querier, k NameKey, reader string, l *NameLookup) (bool, error) {
	ids := l.IDs
	if ids == nil {
		ids = []string{}
	}
	tag, err := q.Exec(ctx, `UPDATE name_lookups SET ids = $6, more = $7, request_id = $8, reader = NULL, lease_until = NULL
		WHERE batch_id = $1 AND tenant_id = $2 AND kind = $3 AND name = $4 AND reader = $5::uuid`,
		k.BatchID, k.TenantID, k.Kind, k.Name, reader, ids, l.More, nullable(text.Short(l.RequestID)))
	if err != nil {
		return false, fmt.Errorf("error storing name lookup: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseName gives reader's lease on k back after a read that found
// nothing to store, so the next row to ask reads at once.
func ReleaseName(ctx context.Context, q Querier, k NameKey, reader string) error {
	if _, err := q.Exec(ctx, `DELETE FROM name_lookups
		WHERE batch_id = $1 AND tenant_id = $2 AND kind = $3 AND name = $4 AND reader = $5::uuid`,
		k.BatchID, k.TenantID, k.Kind, k.Name, reader); err != nil {
		return fmt.Errorf("error releasing name lookup lease: %w", err)
	}
	return nil
}

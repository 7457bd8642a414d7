package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/text"
)

// Rows that give ids show the display names Graph holds for them. Each
// distinct (tenant, kind, id) of a batch is read from Graph once for the
// whole fleet (display_names, migration 015), leased as name lookups and
// assignment lists are: one worker reads, the others go on without the
// name until it is stored. The assignment_results view joins the names.

// DisplayKey names one display name of a batch.
type DisplayKey struct {
	BatchID  string
	TenantID string // the row's tenant, "" for the default
	// Kind is configuration, group or filter (graph.NameKind's String), or
	// KindTenant, whose ID is "".
	Kind string
	ID   string
}

// KindTenant is the kind of a tenant's own display name.
const KindTenant = "tenant"

// DisplayName is what Graph said of one object: its name, or none (Name
// "") with the answer's status when Graph gave none.
type DisplayName struct {
	Name       string
	HTTPStatus int
	RequestID  string
}

// GetDisplayNames returns the stored names of keys, all of one batch and
// tenant, in one statement, by kind and id; a key with none stored (or
// whose read is in progress) is absent from the map.
func GetDisplayNames(ctx context.Context, q Querier, batchID, tenantID string, kinds, ids []string) (map[[2]string]*DisplayName, error) {
	rows, err := q.Query(ctx, `SELECT kind, id, coalesce(name, ''), coalesce(http_status, 0), coalesce(request_id, '')
		FROM display_names
		WHERE batch_id = $1 AND tenant_id = $2 AND (kind, id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
			AND reader IS NULL`, batchID, tenantID, kinds, ids)
	if err != nil {
		return nil, fmt.Errorf("error reading display names: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]*DisplayName{}
	for rows.Next() {
		var kind, id string
		n := &DisplayName{}
		if err := rows.Scan(&kind, &id, &n.Name, &n.HTTPStatus, &n.RequestID); err != nil {
			return nil, fmt.Errorf("error reading display names: %w", err)
		}
		out[[2]string{kind, id}] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error reading display names: %w", err)
	}
	return out, nil
}

// GetDisplayName returns k's stored name, or nil when none is stored yet.
func GetDisplayName(ctx context.Context, q Querier, k DisplayKey) (*DisplayName, error) {
	m, err := GetDisplayNames(ctx, q, k.BatchID, k.TenantID, []string{k.Kind}, []string{k.ID})
	if err != nil {
		return nil, err
	}
	return m[[2]string{k.Kind, k.ID}], nil
}

// LeaseDisplayName makes reader the one worker reading k from Graph until
// lease has passed on the database's clock; false when the name is stored
// already or another reader's lease is live.
func LeaseDisplayName(ctx context.Context, q Querier, k DisplayKey, reader string, lease time.Duration) (bool, error) {
	var at time.Time
	err := q.QueryRow(ctx, `INSERT INTO display_names (batch_id, tenant_id, kind, id, reader, lease_until)
		VALUES ($1, $2, $3, $4, $5::uuid, now() + $6::interval)
		ON CONFLICT (batch_id, tenant_id, kind, id) DO UPDATE SET reader = excluded.reader,
			lease_until = excluded.lease_until, read_at = now()
			WHERE display_names.reader IS NOT NULL AND display_names.lease_until <= now()
		RETURNING read_at`, k.BatchID, k.TenantID, k.Kind, k.ID, reader, lease).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("error leasing display name: %w", err)
	}
	return true, nil
}

// StoreLeasedDisplayName stores what reader read under its lease, ending
// the lease; false (storing nothing) when the lease is no longer reader's.
func StoreLeasedDisplayName(ctx context.Context, q Querier, k DisplayKey, reader string, n *DisplayName) (bool, error) {
	var status *int
	if n.HTTPStatus != 0 {
		status = &n.HTTPStatus
	}
	tag, err := q.Exec(ctx, `UPDATE display_names SET name = $6, http_status = $7, request_id = $8, reader = NULL, lease_until = NULL
		WHERE batch_id = $1 AND tenant_id = $2 AND kind = $3 AND id = $4 AND reader = $5::uuid`,
		k.BatchID, k.TenantID, k.Kind, k.ID, reader, nullable(text.Message(n.Name)), status, nullable(text.Short(n.RequestID)))
	if err != nil {
		return false, fmt.Errorf("error storing display name: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseDisplayName gives reader's lease on k back after a read that
// found nothing to store, so that the next row to ask reads again.
func ReleaseDisplayName(ctx context.Context, q Querier, k DisplayKey, reader string) error {
	if _, err := q.Exec(ctx, `DELETE FROM display_names
		WHERE batch_id = $1 AND tenant_id = $2 AND kind = $3 AND id = $4 AND reader = $5::uuid`,
		k.BatchID, k.TenantID, k.Kind, k.ID, reader); err != nil {
		return fmt.Errorf("error releasing display name lease: %w", err)
	}
	return nil
}

// PageNames fills in the names of a page of a batch's rows (PageResults
// reads the items alone): the ones the rows gave and Graph's
// (assignment_results), in one statement for the page.
func PageNames(ctx context.Context, q Querier, batchID string, page []Result) error {
	if len(page) == 0 {
		return nil
	}
	at := make(map[int]*Result, len(page))
	rows := make([]int, len(page))
	for i := range page {
		at[page[i].Row], rows[i] = &page[i], page[i].Row
	}
	rs, err := q.Query(ctx, `SELECT row, coalesce(configuration_name, ''), coalesce(group_name, ''), coalesce(filter_name, ''),
			coalesce(tenant_name, ''), coalesce(configuration_name_given, true), coalesce(group_name_given, true),
			coalesce(filter_name_given, true)
		FROM assignment_results WHERE batch_id = $1 AND row = ANY($2)`, batchID, rows)
	if err != nil {
		return fmt.Errorf("error reading names: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var row int
		var names [3]string
		var given [3]bool
		var tenant string
		if err := rs.Scan(&row, &names[0], &names[1], &names[2], &tenant, &given[0], &given[1], &given[2]); err != nil {
			return fmt.Errorf("error reading names: %w", err)
		}
		if r := at[row]; r != nil {
			r.setNames(names, given)
			r.TenantName = tenant
		}
	}
	return rs.Err()
}

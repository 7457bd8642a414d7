package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TokenCache is one stored, sealed MSAL token cache (the delegated
// sign-in). The store never sees it unsealed: sealing and opening belong to
// internal/auth.
type TokenCache struct {
	Name       string
	KeyCheck   []byte
	Ciphertext []byte
	Version    int64
	UpdatedAt  time.Time
}

// GetTokenCache reads the named cache; ErrNotFound when nobody signed in.
func GetTokenCache(ctx context.Context, q Querier, name string) (*TokenCache, error) {
	c := &TokenCache{Name: name}
	err := q.QueryRow(ctx, `SELECT key_check, ciphertext, version, updated_at FROM token_caches WHERE name = $1`, name).
		Scan(&c.KeyCheck, &c.Ciphertext, &c.Version, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("token cache %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading token cache: %w", err)
	}
	return c, nil
}

// PutTokenCache writes the cache whether or not a row exists (a new sign-in
// replaces the old one) and returns its new version.
func PutTokenCache(ctx context.Context, q Querier, c *TokenCache) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `INSERT INTO token_caches (name, key_check, ciphertext) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET key_check = excluded.key_check, ciphertext = excluded.ciphertext,
			version = token_caches.version + 1, updated_at = now()
		RETURNING version`, c.Name, c.KeyCheck, c.Ciphertext).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("error writing token cache: %w", err)
	}
	return v, nil
}

// UpdateTokenCache rewrites an existing cache (renewed tokens) and returns
// its new version. It never brings back a cache that was deleted in the
// meantime: that is ErrNotFound.
func UpdateTokenCache(ctx context.Context, q Querier, c *TokenCache) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `UPDATE token_caches SET key_check = $2, ciphertext = $3, version = version + 1, updated_at = now()
		WHERE name = $1 RETURNING version`, c.Name, c.KeyCheck, c.Ciphertext).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("token cache %q: %w", c.Name, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("error updating token cache: %w", err)
	}
	return v, nil
}

// DeleteTokenCache removes the named cache and reports whether there was one.
func DeleteTokenCache(ctx context.Context, q Querier, name string) (bool, error) {
	tag, err := q.Exec(ctx, `DELETE FROM token_caches WHERE name = $1`, name)
	if err != nil {
		return false, fmt.Errorf("error deleting token cache: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// LockTokenCache takes the fleet-wide lock of the named cache until tx
// ends. Whoever renews tokens holds it from reading the cache to writing it
// back, so two workers never redeem the same refresh token at once nor
// overwrite each other's renewal, and a logout is never undone by a renewal
// in flight. The lock is scoped to the schema, so test schemas do not
// contend.
func LockTokenCache(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/token_caches/' || $1, 0))`, name)
	if err != nil {
		return fmt.Errorf("error locking token cache: %w", err)
	}
	return nil
}

// auditTables are the tables RowsAsText may read.
var auditTables = map[string]bool{"batches": true, "items": true, "assignment_lists": true, "token_caches": true, "rate_limits": true}

// RowsAsText returns every row of one of bulkassign's tables as JSON text
// (bytea as hex). It exists for audits: tests use it to prove that no
// token or secret was ever written to the database.
func RowsAsText(ctx context.Context, q Querier, table string) ([]string, error) {
	if !auditTables[table] {
		return nil, fmt.Errorf("RowsAsText: %q is not one of bulkassign's tables", table)
	}
	rows, err := q.Query(ctx, `SELECT row_to_json(t)::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
	if err != nil {
		return nil, fmt.Errorf("error reading %s: %w", table, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// TokenCacheExists reports whether the named cache is stored (a signed-in
// sign-in that `worker logout` has not deleted).
func TokenCacheExists(ctx context.Context, q Querier, name string) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM token_caches WHERE name = $1)`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("error reading token cache: %w", err)
	}
	return ok, nil
}

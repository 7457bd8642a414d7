package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/store"
)

// CacheName is the token_caches row of a delegated sign-in: one per app
// registration and tenant, shared by every worker that uses them.
func CacheName(tenantID, clientID string) string {
	return "delegated/" + strings.ToLower(tenantID) + "/" + strings.ToLower(clientID)
}

// pgCache is MSAL's external token cache, kept sealed in one Postgres row.
// MSAL hands over and takes back the whole cache at once, and a row
// written in one statement is never half old, half new. What keeps two
// processes from interleaving a read and a write is the row's lock (see
// store.LockTokenCache): a renewal holds it in tx from reading the cache to
// writing it back, and both go through tx, so a renewal costs one
// connection and commits its new refresh token as it releases the lock.
type pgCache struct {
	pool   *pgxpool.Pool
	name   string
	sealer *sealer
	// login makes the cache write-only: a new sign-in starts from nothing
	// (no trace of a previous account survives it) and its one write takes
	// the lock itself.
	login bool
	// tx, while a renewal runs, holds the lock; set and cleared by the
	// renewal, which owns the MSAL client meanwhile.
	tx pgx.Tx
}

var _ cache.ExportReplace = (*pgCache)(nil)

func (c *pgCache) querier() store.Querier {
	if c.tx != nil {
		return c.tx
	}
	return c.pool
}

// withDefaultTimeout gives MSAL's cache calls a deadline, as the
// cache.ExportReplace contract asks of implementations.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, 30*time.Second)
}

// Replace loads the stored cache into MSAL's memory.
func (c *pgCache) Replace(ctx context.Context, u cache.Unmarshaler, _ cache.ReplaceHints) error {
	if c.login {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	row, err := store.GetTokenCache(ctx, c.querier(), c.name)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotSignedIn
	}
	if err != nil {
		return &cacheError{err}
	}
	plain, err := c.sealer.open(c.name, row.KeyCheck, row.Ciphertext)
	if err != nil {
		return err
	}
	defer clear(plain)
	if err := u.Unmarshal(plain); err != nil {
		return errDamaged
	}
	return nil
}

// Export seals MSAL's cache and writes it back.
func (c *pgCache) Export(ctx context.Context, m cache.Marshaler, _ cache.ExportHints) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	plain, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("error serializing the token cache: %w", err)
	}
	row := &store.TokenCache{Name: c.name, KeyCheck: c.sealer.check, Ciphertext: c.sealer.seal(c.name, plain)}
	clear(plain)
	write := func(tx pgx.Tx) error {
		var err error
		if c.login {
			_, err = store.PutTokenCache(ctx, tx, row)
		} else if _, err = store.UpdateTokenCache(ctx, tx, row); errors.Is(err, store.ErrNotFound) {
			return ErrNotSignedIn // signed out meanwhile: do not write it back
		}
		return err
	}
	if c.tx != nil {
		err = write(c.tx)
	} else {
		err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			if err := store.LockTokenCache(ctx, tx, c.name); err != nil {
				return err
			}
			return write(tx)
		})
	}
	if err != nil && !errors.Is(err, ErrNotSignedIn) {
		return &cacheError{err}
	}
	return err
}

// Logout deletes the stored delegated sign-in of the app in the tenant and
// reports whether there was one. It waits for a renewal in flight, which
// would otherwise write the sign-in back.
func Logout(ctx context.Context, pool *pgxpool.Pool, tenantID, clientID string) (bool, error) {
	name := CacheName(tenantID, clientID)
	var deleted bool
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := store.LockTokenCache(ctx, tx, name); err != nil {
			return err
		}
		var err error
		deleted, err = store.DeleteTokenCache(ctx, tx, name)
		return err
	})
	return deleted, err
}

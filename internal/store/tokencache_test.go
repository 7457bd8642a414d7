package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

func TestTokenCacheRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	const name = "delegated/t/c"
	if _, err := store.GetTokenCache(ctx, db.Pool, name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get before any write: %v, want ErrNotFound", err)
	}
	if _, err := store.UpdateTokenCache(ctx, db.Pool, &store.TokenCache{Name: name, KeyCheck: []byte{1}, Ciphertext: []byte{2}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update before any write: %v, want ErrNotFound (an update must never create the row)", err)
	}
	steps := []struct {
		name    string
		write   func(*store.TokenCache) (int64, error)
		content byte
		version int64
	}{
		{"put", func(c *store.TokenCache) (int64, error) { return store.PutTokenCache(ctx, db.Pool, c) }, 1, 1},
		{"put again", func(c *store.TokenCache) (int64, error) { return store.PutTokenCache(ctx, db.Pool, c) }, 2, 2},
		{"update", func(c *store.TokenCache) (int64, error) { return store.UpdateTokenCache(ctx, db.Pool, c) }, 3, 3},
	}
	for _, s := range steps {
		v, err := s.write(&store.TokenCache{Name: name, KeyCheck: []byte{s.content}, Ciphertext: []byte{s.content, s.content}})
		if err != nil || v != s.version {
			t.Fatalf("%s: version %d, %v; want %d", s.name, v, err, s.version)
		}
		got, err := store.GetTokenCache(ctx, db.Pool, name)
		if err != nil || got.Version != s.version || got.KeyCheck[0] != s.content || len(got.Ciphertext) != 2 || got.Ciphertext[1] != s.content {
			t.Fatalf("%s: read back %+v, %v", s.name, got, err)
		}
	}
	rows, err := store.RowsAsText(ctx, db.Pool, "token_caches")
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0], `"ciphertext":"\\x0303"`) {
		t.Fatalf("RowsAsText = %q, %v; want the one row with its bytes in hex", rows, err)
	}
	if _, err := store.RowsAsText(ctx, db.Pool, "pg_authid"); err == nil {
		t.Fatal("RowsAsText read a table that is not ours")
	}
	for i, want := range []bool{true, false} {
		if got, err := store.DeleteTokenCache(ctx, db.Pool, name); err != nil || got != want {
			t.Fatalf("delete #%d = %v, %v; want %v", i+1, got, err, want)
		}
	}
}

func TestLockTokenCacheSerializes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	first, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx) //nolint:errcheck
	if err := store.LockTokenCache(ctx, first, "delegated/t/c"); err != nil {
		t.Fatal(err)
	}
	// Another name is not held up.
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return store.LockTokenCache(ctx, tx, "delegated/t/other") }); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		got <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return store.LockTokenCache(ctx, tx, "delegated/t/c") })
	}()
	select {
	case err := <-got:
		t.Fatalf("second lock taken while the first is held (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("second lock not taken after the first transaction ended")
	}
}

// Package testdb gives each test its own schema on a real Postgres, migrated
// with River's tables and ours, and drops it when the test ends.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/store"
)

// DefaultURL is used when neither TEST_DATABASE_URL nor DATABASE_URL is set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL is the database the tests use.
func URL() string {
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return DefaultURL
}

// DB is one test's schema.
type DB struct {
	Pool   *pgxpool.Pool
	Schema string
	URL    string
}

// New creates a fresh schema named after the test, migrates it, and returns a
// pool whose connections use it. maxConns 0 keeps pgx's default.
func New(t testing.TB, maxConns int32) *DB {
	t.Helper()
	return NewOn(t, URL(), maxConns)
}

// NewOn is New on the server at url (a test's own Postgres).
func NewOn(t testing.TB, url string, maxConns int32) *DB {
	t.Helper()
	db := newUnmigrated(t, url, maxConns)
	if _, err := store.Migrate(context.Background(), db.Pool, db.Schema); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return db
}

// NewUnmigrated is New without the migrations.
func NewUnmigrated(t testing.TB, maxConns int32) *DB {
	t.Helper()
	return newUnmigrated(t, URL(), maxConns)
}

func newUnmigrated(t testing.TB, url string, maxConns int32) *DB {
	t.Helper()
	ctx := context.Background()
	var b [5]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(t.Name())
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	// River names LISTEN channels after the schema; Postgres caps them at
	// 63 bytes.
	if len(name) > 20 {
		name = name[len(name)-20:]
	}
	schema := "t_" + name + "_" + hex.EncodeToString(b[:])

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to test database %s: %v (is Postgres running? see README)", url, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	pool, err := store.Open(ctx, url, schema, maxConns)
	if err != nil {
		t.Fatalf("opening pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return &DB{Pool: pool, Schema: schema, URL: URLWithSchema(url, schema)}
}

// URLWithSchema returns url with search_path set, for child processes.
func URLWithSchema(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

// ownDatabase creates a database of the test's own on the tests' server,
// dropped when the test ends, and returns its URL.
func ownDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "t_migrate_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, testdb.URL())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func TestParseNoTransactionMigration(t *testing.T) {
	t.Parallel()
	m, err := store.ParseMigration("014_items_index.sql", []byte(store.NoTransactionMarker+`
-- Built while writers go on.
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_a ON items (updated_at);
create unique index concurrently if not exists Items_B on items (batch_id, line) WHERE line > 0;
`))
	if err != nil || !m.NoTransaction || m.Version != 14 || len(m.Indexes) != 2 || m.Indexes[0].Name != "items_a" || m.Indexes[1].Name != "items_b" {
		t.Fatalf("ParseMigration = %+v, %v", m, err)
	}
	if m, err := store.ParseMigration("015_plain.sql", []byte("CREATE INDEX x ON items (row);\n")); err != nil || m.NoTransaction {
		t.Errorf("a file without the marker: %+v, %v; want one transaction", m, err)
	}
	for _, body := range []string{
		"CREATE INDEX CONCURRENTLY items_a ON items (updated_at);",                // no IF NOT EXISTS
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON items (row); DROP TABLE x;", // something else
		"CREATE INDEX IF NOT EXISTS items_a ON items (updated_at);",               // not concurrent
		"-- nothing",
	} {
		_, err := store.ParseMigration("016_bad.sql", []byte(store.NoTransactionMarker+"\n"+body+"\n"))
		if err == nil || !strings.HasPrefix(err.Error(), "migration 016_bad.sql: ") {
			t.Errorf("%q: %v, want an error naming the file", body, err)
		}
	}
}

// TestNoTransactionStep: a marked migration runs outside a transaction
// (CREATE INDEX CONCURRENTLY refuses to run in one), between the
// transactional migrations around it, and an index left INVALID by an
// interrupted concurrent build is dropped and built again on the next
// run instead of being kept by IF NOT EXISTS.
func TestNoTransactionStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database of its own: a concurrent build waits out every
	// transaction of its database, other tests' included, under the
	// migration lock, which is one a database.
	db := testdb.NewOn(t, ownDatabase(t), 4)
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE upgrade_t (v integer); INSERT INTO upgrade_t VALUES (1), (1), (2)`); err != nil {
		t.Fatal(err)
	}
	// An interrupted build: the duplicate makes it fail, leaving the index
	// INVALID, as a killed `worker migrate` would.
	if _, err := db.Pool.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY upgrade_t_v ON upgrade_t (v)`); err == nil {
		t.Fatal("the unique build over a duplicate succeeded")
	}
	valid := func(name string) (bool, bool) {
		var v bool
		err := db.Pool.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND n.nspname = $2`, name, db.Schema).Scan(&v)
		return v, err == nil
	}
	if v, ok := valid("upgrade_t_v"); !ok || v {
		t.Fatalf("index after the failed build: exists %v, valid %v; want an invalid one", ok, v)
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM upgrade_t WHERE ctid = (SELECT min(ctid) FROM upgrade_t WHERE v = 1)`); err != nil {
		t.Fatal(err)
	}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := store.ParseMigration("9001_concurrent.sql", []byte(store.NoTransactionMarker+`
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS upgrade_t_v ON upgrade_t (v);
CREATE INDEX CONCURRENTLY IF NOT EXISTS upgrade_t_v2 ON upgrade_t ((v * 2));
`))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := store.ParseMigration("9000_before.sql", []byte("CREATE TABLE upgrade_before (x int);"))
	after, _ := store.ParseMigration("9002_after.sql", []byte("CREATE TABLE upgrade_after (x int);"))
	res, err := store.MigrateWith(ctx, db.Pool, db.Schema, append(ms, before, idx, after))
	if err != nil {
		t.Fatalf("MigrateWith: %v", err)
	}
	if strings.Join(res.Ours, " ") != "9000_before.sql 9001_concurrent.sql 9002_after.sql" {
		t.Errorf("applied %v, want the three new ones", res.Ours)
	}
	for _, name := range []string{"upgrade_t_v", "upgrade_t_v2"} {
		if v, ok := valid(name); !ok || !v {
			t.Errorf("index %s: exists %v, valid %v; want a valid one", name, ok, v)
		}
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM bulkassign_migrations WHERE version IN (9000, 9001, 9002)`).Scan(&n); err != nil || n != 3 {
		t.Errorf("recorded %d of the three, %v", n, err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM upgrade_before, upgrade_after`).Scan(&n); err != nil {
		t.Errorf("the transactional migrations around the step: %v", err)
	}
	// Current: nothing again.
	if res, err := store.MigrateWith(ctx, db.Pool, db.Schema, append(ms, before, idx, after)); err != nil || len(res.Ours) != 0 {
		t.Errorf("again: %v, %v; want nothing applied", res.Ours, err)
	}
}

// TestConcurrentMigratorsAndAConcurrentBuild: migrators started together
// while one builds an index concurrently all succeed, the step applied
// once. A migrator waiting in pg_advisory_lock holds a snapshot the
// build waits out, and Postgres ends one of them as a deadlock.
func TestConcurrentMigratorsAndAConcurrentBuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewOn(t, ownDatabase(t), 8)
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE upgrade_c AS SELECT g AS v FROM generate_series(1, 200000) g`); err != nil {
		t.Fatal(err)
	}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := store.ParseMigration("9001_concurrent.sql", []byte(store.NoTransactionMarker+"\nCREATE INDEX CONCURRENTLY IF NOT EXISTS upgrade_c_v ON upgrade_c (v);\n"))
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, idx)
	var wg sync.WaitGroup
	applied := make([]int, 3)
	for i := range applied {
		wg.Go(func() {
			res, err := store.MigrateWith(ctx, db.Pool, db.Schema, ms)
			if err != nil {
				t.Errorf("migrator %d: %v", i, err)
				return
			}
			applied[i] = len(res.Ours)
		})
	}
	wg.Wait()
	if applied[0]+applied[1]+applied[2] != 1 {
		t.Errorf("applied %v, want the step once", applied)
	}
}

// TestClaimShimForOlderWorkers: bulkassign_claim, which 012 dropped and
// the previous release's workers call, answers as it did in 010 (013):
// the first call claims the target and records the row's intent; a
// second row on the target finds it busy; a call for a row held by
// another live run raises no_data_found, and its claim does not stay.
func TestClaimShimForOlderWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	const batch = "b0000000-0000-4000-8000-000000000013"
	for row := range 3 {
		if _, err := db.Pool.Exec(ctx, `INSERT INTO items (batch_id, row, line, configuration_id, path, target_type)
			VALUES ($1, $2, $2 + 1, 'c0000000-0000-4000-8000-000000000001', '', 'all_devices')`, batch, row); err != nil {
			t.Fatal(err)
		}
	}
	// The call of the release before 012 (store.Claim of 011).
	claim := func(row int, target, run string) (string, error) {
		var verdict string
		err := db.Pool.QueryRow(ctx, `SELECT verdict FROM bulkassign_claim($1, $2, $3, $4, $5, $6, $7::uuid, $8, $9, $10)`,
			"", "c0000000-0000-4000-8000-000000000001", "", target, batch, row, run, time.Minute, "req-"+run, time.Now()).Scan(&verdict)
		return verdict, err
	}
	const run1, run2, run3 = "a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002", "a0000000-0000-4000-8000-000000000003"
	if v, err := claim(0, "all_devices", run1); err != nil || v != "claimed" {
		t.Fatalf("first claim: %q, %v; want claimed", v, err)
	}
	var status, intent string
	var attempts int
	if err := db.Pool.QueryRow(ctx, `SELECT status, intent_request_id, attempts FROM items WHERE batch_id = $1 AND row = 0`, batch).Scan(&status, &intent, &attempts); err != nil ||
		status != "running" || intent != "req-"+run1 || attempts != 1 {
		t.Errorf("row 0 after its claim: %s %q %d attempts, %v; want running with its intent, 1 attempt", status, intent, attempts, err)
	}
	if v, err := claim(1, "all_devices", run2); err != nil || v != "holder_busy" {
		t.Errorf("second row on the target: %q, %v; want holder_busy", v, err)
	}
	// Row 0 is held by run1 for a minute: another run is refused, and
	// its claim of a free target does not stay.
	_, err := claim(0, "other_target", run3)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "P0002" {
		t.Errorf("a claim of a row another live run holds: %v, want no_data_found (P0002)", err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM target_claims WHERE target_key = 'other_target'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d claims of the refused call stayed, %v", n, err)
	}
}

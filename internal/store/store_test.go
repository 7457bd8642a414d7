package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

func TestAssignmentResultsViewColumns(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, 2)
	rows, err := db.Pool.Query(context.Background(), `SELECT column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'assignment_results' ORDER BY ordinal_position`, db.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	// The documented, stable columns (README "Querying results").
	want := []string{"batch_id", "row", "line", "configuration_id", "path", "target_type", "group_id",
		"collection_id", "filter_id", "filter_type", "status", "http_status", "assignment_id", "attempts",
		"error_code", "error_message", "request_id", "created_at", "updated_at"}
	for _, c := range want {
		if !slices.Contains(got, c) {
			t.Errorf("assignment_results lacks column %q (has %v)", c, got)
		}
	}
	for _, c := range store.ResultColumns {
		if !slices.Contains(got, c) {
			t.Errorf("store.ResultColumns names %q, which the view lacks", c)
		}
	}
}

func TestMigrateIsIdempotentAndSafeConcurrently(t *testing.T) {
	t.Parallel()
	db := testdb.NewUnmigrated(t, 8)
	migrateAll := func() []*store.MigrateResult {
		var wg sync.WaitGroup
		results := make([]*store.MigrateResult, 3)
		for i := range results {
			wg.Go(func() {
				var err error
				if results[i], err = store.Migrate(context.Background(), db.Pool, db.Schema); err != nil {
					t.Errorf("concurrent migrate %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return results
	}
	// Three at once on an empty schema: exactly one applies each migration.
	ours, river := 0, 0
	for _, r := range migrateAll() {
		ours += len(r.Ours)
		river += len(r.RiverVersions)
	}
	all, _ := store.Migrations()
	if ours != len(all) || river == 0 {
		t.Fatalf("three concurrent migrations applied ours %d times (want %d) and River versions %d times (want > 0)", ours, len(all), river)
	}
	// Again: nothing left to do.
	for _, r := range migrateAll() {
		if len(r.Ours) != 0 || len(r.RiverVersions) != 0 {
			t.Fatalf("migrate on a current schema applied %v / River %v, want nothing", r.Ours, r.RiverVersions)
		}
	}
	ok, err := store.MigrationsCurrent(context.Background(), db.Pool)
	if err != nil || !ok {
		t.Fatalf("MigrationsCurrent = %v, %v; want true", ok, err)
	}
}

// countingQuerier counts the queries that reach the database.
type countingQuerier struct {
	store.Querier
	queries int
}

func (c *countingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.queries++
	return c.Querier.Query(ctx, sql, args...)
}

// TestGetBatchPrefix looks batches up by id and prefix, and checks that
// LIKE's wildcards, short prefixes and anything else that is not hex digits
// and dashes are refused before any query (once "bbbbbbb_" found batch
// bbbbbbbb-… and "________" found them all).
func TestGetBatchPrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	ids := []string{"aaaaaaaa-0000-4000-8000-000000000001", "aaaaaaaa-0000-4000-8000-000000000002", "bbbbbbbb-1111-4111-8111-111111111111"}
	for _, id := range ids {
		if err := store.InsertBatch(ctx, db.Pool, &store.Batch{ID: id, Source: "in.csv", SHA256: "00"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{ids[2], "bbbbbbbb", "BBBBBBBB-1111", "bbbbbbbb-1111-4111-8111-111111111111"} {
		q := &countingQuerier{Querier: db.Pool}
		if b, err := store.GetBatch(ctx, q, id); err != nil || b.ID != ids[2] || q.queries != 1 {
			t.Errorf("GetBatch(%q) = %v, %v after %d queries; want batch %s", id, b, err, q.queries, ids[2])
		}
	}
	if _, err := store.GetBatch(ctx, db.Pool, "aaaaaaaa"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("GetBatch(aaaaaaaa) = %v, want ambiguous", err)
	}
	if _, err := store.GetBatch(ctx, db.Pool, "cccccccc"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetBatch(cccccccc) = %v, want not found", err)
	}
	for _, id := range []string{"%", "%%%%%%%%", "________", "bbbbbbb_", "bbbbbbbb%", "b%", "bbbbbbbb-1111-4111-8111-11111111111_",
		"bbbbbbb", "", "bbbbbbbb-1111-4111-8111-1111111111111", "bbbbbbbb 1111", "bbbbbbbb'--", `bbbbbbbb\`, "gggggggg", "bbbbbbbb!"} {
		q := &countingQuerier{Querier: db.Pool}
		b, err := store.GetBatch(ctx, q, id)
		if !errors.Is(err, store.ErrBadBatchID) || b != nil || q.queries != 0 {
			t.Errorf("GetBatch(%q) = %v, %v after %d queries; want ErrBadBatchID and no query", id, b, err, q.queries)
			continue
		}
		want := fmt.Sprintf("batch %q: not a batch id: give the id or its first 8 or more characters (hex digits and dashes)", id)
		if err.Error() != want {
			t.Errorf("GetBatch(%q): %q, want %q", id, err, want)
		}
	}
}

// testTenant is the default tenant of the lists these tests enqueue.
const testTenant = "5e0c9f3a-7d21-4b8e-a6f4-2c1d0e9b8a73"

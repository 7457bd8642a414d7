package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"

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
	want := []string{"batch_id", "item_id", "line", "configuration_id", "path", "target_type", "group_id",
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

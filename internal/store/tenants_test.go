package store_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// Tenants that rows name.
const (
	tenantA = "2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d"
	tenantB = "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29180"
)

// TestTenants: each row's tenant is stored, shown in the view, filtered on
// and counted by; a row from before rows named a tenant has none (NULL).
func TestTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	// Rows 1-3 in tenant A, 4-5 in B, 6 in the default tenant.
	var list strings.Builder
	list.WriteString("configuration_id,target_type,group_id,tenant_id\n")
	for i, tenant := range []string{tenantA, tenantA, tenantA, tenantB, tenantB, ""} {
		list.WriteString(testenv.Config(0) + ",group," + testenv.Group(i) + "," + tenant + "\n")
	}
	out, err := jobs.Enqueue(ctx, db.Pool, rc, []jobs.Input{{Name: "tenants.csv", Reader: strings.NewReader(list.String()),
		Format: intake.FormatCSV, DefaultTenant: testTenant}})
	if err != nil {
		t.Fatal(err)
	}
	batch := out[0].Batch.ID
	if _, err := db.Pool.Exec(ctx, `UPDATE items SET status = 'failed' WHERE batch_id = $1 AND row IN (1, 4)`, batch); err != nil {
		t.Fatal(err)
	}
	// A row enqueued before rows named their tenant.
	if err := store.InsertBatch(ctx, db.Pool, &store.Batch{ID: itemsBatch, Source: "old.csv", SHA256: "00"}); err != nil {
		t.Fatal(err)
	}
	insertItem(t, db, 0, "")
	// Counted as migration 009's backfill counted the rows enqueued before
	// it (rows enter items through CopyItems, which counts them, since).
	if _, err := db.Pool.Exec(ctx, `INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
		SELECT batch_id, '', status, '', count(*) FROM items WHERE batch_id = $1 GROUP BY batch_id, status`, itemsBatch); err != nil {
		t.Fatal(err)
	}

	t.Run("Results", func(t *testing.T) {
		t.Parallel()
		export := func(batch string, f store.ResultFilter) map[int]string {
			t.Helper()
			out := map[int]string{}
			if err := store.ExportResultsWhere(ctx, db.Pool, batch, f, func(r *store.ExportRow) error {
				out[r.Row] = r.TenantID
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		for _, tc := range []struct {
			name   string
			filter store.ResultFilter
			want   map[int]string
		}{
			{"All", store.ResultFilter{}, map[int]string{1: tenantA, 2: tenantA, 3: tenantA, 4: tenantB, 5: tenantB, 6: testTenant}},
			{"Tenant", store.ResultFilter{TenantID: tenantB}, map[int]string{4: tenantB, 5: tenantB}},
			{"TenantAndStatus", store.ResultFilter{TenantID: tenantA, Statuses: []assign.Status{assign.StatusFailed}}, map[int]string{1: tenantA}},
			{"NoSuchTenant", store.ResultFilter{TenantID: "00000000-0000-4000-8000-000000000000"}, map[int]string{}},
		} {
			if got := export(batch, tc.filter); !maps.Equal(got, tc.want) {
				t.Errorf("%s: rows %v, want %v", tc.name, got, tc.want)
			}
		}
		if got := export(itemsBatch, store.ResultFilter{}); !maps.Equal(got, map[int]string{0: ""}) {
			t.Errorf("an old row: %v, want no tenant", got)
		}
		var old *string
		if err := db.Pool.QueryRow(ctx, `SELECT tenant_id FROM assignment_results WHERE batch_id = $1`, itemsBatch).Scan(&old); err != nil || old != nil {
			t.Errorf("the view's tenant_id of an old row = %v, %v; want NULL", old, err)
		}
	})

	t.Run("Item", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			batch string
			row   int
			want  string
		}{{batch, 4, tenantB}, {batch, 6, testTenant}, {itemsBatch, 0, ""}} {
			if it, err := store.GetItem(ctx, db.Pool, tc.batch, tc.row); err != nil || it.TenantID != tc.want {
				t.Errorf("GetItem(%s, %d) = %+v, %v; want tenant %q", tc.batch, tc.row, it, err, tc.want)
			}
		}
	})

	t.Run("Counts", func(t *testing.T) {
		t.Parallel()
		tc, err := store.CountByTenant(ctx, db.Pool, batch)
		if err != nil {
			t.Fatal(err)
		}
		want := store.TenantCounts{
			tenantA:    {assign.StatusFailed: 1, assign.StatusQueued: 2},
			tenantB:    {assign.StatusFailed: 1, assign.StatusQueued: 1},
			testTenant: {assign.StatusQueued: 1},
		}
		if !maps.EqualFunc(tc, want, maps.Equal) {
			t.Fatalf("CountByTenant = %v, want %v", tc, want)
		}
		if got, want := tc.Tenants(), []string{tenantA, testTenant, tenantB}; !slices.Equal(got, want) {
			t.Errorf("Tenants = %v, want %v (sorted)", got, want)
		}
		all, err := store.CountByStatus(ctx, db.Pool, batch)
		if err != nil || !maps.Equal(tc.Sum(), all) {
			t.Errorf("Sum = %v, CountByStatus = %v, %v", tc.Sum(), all, err)
		}
		if old, err := store.CountByTenant(ctx, db.Pool, itemsBatch); err != nil || !maps.EqualFunc(old, store.TenantCounts{"": {assign.StatusQueued: 1}}, maps.Equal) {
			t.Errorf("CountByTenant(old batch) = %v, %v; want the row under no tenant", old, err)
		}

		list, err := store.ListBatches(ctx, db.Pool, 10)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(s store.BatchSummary) bool { return s.ID == batch })
		if i < 0 || !maps.EqualFunc(list[i].Tenants, want, maps.Equal) || !maps.Equal(list[i].Counts, all) {
			t.Fatalf("ListBatches: %+v, want the batch with tenants %v", list, want)
		}
	})
}

package store_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

const otherTenant = "7a1c3e5f-2b4d-4e6a-8c0b-1d3f5a7c9e2b"

// scanned counts a batch's rows the slow way, from items, keyed as the
// kept counts are: tenant/status and revert status.
func scanned(t *testing.T, q store.Querier, batch string) (map[string]int, map[string]int) {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT coalesce(tenant_id, ''), status, coalesce(revert_status, ''), count(*)
		FROM items WHERE batch_id = $1 GROUP BY 1, 2, 3`, batch)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byTenant, reverts := map[string]int{}, map[string]int{}
	for rows.Next() {
		var tenant, status, revert string
		var n int
		if err := rows.Scan(&tenant, &status, &revert, &n); err != nil {
			t.Fatal(err)
		}
		byTenant[tenant+"/"+status] += n
		if revert != "" {
			reverts[revert] += n
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return byTenant, reverts
}

// checkKept fails unless every kept count of the batch (CountByTenant,
// CountByStatus, CountReverts, ListBatches) equals count(*) over its items.
func checkKept(t *testing.T, q store.Querier, batch, when string) {
	t.Helper()
	ctx := context.Background()
	wantTenants, wantReverts := scanned(t, q, batch)
	tc, err := store.CountByTenant(ctx, q, batch)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for tenant, sc := range tc {
		for s, n := range sc {
			got[tenant+"/"+string(s)] = n
		}
	}
	if !maps.Equal(got, wantTenants) {
		t.Fatalf("%s: CountByTenant = %v, count(*) says %v", when, got, wantTenants)
	}
	sc, err := store.CountByStatus(ctx, q, batch)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Total() != sumValues(wantTenants) {
		t.Fatalf("%s: CountByStatus totals %d, count(*) says %d", when, sc.Total(), sumValues(wantTenants))
	}
	rc, err := store.CountReverts(ctx, q, batch)
	if err != nil {
		t.Fatal(err)
	}
	gotReverts := map[string]int{}
	for s, n := range rc {
		gotReverts[string(s)] = n
	}
	if !maps.Equal(gotReverts, wantReverts) {
		t.Fatalf("%s: CountReverts = %v, count(*) says %v", when, gotReverts, wantReverts)
	}
	list, err := store.ListBatches(ctx, q, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range list {
		if b.ID == batch && (!maps.Equal(b.Counts, sc) || !maps.Equal(b.Reverts, rc)) {
			t.Fatalf("%s: ListBatches counts %v / %v, want %v / %v", when, b.Counts, b.Reverts, sc, rc)
		}
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestKeptCounts(t *testing.T) {
	t.Parallel()
	type testBundle struct {
		db             *testdb.DB
		batch, another string
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		db := testdb.New(t, 12)
		rc, err := jobs.NewInsertClient(db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		// 200 rows, every fourth of another tenant; and a second batch
		// whose counts must never move when the first's rows change.
		var b strings.Builder
		b.WriteString("tenant_id,configuration_id,target_type,group_id\n")
		for i := range 200 {
			tenant := ""
			if i%4 == 0 {
				tenant = otherTenant
			}
			fmt.Fprintf(&b, "%s,%s,group,%s\n", tenant, testenv.Config(i%5), testenv.Group(i))
		}
		out, err := jobs.Enqueue(context.Background(), db.Pool, rc, []jobs.Input{
			{Name: "kept.csv", Reader: strings.NewReader(b.String()), Format: intake.FormatCSV, DefaultTenant: testTenant},
			{Name: "another.csv", Reader: strings.NewReader(testenv.GroupCSV(30, 3)), Format: intake.FormatCSV, DefaultTenant: testTenant},
		})
		if err != nil {
			t.Fatal(err)
		}
		return &testBundle{db: db, batch: out[0].Batch.ID, another: out[1].Batch.ID}
	}

	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		tb := setup(t)
		pool := tb.db.Pool
		checkKept(t, pool, tb.batch, "after enqueue")
		checkKept(t, pool, tb.another, "after enqueue")

		// Workers: rows are read and claimed (running), some finish one at
		// a time.
		for row := 1; row <= 60; row++ {
			run := assign.NewID()
			it, err := store.StartRun(ctx, pool, tb.batch, row, run)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Claim(ctx, pool, store.ClaimRequest{BatchID: tb.batch, Row: row, Run: run, Hold: time.Minute,
				Spec: it.Spec, TenantID: it.TenantID, ClientRequestID: assign.NewID(), ListReadAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			o := store.Outcome{Status: assign.StatusCreated, HTTPStatus: 201, AssignmentID: fmt.Sprintf("a%d", row)}
			switch {
			case row%10 == 0:
				o = store.Outcome{Status: assign.StatusFailed, HTTPStatus: 404, ErrorCode: "ResourceNotFound"}
			case row%7 == 0:
				o = store.Outcome{Status: assign.StatusRetrying, HTTPStatus: 503, CountError: true}
			case row%9 == 0:
				continue // left running
			}
			if _, err := store.RecordOutcome(ctx, pool, tb.batch, row, run, o); err != nil {
				t.Fatal(err)
			}
		}
		checkKept(t, pool, tb.batch, "after single-row outcomes")

		// A batched outcome write, as the worker's group commit writes
		// them: many rows in one UPDATE ... FROM unnest.
		var batched []store.RowOutcome
		for row := 61; row <= 120; row++ {
			batched = append(batched, store.RowOutcome{BatchID: tb.batch, Row: row,
				Outcome: store.Outcome{Status: []assign.Status{assign.StatusCreated, assign.StatusAlreadyAssigned, assign.StatusFailed}[row%3]}})
		}
		if _, err := store.RecordOutcomes(ctx, pool, batched); err != nil {
			t.Fatal(err)
		}
		checkKept(t, pool, tb.batch, "after a batched outcome write")

		// An update that changes no status changes no count.
		if _, err := pool.Exec(ctx, `UPDATE items SET updated_at = now() WHERE batch_id = $1`, tb.batch); err != nil {
			t.Fatal(err)
		}
		checkKept(t, pool, tb.batch, "after an update of no status")

		compact(t, pool)
		checkKept(t, pool, tb.batch, "after compaction")

		// Cancel, then retry the failed and canceled rows.
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := store.CancelItems(ctx, tx, tb.batch)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		checkKept(t, pool, tb.batch, "after cancel")
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := store.RetryItems(ctx, tx, tb.batch, []int{200}); err != nil {
				return err
			}
			// Read inside the retry's transaction, as batchop.Retry does.
			checkKept(t, tx, tb.batch, "inside the retry's transaction")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		checkKept(t, pool, tb.batch, "after retry")

		// Every row created, then reverted: some reverted, some failed.
		if _, err := pool.Exec(ctx, `UPDATE items SET status = 'created', assignment_id = 'a' || row, finished_at = now()
			WHERE batch_id = $1`, tb.batch); err != nil {
			t.Fatal(err)
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := store.QueueRevert(ctx, tx, tb.batch)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		checkKept(t, pool, tb.batch, "after queueing the revert")
		for row := 1; row <= 50; row++ {
			if _, err := store.MarkRevertRunning(ctx, pool, tb.batch, row); err != nil {
				t.Fatal(err)
			}
			o := store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: 204}
			if row%5 == 0 {
				o = store.RevertOutcome{Status: assign.RevertFailed, HTTPStatus: 403}
			}
			if _, err := store.RecordRevert(ctx, pool, tb.batch, row, o); err != nil {
				t.Fatal(err)
			}
		}
		checkKept(t, pool, tb.batch, "after reverts")
		// A row moved to another tenant moves its count.
		if _, err := pool.Exec(ctx, `UPDATE items SET tenant_id = $2 WHERE batch_id = $1 AND row = 2`, tb.batch, otherTenant); err != nil {
			t.Fatal(err)
		}
		compact(t, pool)
		checkKept(t, pool, tb.batch, "at the end")
		checkKept(t, pool, tb.another, "at the end (untouched)")
	})

	t.Run("ConcurrentWorkersAndCompaction", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		tb := setup(t)
		pool := tb.db.Pool
		// Eight workers take rows in turn and write outcomes row by row
		// while compaction runs over and over.
		const workers = 8
		var wg sync.WaitGroup
		errs := make(chan error, workers+1)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for row := w + 1; row <= 200; row += workers {
					run := assign.NewID()
					if _, err := store.StartRun(ctx, pool, tb.batch, row, run); err != nil {
						errs <- err
						return
					}
					status := assign.StatusCreated
					if row%6 == 0 {
						status = assign.StatusFailed
					}
					if _, err := store.RecordOutcome(ctx, pool, tb.batch, row, run, store.Outcome{Status: status}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		stop := make(chan struct{})
		compactions := 0
		var cwg sync.WaitGroup
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := store.CompactCounts(ctx, pool); err != nil {
					errs <- err
					return
				}
				compactions++
			}
		}()
		wg.Wait()
		close(stop)
		cwg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		t.Logf("%d compactions ran beside the workers", compactions)
		checkKept(t, pool, tb.batch, "after concurrent workers")
		sc, err := store.CountByStatus(ctx, pool, tb.batch)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Final() != 200 || sc[assign.StatusFailed] != 33 {
			t.Fatalf("counts %v: want 200 final, 33 failed", sc)
		}
		compact(t, pool)
		var keys int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM batch_counts WHERE batch_id = $1`, tb.batch).Scan(&keys); err != nil {
			t.Fatal(err)
		}
		// created in both tenants; failed (even rows) only in the default
		// tenant (the other tenant's rows are odd: 1, 5, 9, ...).
		if keys != 3 {
			t.Fatalf("%d rows of batch_counts for the batch after compaction, want 3 (one per tenant and status)", keys)
		}
	})
}

func compact(t *testing.T, q store.Querier) {
	t.Helper()
	if _, err := store.CompactCounts(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	var dup int
	if err := q.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT 1 FROM batch_counts
		GROUP BY batch_id, tenant_id, status, revert_status HAVING count(*) > 1) d`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Fatalf("%d keys still have more than one row after compaction", dup)
	}
}

// TestKeptCountsBackfill: batches enqueued before migration 009 get their
// counts from the migration itself.
func TestKeptCountsBackfill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewUnmigrated(t, 2)
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var m009 store.Migration
	for _, m := range ms {
		if m.Version >= 9 {
			if m.Version == 9 {
				m009 = m
			}
			continue
		}
		if _, err := db.Pool.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
	}
	batch := assign.NewID()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO batches (id, source, sha256, bytes, row_count) VALUES ($1, 'old.csv', '', 0, 500)`, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO items (batch_id, row, line, configuration_id, target_type, status, tenant_id, revert_status)
		SELECT $1, g, g + 1, $2, 'all_devices',
			(ARRAY['queued', 'running', 'created', 'failed', 'already_assigned'])[g % 5 + 1],
			CASE WHEN g % 3 = 0 THEN NULL ELSE $3 END,
			CASE WHEN g % 5 = 2 AND g % 4 = 0 THEN 'reverted' END
		FROM generate_series(1, 500) g`, batch, testenv.Config(1), testTenant); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, m009.SQL); err != nil {
		t.Fatalf("%s: %v", m009.Name, err)
	}
	checkKept(t, db.Pool, batch, "after the migration")
	tc, err := store.CountByTenant(ctx, db.Pool, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc) != 2 || tc.Sum().Total() != 500 {
		t.Fatalf("backfilled counts %v: want 500 rows in 2 tenants (one of them the rows without a tenant)", tc)
	}
}

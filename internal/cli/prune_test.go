package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// rowsOf counts what the database still holds of a batch, table by table.
func rowsOf(t *testing.T, h *testenv.Harness, batch string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for table, sql := range map[string]string{
		"batches":            `SELECT count(*) FROM batches WHERE id = $1`,
		"items":              `SELECT count(*) FROM items WHERE batch_id = $1`,
		"assignment_results": `SELECT count(*) FROM assignment_results WHERE batch_id = $1`,
		"item_history":       `SELECT count(*) FROM item_history WHERE batch_id = $1`,
		"target_claims":      `SELECT count(*) FROM target_claims WHERE batch_id = $1`,
		"assignment_lists":   `SELECT count(*) FROM assignment_lists WHERE batch_id = $1`,
		"batch_counts":       `SELECT count(*) FROM batch_counts WHERE batch_id = $1`,
		"batch_prunes":       `SELECT count(*) FROM batch_prunes WHERE batch_id = $1`,
		"river_job":          `SELECT count(*) FROM river_job WHERE args @> jsonb_build_object('batch', $1::text)`,
	} {
		var n int
		if err := h.DB.Pool.QueryRow(context.Background(), sql, batch).Scan(&n); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newTenant(t, 3)
	_, stopWorker := h.StartWorker(t, fastWorker)
	run := func(name string, rows int) string {
		t.Helper()
		file := testenv.WriteFile(t, name, testenv.GroupCSV(rows, 3))
		r := enqueue(t, h, false, file, "--wait", "--progress-interval", "100ms")
		wantRun(t, r, cli.ExitOK, "")
		return strings.TrimSpace(r.stdout)
	}
	// Finished: a batch by hand, then two runs of the nightly schedule.
	finished := run("finished.csv", 20)
	nightly1 := run("nightly1.csv", 10)
	nightly2 := run("nightly2.csv", 10)
	for _, b := range []string{nightly1, nightly2} {
		if err := store.SetBatchSchedule(ctx, h.DB.Pool, b, "nightly"); err != nil {
			t.Fatal(err)
		}
	}
	// A finished row's earlier run, as a retry leaves it.
	if _, err := h.DB.Pool.Exec(ctx, `INSERT INTO item_history (batch_id, row, run, status, attempts, errors)
		VALUES ($1, 1, 0, 'failed', 1, 1)`, finished); err != nil {
		t.Fatal(err)
	}
	before := rowsOf(t, h, finished)
	for _, table := range []string{"items", "target_claims", "assignment_lists", "river_job", "item_history"} {
		if before[table] == 0 {
			t.Fatalf("the finished batch has no %s rows before the prune: the test proves nothing of them (%v)", table, before)
		}
	}
	// Still running: no worker works it.
	stopWorker()
	running := strings.TrimSpace(enqueue(t, h, false, testenv.WriteFile(t, "running.csv", testenv.GroupCSV(15, 3))).stdout)

	t.Run("BadAge", func(t *testing.T) {
		wantRun(t, enqueue(t, h, false, "prune"), cli.ExitSetting, "-older-than is required")
		r := enqueue(t, h, false, "prune", "--older-than", "90x")
		wantRun(t, r, cli.ExitSetting, `-older-than: "90x" is not an age (e.g. 90d, 12h, 0s)`)
		if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
			t.Fatalf("a bad age should be one line of stderr, got:\n%s", r.stderr)
		}
	})

	t.Run("NothingOldEnough", func(t *testing.T) {
		r := enqueue(t, h, false, "prune", "--older-than", "90d")
		wantRun(t, r, cli.ExitOK, "removed 0 batches (0 rows, 0 River jobs)")
	})

	// The dry run says what would go and removes nothing.
	r := enqueue(t, h, false, "prune", "--older-than", "0s", "--dry-run", "--format", "csv")
	wantRun(t, r, cli.ExitOK, "would remove 2 batches (30 rows, 0 River jobs)")
	if !strings.Contains(r.stdout, finished) || !strings.Contains(r.stdout, nightly1) || strings.Contains(r.stdout, nightly2) {
		t.Fatalf("dry run lists:\n%s\nwant %s and %s only", r.stdout, finished, nightly1)
	}
	if got := rowsOf(t, h, finished); got["items"] != before["items"] {
		t.Fatalf("a dry run removed rows: %v, before %v", got, before)
	}

	r = enqueue(t, h, false, "prune", "--older-than", "0s")
	wantRun(t, r, cli.ExitOK, "removed 2 batches (30 rows, 30 River jobs)")
	if !strings.Contains(r.stderr, "kept 2 older batches: 1 not finished, 1 the latest run of a schedule") {
		t.Fatalf("stderr should say what was kept:\n%s", r.stderr)
	}
	for _, b := range []string{finished, nightly1} {
		if !strings.Contains(r.stdout, b) {
			t.Fatalf("stdout should list %s:\n%s", b, r.stdout)
		}
		for table, n := range rowsOf(t, h, b) {
			if n != 0 {
				t.Errorf("pruned batch %s still has %d rows in %s", b[:8], n, table)
			}
		}
		wantRun(t, enqueue(t, h, false, "results", b), cli.ExitFailed, "not found")
		wantRun(t, enqueue(t, h, false, "status", b), cli.ExitFailed, "not found")
	}
	list := enqueue(t, h, false, "batches", "--format", "csv")
	wantRun(t, list, cli.ExitOK, "")
	for _, b := range []string{finished, nightly1} {
		if strings.Contains(list.stdout, b) {
			t.Fatalf("enqueue batches still lists pruned batch %s:\n%s", b, list.stdout)
		}
	}
	for b, rows := range map[string]int{running: 15, nightly2: 10} {
		if !strings.Contains(list.stdout, b) {
			t.Fatalf("enqueue batches lost kept batch %s:\n%s", b, list.stdout)
		}
		if got := rowsOf(t, h, b); got["assignment_results"] != rows || got["items"] != rows {
			t.Fatalf("kept batch %s: %v, want its %d rows", b[:8], got, rows)
		}
		if c := counts(t, h, b); c.Total() != rows {
			t.Fatalf("kept batch %s counts %v, want %d rows", b[:8], c, rows)
		}
	}
	// Pruning again finds nothing new.
	wantRun(t, enqueue(t, h, false, "prune", "--older-than", "0s"), cli.ExitOK, "removed 0 batches")

	// The running batch, once worked, can go too.
	h.StartWorker(t, fastWorker)
	h.WaitFinal(t, running, time.Minute)
	waitFor(t, "the running batch's jobs to complete", time.Minute, func() bool {
		var live int
		_ = h.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args @> jsonb_build_object('batch', $1::text)
			AND state NOT IN ('completed', 'cancelled', 'discarded')`, running).Scan(&live)
		return live == 0
	})
	wantRun(t, enqueue(t, h, false, "prune", "--older-than", "0s"), cli.ExitOK, "removed 1 batches (15 rows, 15 River jobs)")
}

// fillFinishedBatch writes a finished batch of rows straight in SQL, with
// a completed River job and a target claim per row, as a worked batch
// leaves them; enqueued (created_at) age ago.
func fillFinishedBatch(t *testing.T, h *testenv.Harness, rows int, age time.Duration) string {
	t.Helper()
	ctx := context.Background()
	batch := assign.NewID()
	for _, sql := range []string{
		`INSERT INTO batches (id, source, sha256, bytes, row_count, created_at) VALUES ($1, 'big.csv', '', 0, $2, now() - $3::interval)`,
		`INSERT INTO items (batch_id, row, line, configuration_id, target_type, group_id, status, http_status, assignment_id,
			tenant_id, finished_at, created_at, updated_at)
		SELECT $1, g, g + 1, 'c0000000-0000-4000-8000-000000000001', 'group', gen_random_uuid(), 'created', 201, 'a' || g,
			'5e0c9f3a-7d21-4b8e-a6f4-2c1d0e9b8a73', now(), now() - $3::interval, now()
		FROM generate_series(1, $2) g`,
		`INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, attempted_at, finalized_at)
		SELECT jsonb_build_object('batch', $1::text, 'row', g), 'bulkassign_assign', 25, 'bulkassign', 'completed', 1, now(), now()
		FROM generate_series(1, $2) g WHERE $3::interval IS NOT NULL`,
		`INSERT INTO target_claims (tenant_id, configuration_id, path, target_key, batch_id, row)
		SELECT 'big', 'c0000000-0000-4000-8000-000000000001', '', $1::text || '/' || g, $1::uuid, g FROM generate_series(1, $2) g
		WHERE $3::interval IS NOT NULL`,
	} {
		if _, err := h.DB.Pool.Exec(ctx, sql, batch, rows, age); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return batch
}

// TestPruneDoesNotBlockWorkers prunes a large batch while a worker works
// another batch, and probes the other batch's rows from a connection that
// gives up on any lock held more than a few seconds.
func TestPruneDoesNotBlockWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newTenant(t, 3)
	const bigRows = 200_000
	big := fillFinishedBatch(t, h, bigRows, time.Hour)
	h.StartWorker(t, slowWorker)
	other := strings.TrimSpace(enqueue(t, h, false, testenv.WriteFile(t, "other.csv", testenv.GroupCSV(60, 3))).stdout)

	type pruneDone struct {
		r    result
		took time.Duration
	}
	pruned := make(chan pruneDone, 1)
	start := time.Now()
	go func() {
		r := enqueue(t, h, false, "prune", "--older-than", "30m")
		pruned <- pruneDone{r, time.Since(start)}
	}()

	// Probe while the prune runs: a worker's kind of write on the other
	// batch, and the counts --wait reads.
	probe, err := h.DB.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Release()
	if _, err := probe.Exec(ctx, `SET lock_timeout = '5s'`); err != nil {
		t.Fatal(err)
	}
	var (
		done    pruneDone
		probes  int
		slowest time.Duration
	)
	for finished := false; !finished; {
		select {
		case done = <-pruned:
			finished = true
			continue
		default:
		}
		began := time.Now()
		if _, err := probe.Exec(ctx, `UPDATE items SET updated_at = now() WHERE batch_id = $1 AND row = 1`, other); err != nil {
			t.Fatalf("a write to another batch's row during the prune: %v", err)
		}
		if _, err := store.CountByStatus(ctx, probe.Conn(), other); err != nil {
			t.Fatalf("counting another batch during the prune: %v", err)
		}
		slowest = max(slowest, time.Since(began))
		probes++
		time.Sleep(20 * time.Millisecond)
	}
	wantRun(t, done.r, cli.ExitOK, "removed 1 batches (200000 rows, 200000 River jobs)")
	counts := h.WaitFinal(t, other, 2*time.Minute)
	if counts.Final() != 60 {
		t.Fatalf("the other batch: %v, want 60 rows final", counts)
	}
	if left := rowsOf(t, h, big); left["items"]+left["river_job"]+left["target_claims"] != 0 {
		t.Fatalf("the pruned batch left %v", left)
	}
	if probes == 0 {
		t.Fatal("no probe ran while the prune ran: the test proves nothing")
	}
	t.Logf("figure: pruned %d rows in %s; %d probes of another batch meanwhile, slowest %s",
		bigRows, done.took.Round(time.Millisecond), probes, slowest.Round(time.Millisecond))
}

// TestDailyPrune: with BULKASSIGN_RETENTION, the worker's leader prunes
// finished batches older than it on its own.
func TestDailyPrune(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 3)
	old := fillFinishedBatch(t, h, 500, 49*time.Hour)
	young := fillFinishedBatch(t, h, 10, time.Hour)
	h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"BULKASSIGN_RETENTION": "2d"}})
	// The prune's bookkeeping row goes last: once it is gone, so is the rest.
	waitFor(t, "the leader's prune", 2*time.Minute, func() bool {
		left := rowsOf(t, h, old)
		return left["items"]+left["batch_prunes"] == 0
	})
	if left := rowsOf(t, h, old); left["batches"]+left["river_job"]+left["batch_prunes"] != 0 {
		t.Fatalf("the old batch left %v", left)
	}
	if got := rowsOf(t, h, young); got["items"] != 10 {
		t.Fatalf("the young batch: %v, want its 10 rows kept", got)
	}
	var claimed int
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM sweeps WHERE name = 'prune'`).Scan(&claimed); err != nil || claimed != 1 {
		t.Fatalf("the day's prune is not recorded (%d, %v)", claimed, err)
	}
}

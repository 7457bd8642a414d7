package cli_test

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func counts(t *testing.T, h *testenv.Harness, batch string) store.StatusCounts {
	t.Helper()
	c, err := store.CountByStatus(context.Background(), h.DB.Pool, batch)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantRun(t *testing.T, r result, code int, stderr string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, stderr) {
		t.Fatalf("exit %d, want %d; stderr should contain %q:\n%s", r.code, code, stderr, r.stderr)
	}
}

func TestCancelThenRetry(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 3)
	// No worker yet: the rows wait in the queue.
	file := testenv.WriteFile(t, "cancel.csv", testenv.GroupCSV(30, 3))
	r := enqueue(t, h, false, file)
	batch := strings.TrimSpace(r.stdout)

	wantRun(t, enqueue(t, h, false, "cancel", batch[:8]), cli.ExitOK, "30 rows canceled")
	wantRun(t, enqueue(t, h, false, "cancel", batch[:8]), cli.ExitOK, "nothing to cancel")
	if c := counts(t, h, batch); c[assign.StatusCanceled] != 30 {
		t.Fatalf("after cancel: %v, want 30 canceled", c)
	}
	var live int
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE state NOT IN ('cancelled', 'completed', 'discarded')`).Scan(&live); err != nil || live != 0 {
		t.Fatalf("%d jobs still to run after cancel (%v), want 0", live, err)
	}
	// A worker that starts now finds nothing to do.
	h.StartWorker(t, fastWorker)
	time.Sleep(300 * time.Millisecond)
	if n := len(h.Sim.Ledger()); n != 0 {
		t.Fatalf("the simulator created %d assignments for a canceled batch", n)
	}
	// Canceled rows are waiting on exit 1.
	wantRun(t, enqueue(t, h, false, "status", batch, "--wait"), cli.ExitFailed, "30 were canceled")

	wantRun(t, enqueue(t, h, false, "retry", batch[:8], "--wait", "--progress-interval", "100ms"), cli.ExitOK, "30 failed or canceled rows queued again")
	wantRun(t, enqueue(t, h, false, "retry", batch[:8]), cli.ExitOK, "no failed or canceled rows to retry")
	if c := counts(t, h, batch); c[assign.StatusCreated] != 30 {
		t.Fatalf("after retry: %v, want 30 created", c)
	}
	if n, d := len(h.Sim.Ledger()), h.Sim.Duplicates(); n != 30 || d != 0 {
		t.Fatalf("the simulator created %d assignments with %d duplicates, want 30 and none", n, d)
	}
	wantRun(t, enqueue(t, h, false, "cancel", batch[:8]), cli.ExitOK, "nothing to cancel")
}

func TestCancelMidBatchThenRevert(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 5)
	h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "20", "WORKER_CONCURRENCY": "4"}})
	file := testenv.WriteFile(t, "midway.csv", testenv.GroupCSV(100, 5))
	batch := strings.TrimSpace(enqueue(t, h, false, file).stdout)
	waitFor(t, "20 creates", 30*time.Second, func() bool { return len(h.Sim.Ledger()) >= 20 })
	wantRun(t, enqueue(t, h, false, "cancel", batch), cli.ExitOK, "rows canceled")

	// Rows in flight finish their call; then every row is final and true:
	// each create the tenant saw is a created row, the rest canceled.
	waitFor(t, "the jobs in flight", 30*time.Second, func() bool {
		var live int
		err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE state NOT IN ('cancelled', 'completed', 'discarded')`).Scan(&live)
		return err == nil && live == 0
	})
	c := counts(t, h, batch)
	ledger := h.Sim.Ledger()
	if c[assign.StatusCreated] != len(ledger) || c[assign.StatusCreated]+c[assign.StatusCanceled] != 100 {
		t.Fatalf("after cancel: %v with %d creates in the tenant; want created = creates and the rest canceled", c, len(ledger))
	}
	t.Logf("figure: canceled mid-batch: %d created, %d canceled", c[assign.StatusCreated], c[assign.StatusCanceled])
	wantRun(t, enqueue(t, h, false, "revert", batch, "--wait", "--progress-interval", "100ms"), cli.ExitOK, "")
	if n := len(h.TenantState(5)); n != 0 {
		t.Fatalf("tenant holds %d assignments after cancel and revert, want 0", n)
	}
}

func TestRetryFailedRowsSeeGraphAfresh(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 2)
	h.StartWorker(t, fastWorker)
	file := testenv.WriteFile(t, "retry.csv", testenv.GroupCSV(30, 3))
	r := enqueue(t, h, false, file, "--wait", "--progress-interval", "100ms")
	wantRun(t, r, cli.ExitFailed, "10 rows failed")
	batch := strings.TrimSpace(r.stdout)

	// The missing configuration is created; the failed rows go round again
	// and must not trust the batch's memory that it does not exist.
	h.Sim.AddConfiguration(testenv.Config(2))
	r = enqueue(t, h, false, "retry", batch, "--wait", "--progress-interval", "100ms")
	wantRun(t, r, cli.ExitOK, "10 failed or canceled rows queued again")
	if !regexp.MustCompile(`(?m)^\s*created\s+30$`).MatchString(r.stderr) {
		t.Fatalf("retry --wait summary:\n%s", r.stderr)
	}
	retried := 0
	for _, row := range h.Export(t, batch) {
		if row.ConfigurationID == testenv.Config(2) {
			retried++
			if row.Retries != 1 || row.Status != assign.StatusCreated || row.ErrorCode != "" {
				t.Errorf("line %d: %s after %d retries, error %q; want created after 1 retry, no error", row.Line, row.Status, row.Retries, row.ErrorCode)
			}
		} else if row.Retries != 0 {
			t.Errorf("line %d was retried although it had been created", row.Line)
		}
	}
	var history int
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM item_history WHERE batch_id = $1 AND status = 'failed' AND http_status = 404`, batch).Scan(&history); err != nil {
		t.Fatal(err)
	}
	if retried != 10 || history != 10 {
		t.Fatalf("%d rows retried and %d failed runs in item_history, want 10 and 10", retried, history)
	}
	wantRun(t, enqueue(t, h, false, "retry", batch), cli.ExitOK, "no failed or canceled rows to retry")
	if n := len(h.Sim.Ledger()); n != 30 {
		t.Fatalf("ledger holds %d creates, want 30", n)
	}
}

func TestRevertRestoresTheTenant(t *testing.T) {
	t.Parallel()
	const configs = 4
	h := newTenant(t, configs)
	// Rows 0, 5, 10, ... of the list exist already, and so does a target
	// the list does not name: all of them must survive the revert.
	for i := 0; i < 40; i += 5 {
		h.Sim.Preassign(testenv.Config(i%configs), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(i)})
	}
	h.Sim.Preassign(testenv.Config(1), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(500)})
	before := h.TenantState(configs)

	file := testenv.WriteFile(t, "revert.csv", testenv.GroupCSV(40, configs))
	// A batch still queued cannot be reverted: rows could still be created.
	r := enqueue(t, h, false, file)
	batch := strings.TrimSpace(r.stdout)
	wantRun(t, enqueue(t, h, false, "revert", batch), cli.ExitFailed, "40 rows not final yet")

	h.StartWorker(t, fastWorker)
	wantRun(t, enqueue(t, h, false, "status", batch, "--wait", "--progress-interval", "100ms"), cli.ExitOK, "")
	if c := counts(t, h, batch); c[assign.StatusCreated] != 32 || c[assign.StatusAlreadyAssigned] != 8 {
		t.Fatalf("batch: %v, want 32 created and 8 already_assigned", c)
	}
	if n := len(h.TenantState(configs)); n != len(before)+32 {
		t.Fatalf("tenant holds %d assignments, want %d", n, len(before)+32)
	}

	r = enqueue(t, h, false, "revert", batch[:8], "--wait", "--progress-interval", "100ms")
	wantRun(t, r, cli.ExitOK, "32 rows queued to revert (an assignment it created is deleted, one it removed is put back); 8 rows that found their target already assigned are left alone")
	if !regexp.MustCompile(`(?m)^revert `+batch[:8]+`: 32/32 final \(reverted 32, failed 0\), \d+\.\d rows/s, eta 0s$`).MatchString(r.stderr) ||
		!regexp.MustCompile(`(?m)^\s*revert reverted\s+32$`).MatchString(r.stderr) {
		t.Fatalf("revert --wait output:\n%s", r.stderr)
	}
	if after := h.TenantState(configs); !maps.Equal(after, before) {
		t.Fatalf("tenant after revert differs from before the batch:\nafter  %v\nbefore %v", after, before)
	}
	deleted := h.Sim.Stats().Deleted

	// Twice: nothing more is deleted.
	wantRun(t, enqueue(t, h, false, "revert", batch[:8], "--wait"), cli.ExitOK, "nothing new to revert (32 of 32 reverts done)")
	if d := h.Sim.Stats().Deleted; d != deleted || d != 32 {
		t.Fatalf("the simulator deleted %d assignments (%d after the first revert), want 32", d, deleted)
	}
	// The results say what happened to each row.
	r = enqueue(t, h, false, "results", batch[:8])
	if !strings.Contains(r.stdout, "REVERT") || strings.Count(r.stdout, "reverted 204") != 32 {
		t.Fatalf("results table after revert:\n%s", r.stdout)
	}
	r = enqueue(t, h, false, "status", batch[:8])
	if !regexp.MustCompile(`(?m)^\s*revert reverted\s+32$`).MatchString(r.stdout) {
		t.Fatalf("status after revert:\n%s", r.stdout)
	}
	// A reverted batch is not retried: that would bring the revert back.
	wantRun(t, enqueue(t, h, false, "retry", batch[:8]), cli.ExitFailed, "was reverted")
	if r := enqueue(t, h, false, "revert"); r.code != cli.ExitSetting {
		t.Fatalf("revert without a batch: exit %d, want 2", r.code)
	}
	if r := enqueue(t, h, false, "revert", "00000000-0000"); r.code != cli.ExitFailed || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("revert of an unknown batch: exit %d %q, want 1 and not found", r.code, r.stderr)
	}
}

// TestCancelIsTrue cancels a running batch on two workers while Graph
// fails writes (503, applied then 504, applied then a reset): the counts
// cancel prints are the batch's final counts, no row seen final ever
// changes, and no canceled row's target is in the tenant.
func TestCancelIsTrue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := testenv.New(t, graphsim.Config{Faults: graphsim.Faults{P503: 0.15, PAppliedThen504: 0.1, PAppliedThenReset: 0.05,
		Latency: 30 * time.Millisecond}})
	const configs, rows = 5, 300
	for i := range configs {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	o := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "40", "WORKER_CONCURRENCY": "8"}}
	o.Settings.RetryBase, o.Settings.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	h.StartWorker(t, o)
	h.StartWorker(t, o)
	file := testenv.WriteFile(t, "truth.csv", testenv.GroupCSV(rows, configs))
	batch := strings.TrimSpace(enqueue(t, h, false, file).stdout)

	// A watcher reads every row's status every 20 ms: a row it saw final
	// must never show another status after.
	seenFinal := map[int]assign.Status{}
	var changed []string
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rs, err := h.DB.Pool.Query(ctx, `SELECT row, status FROM items WHERE batch_id = $1`, batch)
			if err != nil {
				continue
			}
			for rs.Next() {
				var row int
				var st assign.Status
				if rs.Scan(&row, &st) != nil {
					break
				}
				if was, ok := seenFinal[row]; ok && was != st {
					changed = append(changed, fmt.Sprintf("row %d: %s, then %s", row, was, st))
				} else if !ok && st.Final() {
					seenFinal[row] = st
				}
			}
			rs.Close()
		}
	}()

	waitFor(t, "40 creates", 60*time.Second, func() bool { return len(h.Sim.Ledger()) >= 40 })
	r := enqueue(t, h, false, "cancel", batch, "-settle-for", "90s")
	wantRun(t, r, cli.ExitOK, "rows canceled")
	after := counts(t, h, batch)
	// The counts cancel printed are the counts it left, and they are final.
	printed := regexp.MustCompile(`(?m)^enqueue: batch [0-9a-f]{8}: (.*) \((\d+) of (\d+) rows final\)$`).FindStringSubmatch(r.stderr)
	if printed == nil {
		t.Fatalf("cancel printed no counts:\n%s", r.stderr)
	}
	if want := countsLineOf(after); printed[1] != want || printed[2] != printed[3] || atoi(t, printed[2]) != rows {
		t.Fatalf("cancel printed %q (%s of %s final), the batch holds %q:\n%s", printed[1], printed[2], printed[3], want, r.stderr)
	}
	// Whatever still runs (a job completing) changes no row.
	time.Sleep(2 * time.Second)
	close(stop)
	<-watched
	if again := counts(t, h, batch); !maps.Equal(again, after) {
		t.Fatalf("counts moved after cancel returned: %v, then %v", after, again)
	}
	if len(changed) > 0 {
		t.Fatalf("rows shown final changed:\n%s", strings.Join(changed, "\n"))
	}
	// No canceled row's target is in the tenant; every created one is.
	inTenant := map[string]bool{}
	for _, e := range h.Sim.Ledger() {
		inTenant[e.ConfigurationID+" "+e.Target.Key()] = true
	}
	for _, res := range h.Results(t, batch) {
		held := inTenant[res.ConfigurationID+" "+res.Spec().Target.Key()]
		switch {
		case res.Status == assign.StatusCanceled && held:
			t.Errorf("line %d is canceled, yet the tenant holds its assignment", res.Line)
		case res.Status == assign.StatusCreated && !held:
			t.Errorf("line %d is created, yet the tenant does not hold it", res.Line)
		}
	}
	if d := h.Sim.Duplicates(); d != 0 {
		t.Errorf("the tenant holds %d duplicates", d)
	}
	t.Logf("figure: cancel on two workers under faults:\n%s", r.stderr)
	// Nothing of the batch is left running: revert may follow at once, and
	// it leaves the tenant as it was.
	wantRun(t, enqueue(t, h, false, "revert", batch, "--wait", "--progress-interval", "100ms"), cli.ExitOK, "rows queued to revert")
	if n := len(h.TenantState(configs)); n != 0 {
		t.Errorf("the tenant holds %d assignments after cancel and revert, want 0", n)
	}
}

// countsLineOf is the part of cancel's last line that lists the counts.
func countsLineOf(c store.StatusCounts) string {
	var parts []string
	for _, st := range assign.Statuses {
		if n := c[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	return strings.Join(parts, ", ")
}

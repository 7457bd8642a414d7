package jobs_test

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// queueRevert marks the batch's created rows for revert and inserts their
// jobs, as `enqueue revert` does, and returns how many it queued.
func queueRevert(t *testing.T, h *testenv.Harness, batch string) int {
	t.Helper()
	ctx := context.Background()
	rc, err := jobs.NewInsertClient(h.DB.Pool)
	if err != nil {
		t.Fatal(err)
	}
	var rows []int
	err = pgx.BeginFunc(ctx, h.DB.Pool, func(tx pgx.Tx) error {
		if rows, err = store.QueueRevert(ctx, tx, batch); err != nil || len(rows) == 0 {
			return err
		}
		params := make([]river.InsertManyParams, len(rows))
		for i, row := range rows {
			params[i] = river.InsertManyParams{Args: jobs.RevertArgs{Batch: batch, Row: row}}
		}
		_, err := rc.InsertManyFastTx(ctx, tx, params)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

func waitReverts(t *testing.T, h *testenv.Harness, batch string, timeout time.Duration) store.RevertCounts {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := store.CountReverts(context.Background(), h.DB.Pool, batch)
		if err != nil {
			t.Fatal(err)
		}
		if c.Total() > 0 && c.Final() == c.Total() {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("revert of %s not final after %s: %v", batch, timeout, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRevertWorker(t *testing.T) {
	t.Parallel()

	t.Run("ThrottledAndGoneRestoresTheTenant", func(t *testing.T) {
		t.Parallel()
		const rows, configs = 60, 5
		h := testenv.New(t, graphsim.Config{})
		for i := range configs {
			h.Sim.AddConfiguration(testenv.Config(i))
		}
		// The first 10 rows' targets exist already, and so does one
		// target the list does not mention: all must survive the revert.
		for i := range 10 {
			h.Sim.Preassign(testenv.Config(i%configs), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(i)})
		}
		h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(999)})
		before := h.TenantState(configs)

		batch := h.Enqueue(t, "revert.csv", testenv.GroupCSV(rows, configs))
		rt, _ := h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "200", "WORKER_CONCURRENCY": "10"}})
		if c := h.WaitFinal(t, batch, 60*time.Second); c[assign.StatusCreated] != 50 || c[assign.StatusAlreadyAssigned] != 10 {
			t.Fatalf("batch: %v, want 50 created and 10 already_assigned", c)
		}
		// Someone removes one of the batch's assignments in the portal.
		var gone string
		for _, r := range h.Export(t, batch) {
			if r.Status == assign.StatusCreated {
				gone = r.AssignmentID
				if resp := rt.Deps.Graph.DeleteAssignment(context.Background(), r.ConfigurationID, "", gone, ""); resp.StatusCode != http.StatusNoContent {
					t.Fatalf("portal delete: %s", resp.Error())
				}
				break
			}
		}
		// The tenant now admits fewer writes than the worker sends.
		if err := h.Sim.SetWriteLimit(graphsim.Limit{Mode: graphsim.FixedWindow, N: 20, Window: time.Second}); err != nil {
			t.Fatal(err)
		}
		throttledBefore := h.Sim.Stats().Throttled

		if n := queueRevert(t, h, batch); n != 50 {
			t.Fatalf("queued %d reverts, want 50", n)
		}
		if c := waitReverts(t, h, batch, 60*time.Second); c[assign.RevertReverted] != 50 {
			t.Fatalf("reverts: %v, want 50 reverted", c)
		}
		if after := h.TenantState(configs); !maps.Equal(after, before) {
			t.Fatalf("tenant after revert has %d assignments, before the batch %d:\nafter  %v\nbefore %v", len(after), len(before), after, before)
		}
		for _, r := range h.Export(t, batch) {
			switch r.Status {
			case assign.StatusAlreadyAssigned:
				if r.RevertStatus != assign.RevertNone {
					t.Errorf("line %d: already_assigned row has revert %q, want none", r.Line, r.RevertStatus)
				}
			case assign.StatusCreated:
				want := http.StatusNoContent
				if r.AssignmentID == gone {
					want = http.StatusNotFound
				}
				if r.RevertStatus != assign.RevertReverted || r.RevertHTTPStatus != want || r.RevertedAt == nil || r.RevertRequestID == "" {
					t.Errorf("line %d: revert %s http %d at %v request %q; want reverted, %d, a time and a request id",
						r.Line, r.RevertStatus, r.RevertHTTPStatus, r.RevertedAt, r.RevertRequestID, want)
				}
			}
		}
		st := h.Sim.Stats()
		t.Logf("figure: revert of 50 rows against a 20/s window: %d DELETEs answered 429", st.Throttled-throttledBefore)
		if st.Throttled == throttledBefore {
			t.Errorf("no DELETE was throttled: the test did not exercise the 429 path")
		}
		if n := queueRevert(t, h, batch); n != 0 {
			t.Fatalf("second revert queued %d rows, want 0", n)
		}
	})

	t.Run("TimeoutsRetryThenFailThenRevertAgain", func(t *testing.T) {
		t.Parallel()
		h := testenv.New(t, graphsim.Config{})
		h.Sim.AddConfiguration(testenv.Config(0), testenv.Config(1))
		batch := h.Enqueue(t, "timeouts.csv", testenv.GroupCSV(6, 2))
		o := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "200", "GRAPH_TIMEOUT": "300ms", "GRAPH_MAX_ERRORS": "3"}}
		o.Settings.RetryBase, o.Settings.RetryMax = 20*time.Millisecond, 50*time.Millisecond
		h.StartWorker(t, o)
		if c := h.WaitFinal(t, batch, 30*time.Second); c[assign.StatusCreated] != 6 {
			t.Fatalf("batch: %v, want 6 created", c)
		}
		// Graph stops answering in time: every DELETE times out.
		if err := h.Sim.SetFaults(graphsim.Faults{Latency: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		queueRevert(t, h, batch)
		if c := waitReverts(t, h, batch, 60*time.Second); c[assign.RevertFailed] != 6 {
			t.Fatalf("reverts while Graph times out: %v, want 6 failed", c)
		}
		for _, r := range h.Export(t, batch) {
			if r.RevertErrorCode != "NoResponse" || r.RevertedAt != nil {
				t.Errorf("line %d: failed revert says %q %q (reverted at %v), want NoResponse and no time", r.Line, r.RevertErrorCode, r.RevertError, r.RevertedAt)
			}
		}
		if n := len(h.TenantState(2)); n != 6 {
			t.Fatalf("tenant holds %d assignments after failed reverts, want the 6 still there", n)
		}
		// Graph recovers; reverting again re-runs the failed reverts.
		if err := h.Sim.SetFaults(graphsim.Faults{}); err != nil {
			t.Fatal(err)
		}
		if n := queueRevert(t, h, batch); n != 6 {
			t.Fatalf("second revert queued %d rows, want the 6 failed", n)
		}
		if c := waitReverts(t, h, batch, 30*time.Second); c[assign.RevertReverted] != 6 {
			t.Fatalf("reverts after recovery: %v, want 6 reverted", c)
		}
		if n := len(h.TenantState(2)); n != 0 {
			t.Fatalf("tenant holds %d assignments after the revert, want 0", n)
		}
	})
}

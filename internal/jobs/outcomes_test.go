package jobs_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestWorkerOutcomes drives one Graph answer at a time through the worker
// and checks the row it leaves: one case per row of the response policy
// that Graph can produce for a create.
func TestWorkerOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		h    *testenv.Harness
		logs *testenv.LogBuffer
	}
	setup := func(t *testing.T, cfg graphsim.Config, configs int) *testBundle {
		t.Helper()
		h := testenv.New(t, cfg)
		for i := range configs {
			h.Sim.AddConfiguration(testenv.Config(i))
		}
		return &testBundle{h: h, logs: &testenv.LogBuffer{}}
	}
	start := func(t *testing.T, b *testBundle, extra map[string]string) {
		t.Helper()
		o := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "100", "WORKER_CONCURRENCY": "5"},
			Logger: slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		for k, v := range extra {
			o.Extra[k] = v
		}
		o.Settings.RetryBase = 20 * time.Millisecond
		o.Settings.RetryMax = 200 * time.Millisecond
		b.h.StartWorker(t, o)
	}
	riverAttempts := func(t *testing.T, b *testBundle, batch string) []int {
		t.Helper()
		rows, err := b.h.DB.Pool.Query(ctx, `SELECT attempt FROM river_job WHERE args->>'batch' = $1`, batch)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []int
		for rows.Next() {
			var n int
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}

	t.Run("201Created", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, 1)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(3, 1))
		start(t, b, nil)
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			if r.Status != assign.StatusCreated || r.HTTPStatus != 201 || r.AssignmentID == "" || r.RequestID == "" {
				t.Errorf("line %d: %+v, want created with Graph's id and request-id", r.Line, r)
			}
		}
	})

	t.Run("400FailsAtOnceWithGraphsCode", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, 1)
		b.h.Sim.RejectTarget(testenv.Group(1), 400, "BadRequest", "The group does not exist")
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(3, 1))
		start(t, b, nil)
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			want := assign.StatusCreated
			if r.GroupID == testenv.Group(1) {
				want = assign.StatusFailed
				if r.HTTPStatus != 400 || r.ErrorCode != "BadRequest" || r.ErrorMessage != "The group does not exist" || r.Attempts != 1 || r.RequestID == "" {
					t.Errorf("line %d: %+v, want failed after 1 attempt with 400 BadRequest, Graph's message and request-id", r.Line, r)
				}
			}
			if r.Status != want {
				t.Errorf("line %d: %s, want %s", r.Line, r.Status, want)
			}
		}
	})

	t.Run("403FailsAndIsLoggedOncePerBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, 1)
		for i := range 4 {
			b.h.Sim.RejectTarget(testenv.Group(i), 403, "Forbidden", "Application is not authorized to perform this operation")
		}
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(4, 1))
		start(t, b, nil)
		c := b.h.WaitFinal(t, batch, 30*time.Second)
		if c[assign.StatusFailed] != 4 {
			t.Fatalf("counts %v, want 4 failed", c)
		}
		if n := strings.Count(b.logs.String(), "PERMISSION DENIED"); n != 1 {
			t.Fatalf("permission failure logged %d times for one batch, want once", n)
		}
	})

	t.Run("404UnknownConfiguration", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, 0)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(2, 1))
		start(t, b, nil)
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			if r.Status != assign.StatusFailed || r.HTTPStatus != 404 || r.ErrorCode != "ResourceNotFound" || r.Attempts != 0 {
				t.Errorf("line %d: %+v, want failed 404 ResourceNotFound without a create attempt", r.Line, r)
			}
		}
	})

	t.Run("429WaitsWithoutSpendingAttempts", func(t *testing.T) {
		t.Parallel()
		// The tenant admits 2 writes a second; we ask for 100.
		b := setup(t, graphsim.Config{WriteLimit: graphsim.Limit{N: 2, Window: time.Second, NoRetryAfter: 0.5}, Seed: 3}, 1)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(8, 1))
		start(t, b, nil)
		b.h.WaitFinal(t, batch, time.Minute)
		if st := b.h.Sim.Stats(); st.Throttled == 0 {
			t.Fatalf("no 429 was answered; the test needs some: %+v", st)
		}
		for _, r := range b.h.Results(t, batch) {
			if r.Status != assign.StatusCreated {
				t.Errorf("line %d: %s %s, want created", r.Line, r.Status, r.ErrorMessage)
			}
		}
		for _, n := range riverAttempts(t, b, batch) {
			if n != 1 {
				t.Errorf("a River job ran with attempt %d, want 1: throttling must not spend attempts", n)
			}
		}
		var errs int
		if err := b.h.DB.Pool.QueryRow(ctx, `SELECT sum(errors) FROM items WHERE batch_id = $1`, batch).Scan(&errs); err != nil {
			t.Fatal(err)
		}
		if errs != 0 {
			t.Errorf("429s counted %d errors against rows, want 0", errs)
		}
	})

	t.Run("503RetriedUntilCreated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{Faults: graphsim.Faults{P503: 1}}, 1)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(3, 1))
		start(t, b, nil)
		deadline := time.Now().Add(30 * time.Second)
		for b.h.Sim.Stats().Injected503 < 6 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := b.h.Sim.SetFaults(graphsim.Faults{}); err != nil {
			t.Fatal(err)
		}
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			if r.Status != assign.StatusCreated || r.Attempts < 2 {
				t.Errorf("line %d: %s after %d attempts, want created after at least 2", r.Line, r.Status, r.Attempts)
			}
		}
		if d := b.h.Sim.Duplicates(); d != 0 {
			t.Errorf("%d duplicates", d)
		}
	})

	t.Run("503BeyondTheErrorBudgetFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{Faults: graphsim.Faults{P503: 1}}, 1)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(2, 1))
		start(t, b, map[string]string{"GRAPH_MAX_ERRORS": "3"})
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			if r.Status != assign.StatusFailed || r.HTTPStatus != 503 || r.Attempts != 3 ||
				!strings.Contains(r.ErrorMessage, "gave up after 3 failed attempts") {
				t.Errorf("line %d: %+v, want failed 503 after 3 attempts", r.Line, r)
			}
		}
	})

	t.Run("RefusedTokenRetriedThenSignInFailed", func(t *testing.T) {
		t.Parallel()
		// The secret was rotated under a running worker: no token, so no
		// request ever leaves; the refusal may pass (a platform outage), so
		// the row retries within its error budget.
		const wrong = "wrong~secret-value"
		b := setup(t, graphsim.Config{}, 1)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(2, 1))
		start(t, b, map[string]string{"AZURE_CLIENT_SECRET": wrong, "GRAPH_MAX_ERRORS": "2"})
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			if r.Status != assign.StatusFailed || r.ErrorCode != "SignInFailed" || r.HTTPStatus != 0 || r.Attempts != 0 ||
				!strings.Contains(r.ErrorMessage, "gave up after 2 failed attempts") || !strings.Contains(r.ErrorMessage, "AADSTS7000215") ||
				strings.Contains(r.ErrorMessage, wrong) {
				t.Errorf("line %d: %+v, want failed SignInFailed after 2 tries, with the AADSTS code and without the secret", r.Line, r)
			}
		}
		if st := b.h.Sim.Stats(); st.Reads+st.Writes != 0 {
			t.Errorf("Graph saw %d reads and %d writes without a token, want none", st.Reads, st.Writes)
		}
	})

	t.Run("PatienceEndsAWaitingRow", func(t *testing.T) {
		t.Parallel()
		// Graph keeps throttling; the row gives up after its patience.
		b := setup(t, graphsim.Config{WriteLimit: graphsim.Limit{N: 1, Window: time.Hour}}, 1)
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(3, 1))
		start(t, b, map[string]string{"GRAPH_PATIENCE": "2s"})
		c := b.h.WaitFinal(t, batch, time.Minute)
		if c[assign.StatusCreated] != 1 || c[assign.StatusFailed] != 2 {
			t.Fatalf("counts %v, want 1 created and 2 failed after their patience", c)
		}
		for _, r := range b.h.Results(t, batch) {
			if r.Status == assign.StatusFailed && r.ErrorCode != "PatienceExceeded" {
				t.Errorf("line %d: %+v, want PatienceExceeded", r.Line, r)
			}
		}
	})
}

package stall_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/stall"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		facts store.StallFacts
		want  stall.Kind
		text  string
	}{
		{"Finished", store.StallFacts{Open: 0, Now: now}, stall.None, ""},
		{"NoWorker", store.StallFacts{Open: 5, Now: now, ThrottledUntil: now.Add(time.Minute)}, stall.NoWorker, "no worker is running: 5 rows"},
		{"Throttled", store.StallFacts{Open: 5, WorkerAlive: true, Waiting: 5, ThrottledUntil: now.Add(58 * time.Second), Now: now}, stall.Throttled, "until 12:00:58 UTC (58s from now)"},
		{"ThrottleOver", store.StallFacts{Open: 5, WorkerAlive: true, ThrottledUntil: now.Add(-time.Second), Now: now}, stall.None, ""},
		{"SignIn", store.StallFacts{Open: 5, WorkerAlive: true, SignIn: 3, SignInCode: "SignInFailed", Waiting: 2, Now: now}, stall.SignIn, "3 rows could not sign in to their tenant (SignInFailed)"},
		{"Limit", store.StallFacts{Open: 5, WorkerAlive: true, Waiting: 4, Now: now}, stall.Limit, "4 rows wait their turn at GRAPH_WRITE_RATE"},
		{"Moving", store.StallFacts{Open: 5, WorkerAlive: true, Now: now}, stall.None, ""},
	}
	for _, tc := range tests {
		got := stall.Decide(tc.facts)
		if got.Kind != tc.want || !strings.Contains(got.Text, tc.text) {
			t.Errorf("%s: Decide = %q %q, want %q containing %q", tc.name, got.Kind, got.Text, tc.want, tc.text)
		}
	}
}

// TestWhy reads the facts from a real database: no worker, then a
// throttle recorded in the fleet's limit row, then a running worker.
func TestWhy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0))
	id := h.Enqueue(t, "a.csv", testenv.GroupCSV(3, 1))

	r, err := stall.Why(ctx, h.DB.Pool, id)
	if err != nil || r.Kind != stall.NoWorker {
		t.Fatalf("without a worker: %+v, %v; want %s", r, err, stall.NoWorker)
	}
	if _, err := h.DB.Pool.Exec(ctx, `INSERT INTO rate_limits (name, tokens, paused_until) VALUES ('graph_write', 0, now() + interval '58 seconds')`); err != nil {
		t.Fatal(err)
	}
	// A leader's lease stands in for a live worker: the throttle shows.
	if _, err := h.DB.Pool.Exec(ctx, `INSERT INTO river_leader (leader_id, elected_at, expires_at) VALUES ('test', now(), now() + interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	r, err = stall.Why(ctx, h.DB.Pool, id)
	if err != nil || r.Kind != stall.Throttled || r.Until.IsZero() {
		t.Fatalf("with a throttle: %+v, %v; want %s with its end", r, err, stall.Throttled)
	}
}

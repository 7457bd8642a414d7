package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/backoff"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestExactness covers the ways a row could run twice or never end: across
// batches, across runs of one job, and under hostile answers.
func TestExactness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		h *testenv.Harness
	}
	setup := func(t *testing.T, cfg graphsim.Config, configs int) *testBundle {
		t.Helper()
		h := testenv.New(t, cfg)
		for i := range configs {
			h.Sim.AddConfiguration(testenv.Config(i))
		}
		return &testBundle{h: h}
	}
	start := func(t *testing.T, b *testBundle, extra map[string]string) {
		t.Helper()
		o := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "0", "WORKER_CONCURRENCY": "10"}}
		for k, v := range extra {
			o.Extra[k] = v
		}
		o.Settings.RetryBase, o.Settings.RetryMax = 20*time.Millisecond, 200*time.Millisecond
		b.h.StartWorker(t, o)
	}
	// groupsCSV assigns Group(i) for i in [from, to) to Config(i % configs).
	groupsCSV := func(from, to, configs int) string {
		var sb strings.Builder
		sb.WriteString("configuration_id,target_type,group_id\n")
		for i := from; i < to; i++ {
			fmt.Fprintf(&sb, "%s,group,%s\n", testenv.Config(i%configs), testenv.Group(i))
		}
		return sb.String()
	}
	// ledgerIDs is the set of assignment ids the simulator created.
	ledgerIDs := func(b *testBundle) map[string]bool {
		out := map[string]bool{}
		for _, e := range b.h.Sim.Ledger() {
			out[e.ID] = true
		}
		return out
	}
	// checkBatches asserts the tenant holds no duplicate, every created
	// and already_assigned row names an assignment the tenant holds, and
	// returns how many rows ended created and already_assigned.
	checkBatches := func(t *testing.T, b *testBundle, batches ...string) (created, already int) {
		t.Helper()
		for _, batch := range batches {
			b.h.WaitFinal(t, batch, 60*time.Second)
		}
		ids := ledgerIDs(b)
		for _, batch := range batches {
			for _, r := range b.h.Results(t, batch) {
				switch r.Status {
				case assign.StatusCreated:
					created++
				case assign.StatusAlreadyAssigned:
					already++
				default:
					t.Errorf("batch %s line %d: %s %s %s", batch[:8], r.Line, r.Status, r.ErrorCode, r.ErrorMessage)
					continue
				}
				if !ids[r.AssignmentID] {
					t.Errorf("batch %s line %d: %s with %q, which the tenant does not hold", batch[:8], r.Line, r.Status, r.AssignmentID)
				}
			}
		}
		if d := b.h.Sim.Duplicates(); d != 0 {
			t.Errorf("the tenant holds %d duplicate assignments", d)
		}
		return created, already
	}

	t.Run("SameListEnqueuedTwiceBeforeAWorker", func(t *testing.T) {
		t.Parallel()
		// Both batches' rows run at once, so each batch reads the lists
		// before the other's creates land: only the claims keep them apart.
		b := setup(t, graphsim.Config{Faults: graphsim.Faults{Latency: 50 * time.Millisecond}}, 2)
		list := groupsCSV(0, 10, 2)
		first := b.h.Enqueue(t, "nightly.csv", list)
		second := b.h.Enqueue(t, "manual.csv", list)
		start(t, b, map[string]string{"WORKER_CONCURRENCY": "20"})
		created, already := checkBatches(t, b, first, second)
		if created != 10 || already != 10 || len(b.h.Sim.Ledger()) != 10 {
			t.Errorf("created %d, already_assigned %d, tenant creates %d; want 10, 10, 10", created, already, len(b.h.Sim.Ledger()))
		}
	})

	t.Run("OverlappingListsOnTwoWorkers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{Faults: graphsim.Faults{Latency: 20 * time.Millisecond}}, 3)
		a := b.h.Enqueue(t, "a.csv", groupsCSV(0, 30, 3))
		c := b.h.Enqueue(t, "b.csv", groupsCSV(15, 45, 3))
		start(t, b, nil)
		start(t, b, nil)
		created, already := checkBatches(t, b, a, c)
		if created != 45 || already != 15 || len(b.h.Sim.Ledger()) != 45 {
			t.Errorf("created %d, already_assigned %d, tenant creates %d; want 45, 15, 45", created, already, len(b.h.Sim.Ledger()))
		}
	})

	t.Run("AClaimOutlivesADeletedAssignment", func(t *testing.T) {
		t.Parallel()
		// A target created by one batch, then removed in the portal, is
		// created again by the next batch: the old claim does not stand in
		// for an assignment that no longer exists.
		b := setup(t, graphsim.Config{}, 1)
		list := groupsCSV(0, 3, 1)
		first := b.h.Enqueue(t, "monday.csv", list)
		start(t, b, nil)
		checkBatches(t, b, first)
		for _, a := range b.h.Sim.Assignments(testenv.Config(0), "") {
			b.h.Sim.Unassign(testenv.Config(0), "", a.ID)
		}
		second := b.h.Enqueue(t, "tuesday.csv", list)
		b.h.WaitFinal(t, second, 60*time.Second)
		for _, r := range b.h.Results(t, second) {
			if r.Status != assign.StatusCreated {
				t.Errorf("line %d: %s, want created again after the assignment was removed", r.Line, r.Status)
			}
		}
		if n := len(b.h.Sim.Assignments(testenv.Config(0), "")); n != 3 {
			t.Errorf("tenant holds %d assignments, want 3", n)
		}
	})

	t.Run("ASecondRunOfTheSameRowBacksOff", func(t *testing.T) {
		t.Parallel()
		// River's rescuer hands a job to another worker while its first run
		// still works it (a leader whose clock runs fast does that). Here
		// the first run has read the list and waits for the write budget
		// when the job is rescued: without a hold on the row both runs
		// would post.
		b := setup(t, graphsim.Config{Faults: graphsim.Faults{Latency: 300 * time.Millisecond}}, 1)
		// An empty bucket at 0.2 writes/s: the first write waits ~5 s.
		if _, err := b.h.DB.Pool.Exec(ctx, `INSERT INTO rate_limits (name, tokens, updated_at) VALUES ('graph_write', 0, clock_timestamp())`); err != nil {
			t.Fatal(err)
		}
		batch := b.h.Enqueue(t, "in.csv", groupsCSV(0, 1, 1))
		slow := map[string]string{"GRAPH_WRITE_RATE": "0.2", "WORKER_JOB_TIMEOUT": "12s", "WORKER_RESCUE_AFTER": "13s", "WORKER_CONCURRENCY": "1"}
		start(t, b, slow)
		start(t, b, slow) // idle: it takes the job once rescued
		deadline := time.Now().Add(20 * time.Second)
		for b.h.Sim.Stats().Reads == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the first run never read the list")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Rescue the job early, as a leader with a fast clock would.
		if _, err := b.h.DB.Pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
			WHERE kind = 'bulkassign_assign' AND state = 'running'`); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(5 * time.Second)
		for {
			var attempt int
			if err := b.h.DB.Pool.QueryRow(ctx, `SELECT attempt FROM river_job WHERE kind = 'bulkassign_assign'`).Scan(&attempt); err != nil {
				t.Fatal(err)
			}
			if attempt >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the idle worker never took the rescued job")
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.h.WaitFinal(t, batch, 90*time.Second)
		created, _ := checkBatches(t, b, batch)
		if created != 1 || len(b.h.Sim.Ledger()) != 1 {
			t.Errorf("created %d, tenant creates %d; want 1 and 1", created, len(b.h.Sim.Ledger()))
		}
	})

	t.Run("HostileErrorTextIsStored", func(t *testing.T) {
		t.Parallel()
		// 3-byte characters past the 2,000-byte cut, and a NUL: Postgres
		// refuses both a split character and a NUL (SQLSTATE 22021).
		b := setup(t, graphsim.Config{}, 1)
		msg := strings.Repeat("€", 1000) + "\x00end"
		b.h.Sim.RejectTarget(testenv.Group(0), 400, "Bad\x00Request", msg)
		batch := b.h.Enqueue(t, "in.csv", groupsCSV(0, 2, 1))
		start(t, b, nil)
		b.h.WaitFinal(t, batch, 30*time.Second)
		for _, r := range b.h.Results(t, batch) {
			if r.GroupID != testenv.Group(0) {
				continue
			}
			if r.Status != assign.StatusFailed || r.HTTPStatus != 400 || r.ErrorCode != "BadRequest" {
				t.Errorf("line %d: %s %d %q, want failed 400 BadRequest", r.Line, r.Status, r.HTTPStatus, r.ErrorCode)
			}
			if !utf8.ValidString(r.ErrorMessage) || strings.ContainsRune(r.ErrorMessage, 0) || len(r.ErrorMessage) > 2000 ||
				!strings.HasPrefix(r.ErrorMessage, "€€€") {
				t.Errorf("line %d: message of %d bytes is not the bounded text of Graph's", r.Line, len(r.ErrorMessage))
			}
		}
	})

	t.Run("JobsEndedOutsideBulkassignEndTheirRows", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{}, 1)
		batch := b.h.Enqueue(t, "in.csv", groupsCSV(0, 4, 1))
		// River gives up on row 1's job; someone cancels row 2's in River UI.
		for row, state := range map[int]string{1: "discarded", 2: "cancelled"} {
			if _, err := b.h.DB.Pool.Exec(ctx, `UPDATE river_job SET state = $2, finalized_at = now(),
					errors = ARRAY['{"at":"2026-01-01T00:00:00Z","attempt":25,"error":"error recording outcome: boom"}'::jsonb], attempt = 25
				WHERE kind = 'bulkassign_assign' AND args @> jsonb_build_object('batch', $1::text, 'row', $3::int)`,
				batch, state, row); err != nil {
				t.Fatal(err)
			}
		}
		start(t, b, nil)
		b.h.WaitFinal(t, batch, 30*time.Second)
		want := map[int]string{1: assign.CodeJobDiscarded, 2: assign.CodeJobCancelled}
		for _, r := range b.h.Results(t, batch) {
			code, ended := want[r.Row]
			switch {
			case ended && (r.Status != assign.StatusFailed || r.ErrorCode != code || r.ErrorMessage == ""):
				t.Errorf("row %d: %s %s %q, want failed %s with a reason", r.Row, r.Status, r.ErrorCode, r.ErrorMessage, code)
			case !ended && r.Status != assign.StatusCreated:
				t.Errorf("row %d: %s, want created", r.Row, r.Status)
			}
		}
	})

	t.Run("RetryAfterInYear9999IsCapped", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{WriteLimit: graphsim.Limit{Mode: graphsim.FixedWindow, N: 1, Window: time.Minute,
			RetryAfter: "Fri, 31 Dec 9999 23:59:59 GMT"}}, 1)
		batch := b.h.Enqueue(t, "in.csv", groupsCSV(0, 3, 1))
		start(t, b, map[string]string{"GRAPH_WRITE_RATE": "100"})
		deadline := time.Now().Add(30 * time.Second)
		for b.h.Sim.Stats().Throttled == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no write was throttled")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // let the 429 be recorded
		var pause time.Duration
		if err := b.h.DB.Pool.QueryRow(ctx, `SELECT paused_until - now() FROM rate_limits WHERE name = 'graph_write'`).Scan(&pause); err != nil {
			t.Fatal(err)
		}
		if pause > backoff.MaxWait || pause < backoff.MaxWait-time.Minute {
			t.Errorf("the fleet is paused for %s, want about %s (the cap)", pause, backoff.MaxWait)
		}
		var snoozedFor time.Duration
		if err := b.h.DB.Pool.QueryRow(ctx, `SELECT coalesce(max(scheduled_at - now()), '0') FROM river_job
			WHERE kind = 'bulkassign_assign' AND state = 'scheduled'`).Scan(&snoozedFor); err != nil {
			t.Fatal(err)
		}
		if snoozedFor <= 0 || snoozedFor > backoff.MaxWait+time.Second {
			t.Errorf("throttled rows are snoozed for %s, want within (0, %s]", snoozedFor, backoff.MaxWait)
		}
		c, err := store.CountByStatus(ctx, b.h.DB.Pool, batch)
		if err != nil {
			t.Fatal(err)
		}
		if c[assign.StatusCreated] != 1 || c[assign.StatusWaiting] != 2 {
			t.Errorf("counts %v, want 1 created and 2 waiting (out the capped pause: a throttle is not an error)", c)
		}
		// Waiting is not failing: no error code, no attempt spent.
		for _, r := range b.h.Results(t, batch) {
			if r.Status == assign.StatusWaiting && (r.ErrorLabel() != "" || r.WaitLabel() == "") {
				t.Errorf("line %d waits with error %q and reason %q; want no error and a reason", r.Line, r.ErrorLabel(), r.WaitLabel())
			}
		}
	})
}

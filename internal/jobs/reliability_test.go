package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// The reliability suite runs whole batches against a misbehaving tenant and
// checks that every row ends final and true, with no duplicate in the
// simulator's ledger. It prints its figures as "figure:" lines:
//
//	go test -run TestReliability -v ./internal/jobs/ | grep figure:
//
// Windows are scaled (20 writes per second instead of 100 per 20 s) so the
// suite runs in seconds; bounds are loose, the printed figures exact.

// checkTruth asserts that every row is final and agrees with the ledger:
// each created row holds an id the simulator created for exactly that
// target, every create in the ledger belongs to one created row, nothing is
// duplicated, and no row is already_assigned unless preexisting says so.
func checkTruth(t *testing.T, h *testenv.Harness, batches []string, preexisting int) (wrong int) {
	t.Helper()
	report := func(format string, args ...any) {
		t.Helper()
		wrong++
		t.Errorf(format, args...)
	}
	ledger := map[string]graphsim.LedgerEntry{}
	for _, e := range h.Sim.Ledger() {
		ledger[e.ID] = e
	}
	claimed := map[string]int{}
	already := 0
	for _, b := range batches {
		for _, r := range h.Results(t, b) {
			switch r.Status {
			case assign.StatusCreated:
				e, ok := ledger[r.AssignmentID]
				if !ok || e.ConfigurationID != r.ConfigurationID || e.Target.GroupID != r.GroupID {
					report("line %d: created with %q, which the ledger does not hold for this target (%+v)", r.Line, r.AssignmentID, e)
				}
				claimed[r.AssignmentID] = r.Line
			case assign.StatusAlreadyAssigned:
				already++
			default:
				report("line %d: ended %s (%s %s), want created", r.Line, r.Status, r.ErrorCode, r.ErrorMessage)
			}
		}
	}
	for id, e := range ledger {
		if _, ok := claimed[id]; !ok {
			report("the simulator created %s (%s, %s) but no row says created with it", id, e.Target.GroupID, e.Outcome)
		}
	}
	if already != preexisting {
		report("%d rows already_assigned, want %d", already, preexisting)
	}
	if d := h.Sim.Duplicates(); d != 0 {
		t.Errorf("the tenant holds %d duplicate assignments", d)
	}
	return wrong
}

// usage is how a run used the tenant's write limit.
type usage struct {
	posts, throttled int64
	created          int
	elapsed          time.Duration
	perSecond        float64
}

func measure(h *testenv.Harness) usage {
	st := h.Sim.Stats()
	post := st.Methods["POST"]
	u := usage{posts: post.S2xx + post.S4xx + post.S429 + post.S5xx + post.NoResponse, throttled: post.S429}
	ledger := h.Sim.Ledger()
	u.created = len(ledger)
	if len(ledger) > 1 {
		sort.Slice(ledger, func(i, j int) bool { return ledger[i].Time.Before(ledger[j].Time) })
		u.elapsed = ledger[len(ledger)-1].Time.Sub(ledger[0].Time)
		// n creates span n-1 intervals.
		u.perSecond = float64(len(ledger)-1) / u.elapsed.Seconds()
	}
	return u
}

func (u usage) share429() float64 {
	if u.posts == 0 {
		return 0
	}
	return float64(u.throttled) / float64(u.posts)
}

func TestReliability(t *testing.T) {
	if testing.Short() {
		t.Skip("reliability suite: skipped with -short")
	}
	t.Parallel()
	const rows, configs = 300, 10

	newTenant := func(t *testing.T, cfg graphsim.Config) *testenv.Harness {
		h := testenv.New(t, cfg)
		for i := range configs {
			h.Sim.AddConfiguration(testenv.Config(i))
		}
		return h
	}

	t.Run("FaultsAndRevokedTokens", func(t *testing.T) {
		t.Parallel()
		h := newTenant(t, graphsim.Config{
			Seed:   7,
			Faults: graphsim.Faults{P503: 0.05, PAppliedThen504: 0.03, PAppliedThenReset: 0.02},
			// The tenant admits less than we send, so 429s happen; half
			// come without Retry-After.
			WriteLimit:  graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 12, Burst: 3, NoRetryAfter: 0.5},
			RevokeAfter: 5 * time.Second,
		})
		batch := h.Enqueue(t, "faults.csv", testenv.GroupCSV(rows, configs))
		o := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "20", "WORKER_CONCURRENCY": "10"}}
		o.Settings.RetryBase = 200 * time.Millisecond
		h.StartWorker(t, o)
		h.WaitFinal(t, batch, 3*time.Minute)
		wrong := checkTruth(t, h, []string{batch}, 0)
		st := h.Sim.Stats()
		u := measure(h)
		t.Logf("figure: faults: %d rows, %d created, %d duplicates, %d wrong outcomes; injected 503 %d, applied-then-504 %d, applied-then-reset %d; 429 %d (%d without Retry-After); 401 claims challenges %d; POSTs %d",
			rows, u.created, h.Sim.Duplicates(), wrong, st.Injected503, st.AppliedThen504, st.AppliedThenReset, st.Throttled, st.RetryAfterOmit, st.ClaimsChallenges, u.posts)
		if st.AppliedThen504 == 0 || st.AppliedThenReset == 0 || st.ClaimsChallenges == 0 || st.Throttled == 0 {
			t.Errorf("the run did not exercise the faults: %+v", st)
		}
	})

	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("FixedWindowLimit20PerSecond/%dWorkers", procs), func(t *testing.T) {
			t.Parallel()
			h := newTenant(t, graphsim.Config{WriteLimit: graphsim.Limit{Mode: graphsim.FixedWindow, N: 20, Window: time.Second}})
			batch := h.Enqueue(t, "throttled.csv", testenv.GroupCSV(rows, configs))
			for range procs {
				h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "20", "WORKER_CONCURRENCY": "10"}})
			}
			h.WaitFinal(t, batch, 2*time.Minute)
			checkTruth(t, h, []string{batch}, 0)
			u := measure(h)
			t.Logf("figure: fixed window 20/s, GRAPH_WRITE_RATE=20, %d worker(s): %.2f writes/s = %.1f%% of the limit; %d of %d POSTs answered 429 (%.2f%%)",
				procs, u.perSecond, 100*u.perSecond/20, u.throttled, u.posts, 100*u.share429())
			if u.share429() > 0.05 {
				t.Errorf("%.1f%% of POSTs answered 429, want about 1%% or less", 100*u.share429())
			}
			if u.perSecond < 0.70*20 {
				t.Errorf("used %.1f writes/s of 20, want about 95%% or more", u.perSecond)
			}
		})
	}

	t.Run("TenantAdmitsLessThanConfigured", func(t *testing.T) {
		t.Parallel()
		h := newTenant(t, graphsim.Config{WriteLimit: graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 10, Burst: 10}})
		batch := h.Enqueue(t, "shared-tenant.csv", testenv.GroupCSV(rows, configs))
		h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "20", "WORKER_CONCURRENCY": "10"}})
		h.WaitFinal(t, batch, 3*time.Minute)
		checkTruth(t, h, []string{batch}, 0)
		u := measure(h)
		t.Logf("figure: tenant admits 10/s, GRAPH_WRITE_RATE=20: %.2f writes/s = %.1f%% of the real limit; %d of %d POSTs answered 429 (%.2f%%)",
			u.perSecond, 100*u.perSecond/10, u.throttled, u.posts, 100*u.share429())
		if u.share429() > 0.20 {
			t.Errorf("%.1f%% of POSTs answered 429, want about 10%% or less", 100*u.share429())
		}
		if u.perSecond < 0.6*10 {
			t.Errorf("used %.1f writes/s of 10, want about 80%% or more", u.perSecond)
		}
	})

	t.Run("DatabaseConnectionsKilledMidBatch", func(t *testing.T) {
		t.Parallel()
		h := newTenant(t, graphsim.Config{Faults: graphsim.Faults{Latency: 20 * time.Millisecond}})
		batch := h.Enqueue(t, "dbfail.csv", testenv.GroupCSV(rows, configs))
		h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "100", "WORKER_CONCURRENCY": "10"}})
		// Wait for the batch to be under way, then cut every connection
		// the worker holds, as a Postgres restart would.
		deadline := time.Now().Add(time.Minute)
		for len(h.Sim.Ledger()) < 50 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		var killed int
		err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, h.WorkerAppName()).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		h.WaitFinal(t, batch, 3*time.Minute)
		checkTruth(t, h, []string{batch}, 0)
		t.Logf("figure: database connections cut mid-batch: %d backends terminated; %d rows final, %d duplicates", killed, rows, h.Sim.Duplicates())
	})

	t.Run("SIGKILLMidBatch", func(t *testing.T) {
		t.Parallel()
		h := newTenant(t, graphsim.Config{Faults: graphsim.Faults{Latency: 150 * time.Millisecond}})
		batch := h.Enqueue(t, "sigkill.csv", testenv.GroupCSV(rows, configs))
		start := func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), workerProcessEnv+"=1", "GRAPH_WRITE_RATE=40", "WORKER_CONCURRENCY=10",
				"WORKER_JOB_TIMEOUT=3s", "WORKER_RESCUE_AFTER=6s", "WORKER_HTTP_ADDR=off")
			for k, v := range h.Vars() {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				if t.Failed() {
					t.Logf("worker process log:\n%s", stderr.String())
				}
			})
			return cmd
		}
		first := start()
		deadline := time.Now().Add(time.Minute)
		for len(h.Sim.Ledger()) < 100 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := first.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = first.Wait()
		createdAtKill := len(h.Sim.Ledger())
		restarted := time.Now()
		start()
		h.WaitFinal(t, batch, 2*time.Minute)
		took := time.Since(restarted)
		wrong := checkTruth(t, h, []string{batch}, 0)
		t.Logf("figure: SIGKILL after %d of %d creates; every row final %s after the restart; %d duplicates, %d wrong outcomes",
			createdAtKill, rows, took.Round(100*time.Millisecond), h.Sim.Duplicates(), wrong)
	})
}

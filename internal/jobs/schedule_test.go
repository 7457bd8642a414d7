package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func mustTime(t *testing.T, layout, s string, loc *time.Location) time.Time {
	t.Helper()
	v, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		spec, tz string
		wantErr  string // substring; "" means valid
	}{
		{"0 2 * * *", "", ""},
		{"0 2 * * *", "Europe/Berlin", ""},
		{"*/15 8-18 * * MON-FRI", "America/New_York", ""},
		{"@daily", "UTC", ""},
		{"", "UTC", "empty"},
		{"0 2 * *", "UTC", "5 fields"},
		{"0 25 * * *", "UTC", "5 fields"},
		{"0 0 2 * * *", "UTC", "5 fields"}, // seconds are not standard cron
		{"@every 1h", "UTC", "@every"},
		{"CRON_TZ=Europe/Berlin 0 2 * * *", "", "--tz"},
		{"0 2 * * *", "Mars/Olympus", "IANA"},
		{"0 2 * * *", "Local", "depends on the machine"},
	} {
		_, err := jobs.ParseSchedule(tc.spec, tc.tz)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseSchedule(%q, %q) = %v, want no error", tc.spec, tc.tz, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseSchedule(%q, %q) = %v, want an error containing %q", tc.spec, tc.tz, err, tc.wantErr)
		}
	}
}

func TestLatestSlot(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	const layout = "2006-01-02 15:04"
	for _, tc := range []struct {
		name, spec, tz string
		after, now     string // in tz
		want           string // "" means nothing due
	}{
		{"NotYet", "0 2 * * *", "UTC", "2026-03-01 12:00", "2026-03-02 01:59", ""},
		{"ExactlyAtSlot", "0 2 * * *", "UTC", "2026-03-01 12:00", "2026-03-02 02:00", "2026-03-02 02:00"},
		{"OneDue", "0 2 * * *", "UTC", "2026-03-01 12:00", "2026-03-02 09:00", "2026-03-02 02:00"},
		{"SlotAlreadyRun", "0 2 * * *", "UTC", "2026-03-02 02:00", "2026-03-02 09:00", ""},
		{"ThreeMissedCollapse", "0 2 * * *", "UTC", "2026-03-01 12:00", "2026-03-04 09:00", "2026-03-04 02:00"},
		{"MonthsOfDowntime", "0 2 * * *", "UTC", "2025-01-01 12:00", "2026-03-04 09:00", "2026-03-04 02:00"},
		{"YearsOfDowntimeMinutely", "* * * * *", "UTC", "2023-01-01 00:00", "2026-03-04 09:07", "2026-03-04 09:07"},
		{"WeekdaysOverWeekend", "30 6 * * MON-FRI", "UTC", "2026-03-06 07:00", "2026-03-08 23:00", ""}, // Fri after the run → Sun
		{"InBerlin", "0 2 * * *", "Europe/Berlin", "2026-03-01 12:00", "2026-03-02 09:00", "2026-03-02 02:00"},
		// Berlin skips 02:00-03:00 on 2026-03-29: the 02:00 run still happens, once, that day.
		{"SpringForward", "0 2 * * *", "Europe/Berlin", "2026-03-28 12:00", "2026-03-29 12:00", "2026-03-29 03:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := jobs.ParseSchedule(tc.spec, tc.tz)
			if err != nil {
				t.Fatal(err)
			}
			loc := time.UTC
			if tc.tz == "Europe/Berlin" {
				loc = berlin
			}
			got, ok := jobs.LatestSlot(s, mustTime(t, layout, tc.after, loc), mustTime(t, layout, tc.now, loc))
			if tc.want == "" {
				if ok {
					t.Fatalf("LatestSlot = %s, want nothing due", got.In(loc).Format(layout))
				}
				return
			}
			if want := mustTime(t, layout, tc.want, loc); !ok || !got.Equal(want) {
				t.Fatalf("LatestSlot = %s (%v), want %s", got.In(loc).Format(layout), ok, tc.want)
			}
		})
	}
}

// TestScheduleAcrossDST: a daily 02:00 in Berlin runs every day, once,
// including the day 02:00 does not exist and the day it happens twice.
func TestScheduleAcrossDST(t *testing.T) {
	t.Parallel()
	s, err := jobs.ParseSchedule("0 2 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from string   // UTC
		want []string // UTC, the next runs in order
	}{
		// CET (+1) until 29 March 01:00 UTC, then CEST (+2).
		{"2026-03-27 12:00", []string{"2026-03-28 01:00", "2026-03-29 01:00", "2026-03-30 00:00"}},
		// CEST until 25 October 01:00 UTC, then CET: 02:00 occurs at 00:00 and 01:00 UTC.
		{"2026-10-23 12:00", []string{"2026-10-24 00:00", "2026-10-25 01:00", "2026-10-26 01:00"}},
	} {
		at := mustTime(t, "2006-01-02 15:04", tc.from, time.UTC)
		var got []string
		for range tc.want {
			at = s.Next(at)
			got = append(got, at.UTC().Format("2006-01-02 15:04"))
		}
		if strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
			t.Errorf("from %s: runs at %v UTC, want %v", tc.from, got, tc.want)
		}
	}
}

// fakeClock is the schedules' "now", moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// tickInterval is short so tests wait little; River advises no less than a
// second for real use.
const tickInterval = 200 * time.Millisecond

// startScheduler starts a worker runtime wired exactly as `worker` wires it
// (testenv.StartWorker), with the schedule tick on clock. Every runtime may
// become River's leader.
func startScheduler(t *testing.T, h *testenv.Harness, clock *fakeClock) (stop func()) {
	t.Helper()
	_, stop = h.StartWorker(t, testenv.WorkerOptions{
		// Few connections: two of these share a Postgres with other suites.
		Extra:    map[string]string{"GRAPH_WRITE_RATE": "200", "GRAPH_READ_RATE": "500", "WORKER_CONCURRENCY": "4"},
		Schedule: jobs.ScheduleConfig{Interval: tickInterval, Now: clock.Now},
	})
	return stop
}

// runCLI runs `enqueue args...` in-process and returns its exit code and
// output.
func runCLI(t *testing.T, env config.Env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Enqueue(context.Background(), &cli.Env{Getenv: env, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func getSchedule(t *testing.T, pool *pgxpool.Pool, name string) *store.Schedule {
	t.Helper()
	list, err := store.ListSchedules(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no schedule %q among %d", name, len(list))
	return nil
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (%s)", what, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scheduleBatches(t *testing.T, pool *pgxpool.Pool, name string) []string {
	t.Helper()
	ids, err := store.ScheduleBatches(context.Background(), pool, name)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// waitBatches waits until the schedule has enqueued n batches.
func waitBatches(t *testing.T, h *testenv.Harness, name string, n int) []string {
	t.Helper()
	var ids []string
	waitFor(t, 30*time.Second, fmt.Sprintf("schedule %s enqueues batch %d", name, n), func() (bool, string) {
		ids = scheduleBatches(t, h.DB.Pool, name)
		return len(ids) >= n, fmt.Sprintf("%d batches", len(ids))
	})
	return ids
}

// ticks counts schedule ticks worked to the end, and those that failed.
func ticks(t *testing.T, h *testenv.Harness) (completed, failed int) {
	t.Helper()
	err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE state = 'completed'),
			count(*) FILTER (WHERE state IN ('discarded', 'retryable'))
		FROM river_job WHERE kind = $1`, jobs.ScheduleTickArgs{}.Kind()).Scan(&completed, &failed)
	if err != nil {
		t.Fatal(err)
	}
	return completed, failed
}

// waitTicks waits until n more ticks have run to the end: whatever they
// would have enqueued is then visible.
func waitTicks(t *testing.T, h *testenv.Harness, n int) {
	t.Helper()
	start, _ := ticks(t, h)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d more schedule ticks", n), func() (bool, string) {
		done, failed := ticks(t, h)
		if failed > 0 {
			t.Fatalf("%d schedule ticks failed", failed)
		}
		return done >= start+n, fmt.Sprintf("%d of %d", done-start, n)
	})
}

func TestScheduleNightlyRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The operator's guide queries (README "Querying results"), run as
	// written there.
	qs, err := testenv.READMEQueries("../../README.md")
	if err != nil || len(qs) != 3 {
		t.Fatalf("README queries = %d, %v; want 3", len(qs), err)
	}
	queryFailuresByCode, queryPerConfiguration, queryLastNightlyRun := qs[0], qs[1], qs[2]
	h := testenv.New(t, graphsim.Config{})
	// Four configurations in the list; the fourth does not exist, so its
	// rows fail every night.
	for i := range 3 {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	const rows, perConfig = 24, 6
	file := testenv.WriteFile(t, "nightly.csv", testenv.GroupCSV(rows, 4))
	if code, _, stderr := runCLI(t, h.Env(nil), "schedule", "add", "nightly", "--cron", "0 2 * * *", "--tz", "Europe/Berlin", file); code != 0 {
		t.Fatalf("schedule add: exit %d: %s", code, stderr)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	slot1 := getSchedule(t, h.DB.Pool, "nightly").NextRunAt
	if got := slot1.In(berlin); got.Hour() != 2 || got.Minute() != 0 || !slot1.After(time.Now()) {
		t.Fatalf("first run at %s, want the next 02:00 in Berlin", got)
	}

	clock := &fakeClock{now: time.Now()}
	stopA := startScheduler(t, h, clock)
	startScheduler(t, h, clock)

	// Before 02:00 nothing runs, however often the leader ticks.
	waitTicks(t, h, 3)
	if ids := scheduleBatches(t, h.DB.Pool, "nightly"); len(ids) != 0 {
		t.Fatalf("%d batches before the first slot, want none", len(ids))
	}

	// Night 1: everything is created, the unknown configuration's rows fail.
	clock.Set(slot1.Add(time.Minute))
	first := waitBatches(t, h, "nightly", 1)[0]
	c := h.WaitFinal(t, first, time.Minute)
	if c[assign.StatusCreated] != rows-perConfig || c[assign.StatusFailed] != perConfig {
		t.Fatalf("night 1: %v, want %d created and %d failed", c, rows-perConfig, perConfig)
	}

	// Someone removes an assignment in the portal.
	var removed store.Result
	for _, r := range h.Results(t, first) {
		if r.Status == assign.StatusCreated {
			removed = r
			break
		}
	}
	gc := graphClient(t, h)
	if resp := gc.DeleteAssignment(ctx, removed.ConfigurationID, assign.Path(removed.Path), removed.AssignmentID, ""); resp.StatusCode != 204 {
		t.Fatalf("deleting %s: %s", removed.AssignmentID, resp.Error())
	}

	// Night 2: the unchanged list creates nothing new but the removed one.
	slot2 := slot1.AddDate(0, 0, 1)
	clock.Set(slot2.Add(time.Minute))
	second := waitBatches(t, h, "nightly", 2)[1]
	c = h.WaitFinal(t, second, time.Minute)
	if c[assign.StatusCreated] != 1 || c[assign.StatusAlreadyAssigned] != rows-perConfig-1 || c[assign.StatusFailed] != perConfig {
		t.Fatalf("night 2: %v, want 1 created, %d already_assigned, %d failed", c, rows-perConfig-1, perConfig)
	}
	for _, r := range h.Results(t, second) {
		if r.Status == assign.StatusCreated && (r.GroupID != removed.GroupID || r.ConfigurationID != removed.ConfigurationID) {
			t.Fatalf("night 2 created %s on %s, want the removed %s on %s", r.GroupID, r.ConfigurationID, removed.GroupID, removed.ConfigurationID)
		}
	}

	// Exactly once: both workers keep ticking at 02:01; nothing more runs.
	waitTicks(t, h, 4)
	if ids := scheduleBatches(t, h.DB.Pool, "nightly"); len(ids) != 2 {
		t.Fatalf("%d batches after two nights, want 2", len(ids))
	}

	// One worker goes; the other (leader already, or elected now) runs night 3.
	stopA()
	clock.Set(slot2.AddDate(0, 0, 1).Add(time.Minute))
	third := waitBatches(t, h, "nightly", 3)[2]
	h.WaitFinal(t, third, time.Minute)
	waitTicks(t, h, 3)
	if ids := scheduleBatches(t, h.DB.Pool, "nightly"); len(ids) != 3 {
		t.Fatalf("%d batches after three nights, want 3", len(ids))
	}
	if n, d := len(h.Sim.Ledger()), h.Sim.Duplicates(); n != rows-perConfig+1 || d != 0 {
		t.Fatalf("the tenant saw %d creates and holds %d duplicates, want %d and none", n, d, rows-perConfig+1)
	}
	s := getSchedule(t, h.DB.Pool, "nightly")
	if s.LastBatchID != third || s.LastError != "" || !s.LastRunAt.Equal(slot2.AddDate(0, 0, 1)) {
		t.Fatalf("schedule after night 3: last batch %s at %s (error %q), want %s at %s", s.LastBatchID, s.LastRunAt, s.LastError, third, slot2.AddDate(0, 0, 1))
	}

	// `schedule list` shows it.
	code, out, stderr := runCLI(t, h.Env(nil), "schedule", "list")
	if code != 0 || !strings.Contains(out, "nightly") || !strings.Contains(out, third) || !strings.Contains(out, "Europe/Berlin") {
		t.Fatalf("schedule list: exit %d\n%s%s", code, out, stderr)
	}
	// ... with the last run's failures.
	lastCounts, err := store.CountByStatus(ctx, h.DB.Pool, third)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d failed, 0 canceled of %d", lastCounts[assign.StatusFailed], lastCounts.Total()); lastCounts[assign.StatusFailed] == 0 || !strings.Contains(out, want) {
		t.Fatalf("schedule list does not show the last run's failures (%q):\n%s", want, out)
	}

	t.Run("OperatorQueries", func(t *testing.T) {
		// Failures by error code: the unknown configuration's rows, every night.
		qr, err := h.DB.Pool.Query(ctx, queryFailuresByCode)
		if err != nil {
			t.Fatal(err)
		}
		type failure struct {
			code    *string
			status  *int
			rows    int
			example *string
		}
		var failures []failure
		for qr.Next() {
			var f failure
			if err := qr.Scan(&f.code, &f.status, &f.rows, &f.example); err != nil {
				t.Fatal(err)
			}
			failures = append(failures, f)
		}
		if err := qr.Err(); err != nil {
			t.Fatal(err)
		}
		wantCode := ""
		for _, r := range h.Results(t, third) {
			if r.Status == assign.StatusFailed {
				wantCode = r.ErrorCode
			}
		}
		if len(failures) != 1 || failures[0].rows != 3*perConfig || failures[0].status == nil || *failures[0].status != 404 ||
			failures[0].code == nil || *failures[0].code != wantCode {
			t.Fatalf("failures by code = %+v, want one line: %s, 404, %d rows", failures, wantCode, 3*perConfig)
		}

		// Per configuration, latest batch (night 3): three all
		// already_assigned, one all failed.
		qr, err = h.DB.Pool.Query(ctx, queryPerConfiguration)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][4]int{}
		for qr.Next() {
			var cfg string
			var name *string // Graph's name of the configuration, when read
			var v [4]int
			if err := qr.Scan(&cfg, &name, &v[0], &v[1], &v[2], &v[3]); err != nil {
				t.Fatal(err)
			}
			got[cfg] = v
		}
		if err := qr.Err(); err != nil {
			t.Fatal(err)
		}
		want := map[string][4]int{}
		for _, r := range h.Results(t, third) {
			v := want[r.ConfigurationID]
			switch r.Status {
			case assign.StatusCreated:
				v[0]++
			case assign.StatusAlreadyAssigned:
				v[1]++
			case assign.StatusFailed:
				v[2]++
			}
			want[r.ConfigurationID] = v
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || got[testenv.Config(3)][2] != perConfig || got[testenv.Config(0)][1] != perConfig {
			t.Fatalf("per configuration = %v, want %v", got, want)
		}

		// Last night's run, by the schedule column: night 3.
		qr, err = h.DB.Pool.Query(ctx, queryLastNightlyRun)
		if err != nil {
			t.Fatal(err)
		}
		statuses := map[string]int{}
		for qr.Next() {
			var id, status string
			var at time.Time
			var n int
			if err := qr.Scan(&id, &at, &status, &n); err != nil {
				t.Fatal(err)
			}
			if id != third {
				t.Fatalf("last nightly run is batch %s, want %s", id, third)
			}
			statuses[status] = n
		}
		if err := qr.Err(); err != nil {
			t.Fatal(err)
		}
		if statuses["already_assigned"] != rows-perConfig || statuses["failed"] != perConfig || len(statuses) != 2 {
			t.Fatalf("last nightly run by status = %v, want %d already_assigned and %d failed", statuses, rows-perConfig, perConfig)
		}
	})
}

func graphClient(t *testing.T, h *testenv.Harness) *graph.Client {
	t.Helper()
	tokens, err := auth.NewApp(auth.AppConfig{AuthorityHost: h.Sim.AuthorityHost(), TenantID: h.Sim.TenantID(),
		ClientID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Scope: h.Sim.Scope()})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := graph.New(graph.Options{BaseURL: h.Sim.GraphBaseURL(), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	return gc
}

func TestScheduleCatchUpAfterDowntime(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0), testenv.Config(1))
	file := testenv.WriteFile(t, "nightly.json", `[
  {"configurationId": "`+testenv.Config(0)+`", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "`+testenv.Group(1)+`"}},
  {"configurationId": "`+testenv.Config(1)+`", "target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}}
]`)
	if code, _, stderr := runCLI(t, h.Env(nil), "schedule", "add", "nightly", "--cron", "0 2 * * *", file); code != 0 {
		t.Fatalf("schedule add: exit %d: %s", code, stderr)
	}
	slot1 := getSchedule(t, h.DB.Pool, "nightly").NextRunAt

	// No worker runs while four nights pass; one starts at 09:00 after the
	// fourth.
	latest := slot1.AddDate(0, 0, 3)
	clock := &fakeClock{now: latest.Add(7 * time.Hour)}
	startScheduler(t, h, clock)
	batch := waitBatches(t, h, "nightly", 1)[0]
	if c := h.WaitFinal(t, batch, time.Minute); c[assign.StatusCreated] != 2 {
		t.Fatalf("catch-up run: %v, want 2 created", c)
	}
	waitTicks(t, h, 4)
	if ids := scheduleBatches(t, h.DB.Pool, "nightly"); len(ids) != 1 {
		t.Fatalf("%d batches after four missed nights, want 1 (caught up once)", len(ids))
	}
	s := getSchedule(t, h.DB.Pool, "nightly")
	if !s.LastRunAt.Equal(latest) || !s.NextRunAt.Equal(latest.AddDate(0, 0, 1)) || s.LastBatchID != batch {
		t.Fatalf("after catch-up: last run %s, next %s, batch %s; want %s, %s, %s", s.LastRunAt, s.NextRunAt, s.LastBatchID,
			latest, latest.AddDate(0, 0, 1), batch)
	}
}

// TestRunDueSchedulesOverlappingLeaders calls the tick from many
// connections at once, as overlapping leaders would: each slot runs once.
// A stored list that became invalid records its error without a batch or
// a half-written row, and does not hold back the valid schedule beside it.
func TestRunDueSchedulesOverlappingLeaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	sched, err := jobs.ParseSchedule("*/5 * * * *", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	start := mustTime(t, time.DateTime, "2026-05-01 10:02:00", time.UTC)
	good := testenv.GroupCSV(30, 3)
	// Invalid only past the first written chunk of rows.
	bad := testenv.GroupCSV(6000, 3) + "not-a-guid,group," + testenv.Group(1) + "\n"
	for name, content := range map[string]string{"good": good, "bad": bad} {
		err := store.PutSchedule(ctx, db.Pool, &store.Schedule{Name: name, Cron: "*/5 * * * *", TimeZone: "UTC", Source: name + ".csv",
			Format: string(intake.FormatCSV), Content: []byte(content), SHA256: "-", RowCount: 1, LastRunAt: start, NextRunAt: sched.Next(start)}, false)
		if err != nil {
			t.Fatal(err)
		}
	}
	const leaders = 4
	pools := make([]*pgxpool.Pool, leaders)
	for i := range pools {
		p, err := store.Open(ctx, db.URL, "", 2)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	// 10:06 runs 10:05; 10:11 runs 10:10; 10:33 runs 10:30 only (10:15 to
	// 10:25 were missed); 10:33 again runs nothing.
	for round, step := range []struct {
		now      time.Time
		wantRuns int
	}{{start.Add(4 * time.Minute), 1}, {start.Add(9 * time.Minute), 1}, {start.Add(31 * time.Minute), 1}, {start.Add(31 * time.Minute), 0}} {
		now := step.now
		var wg sync.WaitGroup
		runs := make([][]jobs.ScheduleRun, leaders)
		for i, p := range pools {
			wg.Go(func() {
				var err error
				if runs[i], err = jobs.RunDueSchedules(ctx, p, rc, now, testTenant, slog.New(slog.DiscardHandler)); err != nil {
					t.Errorf("leader %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		byName := map[string][]jobs.ScheduleRun{}
		for _, rs := range runs {
			for _, r := range rs {
				byName[r.Schedule] = append(byName[r.Schedule], r)
			}
		}
		for _, name := range []string{"good", "bad"} {
			if len(byName[name]) != step.wantRuns {
				t.Fatalf("round %d: schedule %s ran %d times across %d leaders, want %d", round, name, len(byName[name]), leaders, step.wantRuns)
			}
		}
		if step.wantRuns == 0 {
			continue
		}
		g, b := byName["good"][0], byName["bad"][0]
		wantSlot := now.Truncate(5 * time.Minute)
		if !g.Slot.Equal(wantSlot) || g.BatchID == "" || g.Error != "" || g.Rows != 30 {
			t.Fatalf("round %d: good run = %+v, want slot %s, a batch of 30 rows", round, g, wantSlot)
		}
		if b.BatchID != "" || !strings.Contains(b.Error, "bad.csv:6002:") || !b.Slot.Equal(wantSlot) {
			t.Fatalf("round %d: bad run = %+v, want no batch and an error naming bad.csv:6002", round, b)
		}
	}
	var batches, items, riverJobs int
	err = db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM items),
		(SELECT count(*) FROM river_job)`).Scan(&batches, &items, &riverJobs)
	if err != nil {
		t.Fatal(err)
	}
	if batches != 3 || items != 90 || riverJobs != 90 {
		t.Fatalf("after three rounds: %d batches, %d items, %d jobs; want 3, 90, 90 (the good list's only)", batches, items, riverJobs)
	}
	bad2 := getSchedule(t, db.Pool, "bad")
	if !strings.Contains(bad2.LastError, "bad.csv:6002:") || bad2.LastBatchID != "" {
		t.Fatalf("bad schedule: last error %q, batch %q; want the error and no batch", bad2.LastError, bad2.LastBatchID)
	}
}

func TestScheduleCommands(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, 4)
	env := config.MapEnv(map[string]string{"DATABASE_URL": db.URL})
	good := testenv.WriteFile(t, "list.csv", testenv.GroupCSV(10, 2))
	bigger := testenv.WriteFile(t, "list2.csv", testenv.GroupCSV(12, 2))
	bad := testenv.WriteFile(t, "bad.csv", "configuration_id,target_type,group_id\n"+testenv.Config(1)+",group,"+testenv.Group(1)+"\n"+
		testenv.Config(1)+",group,nope\n")

	stored := func() int {
		list, err := store.ListSchedules(context.Background(), db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	// Steps run in order: each sees the schedules the ones before left.
	for _, step := range []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string // substring of stdout
		wantErr    string // substring of stderr
		wantStored int
	}{
		{"InvalidFileStoresNothing", []string{"schedule", "add", "n1", "--cron", "0 2 * * *", bad}, 1, "", "bad.csv:3: group_id", 0},
		{"BadCron", []string{"schedule", "add", "n1", "--cron", "0 2 * *", good}, 2, "", "--cron", 0},
		{"EveryRefused", []string{"schedule", "add", "n1", "--cron", "@every 1h", good}, 2, "", "@every", 0},
		{"BadTimeZone", []string{"schedule", "add", "n1", "--cron", "0 2 * * *", "--tz", "Berlin", good}, 2, "", "--tz", 0},
		{"NoCron", []string{"schedule", "add", "n1", good}, 2, "", "--cron is required", 0},
		{"BadName", []string{"schedule", "add", "night ly", "--cron", "0 2 * * *", good}, 2, "", "schedule name", 0},
		{"Stdin", []string{"schedule", "add", "n1", "--cron", "0 2 * * *", "-"}, 2, "", "needs a file", 0},
		{"MissingFile", []string{"schedule", "add", "n1", "--cron", "0 2 * * *", filepath.Join(t.TempDir(), "missing.csv")}, 1, "", "missing.csv", 0},
		{"Add", []string{"schedule", "add", "n1", "--cron", "0 2 * * *", "--tz", "Europe/Berlin", good}, 0, "schedule n1 added: 10 rows", "", 1},
		{"AddFlagsLast", []string{"schedule", "add", "n2", good, "--cron", "30 6 * * MON-FRI"}, 0, "schedule n2 added", "", 2},
		{"Taken", []string{"schedule", "add", "n1", "--cron", "0 3 * * *", good}, 1, "", "--replace", 2},
		{"Replace", []string{"schedule", "add", "n1", "--cron", "0 3 * * *", "--replace", bigger}, 0, "12 rows", "", 2},
		{"List", []string{"schedule", "list"}, 0, "0 3 * * *", "", 2},
		{"Remove", []string{"schedule", "remove", "n2"}, 0, "n2 removed", "", 1},
		{"RemoveAgain", []string{"schedule", "remove", "n2"}, 1, "", `no schedule named "n2"`, 1},
		{"Unknown", []string{"schedule", "pause", "n1"}, 2, "", "unknown schedule command", 1},
	} {
		code, out, stderr := runCLI(t, env, step.args...)
		if code != step.wantCode || !strings.Contains(out, step.wantOut) || !strings.Contains(stderr, step.wantErr) {
			t.Fatalf("%s: enqueue %s: exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout containing %q, stderr containing %q",
				step.name, strings.Join(step.args, " "), code, step.wantCode, out, stderr, step.wantOut, step.wantErr)
		}
		if n := stored(); n != step.wantStored {
			t.Fatalf("%s: %d schedules stored, want %d", step.name, n, step.wantStored)
		}
	}
	s := getSchedule(t, db.Pool, "n1")
	content, err := store.ScheduleContent(context.Background(), db.Pool, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(bigger)
	if !bytes.Equal(content, want) || s.RowCount != 12 || s.Cron != "0 3 * * *" || s.TimeZone != "Europe/Berlin" || len(s.SHA256) != 64 || s.Format != "csv" {
		t.Fatalf("replaced schedule = %+v (content %d bytes), want the second file's 12 rows at 0 3 * * * Europe/Berlin (kept)", s, len(content))
	}
}

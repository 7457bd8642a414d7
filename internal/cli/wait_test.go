package cli_test

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// result is one run of the enqueue command.
type result struct {
	code           int
	stdout, stderr string
}

// enqueue runs the enqueue command in-process against h, as a user would
// from a shell with h's environment; tty says whether stderr is a terminal.
func enqueue(t *testing.T, h *testenv.Harness, tty bool, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Getenv: h.Env(nil), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, StderrIsTerminal: tty}
	code := cli.Enqueue(context.Background(), env, args)
	return result{code, out.String(), errb.String()}
}

// newTenant is a harness in whose simulator configurations 0..exist-1
// exist.
func newTenant(t *testing.T, exist int) *testenv.Harness {
	t.Helper()
	h := testenv.New(t, graphsim.Config{})
	for i := range exist {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	return h
}

// slowWorker works about 40 rows a second, so a batch of a hundred rows
// takes long enough for several progress lines.
var slowWorker = testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "40", "WORKER_CONCURRENCY": "2"}}

var fastWorker = testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "200", "WORKER_CONCURRENCY": "4"}}

// progressRE is the exact shape of a non-terminal progress line.
var progressRE = regexp.MustCompile(`^batch ([0-9a-f]{8}): (\d+)/(\d+) final \(created (\d+), already_assigned (\d+), failed (\d+)\), (\d+\.\d) rows/s, eta (-|0s|(\d+h)?(\d+m)?\d+s)$`)

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnqueueWaitPlainLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		rows, configs int
		wantCode      int
		wantFailed    int
	}{
		// 120 rows on 20 configurations, the 20th missing: 6 rows fail.
		{"SomeRowsFail", 120, 20, cli.ExitFailed, 6},
		{"AllCreated", 80, 19, cli.ExitOK, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newTenant(t, 19)
			h.StartWorker(t, slowWorker)
			file := testenv.WriteFile(t, "in.csv", testenv.GroupCSV(tc.rows, tc.configs))
			r := enqueue(t, h, false, file, "--wait", "--progress-interval", "300ms")
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", r.code, tc.wantCode, r.stderr)
			}
			batch := strings.TrimSpace(r.stdout)
			if len(batch) != 36 {
				t.Fatalf("stdout = %q, want the batch id alone", r.stdout)
			}
			counts, err := store.CountByStatus(context.Background(), h.DB.Pool, batch)
			if err != nil {
				t.Fatal(err)
			}

			var progress []string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(l, "batch "+batch[:8]+":") {
					progress = append(progress, l)
				}
			}
			if len(progress) < 2 {
				t.Fatalf("%d progress lines, want several\nstderr:\n%s", len(progress), r.stderr)
			}
			prev := -1
			for i, l := range progress {
				m := progressRE.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("progress line %q does not match %s", l, progressRE)
				}
				done, total := atoi(t, m[2]), atoi(t, m[3])
				created, already, failed := atoi(t, m[4]), atoi(t, m[5]), atoi(t, m[6])
				if total != tc.rows || done < prev || created+already+failed != done {
					t.Fatalf("line %d %q: want total %d, done never going back, and done = created + already + failed", i, l, tc.rows)
				}
				prev = done
			}
			last := progressRE.FindStringSubmatch(progress[len(progress)-1])
			if got := [3]int{atoi(t, last[4]), atoi(t, last[5]), atoi(t, last[6])}; last[2] != last[3] || last[8] != "0s" ||
				got != [3]int{counts[assign.StatusCreated], counts[assign.StatusAlreadyAssigned], counts[assign.StatusFailed]} {
				t.Fatalf("last line %q: want all %d final, eta 0s, and the database's counts %v", progress[len(progress)-1], tc.rows, counts)
			}
			if counts[assign.StatusFailed] != tc.wantFailed {
				t.Fatalf("counts %v, want %d failed", counts, tc.wantFailed)
			}
			// The summary table: one line per status, aligned.
			for _, s := range []assign.Status{assign.StatusCreated, assign.StatusAlreadyAssigned, assign.StatusFailed, assign.StatusCanceled} {
				re := regexp.MustCompile(`(?m)^\s*` + string(s) + `\s+` + strconv.Itoa(counts[s]) + `$`)
				if !re.MatchString(r.stderr) {
					t.Errorf("summary lacks a line %q %d\nstderr:\n%s", s, counts[s], r.stderr)
				}
			}
			// The rows failed on a configuration that does not exist: a
			// retry cannot help them, their list needs fixing.
			if tc.wantFailed > 0 && (strings.Contains(r.stderr, "enqueue retry") ||
				!strings.Contains(r.stderr, strconv.Itoa(tc.wantFailed)+" rows name a configuration that does not exist (HTTP 404)")) {
				t.Errorf("stderr does not point to fixing the list, or suggests enqueue retry:\n%s", r.stderr)
			}
			t.Logf("figure: %s: %d progress lines, last %q", tc.name, len(progress), progress[len(progress)-1])
		})
	}
}

func TestEnqueueWaitTerminalBar(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 10)
	h.StartWorker(t, slowWorker)
	file := testenv.WriteFile(t, "bar.csv", testenv.GroupCSV(100, 10))
	r := enqueue(t, h, true, file, "--wait")
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	// Redraws start with \r and clear the rest of the line.
	frames := strings.Split(r.stderr, "\r")
	doneRE := regexp.MustCompile(`^\[[#-]+\] +(\d+)/100  created +\d+ already +\d+ failed +\d+  \d+\.\d/s  eta \S+\x1b\[K`)
	seen := map[string]bool{}
	for _, f := range frames[1:] {
		m := doneRE.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("frame %q is not a progress bar", f)
		}
		if len(strings.SplitN(f, "\x1b[K", 2)[0]) >= 80 {
			t.Fatalf("frame %q reaches the 80th column", f)
		}
		seen[m[1]] = true
	}
	if len(seen) < 3 || !seen["100"] {
		t.Fatalf("the bar showed %d distinct counts (%v), want it moving and ending at 100/100", len(seen), seen)
	}
	last := frames[len(frames)-1]
	if !regexp.MustCompile(`^\[#+\] 100/100 `).MatchString(last) {
		t.Fatalf("last frame %q, want a full bar", last)
	}
	if !regexp.MustCompile(`(?m)^\s*created\s+100$`).MatchString(last) {
		t.Fatalf("no summary after the bar:\n%s", last)
	}
}

func TestStatusWait(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 3)
	batch := h.Enqueue(t, "status.csv", testenv.GroupCSV(20, 4))
	// Not final yet: status without -wait shows the queue and exits 0.
	if r := enqueue(t, h, false, "status", batch[:8]); r.code != 0 || !regexp.MustCompile(`(?m)^\s*queued\s+20$`).MatchString(r.stdout) {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	h.StartWorker(t, fastWorker)
	r := enqueue(t, h, false, "status", batch[:8], "--wait", "--progress-interval", "100ms")
	if r.code != cli.ExitFailed {
		t.Fatalf("status --wait on a batch with failed rows: exit %d, want 1\n%s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^\s*created\s+15$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^\s*failed\s+5$`).MatchString(r.stdout) {
		t.Fatalf("status output:\n%s", r.stdout)
	}
	if !progressRE.MatchString(strings.Split(strings.TrimSpace(r.stderr), "\n")[0]) {
		t.Fatalf("stderr does not start with a progress line:\n%s", r.stderr)
	}
	if r := enqueue(t, h, false, "status", batch, "--wait", "--progress-interval", "0s"); r.code != cli.ExitSetting || !strings.Contains(r.stderr, "-progress-interval") {
		t.Fatalf("a zero interval: exit %d, %q; want 2 naming the flag", r.code, r.stderr)
	}
	if r := enqueue(t, h, false, "--dry-run", "--wait", "x.csv"); r.code != cli.ExitSetting {
		t.Fatalf("--dry-run --wait: exit %d, want 2", r.code)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOutcomeSuggestsRetryOnlyWhereItHelps(t *testing.T) {
	t.Parallel()
	// 30 rows on 3 configurations, the third missing: 10 rows fail 404.
	h := newTenant(t, 2)
	h.StartWorker(t, fastWorker)
	file := testenv.WriteFile(t, "outcome.csv", testenv.GroupCSV(30, 3))
	r := enqueue(t, h, false, file, "--wait", "--progress-interval", "100ms")
	batch := strings.TrimSpace(r.stdout)
	wantRun(t, r, cli.ExitFailed, "batch "+batch[:8]+": 10 rows failed and 0 were canceled: `enqueue results "+batch[:8]+
		" --status failed,canceled` lists them; 10 rows name a configuration that does not exist (HTTP 404) and fail the same way on a retry: fix their configuration ids in the list and enqueue it again")
	if strings.Contains(r.stderr, "enqueue retry") {
		t.Fatalf("a retry is suggested for rows it cannot help:\n%s", r.stderr)
	}

	// Two rows that exist failed otherwise (as a worker leaves a row that
	// ran out of patience on 503s): those a retry can help.
	if _, err := h.DB.Pool.Exec(context.Background(), `UPDATE items SET status = 'failed', http_status = 503,
		error_code = 'ServiceUnavailable' WHERE batch_id = $1 AND row IN (1, 2)`, batch); err != nil {
		t.Fatal(err)
	}
	r = enqueue(t, h, false, "status", batch[:8], "--wait", "--progress-interval", "100ms")
	wantRun(t, r, cli.ExitFailed, "12 rows failed and 0 were canceled: `enqueue results "+batch[:8]+" --status failed,canceled` lists them; `enqueue retry "+
		batch[:8]+"` runs the other 2 again; 10 rows name a configuration that does not exist (HTTP 404)")
	r = enqueue(t, h, false, "retry", batch[:8], "--wait", "--progress-interval", "100ms")
	wantRun(t, r, cli.ExitFailed, "12 failed or canceled rows queued again")
	wantRun(t, r, cli.ExitFailed, "10 rows failed and 0 were canceled")
	// Rows 1 and 2 had in fact been created: the retry finds them.
	if c := counts(t, h, batch); c[assign.StatusCreated] != 18 || c[assign.StatusAlreadyAssigned] != 2 || c[assign.StatusFailed] != 10 {
		t.Fatalf("after retry: %v, want 18 created, 2 already assigned and 10 failed", c)
	}
}

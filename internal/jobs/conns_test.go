package jobs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// Connections: a worker process holds at most DATABASE_MAX_CONNS
// connections to Postgres, River's included, however many rows it works at
// once, and holds none while it waits on Graph or on a limit. The figure is
// printed as a "figure:" line:
//
//	go test -count=1 -run TestConnectionsBounded -v ./internal/jobs/ | grep figure:

// connWatch opens a fresh connection to url every 100 ms, as psql would,
// for as long as it runs. Each one counts the client connections by
// application name; a refused connection is kept as a failure.
type connWatch struct {
	mu        sync.Mutex
	tries     int
	refusals  []error
	slowest   time.Duration
	peakTotal int
	peakApp   map[string]int

	stop func()
	done chan struct{}
}

func watchConnections(t *testing.T, url string) *connWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &connWatch{peakApp: map[string]int{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			w.look(ctx, url)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

// look connects once and counts. Like psql it waits as long as it takes
// (on a starved machine, seconds): only an error counts against it.
func (w *connWatch) look(ctx context.Context, url string) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	conn, err := pgx.Connect(cctx, url)
	took := time.Since(start)
	w.mu.Lock()
	defer w.mu.Unlock()
	if ctx.Err() != nil {
		if conn != nil {
			conn.Close(context.Background())
		}
		return // stopped meanwhile: not a refusal
	}
	w.tries++
	if err != nil {
		w.refusals = append(w.refusals, err)
		return
	}
	defer conn.Close(context.Background())
	w.slowest = max(w.slowest, took)
	rows, err := conn.Query(cctx, `SELECT application_name, count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' GROUP BY application_name`)
	if err != nil {
		if ctx.Err() != nil {
			return // stopped meanwhile: not a refusal
		}
		w.refusals = append(w.refusals, fmt.Errorf("connected, but: %w", err))
		return
	}
	total := 0
	for rows.Next() {
		var app string
		var n int
		if err := rows.Scan(&app, &n); err != nil {
			if ctx.Err() == nil {
				w.refusals = append(w.refusals, err)
			}
			return
		}
		total += n
		w.peakApp[app] = max(w.peakApp[app], n)
	}
	w.peakTotal = max(w.peakTotal, total)
}

// end stops watching and waits for the last look.
func (w *connWatch) end() {
	w.stop()
	<-w.done
}

// TestConnectionsBounded is the case: four worker processes at
// WORKER_CONCURRENCY=100 with no write limit, a batch of 20,000 rows, on a
// Postgres with max_connections=100 (which they used to exhaust: each
// process sized its pool WORKER_CONCURRENCY+10 and held a connection per
// row waiting on Graph). Meanwhile a fresh connection every 100 ms must get
// in. With -short the batch is 2,000 rows.
func TestConnectionsBounded(t *testing.T) {
	// Not parallel: four worker processes at full speed would starve the
	// package's timing-sensitive tests of CPU.
	const (
		workers     = 4
		concurrency = 100
		maxConns    = 10 // DATABASE_MAX_CONNS, the default
		configs     = 100
	)
	rows := 20000
	if testing.Short() {
		rows = 2000
	}
	url, restart := ownPostgres(t)
	setMaxConnections(t, url, restart, 100)

	h := testenv.NewOn(t, url, graphsim.Config{})
	for i := range configs {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	batch := h.Enqueue(t, "conns.csv", testenv.GroupCSV(rows, configs))

	watch := watchConnections(t, url)
	start := time.Now()
	for i := range workers {
		startWorkerProcess(t, h, fmt.Sprintf("conns_w%d", i), map[string]string{
			"WORKER_CONCURRENCY": strconv.Itoa(concurrency),
			"DATABASE_MAX_CONNS": strconv.Itoa(maxConns),
			"GRAPH_WRITE_RATE":   "0",
		})
	}
	h.WaitFinal(t, batch, 10*time.Minute)
	took := time.Since(start)
	watch.end()

	wrong := checkTruth(t, h, []string{batch}, 0)
	if n := len(h.Sim.Ledger()); n != rows {
		t.Errorf("the simulator created %d assignments, want %d", n, rows)
	}
	reads, failed := checkListReads(t, h, batch, configs)
	watch.mu.Lock()
	defer watch.mu.Unlock()
	if len(watch.refusals) > 0 {
		t.Errorf("%d of %d connections were refused while the workers ran; the first: %v", len(watch.refusals), watch.tries, watch.refusals[0])
	}
	if watch.tries < int(took/time.Second) {
		t.Errorf("only %d connections tried in %s", watch.tries, took)
	}
	peakWorker, workerConns := 0, 0
	for i := range workers {
		app := fmt.Sprintf("conns_w%d", i)
		n := watch.peakApp[app]
		if n > maxConns {
			t.Errorf("worker %s held %d connections at once, want at most DATABASE_MAX_CONNS=%d", app, n, maxConns)
		}
		peakWorker = max(peakWorker, n)
		workerConns += n
	}
	t.Logf("figure: %d worker processes at WORKER_CONCURRENCY=%d, DATABASE_MAX_CONNS=%d, no write limit, %d rows: %.0f rows/s (%s); "+
		"%d list reads, %d failed Graph calls; %d duplicates, %d wrong outcomes; peak connections %d in all (at most %d per worker, %d for the workers together), max_connections 100; "+
		"%d of %d fresh connections refused (slowest %s)",
		workers, concurrency, maxConns, rows, float64(rows)/took.Seconds(), took.Round(100*time.Millisecond),
		reads, failed, h.Sim.Duplicates(), wrong, watch.peakTotal, peakWorker, workerConns, len(watch.refusals), watch.tries, watch.slowest.Round(time.Millisecond))
}

// checkListReads asserts that each of the batch's configs lists was read
// from Graph once for the whole fleet, and returns the reads and the failed
// Graph calls. A row whose create was left in doubt (a connection lost
// under load) reads afresh before it may post again, and a failed read is
// read again: each of those counted an error on its row, so the errors
// bound the reads beyond one per list.
func checkListReads(t *testing.T, h *testenv.Harness, batch string, configs int) (reads, failed int) {
	t.Helper()
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT coalesce(sum(errors), 0) FROM items WHERE batch_id = $1`,
		batch).Scan(&failed); err != nil {
		t.Fatal(err)
	}
	st := h.Sim.Stats()
	reads = int(st.Reads - st.ObjectReads.Total()) // but the display names' reads
	// A run cut off by its job timeout while its create was in flight (on
	// a machine busy enough, rows wait that long for a connection) reads
	// again too: a loose margin, so the bound never flakes; the figure
	// prints the exact count.
	if slack := 5 + configs/20; reads < configs || reads > configs+failed+slack {
		t.Errorf("the simulator served %d list reads, want %d (one per configuration for the whole fleet) and at most %d more for failed Graph calls and cut-off runs",
			reads, configs, failed+slack)
	}
	return reads, failed
}

// setMaxConnections sets the cluster's max_connections and restarts it.
func setMaxConnections(t *testing.T, url string, restart func(), n int) {
	t.Helper()
	ctx := context.Background()
	connect := func() *pgx.Conn {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		return conn
	}
	if _, err := connect().Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET max_connections = %d", n)); err != nil {
		t.Fatal(err)
	}
	restart()
	var got string
	if err := connect().QueryRow(ctx, "SHOW max_connections").Scan(&got); err != nil || got != strconv.Itoa(n) {
		t.Fatalf("max_connections = %q (%v) after the restart, want %d", got, err, n)
	}
}

// startWorkerProcess runs this test binary as a worker process (TestMain)
// on h with extra settings; its connections carry application name app.
// It is stopped with SIGTERM when the test ends, and its log is shown if
// the test failed.
func startWorkerProcess(t *testing.T, h *testenv.Harness, app string, extra map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerProcessEnv+"=1")
	vars := h.Vars()
	vars["DATABASE_URL"] += "&application_name=" + app
	vars["WORKER_HTTP_ADDR"] = "off"
	for k, v := range extra {
		vars[k] = v
	}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath := filepath.Join(t.TempDir(), app+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("worker %s log, warnings and errors:\n%s", app, logProblems(logPath, 40))
		}
	})
	return cmd
}

// logProblems returns the first n warnings and errors of a worker's JSON log.
func logProblems(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) || strings.HasPrefix(line, "panic") {
			if out = append(out, line); len(out) == n {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestOneConnectionServesManyRows runs a worker whose pool has a single
// connection (DATABASE_MAX_CONNS=2: River's LISTEN connection and one) at
// WORKER_CONCURRENCY=50, with both limits on and a slow Graph: every row,
// River's own queries and the limiters queue for that one connection. A
// code path that held a connection while acquiring another (or across a
// Graph request) would stall here until the job timeout.
func TestOneConnectionServesManyRows(t *testing.T) {
	t.Parallel()
	const rows, configs = 300, 10
	h := testenv.New(t, graphsim.Config{Faults: graphsim.Faults{Latency: 30 * time.Millisecond}})
	for i := range configs {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	batch := h.Enqueue(t, "one.csv", testenv.GroupCSV(rows, configs))
	watch := watchConnections(t, h.DB.URL)
	start := time.Now()
	h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"DATABASE_MAX_CONNS": "2", "WORKER_CONCURRENCY": "50",
		"GRAPH_WRITE_RATE": "1000", "GRAPH_READ_RATE": "20", "WORKER_JOB_TIMEOUT": "20s"}})
	h.WaitFinal(t, batch, 2*time.Minute)
	took := time.Since(start)
	watch.end()
	wrong := checkTruth(t, h, []string{batch}, 0)
	checkListReads(t, h, batch, configs)
	watch.mu.Lock()
	defer watch.mu.Unlock()
	if n := watch.peakApp[h.WorkerAppName()]; n > 2 {
		t.Errorf("the worker held %d connections at once, want at most DATABASE_MAX_CONNS=2", n)
	}
	t.Logf("figure: DATABASE_MAX_CONNS=2, WORKER_CONCURRENCY=50: %d rows in %s, %d wrong outcomes, at most %d worker connections seen",
		rows, took.Round(100*time.Millisecond), wrong, watch.peakApp[h.WorkerAppName()])
}

// TestListReadLease: a worker that leased a batch's list and died (its
// lease never stored, never given back) holds the batch's rows on that
// path only until the lease runs out; then one row takes the read over and
// the list is still read once.
func TestListReadLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const rows = 30
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0))
	batch := h.Enqueue(t, "lease.csv", testenv.GroupCSV(rows, 1))
	const lease = 3 * time.Second
	key := store.ListKey{BatchID: batch, ConfigurationID: testenv.Config(0)}
	leasedAt, ok, err := store.LeaseList(ctx, h.DB.Pool, key, assign.NewID(), lease)
	if err != nil || !ok {
		t.Fatalf("leasing as a dead reader: %v, %v", ok, err)
	}
	start := time.Now()
	h.StartWorker(t, fast)
	h.WaitFinal(t, batch, time.Minute)
	if took := time.Since(start); took < lease-time.Second {
		t.Errorf("the batch finished %s after the start, before the dead reader's lease of %s ran out", took, lease)
	}
	checkTruth(t, h, []string{batch}, 0)
	checkListReads(t, h, batch, 1)
	l, err := store.GetList(ctx, h.DB.Pool, key)
	if err != nil {
		t.Fatal(err)
	}
	if l == nil || !l.ReadAt.After(leasedAt.Add(lease-time.Millisecond)) {
		t.Fatalf("stored list %+v, want one read after the dead lease ran out (%s)", l, leasedAt.Add(lease))
	}
}

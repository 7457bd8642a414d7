package jobs_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// ownPostgres starts a throwaway Postgres cluster from the machine's binaries
// (the shared server cannot be restarted under other tests) and returns its
// URL and a function that restarts it.
func ownPostgres(t *testing.T) (url string, restart func()) {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql to start a cluster of our own")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir := t.TempDir()
	// initdb refuses to run as root: run the cluster as the postgres user.
	asPG := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user to run a cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		// t.TempDir's parent must be traversable by postgres.
		_ = os.Chmod(filepath.Dir(dir), 0o755)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	data := filepath.Join(dir, "data")
	if out, err := asPG("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	pgctl := func(args ...string) {
		t.Helper()
		if out, err := asPG("pg_ctl", append([]string{"-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o", opts}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
		}
	}
	pgctl("start")
	t.Cleanup(func() { _ = asPG("pg_ctl", "-D", data, "-m", "immediate", "stop").Run() })
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), func() { pgctl("-m", "fast", "restart") }
}

// TestPostgresRestartMidBatch restarts the database server under a running
// worker: the worker reconnects and every row still ends true, without a
// duplicate.
func TestPostgresRestartMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postgres cluster: skipped with -short")
	}
	t.Parallel()
	url, restart := ownPostgres(t)
	const rows, configs = 300, 10
	h := testenv.NewOn(t, url, graphsim.Config{Faults: graphsim.Faults{Latency: 20 * time.Millisecond}})
	for i := range configs {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	batch := h.Enqueue(t, "pgrestart.csv", testenv.GroupCSV(rows, configs))
	h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "50", "WORKER_CONCURRENCY": "10",
		"WORKER_JOB_TIMEOUT": "3s", "WORKER_RESCUE_AFTER": "6s"}})
	deadline := time.Now().Add(time.Minute)
	for len(h.Sim.Ledger()) < 80 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	atRestart := len(h.Sim.Ledger())
	restarted := time.Now()
	restart()

	// The harness's own pool lost its connections too: poll through errors.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		counts, err := store.CountByStatus(context.Background(), h.DB.Pool, batch)
		if err == nil && counts.Total() == rows && counts.Final() == rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not final 3 minutes after the restart: %v (%v)", counts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(restarted)
	wrong := checkTruth(t, h, []string{batch}, 0)
	t.Logf("figure: Postgres restarted after %d of %d creates; every row final %s after the restart; %d duplicates, %d wrong outcomes",
		atRestart, rows, took.Round(100*time.Millisecond), h.Sim.Duplicates(), wrong)
}

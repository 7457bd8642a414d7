package worker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// ownDatabase creates a database of the test's own on the tests' server
// (dropped when the test ends) and returns its URL: pg_stat_database
// counts its transactions apart from other tests'.
func ownDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "t_queues_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, testdb.URL())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(testdb.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// commitRate is the database's committed transactions a second over d
// (pg_stat_database, which its backends update about once a second).
func commitRate(t *testing.T, c *pgx.Conn, d time.Duration) float64 {
	t.Helper()
	read := func() int64 {
		var n int64
		if err := c.QueryRow(context.Background(), "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := read()
	time.Sleep(d)
	// Two reads, this connection's own, a window.
	return float64(read()-a-1) / d.Seconds()
}

// TestIdleTenantQueuesRetire is issue 22's item 2: 200 rows of 200
// tenants the simulator does not know (each refused at sign-in) had every
// worker serve 200 more queues, each a fetch loop a second and its
// goroutines, until the worker restarted. With WORKER_TENANT_QUEUE_IDLE
// at 2 s, once the rows end the worker's queues, goroutines and the
// database's idle transaction rate come back near a fresh worker's.
func TestIdleTenantQueuesRetire(t *testing.T) {
	// Not parallel: it counts the test process's goroutines.
	ctx := context.Background()
	const tenants = 200
	h := testenv.NewOn(t, ownDatabase(t), graphsim.Config{})
	stats, err := pgx.Connect(ctx, h.DB.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close(ctx)
	rt, stop := h.StartWorker(t, testenv.WorkerOptions{
		Extra:   map[string]string{"WORKER_TENANT_QUEUE_IDLE": "2s", "WORKER_TENANT_CONCURRENCY": "2"},
		Prepare: func(rt *worker.Runtime) { rt.TenantQueuePoll = 250 * time.Millisecond },
	})
	defer stop()
	<-rt.Ready()
	time.Sleep(2 * time.Second) // past the start's election and first polls
	startQueues, startGoroutines := rt.TenantQueuesServed(), runtime.NumGoroutine()
	freshRate := commitRate(t, stats, 4*time.Second)

	var csv strings.Builder
	csv.WriteString("tenant_id,configuration_id,target_type,group_id\n")
	for i := range tenants {
		fmt.Fprintf(&csv, "%08x-0000-4000-8000-%012d,%s,group,%s\n", 0xe0000000+i, i, testenv.Config(0), testenv.Group(i))
	}
	batch := h.Enqueue(t, "unknown.csv", csv.String())
	counts := h.WaitFinal(t, batch, 30*time.Second)
	if counts[assign.StatusFailed] != tenants {
		t.Fatalf("counts = %v, want %d failed", counts, tenants)
	}
	refused := 0
	for _, r := range h.Results(t, batch) {
		if r.ErrorCode == assign.CodeSignInRefused {
			refused++
		}
	}
	if refused != tenants {
		t.Fatalf("%d of %d rows failed with %s", refused, tenants, assign.CodeSignInRefused)
	}
	peakQueues, peakGoroutines := rt.TenantQueuesServed(), runtime.NumGoroutine()

	deadline := time.Now().Add(15 * time.Second)
	for rt.TenantQueuesServed() > startQueues && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	endQueues := rt.TenantQueuesServed()
	time.Sleep(time.Second) // stopped producers' goroutines end
	endGoroutines := runtime.NumGoroutine()
	idleRate := commitRate(t, stats, 4*time.Second)
	t.Logf("tenant queues served %d at start, %d after the rows, %d idle; goroutines %d, %d, %d; commits/s fresh %.1f, idle after %.1f",
		startQueues, peakQueues, endQueues, startGoroutines, peakGoroutines, endGoroutines, freshRate, idleRate)
	if endQueues != startQueues {
		t.Errorf("the worker serves %d tenants' queues 15 s after the rows ended, want the %d it started with", endQueues, startQueues)
	}
	if endGoroutines > startGoroutines+100 {
		t.Errorf("%d goroutines once idle, want near the %d at start", endGoroutines, startGoroutines)
	}
	if idleRate > 3*freshRate+20 {
		t.Errorf("%.1f commits a second once idle, want near a fresh worker's %.1f", idleRate, freshRate)
	}
	// A retired tenant's next rows bring its queue back.
	again := h.Enqueue(t, "again.csv", fmt.Sprintf("tenant_id,configuration_id,target_type,group_id\n%08x-0000-4000-8000-%012d,%s,group,%s\n",
		0xe0000000, 0, testenv.Config(0), testenv.Group(0)))
	if c := h.WaitFinal(t, again, 20*time.Second); c[assign.StatusFailed] != 1 {
		t.Errorf("a retired tenant's new row: %v, want it worked (failed, refused at sign-in)", c)
	}
}

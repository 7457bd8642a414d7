package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/metrics"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// httpClient bounds a scrape: a hung handler fails the test, not the run.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// scrape GETs url over HTTP, checks the body parses as Prometheus's text
// format, and returns it with its series → value ("name{labels}" as
// written, labels sorted by name).
func scrape(t *testing.T, url string) (string, map[string]float64) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: %d %s\n%s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, body)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("line %q does not parse", line)
		}
		series[line[:i]] = v
	}
	return body, series
}

// has reports whether a series of the metric name (any labels) is served.
func has(series map[string]float64, name string) bool {
	for s := range series {
		if s == name || strings.HasPrefix(s, name+"{") {
			return true
		}
	}
	return false
}

// find returns the value of the one series of name whose labels include
// all of the given label="value" pairs.
func find(t *testing.T, series map[string]float64, name string, labels ...string) float64 {
	t.Helper()
	var found []string
	for s := range series {
		if s != name && !strings.HasPrefix(s, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && (strings.Contains(s, "{"+l+",") || strings.Contains(s, ","+l+",") ||
				strings.Contains(s, ","+l+"}") || strings.Contains(s, "{"+l+"}"))
		}
		if ok {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Errorf("%s with %v: %d series %v, want 1", name, labels, len(found), found)
		return -1
	}
	return series[found[0]]
}

type pingArgs struct{}

func (pingArgs) Kind() string { return "metrics_test_ping" }

type pingWorker struct{ river.WorkerDefaults[pingArgs] }

func (pingWorker) Work(context.Context, *river.Job[pingArgs]) error { return nil }

// TestScrape serves a worker's metrics over HTTP after the domain hooks
// were called and a real River client, with RiverPlugins, worked a job on
// the test database; every family must be in the one scrape.
func TestScrape(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 6)
	m := metrics.New(db.Pool, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	m.RowFinished("", assign.StatusCreated)
	m.RowFinished("", assign.StatusCreated)
	m.RowFinished("", assign.StatusFailed)
	m.RowFinished("b0000000-0000-4000-8000-000000000002", assign.StatusFailed)
	m.GraphObserver("b0000000-0000-4000-8000-000000000002")(&graph.Response{Op: "delete", StatusCode: 429})
	m.ObserveGraph(&graph.Response{Op: "create", StatusCode: 201, Duration: 30 * time.Millisecond})
	m.ObserveGraph(&graph.Response{Op: "create", StatusCode: 429, Duration: 20 * time.Millisecond})
	m.ObserveGraph(&graph.Response{Op: "list", StatusCode: 0, Duration: 3 * time.Second})
	m.Waited(1500 * time.Millisecond)
	m.Waited(500 * time.Millisecond)

	// A real River client works one job through otelriver.
	workers := river.NewWorkers()
	river.AddWorker(workers, &pingWorker{})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers,
		Plugins:           m.RiverPlugins(),
		FetchPollInterval: 100 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	completed, cancelSub := client.Subscribe(river.EventKindJobCompleted)
	defer cancelSub()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()
	if _, err := client.Insert(ctx, pingArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-completed:
		if ev.Job.Kind != (pingArgs{}).Kind() {
			t.Fatalf("completed %s, want the ping", ev.Job.Kind)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("River did not work the job in 30s")
	}
	// Assignment rows waiting an hour: the queue depth counts them.
	ic, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := ic.Insert(ctx, jobs.AssignArgs{Batch: assign.NewID(), Row: i + 1}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	body, s := scrape(t, srv.URL)

	t.Run("Bulkassign", func(t *testing.T) {
		for _, c := range []struct {
			series string
			want   float64
		}{
			{`bulkassign_rows_total{status="created",tenant="default"}`, 2},
			{`bulkassign_rows_total{status="failed",tenant="default"}`, 1},
			{`bulkassign_rows_total{status="failed",tenant="b0000000-0000-4000-8000-000000000002"}`, 1},
			{`bulkassign_rows_total{status="already_assigned",tenant="default"}`, 0}, // present before any row ends so
			{`bulkassign_graph_requests_total{code="201",op="create",tenant="default"}`, 1},
			{`bulkassign_graph_requests_total{code="429",op="create",tenant="default"}`, 1},
			{`bulkassign_graph_requests_total{code="429",op="delete",tenant="b0000000-0000-4000-8000-000000000002"}`, 1},
			{`bulkassign_graph_requests_total{code="none",op="list",tenant="default"}`, 1},
			{`bulkassign_graph_throttled_total{op="create",tenant="default"}`, 1},
			{`bulkassign_graph_throttled_total{op="delete",tenant="b0000000-0000-4000-8000-000000000002"}`, 1},
			{`bulkassign_limit_wait_seconds_total`, 2},
			{`bulkassign_limit_waits_total`, 2},
			{`bulkassign_graph_request_duration_seconds_bucket{op="create",le="0.025"}`, 1},
			{`bulkassign_graph_request_duration_seconds_bucket{op="create",le="0.05"}`, 2},
			{`bulkassign_graph_request_duration_seconds_count{op="create"}`, 2},
			{`bulkassign_graph_request_duration_seconds_bucket{op="list",le="2.5"}`, 0},
			{`bulkassign_graph_request_duration_seconds_bucket{op="list",le="5"}`, 1},
			{`bulkassign_graph_request_duration_seconds_bucket{op="list",le="+Inf"}`, 1},
			{`bulkassign_queue_jobs{state="scheduled"}`, 2},
			{`bulkassign_queue_jobs{state="available"}`, 0},
			{`bulkassign_queue_jobs{state="running"}`, 0},
		} {
			if got, ok := s[c.series]; !ok || got != c.want {
				t.Errorf("%s = %v (present %v), want %v", c.series, got, ok, c.want)
			}
		}
		for _, st := range assign.Statuses {
			if st.Final() {
				if _, ok := s[`bulkassign_rows_total{status="`+string(st)+`",tenant="default"}`]; !ok {
					t.Errorf("no series for final status %s", st)
				}
			}
		}
	})

	t.Run("GoAndProcess", func(t *testing.T) {
		for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds", "go_info",
			"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
			"promhttp_metric_handler_errors_total"} {
			if !has(s, name) {
				t.Errorf("the scrape lacks %s", name)
			}
		}
	})

	t.Run("River", func(t *testing.T) {
		kind := `kind="` + (pingArgs{}).Kind() + `"`
		if got := find(t, s, "river_work_count_total", kind, `status="ok"`, `queue="default"`, `attempt="1"`); got != 1 {
			t.Errorf("river_work_count_total for the ping = %v, want 1", got)
		}
		if got := find(t, s, "river_work_duration_histogram_seconds_count", kind); got != 1 {
			t.Errorf("river_work_duration_histogram_seconds_count = %v, want 1", got)
		}
		// Our seconds buckets, not OpenTelemetry's millisecond defaults.
		if got := find(t, s, "river_work_duration_histogram_seconds_bucket", kind, `le="60"`); got != 1 {
			t.Errorf("river_work_duration_histogram_seconds_bucket{le=60} = %v, want 1", got)
		}
		find(t, s, "river_work_duration_seconds", kind)
		if got := find(t, s, "river_insert_count_total", `status="ok"`, `unique_skipped_as_duplicate="false"`); got != 1 {
			t.Errorf("river_insert_count_total = %v, want 1 (the ping; the rows came through another client)", got)
		}
		for _, name := range []string{"river_insert_many_count_total", "river_insert_many_duration_seconds",
			"river_insert_many_duration_histogram_seconds_count",
			// The hook side of otelriver: River calls it only for Plugins.
			"river_job_get_available_duration_seconds_count", "river_job_get_available_count_count"} {
			if !has(s, name) {
				t.Errorf("the scrape lacks %s", name)
			}
		}
		if got := find(t, s, "river_job_get_available_duration_seconds_bucket", `queue="default"`, `le="0.001"`); got < 0 {
			t.Errorf("no seconds buckets on river_job_get_available_duration_seconds")
		}
		for _, unwanted := range []string{"otel_scope_name", "target_info"} {
			if strings.Contains(body, unwanted) {
				t.Errorf("the scrape carries %s", unwanted)
			}
		}
	})
}

// TestQueueDepthUnreachable: a scrape while the database is unreachable
// serves everything else and logs why the queue depth is missing.
func TestQueueDepthUnreachable(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var log testenv.LogBuffer
	m := metrics.New(pool, slog.New(slog.NewTextHandler(&log, nil)))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	m.RowFinished("", assign.StatusCreated)

	_, s := scrape(t, srv.URL)
	if has(s, "bulkassign_queue_jobs") {
		t.Error("bulkassign_queue_jobs served without a database")
	}
	if s[`bulkassign_rows_total{status="created",tenant="default"}`] != 1 || !has(s, "go_goroutines") {
		t.Error("the rest of the scrape is missing")
	}
	if !strings.Contains(log.String(), "metric left out of the scrape") || !strings.Contains(log.String(), "bulkassign_queue_jobs") {
		t.Errorf("log = %q, want the left-out metric named", log.String())
	}
	_, s = scrape(t, srv.URL)
	if got := s[`promhttp_metric_handler_errors_total{cause="gathering"}`]; got != 1 {
		t.Errorf(`promhttp_metric_handler_errors_total{cause="gathering"} = %v, want 1 after one failed scrape`, got)
	}
}

// TestConcurrentUpdates: hooks called from many goroutines while scrapes
// run must not race (go test -race), and no update is lost. Two Metrics in
// one process do not clash: each has its own registry.
func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	m := metrics.New(nil, nil)
	other := metrics.New(nil, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				m.RowFinished("", assign.StatusCreated)
				m.ObserveGraph(&graph.Response{Op: "create", StatusCode: 201, Duration: 250 * time.Millisecond})
				m.Waited(time.Millisecond)
			}
		})
	}
	for range 5 {
		scrape(t, srv.URL)
	}
	wg.Wait()
	other.RowFinished("", assign.StatusFailed)

	_, s := scrape(t, srv.URL)
	for series, want := range map[string]float64{
		`bulkassign_rows_total{status="created",tenant="default"}`:                 8000,
		`bulkassign_rows_total{status="failed",tenant="default"}`:                  0,
		`bulkassign_graph_requests_total{code="201",op="create",tenant="default"}`: 8000,
		`bulkassign_graph_request_duration_seconds_bucket{op="create",le="0.25"}`:  8000,
		`bulkassign_graph_request_duration_seconds_count{op="create"}`:             8000,
		`bulkassign_limit_waits_total`:                                             8000,
	} {
		if s[series] != want {
			t.Errorf("%s = %v, want %v", series, s[series], want)
		}
	}
}

// TestTenantLabelsCapped: the first tenants seen get their own label, up
// to SetTenantLabels (config.Defaults' until set); the rest, however
// many, share tenant="other", so a scrape does not grow with the fleet.
func TestTenantLabelsCapped(t *testing.T) {
	t.Parallel()
	tenant := func(i int) string { return fmt.Sprintf("b0000000-0000-4000-8000-%012d", i) }

	m := metrics.New(nil, nil)
	m.SetTenantLabels(2)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for i := range 5 {
		m.RowFinished(tenant(i), assign.StatusCreated)
	}
	m.RowFinished(tenant(0), assign.StatusCreated) // already labelled: keeps its label
	m.RowFinished("", assign.StatusFailed)         // the default tenant is not counted
	m.GraphObserver(tenant(1))(&graph.Response{Op: "create", StatusCode: 201})
	m.GraphObserver(tenant(4))(&graph.Response{Op: "create", StatusCode: 429})
	_, s := scrape(t, srv.URL)
	for series, want := range map[string]float64{
		`bulkassign_rows_total{status="created",tenant="` + tenant(0) + `"}`:                 2,
		`bulkassign_rows_total{status="created",tenant="` + tenant(1) + `"}`:                 1,
		`bulkassign_rows_total{status="created",tenant="other"}`:                             3,
		`bulkassign_rows_total{status="failed",tenant="default"}`:                            1,
		`bulkassign_graph_requests_total{code="201",op="create",tenant="` + tenant(1) + `"}`: 1,
		`bulkassign_graph_requests_total{code="429",op="create",tenant="other"}`:             1,
		`bulkassign_graph_throttled_total{op="create",tenant="other"}`:                       1,
	} {
		if got, ok := s[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for series := range s {
		for i := 2; i < 5; i++ {
			if strings.Contains(series, tenant(i)) {
				t.Errorf("tenant %d past the cap of 2 has its own series: %s", i, series)
			}
		}
	}

	// The default cap: config.Defaults.MetricsTenantLabels.
	d := metrics.New(nil, nil)
	dsrv := httptest.NewServer(d.Handler())
	defer dsrv.Close()
	n := config.Defaults.MetricsTenantLabels
	for i := range n + 10 {
		d.RowFinished(tenant(i), assign.StatusCreated)
	}
	_, s = scrape(t, dsrv.URL)
	labelled := 0
	for series := range s {
		if strings.HasPrefix(series, `bulkassign_rows_total{status="created",tenant="b0000000-`) {
			labelled++
		}
	}
	if labelled != n || s[`bulkassign_rows_total{status="created",tenant="other"}`] != 10 {
		t.Errorf("%d tenants labelled and %v rows in other, want %d and 10", labelled, s[`bulkassign_rows_total{status="created",tenant="other"}`], n)
	}
}

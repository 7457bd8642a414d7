package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulkassign/bulkassign/internal/metrics"
)

func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteTo(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestExposition(t *testing.T) {
	t.Parallel()
	r := metrics.New()
	c := r.Counter("app_requests_total", "Requests.\nBy code.", "op", "code")
	c.Inc("create", "201")
	c.Add(2, "create", "201")
	c.Inc("list", "200")
	c.Inc(`we"ird\`, "none")
	plain := r.Counter("app_waits_total", "Waits.")
	plain.Add(1.5)
	h := r.Histogram("app_seconds", "Latency.", []float64{1, 0.1, 0.5}, "op")
	for _, v := range []float64{0.05, 0.1, 0.3, 2} {
		h.Observe(v, "list")
	}
	r.GaugeFunc("app_queue", "Depth.", "state", func(context.Context) (map[string]float64, error) {
		return map[string]float64{"running": 2, "available": 7}, nil
	})
	r.GaugeFunc("app_broken", "Fails.", "", func(context.Context) (map[string]float64, error) {
		return nil, errors.New("database down")
	})
	var failed []string
	r.OnError = func(name string, err error) { failed = append(failed, name+": "+err.Error()) }

	got := scrape(t, r)
	want := `# HELP app_requests_total Requests.\nBy code.
# TYPE app_requests_total counter
app_requests_total{op="create",code="201"} 3
app_requests_total{op="list",code="200"} 1
app_requests_total{op="we\"ird\\",code="none"} 1
# HELP app_waits_total Waits.
# TYPE app_waits_total counter
app_waits_total 1.5
# HELP app_seconds Latency.
# TYPE app_seconds histogram
app_seconds_bucket{op="list",le="0.1"} 2
app_seconds_bucket{op="list",le="0.5"} 3
app_seconds_bucket{op="list",le="1"} 3
app_seconds_bucket{op="list",le="+Inf"} 4
app_seconds_sum{op="list"} 2.45
app_seconds_count{op="list"} 4
# HELP app_queue Depth.
# TYPE app_queue gauge
app_queue{state="available"} 7
app_queue{state="running"} 2
`
	if got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	if len(failed) != 1 || failed[0] != "app_broken: database down" {
		t.Fatalf("OnError got %v, want the broken gauge reported once", failed)
	}
}

func TestServeHTTPAndConcurrentUpdates(t *testing.T) {
	t.Parallel()
	r := metrics.New()
	c := r.Counter("app_rows_total", "Rows.", "status")
	h := r.Histogram("app_seconds", "Latency.", []float64{0.5}, "op")
	srv := httptest.NewServer(r)
	defer srv.Close()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Inc("created")
				h.Observe(0.25, "create")
			}
		})
	}
	// Scrapes while the counters move must not race (go test -race).
	for range 5 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	wg.Wait()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != metrics.ContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, metrics.ContentType)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`app_rows_total{status="created"} 8000`, `app_seconds_bucket{op="create",le="0.5"} 8000`, `app_seconds_count{op="create"} 8000`} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("scrape lacks %q:\n%s", line, b.String())
		}
	}
}

func TestMisuse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fn   func(r *metrics.Registry)
	}{
		{"DuplicateName", func(r *metrics.Registry) { r.Counter("x_total", "x"); r.Counter("x_total", "x") }},
		{"WrongLabelCount", func(r *metrics.Registry) { r.Counter("x_total", "x", "a").Inc() }},
		{"NegativeCounter", func(r *metrics.Registry) { r.Counter("x_total", "x").Add(-1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Fatal("no panic, want one")
				}
			}()
			tc.fn(metrics.New())
		})
	}
}

package httpapi

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/metrics"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Metrics are one worker process's metrics. Its methods are the hooks
// jobs.Deps and graph.Options take; they never block.
type Metrics struct {
	Registry  *metrics.Registry
	rows      *metrics.CounterVec
	calls     *metrics.CounterVec
	throttled *metrics.CounterVec
	waited    *metrics.CounterVec
	waits     *metrics.CounterVec
	latency   *metrics.HistogramVec
}

// latencyBuckets span a fast list (tens of ms) to a create answered at
// Graph's timeout.
var latencyBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics registers the worker's metrics. The queue depth is read from
// pool at each scrape.
func NewMetrics(pool *pgxpool.Pool) *Metrics {
	r := metrics.New()
	m := &Metrics{
		Registry: r,
		rows:     r.Counter("bulkassign_rows_total", "Rows this process brought to a final status, by status.", "status"),
		calls: r.Counter("bulkassign_graph_requests_total",
			`Graph requests sent by this process, by operation (list, create, delete) and HTTP status code ("none" when no answer arrived).`, "op", "code"),
		throttled: r.Counter("bulkassign_graph_throttled_total", "Graph requests answered 429 Too Many Requests, by operation.", "op"),
		waited:    r.Counter("bulkassign_limit_wait_seconds_total", "Time rows spent waiting for the fleet's Graph read and write limits."),
		waits:     r.Counter("bulkassign_limit_waits_total", "Waits for the fleet's Graph limits that lasted any time at all."),
		latency: r.Histogram("bulkassign_graph_request_duration_seconds",
			"Graph request latency, token acquisition included, by operation.", latencyBuckets, "op"),
	}
	m.waited.Add(0)
	m.waits.Add(0)
	for _, s := range assign.Statuses {
		if s.Final() {
			m.rows.Add(0, string(s)) // every final status is a series from the start
		}
	}
	r.GaugeFunc("bulkassign_queue_jobs", "Assignment jobs in River's queue that are not final, by state (fleet-wide).", "state",
		func(ctx context.Context) (map[string]float64, error) {
			depth, err := store.QueueDepth(ctx, pool, jobs.QueueAssign)
			if err != nil {
				return nil, err
			}
			out := make(map[string]float64, len(depth))
			for s, n := range depth {
				out[s] = float64(n)
			}
			return out, nil
		})
	return m
}

// RowFinished is jobs.Deps.OnOutcome.
func (m *Metrics) RowFinished(s assign.Status) { m.rows.Inc(string(s)) }

// ObserveGraph is graph.Options.Observe.
func (m *Metrics) ObserveGraph(r *graph.Response) {
	code := "none"
	if r.StatusCode != 0 {
		code = strconv.Itoa(r.StatusCode)
	}
	m.calls.Inc(string(r.Op), code)
	if r.StatusCode == 429 {
		m.throttled.Inc(string(r.Op))
	}
	m.latency.Observe(r.Duration.Seconds(), string(r.Op))
}

// Waited is jobs.Deps.OnWait.
func (m *Metrics) Waited(d time.Duration) {
	m.waited.Add(d.Seconds())
	m.waits.Inc()
}

// Package metrics owns one worker process's metrics: bulkassign's own
// (rows, Graph requests, the fleet's limits, queue depth), River's job
// metrics (otelriver, through OpenTelemetry's Prometheus exporter), and the
// Go runtime and process collectors, all in one non-global Prometheus
// registry served by Handler.
//
// The registry is the process's own rather than prometheus.DefaultRegisterer
// so that tests can run several workers in one process.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Metrics are one worker process's metrics. RowFinished, ObserveGraph and
// Waited are the hooks jobs.Deps and graph.Options take; they never block.
type Metrics struct {
	// Registry holds every metric served by Handler.
	Registry *prometheus.Registry

	logger    *slog.Logger
	rows      *prometheus.CounterVec
	calls     *prometheus.CounterVec
	throttled *prometheus.CounterVec
	waited    prometheus.Counter
	waits     prometheus.Counter
	latency   *prometheus.HistogramVec
	river     *otelriver.Middleware

	// The tenants that have a label of their own (tenantLabel).
	tenantsMu  sync.Mutex
	tenantCap  int
	tenantSeen map[string]bool
}

// latencyBuckets span a fast list (tens of ms) to a create answered at
// Graph's timeout.
var latencyBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// riverBuckets are for River's durations in seconds: a fetch of available
// jobs (milliseconds) to a row worked up to the job timeout. OpenTelemetry's
// default buckets (0 to 10000) are meant for milliseconds.
var riverBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// queueScrapeTimeout bounds the queue-depth query of one scrape.
const queueScrapeTimeout = 2 * time.Second

// New registers the worker's metrics in a new registry. The queue depth is
// read from pool at each scrape (left out when pool is nil). logger, when
// not nil, is told of a metric that could not be collected; that metric is
// left out of the scrape and the rest is served.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Metrics {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry:   reg,
		logger:     logger,
		tenantCap:  config.Defaults.MetricsTenantLabels,
		tenantSeen: map[string]bool{},
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkassign_rows_total",
			Help: "Rows this process brought to a final status, by status and tenant.",
		}, []string{"status", "tenant"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkassign_graph_requests_total",
			Help: `Graph requests sent by this process, by operation (list, create, delete) and HTTP status code ("none" when no answer arrived).`,
		}, []string{"op", "code", "tenant"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkassign_graph_throttled_total",
			Help: "Graph requests answered 429 Too Many Requests, by operation and tenant.",
		}, []string{"op", "tenant"}),
		waited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkassign_limit_wait_seconds_total",
			Help: "Time rows spent waiting for the fleet's Graph read and write limits.",
		}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkassign_limit_waits_total",
			Help: "Waits for the fleet's Graph limits that lasted any time at all.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulkassign_graph_request_duration_seconds",
			Help:    "Graph request latency, token acquisition included, by operation.",
			Buckets: latencyBuckets,
		}, []string{"op"}),
	}
	for _, s := range assign.Statuses {
		if s.Final() {
			m.rows.WithLabelValues(string(s), DefaultTenant) // every final status is a series from the start
		}
	}
	reg.MustRegister(m.rows, m.calls, m.throttled, m.waited, m.waits, m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pool != nil {
		reg.MustRegister(&queueCollector{pool: pool, desc: prometheus.NewDesc("bulkassign_queue_jobs",
			"Assignment jobs in River's queue that are not final, by state (fleet-wide).", []string{"state"}, nil)})
	}

	// River's metrics: otelriver records them on an OpenTelemetry meter
	// whose reader is the Prometheus exporter, registered in reg. Scope
	// labels and target_info are left out: they would repeat the same
	// constants on every series.
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		// Only a name clash within reg fails here: a programming error,
		// like MustRegister's.
		panic(fmt.Sprintf("metrics: registering River's exporter: %v", err))
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Name: "river.*duration*", Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: riverBuckets}},
		)),
	)
	m.river = otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
		DurationUnit:   "s",
		MeterProvider:  provider,
		TracerProvider: tracenoop.NewTracerProvider(), // metrics only: no spans
	})
	return m
}

// DefaultTenant is the tenant label of the default tenant's rows and
// requests (AZURE_TENANT_ID); other tenants are labelled by their id, the
// first SetTenantLabels of them this process sees, and the rest
// OtherTenants. The label's values are the tenants the fleet serves:
// bounded by what was enqueued and by the cap, never by what a request
// says.
const DefaultTenant = "default"

// OtherTenants is the tenant label shared by the tenants past the cap.
const OtherTenants = "other"

// SetTenantLabels sets how many tenants besides the default one get a
// label of their own (WORKER_METRICS_TENANT_LABELS; config.Defaults'
// until set). Tenants already labelled keep their label.
func (m *Metrics) SetTenantLabels(n int) {
	m.tenantsMu.Lock()
	defer m.tenantsMu.Unlock()
	m.tenantCap = n
}

func (m *Metrics) tenantLabel(tenant string) string {
	if tenant == "" {
		return DefaultTenant
	}
	m.tenantsMu.Lock()
	defer m.tenantsMu.Unlock()
	if m.tenantSeen[tenant] {
		return tenant
	}
	if len(m.tenantSeen) < m.tenantCap {
		m.tenantSeen[tenant] = true
		return tenant
	}
	return OtherTenants
}

// RowFinished is jobs.Deps.OnOutcome: a row of tenant ("" the default)
// ended with s.
func (m *Metrics) RowFinished(tenant string, s assign.Status) {
	m.rows.WithLabelValues(string(s), m.tenantLabel(tenant)).Inc()
}

// ObserveGraph is graph.Options.Observe for the default tenant's client.
func (m *Metrics) ObserveGraph(r *graph.Response) { m.observe(DefaultTenant, r) }

// GraphObserver is graph.Options.Observe for tenant's client.
func (m *Metrics) GraphObserver(tenant string) func(*graph.Response) {
	label := m.tenantLabel(tenant)
	return func(r *graph.Response) { m.observe(label, r) }
}

func (m *Metrics) observe(tenant string, r *graph.Response) {
	code := "none"
	if r.StatusCode != 0 {
		code = strconv.Itoa(r.StatusCode)
	}
	m.calls.WithLabelValues(string(r.Op), code, tenant).Inc()
	if r.StatusCode == http.StatusTooManyRequests {
		m.throttled.WithLabelValues(string(r.Op), tenant).Inc()
	}
	m.latency.WithLabelValues(string(r.Op)).Observe(r.Duration.Seconds())
}

// Waited is jobs.Deps.OnWait.
func (m *Metrics) Waited(d time.Duration) {
	m.waited.Add(d.Seconds())
	m.waits.Inc()
}

// RiverPlugins are for river.Config.Plugins: otelriver's middleware, which
// records jobs worked and inserted, and, as a hook, River's fetch metrics.
// (Installed through river.Config.Middleware instead, River would skip its
// hook side.)
func (m *Metrics) RiverPlugins() []rivertype.Plugin { return []rivertype.Plugin{m.river} }

// Handler serves the registry in Prometheus's text format. A metric that cannot be collected is logged and left out;
// promhttp_metric_handler_errors_total counts such scrapes.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:      logAdapter{m.logger},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.Registry,
	})
}

// logAdapter is promhttp.Logger on slog.
type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Println(v ...any) {
	a.l.Warn("metric left out of the scrape", "error", fmt.Sprint(v...))
}

// queueCollector reads the assignment queue's depth at each scrape.
type queueCollector struct {
	pool *pgxpool.Pool
	desc *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	depth, err := store.QueueDepth(ctx, c.pool, jobs.QueueAssign)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for state, n := range depth {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}

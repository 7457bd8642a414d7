// Package worker is the worker process's runtime: it wires the River
// client, the Graph client, the fleet's limiters, the schedule tick and the
// HTTP endpoints, and runs them until told to stop. The worker command
// (internal/cli) parses its settings and calls Open and Run; tests and
// benchmarks call New with their own pool and token source.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/metrics"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Runtime is a configured worker process: River client, Graph client and
// the fleet's limiters.
type Runtime struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	Deps   *jobs.Deps
	// Metrics are served at /metrics: on WORKER_METRICS_ADDR when set,
	// else on WORKER_HTTP_ADDR behind the console's sign-in.
	Metrics *metrics.Metrics
	// Schedule tunes the schedule tick; tests shorten it and set its clock
	// before Run.
	Schedule jobs.ScheduleConfig
	// TenantQueuePoll, when set, replaces the package's TenantQueuePoll.
	TenantQueuePoll time.Duration
	// Console, when set before Run, builds the console's handler, served
	// at /console/ (internal/console sets it).
	Console func() (http.Handler, error)
	// CloseConsole, when set with Console, is called once the HTTP server
	// has stopped (internal/console sets it: its upload spool goes).
	CloseConsole func() error
	// Access is the web sign-in's app registration (AZURE_*), for Entra
	// ID sign-in to the console.
	Access      access.Config
	ready       chan struct{}
	httpAddr    string
	metricsAddr string
	queues      tenantQueues
	cfg         config.Worker
	worker      *jobs.AssignWorker
}

// Open signs in as the settings say (auth.NewTokenSource) and wires a
// worker on db, which must stay open until Run returns.
func Open(ctx context.Context, db *store.DB, gcfg config.Graph, wcfg config.Worker, logger *slog.Logger) (*Runtime, error) {
	tokens, err := auth.NewTokenSource(ctx, gcfg, db)
	if err != nil {
		return nil, err
	}
	warnIfUngranted(ctx, tokens, gcfg.TenantID, logger)
	return New(db.Pool(), tokens, gcfg, wcfg, logger)
}

// warnIfUngranted says at start, for a tenant, that its token lacks the
// permission the workers need: otherwise every row of it fails with 403.
func warnIfUngranted(ctx context.Context, tokens graph.TokenSource, tenant string, logger *slog.Logger) {
	tok, err := tokens.Token(ctx, graph.TokenOptions{})
	if err != nil {
		return // the rows will say why
	}
	c, err := auth.ReadClaims(tok)
	if err != nil || c.Grants(auth.DelegatedPermission) {
		return
	}
	logger.Error("PERMISSION MISSING: the token for this tenant lacks "+auth.DelegatedPermission+
		"; every row of the tenant will fail with 403 until it is granted with admin consent (see `worker check`)",
		"tenant", tenant, "permissions", c.Permissions())
}

// New wires the worker's parts on pool, calling Graph with tokens.
func New(pool *pgxpool.Pool, tokens graph.TokenSource, gcfg config.Graph, wcfg config.Worker, logger *slog.Logger) (*Runtime, error) {
	m := metrics.New(pool, logger.With("component", "metrics"))
	if wcfg.MetricsTenantLabels > 0 {
		m.SetTenantLabels(wcfg.MetricsTenantLabels)
	}
	gc, err := NewGraphClient(gcfg, tokens, m.ObserveGraph)
	if err != nil {
		return nil, err
	}
	deps := &jobs.Deps{
		Pool:          pool,
		Graph:         gc,
		Writes:        newWriteLimiter(pool, wcfg, gcfg.TenantID, ""),
		Reads:         newReadLimiter(pool, wcfg, gcfg.TenantID, ""),
		DefaultTenant: gcfg.TenantID,
		Tenants:       &tenants{pool: pool, gcfg: gcfg, wcfg: wcfg, observe: m.GraphObserver, logger: logger, signedIn: tokens},
		Allowlist:     wcfg.Allowlist,
		Logger:        logger,
		OnOutcome:     m.RowFinished,
		OnWait:        m.Waited,
		Settings: jobs.Settings{
			Patience:   wcfg.Patience,
			MaxErrors:  wcfg.MaxErrors,
			JobTimeout: wcfg.JobTimeout,
		},
	}
	return &Runtime{Pool: pool, Logger: logger, Deps: deps, Metrics: m, ready: make(chan struct{}), cfg: wcfg, worker: jobs.NewAssignWorker(deps),
		Access: access.Config{AuthorityHost: gcfg.AuthorityHost, TenantID: gcfg.TenantID, ClientID: gcfg.ClientID, ClientSecret: gcfg.ClientSecret}}, nil
}

// riverListenConns is what River holds outside the pool: its notifier
// takes one connection from the pool for LISTEN and hijacks it (pgxpool's
// Conn.Hijack), after which the pool may open another in its place.
const riverListenConns = 1

// PoolSize is the pgx pool a worker process opens on wcfg: its
// DATABASE_MAX_CONNS less River's LISTEN connection, so that the process
// never holds more than DATABASE_MAX_CONNS connections. Everything else
// (the rows, River's fetches, completions, election and maintenance, the
// fleet's limiters, the HTTP probes and metrics) shares the pool and waits
// for a free connection when all are in use; no code path holds one
// connection while it waits for a second, nor while it waits on Graph or a
// limit, so waiting cannot deadlock.
func PoolSize(wcfg config.Worker) int32 {
	n := wcfg.DatabaseMaxConns
	if n <= 0 {
		n = config.Defaults.DatabaseMaxConns
	}
	return int32(max(n-riverListenConns, 1))
}

// NewGraphClient is the Graph client of every process that calls Graph
// (workers, dry runs); observe, when not nil, sees every response. A base
// URL the client refuses is a config.UnusableError.
func NewGraphClient(gcfg config.Graph, tokens graph.TokenSource, observe func(*graph.Response)) (*graph.Client, error) {
	gc, err := graph.New(graph.Options{BaseURL: gcfg.BaseURL, Tokens: tokens, Timeout: gcfg.Timeout, MaxListBytes: gcfg.MaxListBytes, UserAgent: "bulkassign",
		Observe: observe, HTTPClient: graphHTTP()})
	if err != nil {
		return nil, config.Unusable(err)
	}
	return gc, nil
}

// graphHTTP is the one HTTP client of the process's Graph clients: every
// tenant's requests go to the same Graph host, each with its tenant's
// token, so they share its connections (a client per tenant opened, and
// TLS-handshook, connections of its own for each of fifty tenants).
var graphHTTP = sync.OnceValue(graph.NewHTTPClient)

// Ready is closed once Run serves (River started, HTTP listening), or has
// failed to.
func (r *Runtime) Ready() <-chan struct{} { return r.ready }

// HTTPAddr is the address the HTTP server listens on once Ready; "" when
// it is off or failed to start.
func (r *Runtime) HTTPAddr() string { return r.httpAddr }

// MetricsAddr is the address of WORKER_METRICS_ADDR's listener once
// Ready; "" when unset or failed to start.
func (r *Runtime) MetricsAddr() string { return r.metricsAddr }

// Settings are the worker's settings it was built with.
func (r *Runtime) Settings() config.Worker { return r.cfg }

// Run works rows until ctx ends, then stops gracefully: no new rows are
// taken and running ones get up to the job timeout to finish; after that
// they are cancelled (and snooze, spending no attempt).
func (r *Runtime) Run(ctx context.Context) error {
	readyOnce := sync.OnceFunc(func() { close(r.ready) })
	defer readyOnce()
	client, err := jobs.NewClient(r.Pool, r.worker, jobs.ClientConfig{
		Workers:     r.cfg.Concurrency,
		RescueAfter: r.cfg.RescueAfter,
		Logger:      r.Logger.With("component", "river"),
		Register: func(w *river.Workers) {
			river.AddWorker(w, jobs.NewScheduleWorker(r.Pool, r.Logger.With("component", "schedule"), r.Schedule))
			river.AddWorker(w, jobs.NewRevertWorker(r.Deps))
		},
		PeriodicJobs: []*river.PeriodicJob{jobs.NewScheduleTick(r.Schedule)},
		Plugins:      r.Metrics.RiverPlugins(),
		Retention:    r.cfg.Retention,
	})
	if err != nil {
		return err
	}
	if err := client.Queues().Add(jobs.QueueSchedule, river.QueueConfig{MaxWorkers: 1}); err != nil {
		return fmt.Errorf("error adding the schedule queue: %w", err)
	}
	if id, err := assign.ParseGUID("AZURE_TENANT_ID", r.Deps.DefaultTenant); err == nil {
		// The default tenant's rows are served from the start; other
		// tenants' queues as serveTenantQueues finds them.
		if err := client.Queues().Add(jobs.TenantQueue(id), river.QueueConfig{MaxWorkers: r.cfg.Concurrency}); err != nil {
			return fmt.Errorf("error adding the default tenant's queue: %w", err)
		}
	}
	// Listen before working rows: a taken port stops the worker at start.
	var scrape http.Handler // /metrics on WORKER_HTTP_ADDR, unless on its own address
	if r.cfg.MetricsAddr != "" {
		srv, err := httpapi.StartMetrics(httpapi.MetricsConfig{Addr: r.cfg.MetricsAddr, Metrics: r.Metrics.Handler(),
			Console: r.cfg.Console, Logger: r.Logger.With("component", "http")})
		if err != nil {
			return err
		}
		r.metricsAddr = srv.Addr()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				r.Logger.Warn("metrics server did not stop cleanly", "error", err)
			}
		}()
	} else {
		scrape = r.Metrics.Handler()
	}
	if r.cfg.HTTPAddr != "" {
		ac := r.Access
		ac.Console = r.cfg.Console
		if r.CloseConsole != nil {
			// Deferred before the server's shutdown, so it runs after it.
			defer func() {
				if err := r.CloseConsole(); err != nil {
					r.Logger.Warn("console did not close cleanly", "error", err)
				}
			}()
		}
		srv, err := httpapi.Start(httpapi.Config{Addr: r.cfg.HTTPAddr, User: r.cfg.HTTPUser, Password: r.cfg.HTTPPassword,
			Pool: r.Pool, River: client, Metrics: scrape, Logger: r.Logger.With("component", "http"),
			Access: ac, Console: r.Console})
		if err != nil {
			return err
		}
		r.httpAddr = srv.Addr()
		// Deferred: probes and scrapes keep answering while rows drain.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				r.Logger.Warn("HTTP server did not stop cleanly", "error", err)
			}
		}()
	}
	// River runs on its own context so that ctx ending starts a graceful
	// stop instead of cancelling in-flight Graph calls.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("error starting River: %w", err)
	}
	go r.serveTenantQueues(ctx, client)
	r.Logger.Info("worker started", "concurrency", r.cfg.Concurrency, "tenant_concurrency", r.cfg.TenantConcurrency, "write_rate", r.cfg.WriteRate, "read_rate", r.cfg.ReadRate,
		"job_timeout", r.cfg.JobTimeout, "rescue_after", r.cfg.RescueAfter, "http", r.httpAddr, "metrics", r.metricsAddr)
	readyOnce()
	select {
	case <-ctx.Done():
	case <-client.Stopped():
		return errors.New("River stopped unexpectedly")
	}
	r.Logger.Info("stopping: finishing rows in flight")
	stopCtx, cancel := context.WithTimeout(context.Background(), r.cfg.JobTimeout)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		r.Logger.Warn("rows still running at the deadline are cancelled", "error", err)
		hard, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		_ = client.StopAndCancel(hard)
	}
	r.Logger.Info("worker stopped")
	return nil
}

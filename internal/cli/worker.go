package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/metrics"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/store"
)

const workerUsage = `usage: worker            work queued rows until SIGINT or SIGTERM
       worker migrate    apply River's and bulkassign's migrations (idempotent)
       worker login      sign in as yourself (device code) for AZURE_SIGNIN=delegated
       worker logout     delete the stored sign-in

Settings come from the environment; see the README.

flags:
`

// workerCommands are the subcommands of worker, by name.
var workerCommands = map[string]func(ctx context.Context, env *Env, args []string) error{
	"migrate": workerMigrate,
}

// Worker runs the worker command and returns its exit code. ctx ending is
// the signal to stop: in-flight rows finish (up to the job timeout), then
// the worker exits.
func Worker(ctx context.Context, env *Env, args []string) int {
	return finish(env, "worker", runWorker(ctx, env, args))
}

func runWorker(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		if cmd, ok := workerCommands[args[0]]; ok {
			return cmd(ctx, env, args[1:])
		}
	}
	fs := newFlagSet(env, "worker", workerUsage)
	verbose := fs.Bool("v", false, "log every Graph call (debug level)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unknown command %q", pos[0])
	}
	wcfg, err := config.LoadWorker(env.Getenv)
	if err != nil {
		return err
	}
	if wcfg.HTTPAddr != "" {
		if err := httpapi.CheckExposure(wcfg.HTTPAddr, wcfg.HTTPUser, wcfg.HTTPPassword); err != nil {
			return err
		}
	}
	gcfg, err := config.LoadGraph(env.Getenv, true)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := newLogger(env, level)

	pool, err := openMigrated(ctx, env, int32(wcfg.Concurrency+10))
	if err != nil {
		return err
	}
	defer pool.Close()
	tokens, err := newTokenSource(ctx, gcfg, pool)
	if err != nil {
		return err
	}
	w, err := NewWorkerRuntime(pool, tokens, gcfg, wcfg, logger)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// WorkerRuntime is a configured worker process: River client, Graph client
// and the fleet's limiters.
type WorkerRuntime struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	Deps   *jobs.Deps
	// Metrics are served at /metrics.
	Metrics *metrics.Metrics
	// Schedule tunes the schedule tick; tests shorten it and set its clock
	// before Run.
	Schedule jobs.ScheduleConfig
	ready    chan struct{}
	httpAddr string
	cfg      config.Worker
	worker   *jobs.AssignWorker
}

// NewWorkerRuntime wires the worker's parts.
func NewWorkerRuntime(pool *pgxpool.Pool, tokens graph.TokenSource, gcfg config.Graph, wcfg config.Worker, logger *slog.Logger) (*WorkerRuntime, error) {
	m := metrics.New(pool, logger.With("component", "metrics"))
	gc, err := newGraphClient(gcfg, tokens, m.ObserveGraph)
	if err != nil {
		return nil, err
	}
	deps := &jobs.Deps{
		Pool:      pool,
		Graph:     gc,
		Writes:    ratelimit.New(pool, ratelimit.Config{Name: "graph_write", Rate: wcfg.WriteRate}),
		Reads:     newReadLimiter(pool, wcfg),
		Logger:    logger,
		OnOutcome: m.RowFinished,
		OnWait:    m.Waited,
		Settings: jobs.Settings{
			Patience:   wcfg.Patience,
			MaxErrors:  wcfg.MaxErrors,
			JobTimeout: wcfg.JobTimeout,
		},
	}
	return &WorkerRuntime{Pool: pool, Logger: logger, Deps: deps, Metrics: m, ready: make(chan struct{}), cfg: wcfg, worker: jobs.NewAssignWorker(deps)}, nil
}

// newGraphClient is the Graph client of every command that calls Graph;
// observe, when not nil, sees every response.
func newGraphClient(gcfg config.Graph, tokens graph.TokenSource, observe func(*graph.Response)) (*graph.Client, error) {
	gc, err := graph.New(graph.Options{BaseURL: gcfg.BaseURL, Tokens: tokens, Timeout: gcfg.Timeout, UserAgent: "bulkassign", Observe: observe})
	if err != nil {
		return nil, settingError(err)
	}
	return gc, nil
}

// newReadLimiter is the fleet's Graph read limit. Every process that reads
// (workers, dry runs) shares the one bucket in the database, so all must
// configure it alike.
func newReadLimiter(pool *pgxpool.Pool, wcfg config.Worker) *ratelimit.Limiter {
	return ratelimit.New(pool, ratelimit.Config{Name: "graph_read", Rate: wcfg.ReadRate, Burst: max(1, wcfg.ReadRate/10)})
}

// Ready is closed once Run serves (River started, HTTP listening), or has
// failed to.
func (r *WorkerRuntime) Ready() <-chan struct{} { return r.ready }

// HTTPAddr is the address the HTTP server listens on once Ready; "" when
// it is off or failed to start.
func (r *WorkerRuntime) HTTPAddr() string { return r.httpAddr }

// Run works rows until ctx ends, then stops gracefully: no new rows are
// taken and running ones get up to the job timeout to finish; after that
// they are cancelled (and snooze, spending no attempt).
func (r *WorkerRuntime) Run(ctx context.Context) error {
	readyOnce := sync.OnceFunc(func() { close(r.ready) })
	defer readyOnce()
	client, err := jobs.NewClient(r.Pool, r.worker, jobs.ClientConfig{
		Workers:     r.cfg.Concurrency,
		RescueAfter: r.cfg.RescueAfter,
		Logger:      r.Logger.With("component", "river"),
		Register: func(w *river.Workers) {
			river.AddWorker(w, jobs.NewScheduleWorker(r.Pool, r.Logger.With("component", "schedule"), r.Schedule))
			r.registerOps(w) // ops.go: the revert worker
		},
		PeriodicJobs: []*river.PeriodicJob{jobs.NewScheduleTick(r.Schedule)},
		Plugins:      r.Metrics.RiverPlugins(),
	})
	if err != nil {
		return err
	}
	if err := client.Queues().Add(jobs.QueueSchedule, river.QueueConfig{MaxWorkers: 1}); err != nil {
		return fmt.Errorf("error adding the schedule queue: %w", err)
	}
	// Listen before working rows: a taken port stops the worker at start.
	if r.cfg.HTTPAddr != "" {
		srv, err := httpapi.Start(httpapi.Config{Addr: r.cfg.HTTPAddr, User: r.cfg.HTTPUser, Password: r.cfg.HTTPPassword,
			Pool: r.Pool, River: client, Metrics: r.Metrics.Handler(), Logger: r.Logger.With("component", "http")})
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
	r.Logger.Info("worker started", "concurrency", r.cfg.Concurrency, "write_rate", r.cfg.WriteRate, "read_rate", r.cfg.ReadRate,
		"job_timeout", r.cfg.JobTimeout, "rescue_after", r.cfg.RescueAfter, "http", r.httpAddr)
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

func workerMigrate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "worker migrate", "usage: worker migrate\n")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	pool, err := openDB(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := store.Migrate(ctx, pool, "")
	if err != nil {
		return err
	}
	if len(res.RiverVersions) == 0 && len(res.Ours) == 0 {
		fmt.Fprintln(env.Stdout, "migrations: already current")
		return nil
	}
	if len(res.RiverVersions) > 0 {
		fmt.Fprintf(env.Stdout, "migrations: applied River versions %v\n", res.RiverVersions)
	}
	for _, m := range res.Ours {
		fmt.Fprintf(env.Stdout, "migrations: applied %s\n", m)
	}
	return nil
}

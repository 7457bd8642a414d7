package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testenv"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// run is one timed pass of workers over a batch.
type run struct {
	rows    int // rows (or jobs) finished
	elapsed time.Duration
	goCPU   time.Duration // this process (workers, River, and the in-process simulator)
	pgCPU   time.Duration // the Postgres backends of the run's pool
	stats   graphsim.Stats
	pairs   int // distinct (configuration, path) in the batch
	created int
	queries []labeledStat
	timeout bool
	// erred jobs met an error and were retried by River (fleet runs only;
	// see jobErrors).
	erred      int
	firstError string
}

func (r run) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.rows) / r.elapsed.Seconds()
}

// workerEnv is what a worker process would read from its environment to
// work against sim.
func workerEnv(sim *graphsim.Server, extra map[string]string) config.Env {
	vars := map[string]string{
		"WORKER_HTTP_ADDR":     "127.0.0.1:0", // served as in production, on a free port
		"GRAPH_BASE_URL":       sim.GraphBaseURL(),
		"AZURE_AUTHORITY_HOST": sim.AuthorityHost(),
		"AZURE_TENANT_ID":      sim.TenantID(),
		"AZURE_CLIENT_ID":      graphsim.DefaultClientID,
		"AZURE_CLIENT_SECRET":  graphsim.DefaultClientSecret,
	}
	for k, v := range extra {
		vars[k] = v
	}
	return config.MapEnv(vars)
}

// process is one in-process worker "process": its own pool, limiter
// handles and River client, wired by worker.New exactly as the
// worker command wires them.
type process struct {
	app    string
	rt     *worker.Runtime
	cancel context.CancelFunc
	done   chan error
}

func startProcess(ctx context.Context, s *schema, sim *graphsim.Server, app string, poolConns int32, tracer pgx.QueryTracer,
	extra map[string]string, onOutcome func(assign.Status)) (*process, error) {
	env := workerEnv(sim, extra)
	wcfg, err := config.LoadWorker(env)
	if err != nil {
		return nil, err
	}
	gcfg, err := config.LoadGraph(env, true)
	if err != nil {
		return nil, err
	}
	pool, err := s.openPool(ctx, app, poolConns, tracer)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewApp(auth.AppConfig{AuthorityHost: gcfg.AuthorityHost, TenantID: gcfg.TenantID,
		ClientID: gcfg.ClientID, Secret: gcfg.ClientSecret, Scope: gcfg.Scope()})
	if err != nil {
		pool.Close()
		return nil, err
	}
	// Sign in before the clock starts: River's no-op jobs have no token to get.
	if _, err := tokens.Token(ctx, graph.TokenOptions{}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("signing in to the simulator: %w", err)
	}
	rt, err := worker.New(pool, tokens, gcfg, wcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		pool.Close()
		return nil, err
	}
	// Keep the runtime's own callback (metrics): it is part of a row's cost.
	if prev := rt.Deps.OnOutcome; prev != nil {
		rt.Deps.OnOutcome = func(tenant string, s assign.Status) { prev(tenant, s); onOutcome(s) }
	} else {
		rt.Deps.OnOutcome = func(_ string, s assign.Status) { onOutcome(s) }
	}
	p := &process{app: app, rt: rt, done: make(chan error, 1)}
	return p, nil
}

func (p *process) run(ctx context.Context) {
	runCtx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	go func() { p.done <- p.rt.Run(runCtx) }()
}

// fetchTuned is the fetch tuning of River's own benchmark (cmd/river
// bench): fetch at most every 2 ms, poll every 20 ms. River's default
// cooldown of 100 ms allows 10 fetches a second, so at most 10×MaxWorkers
// jobs a second per process.
var fetchTuned = river.QueueConfig{FetchCooldown: 2 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond}

// runFetchTuned is a what-if: the same AssignWorker and Deps as the
// product's worker, in a River client with fetchTuned (and without the
// product's retry policy, which a clean run never reaches).
func (p *process) runFetchTuned(ctx context.Context, workers int) error {
	ws := river.NewWorkers()
	river.AddWorker(ws, jobs.NewAssignWorker(p.rt.Deps))
	q := fetchTuned
	q.MaxWorkers = workers
	client, err := river.NewClient(riverpgxv5.New(p.rt.Pool), &river.Config{
		Queues:               map[string]river.QueueConfig{jobs.QueueAssign: q},
		Workers:              ws,
		JobTimeout:           p.rt.Deps.Settings.JobTimeout,
		RescueStuckJobsAfter: p.rt.Deps.Settings.JobTimeout + 30*time.Second,
		Logger:               slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	go func() {
		<-runCtx.Done()
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.done <- client.Stop(stopCtx)
	}()
	return nil
}

func (p *process) stop() error {
	if p.cancel != nil {
		p.cancel()
		err := <-p.done
		p.cancel = nil
		p.rt.Pool.Close()
		return err
	}
	p.rt.Pool.Close()
	return nil
}

// oursRun works a rows-row batch spread over configs configurations with
// one worker process of o.workers against a simulator with no latency,
// no write limit and GRAPH_WRITE_RATE=0 / GRAPH_READ_RATE=0 (limiters off).
func oursRun(ctx context.Context, o options, rows, configs int, tuned, trace bool, profile string) (run, error) {
	s, err := newSchema(ctx, "wo")
	if err != nil {
		return run{}, err
	}
	defer s.drop()
	sim, err := graphsim.New(graphsim.Config{})
	if err != nil {
		return run{}, err
	}
	defer sim.Close()
	for i := range configs {
		sim.AddConfiguration(testenv.Config(i))
	}
	rc, err := jobs.NewInsertClient(s.pool)
	if err != nil {
		return run{}, err
	}
	if _, err := jobs.Enqueue(ctx, s.pool, rc, []jobs.Input{{Name: "worker.csv", Reader: strings.NewReader(testenv.GroupCSV(rows, configs)), Format: intake.FormatCSV,
		DefaultTenant: sim.TenantID()}}); err != nil {
		return run{}, err
	}

	var finished atomic.Int64
	all := make(chan struct{})
	var qs *queryStats
	var tracer pgx.QueryTracer
	if trace {
		qs = newQueryStats()
		tracer = qs
	}
	p, err := startProcess(ctx, s, sim, "bench_ours", o.poolConns, tracer, map[string]string{
		"GRAPH_WRITE_RATE": "0", "GRAPH_READ_RATE": "0", "WORKER_CONCURRENCY": strconv.Itoa(o.workers),
	}, func(assign.Status) {
		if finished.Add(1) == int64(rows) {
			close(all)
		}
	})
	if err != nil {
		return run{}, err
	}
	stopProfile, err := startProfile(profile)
	if err != nil {
		p.stop()
		return run{}, err
	}
	settle(ctx, p.rt.Pool)
	pg0 := backendCPU(ctx, p.rt.Pool, p.app)
	cpu0 := processCPU()
	start := time.Now()
	if tuned {
		if err := p.runFetchTuned(ctx, o.workers); err != nil {
			p.stop()
			return run{}, err
		}
	} else {
		p.run(ctx)
	}
	r := run{}
	select {
	case <-all:
	case <-time.After(o.runTimeout):
		r.timeout = true
	case <-ctx.Done():
	}
	r.elapsed = time.Since(start)
	r.goCPU = processCPU() - cpu0
	stopProfile()
	r.rows = int(finished.Load())
	r.pgCPU = backendCPU(ctx, p.rt.Pool, p.app) - pg0
	if err := p.stop(); err != nil {
		return run{}, err
	}
	if ctx.Err() != nil {
		return run{}, ctx.Err()
	}
	r.stats = sim.Stats()
	r.pairs = configs // every row is on the configuration's own path
	r.created = len(sim.Ledger())
	if qs != nil {
		r.queries = qs.snapshot()
	}
	return r, nil
}

// noopArgs are jobs shaped like ours (a batch id and a row) that do nothing.
type noopArgs struct {
	Batch string `json:"batch"`
	Row   int    `json:"row"`
}

func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// riverNoop is River's own floor: rows no-op jobs worked by o.workers
// workers on the same database, timed from Start to the last completion
// event (sent once River's completer has persisted the job).
func riverNoop(ctx context.Context, o options, rows int, tuned, trace bool) (run, error) {
	s, err := newSchema(ctx, "wn")
	if err != nil {
		return run{}, err
	}
	defer s.drop()
	var qs *queryStats
	var tracer pgx.QueryTracer
	if trace {
		qs = newQueryStats()
		tracer = qs
	}
	const app = "bench_noop"
	pool, err := s.openPool(ctx, app, o.poolConns, tracer)
	if err != nil {
		return run{}, err
	}
	defer pool.Close()
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	q := river.QueueConfig{}
	if tuned {
		q = fetchTuned
	}
	q.MaxWorkers = o.workers
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: q},
		Workers: workers,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return run{}, err
	}
	batch := assign.NewID()
	params := make([]river.InsertManyParams, rows)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{Batch: batch, Row: i + 1}}
	}
	if _, err := client.InsertManyFast(ctx, params); err != nil {
		return run{}, err
	}
	if qs != nil {
		qs.reset()
	}
	events, cancelSub := client.SubscribeConfig(&river.SubscribeConfig{Kinds: []river.EventKind{river.EventKindJobCompleted}, ChanSize: rows + 1000})
	defer cancelSub()
	// The insert ran on this pool's backends: count only what follows.
	settle(ctx, pool)
	pg0 := backendCPU(ctx, pool, app)
	cpu0 := processCPU()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return run{}, err
	}
	r := run{}
	deadline := time.After(o.runTimeout)
loop:
	for r.rows < rows {
		select {
		case ev := <-events:
			if ev != nil {
				r.rows++
			}
		case <-deadline:
			r.timeout = true
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	r.elapsed = time.Since(start)
	r.goCPU = processCPU() - cpu0
	r.pgCPU = backendCPU(ctx, pool, app) - pg0
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		return run{}, err
	}
	if ctx.Err() != nil {
		return run{}, ctx.Err()
	}
	if qs != nil {
		r.queries = qs.snapshot()
	}
	return r, nil
}

func (q *queryStats) reset() {
	q.mu.Lock()
	q.m = map[string]*queryStat{}
	q.mu.Unlock()
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// workerResult holds section 2.
type workerResult struct {
	rows, configs int
	ours          run   // the product's worker wiring
	oursTuned     run   // what-if: the same worker with River's benchmark fetch tuning
	noop          run   // River no-op, River's default fetch settings (as ours)
	noopTuned     []run // River no-op, River's benchmark fetch tuning; before and after ours
	traced        run   // ours again, smaller, with every statement counted
	tracedNoop    run
	skew          *run // all rows on one configuration
	skewRows      int
}

func (w *workerResult) noopTunedRate() float64 {
	var sum float64
	for _, r := range w.noopTuned {
		sum += r.rate()
	}
	return sum / float64(len(w.noopTuned))
}

func benchWorkers(ctx context.Context, o options) (*workerResult, error) {
	w := &workerResult{rows: o.workerRows, configs: o.workerConfigs}
	say := func(what string, r run) {
		progress("workers: %s: %d in %s = %.0f/s%s", what, r.rows, r.elapsed.Round(time.Millisecond), r.rate(), timeoutNote(r.timeout))
	}
	t1, err := riverNoop(ctx, o, o.workerRows, true, false)
	if err != nil {
		return nil, fmt.Errorf("River no-op: %w", err)
	}
	say("River no-op, fetch tuned", t1)
	if w.noop, err = riverNoop(ctx, o, o.workerRows, false, false); err != nil {
		return nil, fmt.Errorf("River no-op: %w", err)
	}
	say("River no-op, River's default fetch", w.noop)
	if w.ours, err = oursRun(ctx, o, o.workerRows, o.workerConfigs, false, false, o.cpuProfile); err != nil {
		return nil, fmt.Errorf("bulkassign workers: %w", err)
	}
	say("bulkassign", w.ours)
	if o.whatIf {
		if w.oursTuned, err = oursRun(ctx, o, o.workerRows, o.workerConfigs, true, false, ""); err != nil {
			return nil, fmt.Errorf("bulkassign workers, fetch tuned: %w", err)
		}
		say("bulkassign, fetch tuned (what-if)", w.oursTuned)
	}
	t2, err := riverNoop(ctx, o, o.workerRows, true, false)
	if err != nil {
		return nil, fmt.Errorf("River no-op: %w", err)
	}
	say("River no-op, fetch tuned, again", t2)
	w.noopTuned = []run{t1, t2}

	if o.tracedRows > 0 {
		if w.traced, err = oursRun(ctx, o, o.tracedRows, max(1, o.workerConfigs*o.tracedRows/o.workerRows), false, true, ""); err != nil {
			return nil, fmt.Errorf("bulkassign workers, traced: %w", err)
		}
		if w.tracedNoop, err = riverNoop(ctx, o, o.tracedRows, false, true); err != nil {
			return nil, fmt.Errorf("River no-op, traced: %w", err)
		}
		progress("workers: traced runs done (%d rows each)", o.tracedRows)
	}
	if o.skewRows > 0 {
		sk, err := oursRun(ctx, o, o.skewRows, 1, false, false, "")
		if err != nil {
			return nil, fmt.Errorf("bulkassign workers, one configuration: %w", err)
		}
		w.skew, w.skewRows = &sk, o.skewRows
		say("bulkassign, all rows on ONE configuration", sk)
	}
	return w, nil
}

// startProfile starts a CPU profile written to path ("": none) and returns
// what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

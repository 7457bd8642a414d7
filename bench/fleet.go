package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// Section 5: many tenants in one fleet. One worker process serves a batch
// whose rows name fifty tenants (CSV column tenant_id), as an MSP's list
// of customers would: each tenant has its own River queue
// (bulkassign_t_<tenant>, WORKER_TENANT_CONCURRENCY workers), its own
// sign-in, built on first use, and its own limits.

// fleetTenant is the i-th tenant of the fleet runs; fleetConfig the c-th
// configuration of tenant t.
func fleetTenant(i int) string { return fmt.Sprintf("b%07d-0000-4000-8000-000000000000", i) }
func fleetConfig(t, c int) string {
	return fmt.Sprintf("e%07d-0000-4000-8000-%012d", t, c)
}

// fleetCSV is a list sorted by tenant, as customers' lists put one after
// another: tenants × perTenant rows, row r of tenant t assigning Group(r)
// to that tenant's configuration r % configs.
func fleetCSV(tenants, perTenant, configs int) string {
	var b strings.Builder
	b.WriteString("tenant_id,configuration_id,target_type,group_id\n")
	for t := range tenants {
		for r := range perTenant {
			b.WriteString(fleetTenant(t))
			b.WriteByte(',')
			b.WriteString(fleetConfig(t, r%configs))
			b.WriteString(",group,")
			b.WriteString(testenv.Group(r))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// newFleetSim starts a simulator with the fleet's tenants, each with its
// configurations and the write limit l (its own window). The default
// tenant (AZURE_TENANT_ID, where the worker signs in at start) holds no
// rows. It returns the time taken just before the server started, to
// which its windows are aligned within a few milliseconds.
func newFleetSim(tenants, configs int, l graphsim.Limit) (*graphsim.Server, time.Time, error) {
	tcs := make([]graphsim.TenantConfig, tenants)
	for i := range tcs {
		tcs[i] = graphsim.TenantConfig{ID: fleetTenant(i), Name: fmt.Sprintf("Customer %d", i), WriteLimit: l}
	}
	before := time.Now()
	sim, err := graphsim.New(graphsim.Config{Seed: 7, Tenants: tcs})
	if err != nil {
		return nil, before, err
	}
	for t := range tenants {
		st := sim.Tenant(fleetTenant(t))
		if st == nil {
			sim.Close()
			return nil, before, fmt.Errorf("the simulator has no tenant %s", fleetTenant(t))
		}
		for c := range configs {
			st.AddConfiguration(fleetConfig(t, c))
		}
	}
	return sim, before, nil
}

// fleetBatch is one fleet run's setup: a fresh schema, the simulator and
// the enqueued batch.
type fleetBatch struct {
	s        *schema
	sim      *graphsim.Server
	simStart time.Time
	batch    string
	rows     int
}

func newFleetBatch(ctx context.Context, tag string, tenants, perTenant, configs int, l graphsim.Limit) (*fleetBatch, error) {
	s, err := newSchema(ctx, tag)
	if err != nil {
		return nil, err
	}
	sim, simStart, err := newFleetSim(tenants, configs, l)
	if err != nil {
		s.drop()
		return nil, err
	}
	fb := &fleetBatch{s: s, sim: sim, simStart: simStart, rows: tenants * perTenant}
	rc, err := jobs.NewInsertClient(s.pool)
	if err != nil {
		fb.close()
		return nil, err
	}
	out, err := jobs.Enqueue(ctx, s.pool, rc, []jobs.Input{{Name: "fleet.csv", Reader: strings.NewReader(fleetCSV(tenants, perTenant, configs)),
		Format: intake.FormatCSV, DefaultTenant: sim.TenantID()}})
	if err != nil {
		fb.close()
		return nil, err
	}
	fb.batch = out[0].Batch.ID
	return fb, nil
}

func (fb *fleetBatch) close() {
	fb.sim.Close()
	fb.s.drop()
}

// fleetEnv is the worker's environment of a fleet run.
func fleetEnv(writeRate, readRate string, tenantWorkers, maxConns int) map[string]string {
	env := map[string]string{
		"GRAPH_WRITE_RATE":          writeRate,
		"WORKER_TENANT_CONCURRENCY": strconv.Itoa(tenantWorkers),
		"DATABASE_MAX_CONNS":        strconv.Itoa(maxConns),
	}
	if readRate != "" {
		env["GRAPH_READ_RATE"] = readRate
	}
	return env
}

// fleetPool is the pool a worker process opens under DATABASE_MAX_CONNS
// (worker.PoolSize: the setting less River's LISTEN connection).
func fleetPool(maxConns int) int32 { return worker.PoolSize(config.Worker{DatabaseMaxConns: maxConns}) }

// fleetRun works the fleet's batch (o.fleetTenants tenants × o.fleetRows
// rows) with one worker process and no limit anywhere: the simulator
// admits every write, GRAPH_WRITE_RATE=0 and GRAPH_READ_RATE=0. Every
// statement the process sends is counted (a pgx tracer: a map update per
// statement, microseconds against milliseconds of statement time).
func fleetRun(ctx context.Context, o options) (run, error) {
	fb, err := newFleetBatch(ctx, "fl", o.fleetTenants, o.fleetRows, o.fleetConfigs, graphsim.Limit{})
	if err != nil {
		return run{}, err
	}
	defer fb.close()
	var finished atomic.Int64
	all := make(chan struct{})
	qs := newQueryStats()
	const app = "bench_fleet"
	p, err := startProcess(ctx, fb.s, fb.sim, app, fleetPool(o.fleetMaxConns), qs,
		fleetEnv("0", "0", o.fleetTenantWorkers, o.fleetMaxConns), func(assign.Status) {
			if finished.Add(1) == int64(fb.rows) {
				close(all)
			}
		})
	if err != nil {
		return run{}, err
	}
	stopProfile, err := startProfile(o.fleetProfile)
	if err != nil {
		p.stop()
		return run{}, err
	}
	settle(ctx, p.rt.Pool)
	pg0 := backendCPU(ctx, p.rt.Pool, app)
	qs.reset()
	cpu0 := processCPU()
	start := time.Now()
	p.run(ctx)
	r := run{}
	select {
	case <-all:
	case <-time.After(o.runTimeout):
		r.timeout = true
	case <-ctx.Done():
	}
	r.elapsed = time.Since(start)
	stopProfile()
	r.goCPU = processCPU() - cpu0
	r.rows = int(finished.Load())
	r.queries = qs.snapshot() // before backendCPU's own query
	r.pgCPU = backendCPU(ctx, p.rt.Pool, app) - pg0
	if err := p.stop(); err != nil {
		return run{}, err
	}
	if ctx.Err() != nil {
		return run{}, ctx.Err()
	}
	r.stats.Methods = map[string]graphsim.StatusCounts{}
	for t := range o.fleetTenants {
		st := fb.sim.Tenant(fleetTenant(t))
		s := st.Stats()
		r.stats.Reads += s.Reads
		r.stats.Writes += s.Writes
		r.stats.TokenRequests += s.TokenRequests
		r.created += len(st.Ledger())
	}
	r.pairs = o.fleetTenants * o.fleetConfigs
	if r.erred, r.firstError, err = jobErrors(ctx, fb.s); err != nil {
		return run{}, err
	}
	return r, nil
}

// jobErrors counts the jobs that met an error (River recorded one and
// retried the job after a backoff), with the first such error: a row that
// could not reach Postgres (the shared server's max_connections reached by
// others' tests) waits seconds to minutes for its retry, which says more
// about the machine than about the product.
func jobErrors(ctx context.Context, s *schema) (int, string, error) {
	var n int
	var first *string
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(errors[1]->>'error') FROM river_job WHERE cardinality(errors) > 0`).Scan(&n, &first)
	if err != nil {
		return 0, "", fmt.Errorf("counting jobs that met an error: %w", err)
	}
	if first == nil {
		return n, "", nil
	}
	return n, *first, nil
}

// erredNote says in a label that jobs met errors.
func erredNote(n int, first string) string {
	if n == 0 {
		return ""
	}
	if len(first) > 120 {
		first = first[:120] + "…"
	}
	return fmt.Sprintf(" — %d ROWS MET AN ERROR and were retried by River (e.g. %q)", n, first)
}

// tenantFigure is one tenant's share of a limited fleet run.
type tenantFigure struct {
	tenant      string
	use         float64 // creates per window in the run's interior windows ÷ the window's N
	posts, s429 int64
	created     int // rows that ended created (or already there)
	duplicates  int
}

func (t tenantFigure) share429() float64 {
	if t.posts == 0 {
		return 0
	}
	return float64(t.s429) / float64(t.posts)
}

// fleetLimitRun is the fleet at its tenants' limits.
type fleetLimitRun struct {
	tenants, perTenant int
	limit              graphsim.Limit
	maxConns           int // DATABASE_MAX_CONNS
	elapsed            time.Duration
	timeout            bool
	erred              int // jobs that met an error (see jobErrors)
	firstError         string
	figures            []tenantFigure
}

// lowestUse is the tenant that used its limit least.
func (f fleetLimitRun) lowestUse() tenantFigure {
	var low tenantFigure
	for i, t := range f.figures {
		if i == 0 || t.use < low.use {
			low = t
		}
	}
	return low
}

// highest429 is the tenant with the largest share of its POSTs answered 429.
func (f fleetLimitRun) highest429() tenantFigure {
	var high tenantFigure
	for i, t := range f.figures {
		if i == 0 || t.share429() > high.share429() {
			high = t
		}
	}
	return high
}

// medianUse is the median tenant's use of its limit.
func (f fleetLimitRun) medianUse() float64 {
	u := make([]float64, len(f.figures))
	for i, t := range f.figures {
		u[i] = t.use
	}
	sort.Float64s(u)
	return median(u)
}

func (f fleetLimitRun) totals() (created, duplicates int, posts, s429 int64) {
	for _, t := range f.figures {
		created += t.created
		duplicates += t.duplicates
		posts += t.posts
		s429 += t.s429
	}
	return
}

// useBy429 is the median use of the limit of the tenants that met no 429
// and of those that met one or more, with how many tenants each holds
// (NaN for an empty group).
func (f fleetLimitRun) useBy429() (clean, throttled float64, nClean, nThrottled int) {
	var c, t []float64
	for _, x := range f.figures {
		if x.s429 == 0 {
			c = append(c, x.use)
		} else {
			t = append(t, x.use)
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return math.NaN()
		}
		sort.Float64s(v)
		return median(v)
	}
	return med(c), med(t), len(c), len(t)
}

// rate is the limit's writes per second per tenant.
func (f fleetLimitRun) rate() float64 { return float64(f.limit.N) / f.limit.Window.Seconds() }

// fleetLimited works o.fleetTenants tenants × o.fleetLimitRows rows with
// one worker process against a simulator that gives every tenant its own
// fixed window of o.fleetLimitN writes per second (window long, so
// o.fleetLimitN × window writes a window), GRAPH_WRITE_RATE
// matching it, DATABASE_MAX_CONNS o.fleetLimitConns (the default 10
// unless told) and the default GRAPH_READ_RATE.
func fleetLimited(ctx context.Context, o options, window time.Duration) (fleetLimitRun, error) {
	l := graphsim.Limit{Mode: graphsim.FixedWindow, N: int(math.Round(float64(o.fleetLimitN) * window.Seconds())), Window: window}
	if l.N < 1 {
		return fleetLimitRun{}, fmt.Errorf("a window of %s at %d writes/s admits no write", window, o.fleetLimitN)
	}
	fb, err := newFleetBatch(ctx, "fll", o.fleetTenants, o.fleetLimitRows, o.fleetConfigs, l)
	if err != nil {
		return fleetLimitRun{}, err
	}
	defer fb.close()
	var finished atomic.Int64
	all := make(chan struct{})
	maxConns := o.fleetLimitConns
	p, err := startProcess(ctx, fb.s, fb.sim, "bench_fleet_lim", fleetPool(maxConns), nil,
		fleetEnv(strconv.Itoa(o.fleetLimitN), "", o.fleetTenantWorkers, maxConns), func(assign.Status) {
			if finished.Add(1) == int64(fb.rows) {
				close(all)
			}
		})
	if err != nil {
		return fleetLimitRun{}, err
	}
	defer p.stop()
	start := time.Now()
	p.run(ctx)
	fr := fleetLimitRun{tenants: o.fleetTenants, perTenant: o.fleetLimitRows, limit: l, maxConns: maxConns}
	select {
	case <-all:
	case <-time.After(o.runTimeout):
		fr.timeout = true
	case <-ctx.Done():
		return fleetLimitRun{}, ctx.Err()
	}
	fr.elapsed = time.Since(start)
	if err := p.stop(); err != nil {
		return fleetLimitRun{}, err
	}

	if fr.erred, fr.firstError, err = jobErrors(ctx, fb.s); err != nil {
		return fleetLimitRun{}, err
	}
	created := map[string]int{}
	err = store.ListResults(ctx, fb.s.pool, fb.batch, []assign.Status{assign.StatusCreated, assign.StatusAlreadyAssigned}, func(r *store.Result) error {
		created[strings.ToLower(r.TenantID)]++
		return nil
	})
	if err != nil {
		return fleetLimitRun{}, err
	}
	for t := range o.fleetTenants {
		id := fleetTenant(t)
		st := fb.sim.Tenant(id)
		stats := st.Stats()
		post := stats.Methods["POST"]
		var times []time.Time
		for _, e := range st.Ledger() {
			times = append(times, e.Time)
		}
		fr.figures = append(fr.figures, tenantFigure{
			tenant:     id,
			use:        useOfLimit(times, fb.simStart, l.Window, l.N),
			posts:      post.S2xx + post.S4xx + post.S429 + post.S5xx + post.NoResponse,
			s429:       post.S429,
			created:    created[id],
			duplicates: st.Duplicates(),
		})
	}
	return fr, nil
}

// fleetResult holds section 5.
type fleetResult struct {
	tenants, perTenant, configs int
	tenantWorkers, maxConns     int
	ours                        run             // fleetRun, traced
	noopTuned                   []run           // River no-op, fetch tuned, traced: before and after ours
	limited                     []fleetLimitRun // one per window length
}

func (f *fleetResult) noopTunedRate() float64 {
	var sum float64
	for _, r := range f.noopTuned {
		sum += r.rate()
	}
	return sum / float64(len(f.noopTuned))
}

// noopPerRow is the mean over the no-op runs of a per-job figure.
func (f *fleetResult) noopPerRow(get func(run) time.Duration) time.Duration {
	var sum time.Duration
	for _, r := range f.noopTuned {
		sum += perRow(get(r), r.rows)
	}
	return sum / time.Duration(len(f.noopTuned))
}

func (f *fleetResult) noopStatements() float64 {
	var sum float64
	for _, r := range f.noopTuned {
		sum += statementsPerRow(r)
	}
	return sum / float64(len(f.noopTuned))
}

func benchFleet(ctx context.Context, o options) (*fleetResult, error) {
	f := &fleetResult{tenants: o.fleetTenants, perTenant: o.fleetRows, configs: o.fleetConfigs, tenantWorkers: o.fleetTenantWorkers, maxConns: o.fleetMaxConns}
	rows := o.fleetTenants * o.fleetRows
	say := func(what string, r run) {
		progress("fleet: %s: %d in %s = %.0f/s%s", what, r.rows, r.elapsed.Round(time.Millisecond), r.rate(), timeoutNote(r.timeout))
	}
	t1, err := riverNoop(ctx, o, rows, true, true)
	if err != nil {
		return nil, fmt.Errorf("River no-op: %w", err)
	}
	say("River no-op, fetch tuned", t1)
	if f.ours, err = fleetRun(ctx, o); err != nil {
		return nil, fmt.Errorf("bulkassign fleet, no limit: %w", err)
	}
	say(fmt.Sprintf("bulkassign, %d tenants, no limit%s", o.fleetTenants, erredNote(f.ours.erred, f.ours.firstError)), f.ours)
	t2, err := riverNoop(ctx, o, rows, true, true)
	if err != nil {
		return nil, fmt.Errorf("River no-op: %w", err)
	}
	say("River no-op, fetch tuned, again", t2)
	f.noopTuned = []run{t1, t2}
	for _, window := range o.fleetWindows {
		if o.fleetLimitRows <= 0 {
			break
		}
		lr, err := fleetLimited(ctx, o, window)
		if err != nil {
			return nil, fmt.Errorf("bulkassign fleet at the tenants' limits: %w", err)
		}
		f.limited = append(f.limited, lr)
		low, high := lr.lowestUse(), lr.highest429()
		created, dups, posts, s429 := lr.totals()
		progress("fleet: %d tenants × %d rows at %g writes/s each, windows of %d / %s%s: %s; lowest use %.3f, highest 429 share %.3f; %d created, %d duplicates, %d of %d POSTs 429",
			lr.tenants, lr.perTenant, lr.rate(), lr.limit.N, lr.limit.Window, timeoutNote(lr.timeout), lr.elapsed.Round(100*time.Millisecond), low.use, high.share429(), created, dups, s429, posts)
		byUse := append([]tenantFigure(nil), lr.figures...)
		sort.Slice(byUse, func(i, j int) bool { return byUse[i].use < byUse[j].use })
		var lows []string
		for _, t := range byUse[:min(5, len(byUse))] {
			lows = append(lows, fmt.Sprintf("%s… %.3f (%d 429s)", t.tenant[:8], t.use, t.s429))
		}
		progress("fleet: lowest uses: %s%s", strings.Join(lows, ", "), erredNote(lr.erred, lr.firstError))
	}
	return f, nil
}

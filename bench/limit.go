package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// The scaled tenant limit: Intune allows 200 writes per 20 s per tenant;
// 20 per 1 s keeps the same shape and lets a run finish in seconds.
const (
	limitN      = 20
	limitWindow = time.Second
)

// faultMix is the exactness issue's: 5 % of POSTs answered 503, 3 %
// applied then answered 504, 2 % applied then the connection reset, and
// half of the 429s without Retry-After.
var faultMix = graphsim.Faults{P503: 0.05, PAppliedThen504: 0.03, PAppliedThenReset: 0.02}

// limitRun is one batch worked against the scaled tenant limit.
type limitRun struct {
	who     string
	rows    int
	elapsed time.Duration
	use     float64 // creates per second in the run's interior windows ÷ the limit
	posts   int64
	s429    int64
	stats   graphsim.Stats
	pairs   int
	verdict verdict
	timeout bool
}

func (l limitRun) share429() float64 {
	if l.posts == 0 {
		return 0
	}
	return float64(l.s429) / float64(l.posts)
}

// writesPerRow is POSTs per row that ended assigned in the tenant.
func (l limitRun) writesPerRow() float64 {
	done := l.verdict.rows - l.verdict.undone
	if done == 0 {
		return 0
	}
	return float64(l.posts) / float64(done)
}

// newLimitedSim starts a simulator with the scaled limit (and the fault
// mix when faults is set) and the batch's configurations. It returns the
// time taken just before the server started, which is within a few
// milliseconds of the start its windows are aligned to.
func newLimitedSim(configs int, faults bool) (*graphsim.Server, time.Time, error) {
	cfg := graphsim.Config{Seed: 7, WriteLimit: graphsim.Limit{Mode: graphsim.FixedWindow, N: limitN, Window: limitWindow}}
	if faults {
		cfg.Faults = faultMix
		cfg.WriteLimit.NoRetryAfter = 0.5
	}
	before := time.Now()
	sim, err := graphsim.New(cfg)
	if err != nil {
		return nil, before, err
	}
	for i := range configs {
		sim.AddConfiguration(testenv.Config(i))
	}
	return sim, before, nil
}

// oursLimited works rows rows with procs worker processes (10 workers each,
// GRAPH_WRITE_RATE matching the limit) against the limited simulator.
func oursLimited(ctx context.Context, o options, procs int, faults bool) (limitRun, error) {
	rows, configs := o.limitRows, o.limitConfigs
	s, err := newSchema(ctx, "lim")
	if err != nil {
		return limitRun{}, err
	}
	defer s.drop()
	sim, simStart, err := newLimitedSim(configs, faults)
	if err != nil {
		return limitRun{}, err
	}
	defer sim.Close()
	rc, err := jobs.NewInsertClient(s.pool)
	if err != nil {
		return limitRun{}, err
	}
	out, err := jobs.Enqueue(ctx, s.pool, rc, []jobs.Input{{Name: "limit.csv", Reader: strings.NewReader(testenv.GroupCSV(rows, configs)), Format: intake.FormatCSV,
		DefaultTenant: sim.TenantID()}})
	if err != nil {
		return limitRun{}, err
	}
	batch := out[0].Batch.ID

	var finished atomic.Int64
	all := make(chan struct{})
	onOutcome := func(assign.Status) {
		if finished.Add(1) == int64(rows) {
			close(all)
		}
	}
	var ps []*process
	defer func() {
		for _, p := range ps {
			_ = p.stop()
		}
	}()
	for i := range procs {
		p, err := startProcess(ctx, s, sim, "bench_lim"+strconv.Itoa(i), 20, nil, map[string]string{
			"GRAPH_WRITE_RATE": strconv.Itoa(limitN), "WORKER_CONCURRENCY": "10",
		}, onOutcome)
		if err != nil {
			return limitRun{}, err
		}
		ps = append(ps, p)
	}
	start := time.Now()
	for _, p := range ps {
		p.run(ctx)
	}
	lr := limitRun{who: fmt.Sprintf("bulkassign, %d worker process(es)", procs), rows: rows, pairs: configs}
	select {
	case <-all:
	case <-time.After(o.runTimeout):
		lr.timeout = true
	case <-ctx.Done():
		return limitRun{}, ctx.Err()
	}
	lr.elapsed = time.Since(start)
	for _, p := range ps {
		if err := p.stop(); err != nil {
			return limitRun{}, err
		}
	}
	ps = nil

	var reports []report
	err = store.ListResults(ctx, s.pool, batch, nil, func(r *store.Result) error {
		p, err := assign.ParsePath(r.Path)
		if err != nil {
			return err
		}
		reports = append(reports, report{
			spec:         assign.Spec{ConfigurationID: r.ConfigurationID, Path: p, Target: assign.Target{Type: assign.TargetType(r.TargetType), GroupID: r.GroupID}},
			created:      r.Status == assign.StatusCreated || r.Status == assign.StatusAlreadyAssigned,
			assignmentID: r.AssignmentID,
		})
		return nil
	})
	if err != nil {
		return limitRun{}, err
	}
	lr.finish(sim, simStart, reports)
	return lr, nil
}

// finish fills the figures from the simulator and the reports.
func (l *limitRun) finish(sim *graphsim.Server, simStart time.Time, reports []report) {
	l.stats = sim.Stats()
	post := l.stats.Methods["POST"]
	l.posts = post.S2xx + post.S4xx + post.S429 + post.S5xx + post.NoResponse
	l.s429 = post.S429
	var times []time.Time
	for _, e := range sim.Ledger() {
		times = append(times, e.Time)
	}
	l.use = useOfLimit(times, simStart, limitWindow, limitN)
	l.verdict = judge(sim, reports)
}

// useOfLimit is the creates per window in the run's interior windows (all
// but the first and the last window holding a create, which the run
// entered or left part-way) divided by the limit. Windows are aligned to
// start, as the simulator aligns them.
func useOfLimit(times []time.Time, start time.Time, window time.Duration, n int) float64 {
	if len(times) == 0 {
		return 0
	}
	idx := func(t time.Time) int64 { return int64(t.Sub(start) / window) }
	first, last := idx(times[0]), idx(times[0])
	for _, t := range times {
		first, last = min(first, idx(t)), max(last, idx(t))
	}
	if last-first < 2 {
		return 0 // too short a run to have an interior
	}
	inside := 0
	for _, t := range times {
		if i := idx(t); i > first && i < last {
			inside++
		}
	}
	return float64(inside) / float64(int64(n)*(last-first-1))
}

// report is what a client said about one row.
type report struct {
	spec         assign.Spec
	created      bool // reported created (or already there)
	assignmentID string
}

// verdict compares the reports with what the tenant holds.
type verdict struct {
	rows         int
	rightCreated int // reported created, and the tenant holds exactly that one assignment
	wrong        int // reported failed although the tenant holds the assignment, or an id the tenant does not hold for it
	undone       int // reported failed, and truly not there: left for a rerun
	duplicates   int // extra assignments of one target on one path
}

func judge(sim *graphsim.Server, reports []report) verdict {
	type key struct {
		cfg  string
		path assign.Path
	}
	held := map[key]map[string][]string{} // target key → assignment ids
	v := verdict{rows: len(reports), duplicates: sim.Duplicates()}
	for _, r := range reports {
		k := key{r.spec.ConfigurationID, r.spec.Path}
		m, ok := held[k]
		if !ok {
			m = map[string][]string{}
			for _, a := range sim.Assignments(k.cfg, k.path) {
				m[a.Target.Key()] = append(m[a.Target.Key()], a.ID)
			}
			held[k] = m
		}
		ids := m[r.spec.Target.Key()]
		switch {
		case r.created && len(ids) > 0 && contains(ids, r.assignmentID):
			v.rightCreated++
		case !r.created && len(ids) == 0:
			v.undone++
		default:
			v.wrong++
		}
	}
	return v
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// limitResult holds section 3.
type limitResult struct {
	ours1, ours2, kiota, oursFaults, kiotaFaults limitRun
}

func benchLimit(ctx context.Context, o options) (*limitResult, error) {
	var res limitResult
	var err error
	say := func(l limitRun) {
		progress("limit: %s%s: use %.3f, %d of %d POSTs 429, %d duplicates, %d wrong, %d undone, %s",
			l.who, timeoutNote(l.timeout), l.use, l.s429, l.posts, l.verdict.duplicates, l.verdict.wrong, l.verdict.undone, l.elapsed.Round(100*time.Millisecond))
	}
	if res.ours1, err = oursLimited(ctx, o, 1, false); err != nil {
		return nil, err
	}
	say(res.ours1)
	if res.ours2, err = oursLimited(ctx, o, 2, false); err != nil {
		return nil, err
	}
	say(res.ours2)
	if res.kiota, err = kiotaLimited(ctx, o, false); err != nil {
		return nil, err
	}
	say(res.kiota)
	if res.oursFaults, err = oursLimited(ctx, o, 1, true); err != nil {
		return nil, err
	}
	say(res.oursFaults)
	if res.kiotaFaults, err = kiotaLimited(ctx, o, true); err != nil {
		return nil, err
	}
	say(res.kiotaFaults)
	return &res, nil
}

package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
)

type results struct {
	o                  options
	took               time.Duration
	cores              int
	memTotal           string
	loadStart, loadEnd string
	enqueue            *enqueueResult
	workers            *workerResult
	limit              *limitResult
	fleet              *fleetResult
	store              *storeResult
}

// line is one row of the table.
type line struct {
	id, measure, ours, ref, ratio, goal, met string
}

// atLeast and atMost say whether a goal is met; NaN (not measured) is not.
func atLeast(v, goal float64) string { return yes(v >= goal) }
func atMost(v, goal float64) string  { return yes(v <= goal && !math.IsNaN(v)) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *results) lines(section4 bool) []line {
	var ls []line
	add := func(l line) { ls = append(ls, l) }
	if e := r.enqueue; e != nil {
		add(line{"1a", fmt.Sprintf("Enqueue a %s-row CSV through jobs.Enqueue (parse, validate, batch, items, jobs in one transaction) ÷ River InsertManyFastTx of %s bare jobs in one transaction, same database; median of %d rounds, each timing both twice in ABBA order", num(e.rows), num(e.rows), e.rounds),
			num(e.ours) + " rows/s", "River: " + num(e.river) + " jobs/s", f2(e.ratio), "≥ 0.70", atLeast(e.ratio, 0.7)})
		add(line{"1b", "The same enqueue ÷ a raw COPY of the same CSV into a plain table (context: the floor under both)",
			num(e.ours) + " rows/s", "COPY: " + num(e.copyRate) + " rows/s", f2(e.copyRatio), "—", ""})
		parse, items, jobsShare := e.ours/e.parseRate, e.ours/e.itemsRate, e.ratio
		add(line{"1c", "Where an enqueue's time goes: each part run alone, as a share of one enqueue's time (parse + validate; items COPY; River jobs = 1a's bare insert)",
			fmt.Sprintf("parse %.2f + items %.2f + jobs %.2f = %.2f", parse, items, jobsShare, parse+items+jobsShare),
			fmt.Sprintf("parse %s rows/s, items %s rows/s", num(e.parseRate), num(e.itemsRate)), f2(parse + items + jobsShare), "—", ""})
		if e.rssRows > 0 {
			mb := float64(e.rssBytes) / 1e6
			note := ""
			if e.rssBytes <= e.benchHWM {
				note = fmt.Sprintf(" (upper bound: the bench itself peaked at %.0f MB before the child ran)", float64(e.benchHWM)/1e6)
			}
			add(line{"1d", fmt.Sprintf("Peak RSS of the `enqueue` command (child process, ru_maxrss) on %s rows (%.0f MB CSV); it took %s = %s rows/s%s",
				num(e.rssRows), float64(e.rssCSVBytes)/1e6, e.rssElapsed.Round(100*time.Millisecond), num(float64(e.rssRows)/e.rssElapsed.Seconds()), note),
				fmt.Sprintf("%.1f MB", mb), "goal: 100 MB", f2(mb / 100), "≤ 1.00", atMost(mb, 100)})
		}
	}
	if w := r.workers; w != nil {
		scene := fmt.Sprintf("%s rows over %d configurations, %d workers, simulator without latency or limit, GRAPH_WRITE_RATE=0 and GRAPH_READ_RATE=0", num(w.rows), w.configs, r.o.workers)
		tr := w.noopTunedRate()
		add(line{"2a", fmt.Sprintf("Work %s (the product's worker wiring) ÷ River no-op jobs with River's benchmark fetch tuning (FetchCooldown 2 ms, as `river bench`), same worker count and database; no-op = mean of a run before and after%s",
			scene, timeoutNote(w.ours.timeout)),
			num(w.ours.rate()) + " rows/s", "River no-op, tuned: " + num(tr) + " jobs/s", f2(w.ours.rate() / tr), "≥ 0.25", atLeast(w.ours.rate()/tr, 0.25)})
		add(line{"2b", "The same run ÷ River no-op jobs with River's default fetch settings, which the product's worker also uses (FetchCooldown 100 ms: at most 10 fetches/s, so 10 × workers jobs/s)",
			num(w.ours.rate()) + " rows/s", "River no-op, default: " + num(w.noop.rate()) + " jobs/s", f2(w.ours.rate() / w.noop.rate()), "—", ""})
		if r.o.whatIf {
			add(line{"2c", "What-if, not the product: the same AssignWorker in a River client with the benchmark fetch tuning ÷ tuned River no-op" + timeoutNote(w.oursTuned.timeout),
				num(w.oursTuned.rate()) + " rows/s", "River no-op, tuned: " + num(tr) + " jobs/s", f2(w.oursTuned.rate() / tr), "—", ""})
		}
		oursGo, oursPg := perRow(w.ours.goCPU, w.ours.rows), perRow(w.ours.pgCPU, w.ours.rows)
		noopGo, noopPg := perRow(w.noop.goCPU, w.noop.rows), perRow(w.noop.pgCPU, w.noop.rows)
		add(line{"2d", "CPU per row in this process (workers, River, pgx, and the in-process simulator), run 2a vs run 2b's no-op",
			us(oursGo), "River no-op: " + us(noopGo), f1(float64(oursGo) / float64(noopGo)), "—", ""})
		add(line{"2e", "CPU per row in the Postgres backends of the run's pool, same runs",
			us(oursPg), "River no-op: " + us(noopPg), f1(float64(oursPg) / float64(noopPg)), "—", ""})
		if w.traced.rows > 0 {
			oq, nq := statementsPerRow(w.traced), statementsPerRow(w.tracedNoop)
			add(line{"2f", fmt.Sprintf("Statements sent to Postgres per row (traced runs of %s rows, default fetch; River's fetch and completion included)", num(w.traced.rows)),
				f1(oq), "River no-op: " + f2(nq), f1(oq / nq), "—", ""})
		}
		if w.skew != nil {
			add(line{"2g", fmt.Sprintf("Work %s rows all on ONE configuration ÷ run 2a's spread (%d configurations)%s", num(w.skewRows), w.configs, timeoutNote(w.skew.timeout)),
				num(w.skew.rate()) + " rows/s", "spread: " + num(w.ours.rate()) + " rows/s", f2(w.skew.rate() / w.ours.rate()), "—", ""})
		}
	}
	if l := r.limit; l != nil {
		k := "SDK pipeline: "
		add(line{"3a", fmt.Sprintf("Use of a fixed-window limit of %d writes / %s: creates per second in the run's interior windows ÷ the limit, 1 worker process (%s rows)%s", limitN, limitWindow, num(l.ours1.rows), timeoutNote(l.ours1.timeout)),
			f3(l.ours1.use), k + f3(l.kiota.use), f3(l.ours1.use), "≥ 0.95", atLeast(l.ours1.use, 0.95)})
		add(line{"3b", "POSTs answered 429, 1 worker process",
			pct(l.ours1.s429, l.ours1.posts), k + pct(l.kiota.s429, l.kiota.posts), f3(l.ours1.share429()), "≤ 0.010", atMost(l.ours1.share429(), 0.01)})
		add(line{"3c", "Use of the limit, 2 worker processes sharing it" + timeoutNote(l.ours2.timeout),
			f3(l.ours2.use), "—", f3(l.ours2.use), "≥ 0.95", atLeast(l.ours2.use, 0.95)})
		add(line{"3d", "POSTs answered 429, 2 worker processes",
			pct(l.ours2.s429, l.ours2.posts), "—", f3(l.ours2.share429()), "≤ 0.010", atMost(l.ours2.share429(), 0.01)})
		add(line{"3e", "Fault mix (5 % 503, 3 % applied-then-504, 2 % applied-then-reset, half of 429s without Retry-After), 1 process: use of the limit" + timeoutNote(l.oursFaults.timeout || l.kiotaFaults.timeout),
			f3(l.oursFaults.use), k + f3(l.kiotaFaults.use), f3(l.oursFaults.use), "—", ""})
		add(line{"3f", "Fault mix: POSTs answered 429",
			pct(l.oursFaults.s429, l.oursFaults.posts), k + pct(l.kiotaFaults.s429, l.kiotaFaults.posts), f3(l.oursFaults.share429()), "≤ 0.010", atMost(l.oursFaults.share429(), 0.01)})
		add(line{"3g", "Fault mix: duplicate assignments left in the tenant (per row)",
			strconv.Itoa(l.oursFaults.verdict.duplicates), k + strconv.Itoa(l.kiotaFaults.verdict.duplicates), f3(float64(l.oursFaults.verdict.duplicates) / float64(l.oursFaults.rows)), "0", atMost(float64(l.oursFaults.verdict.duplicates), 0)})
		add(line{"3h", "Fault mix: rows reported wrong (said failed but created, or an id the tenant does not hold for the row)",
			strconv.Itoa(l.oursFaults.verdict.wrong), k + strconv.Itoa(l.kiotaFaults.verdict.wrong), f3(float64(l.oursFaults.verdict.wrong) / float64(l.oursFaults.rows)), "0", atMost(float64(l.oursFaults.verdict.wrong), 0)})
		add(line{"3i", "Rows left undone (reported failed, truly absent; a rerun's work): clean limit run / fault mix",
			fmt.Sprintf("%d / %d", l.ours1.verdict.undone, l.oursFaults.verdict.undone), fmt.Sprintf("%s%d / %d", k, l.kiota.verdict.undone, l.kiotaFaults.verdict.undone),
			f3(float64(l.oursFaults.verdict.undone) / float64(l.oursFaults.rows)), "0", atMost(float64(l.ours1.verdict.undone+l.oursFaults.verdict.undone), 0)})
	}
	if section4 {
		if w := r.workers; w != nil {
			wpr := float64(w.ours.stats.Writes) / float64(w.ours.created)
			add(line{"4a", "Graph writes per created row, run 2a (no limit, no faults)", f3(wpr), "—", f3(wpr), "≤ 1.05", atMost(wpr, 1.05)})
		}
		if l := r.limit; l != nil {
			add(line{"4b", "Graph writes per created row at the limit, 1 worker process (run 3a; 429s count)", f3(l.ours1.writesPerRow()), "SDK pipeline: " + f3(l.kiota.writesPerRow()), f3(l.ours1.writesPerRow()), "≤ 1.05", atMost(l.ours1.writesPerRow(), 1.05)})
			add(line{"4c", "Graph writes per created row at the limit, 2 worker processes (run 3c)", f3(l.ours2.writesPerRow()), "—", f3(l.ours2.writesPerRow()), "≤ 1.05", atMost(l.ours2.writesPerRow(), 1.05)})
			add(line{"4d", "Graph writes per created row under the fault mix (run 3e; a 503 costs a second POST)", f3(l.oursFaults.writesPerRow()), "SDK pipeline: " + f3(l.kiotaFaults.writesPerRow()), f3(l.oursFaults.writesPerRow()), "—", ""})
		}
		if w := r.workers; w != nil {
			rpp := float64(w.ours.stats.Reads) / float64(w.ours.pairs)
			add(line{"4e", fmt.Sprintf("Graph reads per (configuration, path) per batch, run 2a (%d GETs, %d pairs, %d workers racing)", w.ours.stats.Reads, w.ours.pairs, r.o.workers), f3(rpp), "—", f3(rpp), "≤ 1", atMost(rpp, 1)})
		}
		if l := r.limit; l != nil {
			rpp := float64(l.oursFaults.stats.Reads) / float64(l.oursFaults.pairs)
			add(line{"4f", "Graph reads per (configuration, path) per batch under the fault mix (run 3e; a lost answer is checked by a fresh read)", f3(rpp), "—", f3(rpp), "—", ""})
		}
	}
	ls = append(ls, r.fleetLines()...)
	ls = append(ls, r.storeLines()...)
	return ls
}

// fleetLines are section 5's: many tenants in one fleet.
func (r *results) fleetLines() []line {
	f := r.fleet
	if f == nil {
		return nil
	}
	var ls []line
	add := func(l line) { ls = append(ls, l) }
	tr := f.noopTunedRate()
	scene := fmt.Sprintf("%d tenants × %s rows (%s rows, CSV column tenant_id, sorted by tenant; %d configurations per tenant), one worker process: a River queue per tenant with WORKER_TENANT_CONCURRENCY=%d, DATABASE_MAX_CONNS=%d%s (a pool of %d), simulator without latency or limit, GRAPH_WRITE_RATE=0 and GRAPH_READ_RATE=0, each tenant signing in on its first row",
		f.tenants, num(f.perTenant), num(f.tenants*f.perTenant), f.configs, f.tenantWorkers, f.maxConns, defaultNote(f.maxConns == config.Defaults.DatabaseMaxConns), fleetPool(f.maxConns))
	add(line{"5a", fmt.Sprintf("Work %s ÷ River no-op jobs with River's benchmark fetch tuning (as 2a: one queue, %d workers, pool of %d), same database; no-op = mean of a run before and after%s",
		scene, r.o.workers, r.o.poolConns, timeoutNote(f.ours.timeout)+erredNote(f.ours.erred, f.ours.firstError)),
		num(f.ours.rate()) + " rows/s", "River no-op, tuned: " + num(tr) + " jobs/s", f2(f.ours.rate() / tr), "≥ 0.25", atLeast(f.ours.rate()/tr, 0.25)})
	oq, nq := statementsPerRow(f.ours), f.noopStatements()
	add(line{"5b", fmt.Sprintf("Statements sent to Postgres per worked row in run 5a (every statement of the process, River's fetches of the %d queues and completions included; counted by a pgx tracer in the timed runs, 5a's and the no-op's); the goal is on the bulkassign column, the ratio is bulkassign ÷ no-op", f.tenants),
		f1(oq), "River no-op, tuned: " + f2(nq), f1(oq / nq), "≤ 3 per row", atMost(oq, 3)})
	oPg, nPg := perRow(f.ours.pgCPU, f.ours.rows), f.noopPerRow(func(r run) time.Duration { return r.pgCPU })
	add(line{"5c", "CPU per worked row in the Postgres backends of the run's pool, run 5a ÷ the tuned no-op runs",
		us(oPg), "River no-op, tuned: " + us(nPg), f1(float64(oPg) / float64(nPg)), "≤ 5.0", atMost(float64(oPg)/float64(nPg), 5)})
	oGo, nGo := perRow(f.ours.goCPU, f.ours.rows), f.noopPerRow(func(r run) time.Duration { return r.goCPU })
	add(line{"5d", "CPU per worked row in this process (workers, River, pgx, the in-process simulator), same runs",
		us(oGo), "River no-op, tuned: " + us(nGo), f1(float64(oGo) / float64(nGo)), "—", ""})
	for k, l := range f.limited {
		id := func(i int) string { return "5" + string(rune('e'+4*k+i)) }
		low, high := l.lowestUse(), l.highest429()
		created, dups, posts, s429 := l.totals()
		rate := strconv.FormatFloat(l.rate(), 'g', -1, 64)
		var scene string
		if k == 0 {
			scaled := ""
			if l.rate() != 20 || l.perTenant != 2000 {
				scaled = fmt.Sprintf(" — SCALED DOWN from the issue's 50 × 2,000 rows at 20 writes/s (1,000 writes/s in all, beyond this machine: see 5a's rate without a limit) to %s writes/s in all (the issue's \"50 tenants at 5 writes/s each\") and %s rows per tenant, so that the run takes about %s",
					num(float64(l.tenants)*l.rate()), num(l.perTenant), time.Duration(float64(l.perTenant)/l.rate()*float64(time.Second)).Round(time.Second))
			}
			scene = fmt.Sprintf("%d tenants × %s rows, each tenant with its own fixed window of %d writes / %s and GRAPH_WRITE_RATE=%s%s; one worker process with WORKER_TENANT_CONCURRENCY=%d and DATABASE_MAX_CONNS=%d%s",
				l.tenants, num(l.perTenant), l.limit.N, l.limit.Window, rate, scaled, f.tenantWorkers, l.maxConns, defaultNote(l.maxConns == config.Defaults.DatabaseMaxConns))
		} else {
			first := f.limited[0]
			scene = fmt.Sprintf("As %s, the same %s writes/s per tenant, in windows of %d writes / %s instead of %d / %s (section 3's window holds 20 writes; Intune's windows are 20 s long)",
				"5e", rate, l.limit.N, l.limit.Window, first.limit.N, first.limit.Window)
			if l.tenants != first.tenants || l.perTenant != first.perTenant || l.maxConns != first.maxConns {
				scene += fmt.Sprintf(", %d tenants × %s rows, DATABASE_MAX_CONNS=%d", l.tenants, num(l.perTenant), l.maxConns)
			}
		}
		add(line{id(0), fmt.Sprintf("%s: the LOWEST tenant's use of its limit (creates per second in its run's interior windows ÷ its window's rate)%s", scene, timeoutNote(l.timeout)+erredNote(l.erred, l.firstError)),
			f3(low.use), fmt.Sprintf("median tenant %s; highest %s", f3(l.medianUse()), f3(maxUse(l.figures))), f3(low.use), "≥ 0.95", atLeast(low.use, 0.95)})
		add(line{id(1), "Same run: the highest tenant's share of its POSTs answered 429",
			pct(high.s429, high.posts), "all tenants: " + pct(s429, posts), f3(high.share429()), "≤ 0.010", atMost(high.share429(), 0.01)})
		ideal := time.Duration(float64(l.perTenant) / l.rate() * float64(time.Second))
		add(line{id(2), fmt.Sprintf("Same run: rows created, duplicates, and the run's time ÷ the ideal %s (%s rows per tenant at %s/s)", ideal.Round(100*time.Millisecond), num(l.perTenant), rate),
			fmt.Sprintf("%s of %s created, %d duplicates, %s", num(created), num(l.tenants*l.perTenant), dups, l.elapsed.Round(100*time.Millisecond)), "—",
			f2(l.elapsed.Seconds() / ideal.Seconds()), "—", ""})
		clean, throttled, nClean, nThrottled := l.useBy429()
		add(line{id(3), "Same run: median use of the limit by the tenants that met no 429 ÷ by those that met one or more (a 429 pauses the tenant's fleet-wide bucket and cuts its rate to 0.7, which recovers by 0.02 of the rate per second)",
			fmt.Sprintf("%s (%s)", f3n(clean), tenantsN(nClean)), fmt.Sprintf("met a 429: %s (%s)", f3n(throttled), tenantsN(nThrottled)), f3n(clean / throttled), "—", ""})
	}
	return ls
}

func tenantsN(n int) string {
	if n == 1 {
		return "1 tenant"
	}
	return strconv.Itoa(n) + " tenants"
}

func defaultNote(isDefault bool) string {
	if isDefault {
		return " (the default)"
	}
	return " (not the default)"
}

func maxUse(fs []tenantFigure) float64 {
	m := math.NaN()
	for i, t := range fs {
		if i == 0 || t.use > m {
			m = t.use
		}
	}
	return m
}

func timeoutNote(t bool) string {
	if t {
		return " — TIMED OUT, partial"
	}
	return ""
}

func (r *results) print(w io.Writer, section4 bool) {
	fmt.Fprintf(w, "\nbulkassign benchmarks, %s: %d cores, %s memory; load average %s at the start, %s at the end; took %s.\n",
		time.Now().Format("2006-01-02 15:04 MST"), r.cores, r.memTotal, r.loadStart, r.loadEnd, r.took.Round(time.Second))
	fmt.Fprintf(w, "Every ratio compares runs taken side by side in this process, on the same database; absolute rates drift with the machine's load.\n\n")
	fmt.Fprintln(w, "| # | measure | bulkassign | side by side | ratio | goal | met |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|---|---|")
	for _, l := range r.lines(section4) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", l.id, l.measure, l.ours, l.ref, l.ratio, l.goal, l.met)
	}
	if wr := r.workers; wr != nil && len(wr.traced.queries) > 0 {
		fmt.Fprintf(w, "\nWhere a worked row's database time goes (traced run, %s rows; per row: statements, client-side ms):\n\n", num(wr.traced.rows))
		printQueries(w, wr.traced)
		fmt.Fprintf(w, "\nRiver's no-op jobs, same trace (%s jobs):\n\n", num(wr.tracedNoop.rows))
		printQueries(w, wr.tracedNoop)
	}
	if f := r.fleet; f != nil && len(f.ours.queries) > 0 {
		fmt.Fprintf(w, "\nWhere a worked row's database time goes with %d tenants (run 5a, %s rows; per row: statements, client-side ms):\n\n", f.tenants, num(f.ours.rows))
		printQueries(w, f.ours)
		fmt.Fprintf(w, "\nRiver's no-op jobs, fetch tuned, same trace (the run after 5a, %s jobs):\n\n", num(f.noopTuned[len(f.noopTuned)-1].rows))
		printQueries(w, f.noopTuned[len(f.noopTuned)-1])
	}
}

func printQueries(w io.Writer, r run) {
	qs := append([]labeledStat(nil), r.queries...)
	sort.Slice(qs, func(i, j int) bool { return qs[i].total > qs[j].total })
	var n int
	var total time.Duration
	for _, q := range qs {
		n += q.n
		total += q.total
	}
	for _, q := range qs {
		if float64(q.n)/float64(r.rows) < 0.01 {
			continue
		}
		fmt.Fprintf(w, "    %5.2f  %6.2f ms  %s\n", float64(q.n)/float64(r.rows), ms(q.total)/float64(r.rows), q.label)
	}
	fmt.Fprintf(w, "    %5.2f  %6.2f ms  all statements\n", float64(n)/float64(r.rows), ms(total)/float64(r.rows))
}

func statementsPerRow(r run) float64 {
	var n int
	for _, q := range r.queries {
		n += q.n
	}
	if r.rows == 0 {
		return math.NaN()
	}
	return float64(n) / float64(r.rows)
}

func perRow(d time.Duration, rows int) time.Duration {
	if rows == 0 {
		return 0
	}
	return d / time.Duration(rows)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// f3n is f3, or "—" for a figure that could not be had (NaN).
func f3n(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return f3(v)
}

func pct(n, of int64) string {
	if of == 0 {
		return "0 of 0"
	}
	return fmt.Sprintf("%.1f %% (%d of %d)", 100*float64(n)/float64(of), n, of)
}

// num formats a count or rate with thousands separators.
func num[T int | int64 | float64](v T) string {
	s := strconv.FormatInt(int64(math.Round(float64(v))), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

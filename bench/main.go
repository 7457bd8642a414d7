// Command bench measures bulkassign against the three limits that bound it
// on one machine — Postgres COPY and River's bare insert (enqueue), River's
// own per-job cost (workers), and the tenant's Graph write limit (a whole
// run) — and against what a Go user would write today with the Graph SDK's
// default pipeline; section 5 measures the same for many tenants in one
// fleet (fifty tenants' rows in one batch, each tenant with its own queue,
// sign-in and limit). It prints one Markdown table. Every figure that matters
// is a ratio of two things measured side by side in the same run, because
// absolute numbers drift on a shared machine.
//
//	cd bench && go run . -enqueue-bin /path/to/enqueue
//
// It needs a Postgres (TEST_DATABASE_URL, DATABASE_URL, or
// postgres://postgres@127.0.0.1:5432/test) and creates and drops its own
// schemas there (bench_*). scripts/bench.sh (make bench) does all of this.
// It lives in its own module so that its dependencies (kiota-http-go)
// stay out of the product's go.mod.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

type options struct {
	sections      string
	enqueueBin    string
	cpuProfile    string
	fleetProfile  string
	rounds        int
	enqueueRows   int
	rssRows       int
	workerRows    int
	workerConfigs int
	tracedRows    int
	skewRows      int
	workers       int
	poolConns     int32
	limitRows     int
	limitConfigs  int
	runTimeout    time.Duration
	whatIf        bool

	fleetTenants       int
	fleetRows          int
	fleetConfigs       int
	fleetTenantWorkers int
	fleetMaxConns      int
	fleetLimitRows     int
	fleetLimitN        int
	fleetLimitConns    int
	fleetWindows       []time.Duration

	storeRows    int
	storeBatches int
	storeRunning int
	storeReps    int
	readme       string
}

func main() {
	var o options
	var quick bool
	var pool int
	flag.StringVar(&o.sections, "sections", "1,2,3,4,5,6", "sections to run (4 reads its figures from the runs of 2 and 3)")
	flag.StringVar(&o.enqueueBin, "enqueue-bin", "", "the enqueue command, built from ../cmd/enqueue, for the peak-RSS child (required for section 1)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bulkassign worker run (section 2) to this file")
	flag.StringVar(&o.fleetProfile, "fleet-cpuprofile", "", "write a CPU profile of section 5's run without a limit (5a) to this file")
	flag.BoolVar(&quick, "quick", false, "small sizes, for a smoke run")
	flag.IntVar(&o.rounds, "rounds", 3, "enqueue rounds, each timing enqueue and River's insert twice in ABBA order (the ratio is the median of the rounds' ratios)")
	flag.IntVar(&o.enqueueRows, "enqueue-rows", 100_000, "rows of the enqueue comparison")
	flag.IntVar(&o.rssRows, "rss-rows", 1_000_000, "rows of the peak-RSS enqueue (0 skips it)")
	flag.IntVar(&o.workerRows, "worker-rows", 20_000, "rows of the worker comparison")
	flag.IntVar(&o.workerConfigs, "worker-configs", 100, "configurations the worker rows are spread over")
	flag.IntVar(&o.tracedRows, "traced-rows", 2_000, "rows of the traced worker runs that count statements (0 skips)")
	flag.IntVar(&o.skewRows, "skew-rows", 2_000, "rows all on one configuration (0 skips)")
	flag.BoolVar(&o.whatIf, "whatif", false, "also run the product's AssignWorker in a River client with River's benchmark fetch tuning")
	flag.IntVar(&o.workers, "workers", 100, "workers (River MaxWorkers / WORKER_CONCURRENCY) in section 2")
	flag.IntVar(&pool, "pool", 40, "Postgres connections per worker process in section 2 (the same for River's no-op)")
	flag.IntVar(&o.limitRows, "limit-rows", 400, "rows of each tenant-limit run")
	flag.IntVar(&o.limitConfigs, "limit-configs", 10, "configurations of the tenant-limit runs")
	flag.IntVar(&o.fleetTenants, "fleet-tenants", 50, "tenants of section 5 (many tenants in one fleet)")
	flag.IntVar(&o.fleetRows, "fleet-rows", 600, "rows per tenant of section 5's run without a limit (30,000 rows for 50 tenants: about 7 s, of which the fleet's start — a sign-in a tenant, a connection a request in flight, a queue a tenant — is a small part; at 200 a tenant it was a sixth of the run)")
	flag.IntVar(&o.fleetConfigs, "fleet-configs", 2, "configurations per tenant in section 5")
	flag.IntVar(&o.fleetTenantWorkers, "fleet-tenant-workers", config.Defaults.TenantConcurrency, "WORKER_TENANT_CONCURRENCY in section 5 (the product's default)")
	flag.IntVar(&o.fleetMaxConns, "fleet-max-conns", config.Defaults.DatabaseMaxConns, "DATABASE_MAX_CONNS of section 5's run without a limit (the product's default)")
	flag.IntVar(&o.fleetLimitRows, "fleet-limit-rows", 300, "rows per tenant of section 5's run at the tenants' limits (0 skips it)")
	flag.IntVar(&o.fleetLimitConns, "fleet-limit-max-conns", config.Defaults.DatabaseMaxConns, "DATABASE_MAX_CONNS of section 5's run at the tenants' limits")
	flag.IntVar(&o.fleetLimitN, "fleet-limit", 5, "each tenant's limit in section 5, writes per second (and GRAPH_WRITE_RATE)")
	var windows string
	flag.StringVar(&windows, "fleet-windows", "1s,4s", "section 5's runs at the tenants' limits: one per window length, each window admitting fleet-limit × its seconds writes")
	flag.IntVar(&o.storeRows, "store-rows", 10_000_000, "item rows of section 6's large store (the results store after many nightly runs)")
	flag.IntVar(&o.storeBatches, "store-batches", 100, "batches of section 6's large store, one a night, all of one size; the small store holds the newest alone")
	flag.IntVar(&o.storeRunning, "store-running", 10, "of those, the newest still running (half their rows final)")
	flag.StringVar(&o.readme, "readme", "README.md", "the README whose \"Querying results\" queries section 6 times (scripts/bench.sh runs from the repository's root)")
	flag.IntVar(&o.storeReps, "store-reps", 5, "timed runs of each command and query in section 6 (the median counts), after one warm-up")
	flag.DurationVar(&o.runTimeout, "run-timeout", 3*time.Minute, "longest any one run may take")
	flag.Parse()
	o.poolConns = int32(pool)
	for _, w := range strings.Split(windows, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -fleet-windows: %q is not a duration\n", w)
			os.Exit(2)
		}
		o.fleetWindows = append(o.fleetWindows, d)
	}
	if quick {
		o.rounds, o.enqueueRows, o.rssRows, o.workerRows, o.tracedRows, o.skewRows, o.limitRows =
			1, 20_000, 100_000, 4_000, 1_000, 1_000, 120
		o.fleetTenants, o.fleetRows, o.fleetLimitRows = 10, 100, 40
		o.storeRows, o.storeBatches, o.storeRunning, o.storeReps = 500_000, 10, 2, 3
	}
	want := map[string]bool{}
	for _, s := range strings.Split(o.sections, ",") {
		want[strings.TrimSpace(s)] = true
	}
	if want["1"] && o.rssRows > 0 && o.enqueueBin == "" {
		fmt.Fprintln(os.Stderr, "bench: -enqueue-bin is required for section 1's peak RSS (or -rss-rows 0)")
		os.Exit(2)
	}

	os.Exit(benchMain(o, want))
}

func benchMain(o options, want map[string]bool) int {
	// Every TLS client of the process (the worker's Graph and MSAL clients)
	// trusts the simulator through SSL_CERT_FILE, as in production. This
	// must happen before anything dials TLS.
	dir, err := os.MkdirTemp("", "bulkassign-bench-ca-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if _, err := graphsim.UseCA(dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := results{o: o, cores: runtime.NumCPU(), loadStart: loadAverage(), memTotal: memTotal()}
	started := time.Now()
	for _, s := range []struct {
		id, name string
		run      func() error
	}{
		{"1", "enqueue", func() (err error) { res.enqueue, err = benchEnqueue(ctx, o); return }},
		{"2", "workers", func() (err error) { res.workers, err = benchWorkers(ctx, o); return }},
		{"3", "tenant limit", func() (err error) { res.limit, err = benchLimit(ctx, o); return }},
		{"5", "many tenants", func() (err error) { res.fleet, err = benchFleet(ctx, o); return }},
		{"6", "results store", func() (err error) { res.store, err = benchStore(ctx, o); return }},
	} {
		if !want[s.id] {
			continue
		}
		if err := s.run(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: section %s (%s): %v\n", s.id, s.name, err)
			return 1
		}
	}
	res.took = time.Since(started)
	res.loadEnd = loadAverage()
	res.print(os.Stdout, want["4"])
	return 0
}

// loadAverage is the 1, 5 and 15 minute load averages, as /proc/loadavg
// says them.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// memTotal is the machine's memory as /proc/meminfo says it.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f kB", &kb); err == nil {
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "?"
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

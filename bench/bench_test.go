package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestUseOfLimit(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(windows ...int) []time.Time {
		// One create per entry, spread inside window w.
		var out []time.Time
		seen := map[int]int{}
		for _, w := range windows {
			out = append(out, start.Add(time.Duration(w)*time.Second+time.Duration(seen[w])*10*time.Millisecond))
			seen[w]++
		}
		return out
	}
	repeat := func(w, n int) []int {
		var out []int
		for range n {
			out = append(out, w)
		}
		return out
	}
	concat := func(parts ...[]int) []int {
		var out []int
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name  string
		times []time.Time
		want  float64
	}{
		{"FullInteriorWindows", at(concat(repeat(0, 3), repeat(1, 4), repeat(2, 4), repeat(3, 1))...), 1},
		{"HalfUsedInterior", at(concat(repeat(0, 4), repeat(1, 2), repeat(2, 2), repeat(3, 4))...), 0.5},
		{"EdgesDoNotCount", at(concat(repeat(5, 4), repeat(6, 3), repeat(7, 4))...), 0.75},
		{"EmptyWindowInside", at(concat(repeat(0, 1), repeat(1, 4), repeat(3, 1))...), 0.5},
		{"TooShort", at(0, 1), 0},
		{"Nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := useOfLimit(tt.times, start, time.Second, 4); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("useOfLimit = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	sim, err := graphsim.New(graphsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	cfg := testenv.Config(0)
	sim.AddConfiguration(cfg)
	spec := func(i int) assign.Spec {
		return assign.Spec{ConfigurationID: cfg, Target: assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(i)}}
	}
	once := sim.Preassign(cfg, "", spec(0).Target)  // reported created with its id: right
	sim.Preassign(cfg, "", spec(1).Target)          // reported failed: wrong
	first := sim.Preassign(cfg, "", spec(2).Target) // twice: one duplicate
	sim.Preassign(cfg, "", spec(2).Target)          //
	got := judge(sim, []report{
		{spec: spec(0), created: true, assignmentID: once},
		{spec: spec(1)},
		{spec: spec(2), created: true, assignmentID: first},
		{spec: spec(3)}, // absent and reported failed: undone
		{spec: spec(4), created: true, assignmentID: "nope"}, // an id the tenant does not hold: wrong
	})
	want := verdict{rows: 5, rightCreated: 2, wrong: 2, undone: 1, duplicates: 1}
	if got != want {
		t.Errorf("judge = %+v, want %+v", got, want)
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{num(0), "0"},
		{num(999), "999"},
		{num(1000), "1,000"},
		{num(1234567.6), "1,234,568"},
		{num(-45000), "-45,000"},
		{statementLabel("UPDATE items SET status = CASE WHEN status IN ('created')\n\t\tELSE"), "UPDATE items SET status = CASE WHEN"},
		{pct(3, 400), "0.8 % (3 of 400)"},
		{f2(median([]float64{3, 1, 2})), "2.00"},
		{f2(median([]float64{4, 1, 2, 3})), "2.50"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestFleetCSV(t *testing.T) {
	t.Parallel()
	lines := strings.Split(strings.TrimSuffix(fleetCSV(3, 4, 2), "\n"), "\n")
	if lines[0] != "tenant_id,configuration_id,target_type,group_id" {
		t.Fatalf("header %q", lines[0])
	}
	if len(lines) != 1+3*4 {
		t.Fatalf("%d lines, want %d", len(lines), 1+3*4)
	}
	// Sorted by tenant; row r of tenant t on the tenant's configuration r % 2.
	want := fleetTenant(1) + "," + fleetConfig(1, 1) + ",group," + testenv.Group(3)
	if lines[1+4+3] != want {
		t.Errorf("line %d = %q, want %q", 1+4+3, lines[1+4+3], want)
	}
	for _, id := range []string{fleetTenant(0), fleetTenant(49), fleetConfig(49, 1)} {
		if _, err := assign.ParseGUID("id", id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

func TestFleetLimitFigures(t *testing.T) {
	t.Parallel()
	f := fleetLimitRun{tenants: 3, perTenant: 300, limit: graphsim.Limit{Mode: graphsim.FixedWindow, N: 5, Window: time.Second},
		figures: []tenantFigure{
			{tenant: "a", use: 0.97, posts: 300, s429: 0, created: 300},
			{tenant: "b", use: 0.90, posts: 302, s429: 2, created: 300, duplicates: 1},
			{tenant: "c", use: 0.95, posts: 301, s429: 4, created: 299},
		}}
	if got := f.lowestUse().tenant; got != "b" {
		t.Errorf("lowest use: tenant %s, want b", got)
	}
	if got := f.highest429().tenant; got != "c" {
		t.Errorf("highest 429 share: tenant %s, want c", got)
	}
	if got := f.medianUse(); math.Abs(got-0.95) > 1e-9 {
		t.Errorf("median use %v, want 0.95", got)
	}
	if got := maxUse(f.figures); got != 0.97 {
		t.Errorf("highest use %v, want 0.97", got)
	}
	created, dups, posts, s429 := f.totals()
	if created != 899 || dups != 1 || posts != 903 || s429 != 6 {
		t.Errorf("totals = %d, %d, %d, %d; want 899, 1, 903, 6", created, dups, posts, s429)
	}
	if got := f.rate(); got != 5 {
		t.Errorf("rate %v, want 5", got)
	}
	clean, throttled, nc, nt := f.useBy429()
	if clean != 0.97 || math.Abs(throttled-0.925) > 1e-9 || nc != 1 || nt != 2 {
		t.Errorf("useBy429 = %v, %v, %d, %d; want 0.97, 0.925, 1, 2", clean, throttled, nc, nt)
	}
	if got := (tenantFigure{}).share429(); got != 0 {
		t.Errorf("share of no POSTs = %v, want 0", got)
	}
}

// TestFleetLines checks section 5's ratios and verdicts on made-up runs.
func TestFleetLines(t *testing.T) {
	t.Parallel()
	noop := func(rows int, elapsed, goCPU, pgCPU time.Duration, statements int) run {
		return run{rows: rows, elapsed: elapsed, goCPU: goCPU, pgCPU: pgCPU, queries: []labeledStat{{"fetch", queryStat{n: statements}}}}
	}
	r := &results{o: options{workers: 100, poolConns: 40}, fleet: &fleetResult{
		tenants: 50, perTenant: 200, configs: 2, tenantWorkers: 10, maxConns: 41,
		// 10,000 rows in 20 s: 500 rows/s, 2 statements and 400 µs of Postgres CPU per row.
		ours: run{rows: 10_000, elapsed: 20 * time.Second, goCPU: 3 * time.Second, pgCPU: 4 * time.Second,
			queries: []labeledStat{{"a", queryStat{n: 15_000}}, {"b", queryStat{n: 5_000}}}},
		// 1,000 and 3,000 jobs/s: a mean of 2,000; 0.02 statements and 100 µs of Postgres CPU per job.
		noopTuned: []run{noop(10_000, 10*time.Second, time.Second, time.Second, 200), noop(9_000, 3*time.Second, time.Second, 900*time.Millisecond, 180)},
		limited: []fleetLimitRun{
			{tenants: 2, perTenant: 300, limit: graphsim.Limit{Mode: graphsim.FixedWindow, N: 5, Window: time.Second}, elapsed: 66 * time.Second,
				figures: []tenantFigure{{tenant: "a", use: 0.96, posts: 300, created: 300}, {tenant: "b", use: 0.94, posts: 303, s429: 3, created: 300}}},
			{tenants: 2, perTenant: 300, limit: graphsim.Limit{Mode: graphsim.FixedWindow, N: 20, Window: 4 * time.Second}, elapsed: 63 * time.Second,
				figures: []tenantFigure{{tenant: "a", use: 0.97, posts: 300, created: 300}, {tenant: "b", use: 0.96, posts: 300, created: 299, duplicates: 1}}},
		},
	}}
	got := map[string]line{}
	for _, l := range r.fleetLines() {
		got[l.id] = l
	}
	want := []struct{ id, ours, ratio, met string }{
		{"5a", "500 rows/s", "0.25", "yes"},
		{"5b", "2.0", "100.0", "yes"},
		{"5c", "400 µs", "4.0", "yes"},
		{"5e", "0.940", "0.940", "**no**"},
		{"5f", "1.0 % (3 of 303)", "0.010", "yes"},
		{"5g", "600 of 600 created, 0 duplicates, 1m6s", "1.10", ""},
		{"5h", "0.960 (1 tenant)", "1.021", ""},
		{"5i", "0.960", "0.960", "yes"},
		{"5j", "0.0 % (0 of 300)", "0.000", "yes"},
		{"5k", "599 of 600 created, 1 duplicates, 1m3s", "1.05", ""},
		{"5l", "0.965 (2 tenants)", "—", ""},
	}
	for _, w := range want {
		l, ok := got[w.id]
		if !ok {
			t.Errorf("no line %s", w.id)
			continue
		}
		if l.ours != w.ours || l.ratio != w.ratio || l.met != w.met {
			t.Errorf("line %s: ours %q ratio %q met %q; want %q %q %q", w.id, l.ours, l.ratio, l.met, w.ours, w.ratio, w.met)
		}
	}
	if (&results{}).fleetLines() != nil {
		t.Error("lines without section 5")
	}
}

func TestErredNote(t *testing.T) {
	t.Parallel()
	if got := erredNote(0, ""); got != "" {
		t.Errorf("no errors: %q", got)
	}
	got := erredNote(3, "FATAL: sorry, too many clients already")
	if want := ` — 3 ROWS MET AN ERROR and were retried by River (e.g. "FATAL: sorry, too many clients already")`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := erredNote(1, strings.Repeat("x", 200)); !strings.Contains(got, strings.Repeat("x", 120)+"…") || strings.Contains(got, strings.Repeat("x", 121)) {
		t.Errorf("a long error is not cut at 120 characters: %q", got)
	}
}

package main

import (
	"math"
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

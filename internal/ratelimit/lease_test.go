package ratelimit

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/testdb"
)

func TestUntilInvertsAccrue(t *testing.T) {
	t.Parallel()
	l := New(nil, Config{Name: "w", Rate: 20, Recovery: 0.5})
	for _, f0 := range []float64{0.05, 0.5, 0.99, 1} {
		for _, x := range []float64{0.01, 1, 5, 100} {
			got, _ := l.accrue(f0, l.until(f0, x))
			if math.Abs(got-x) > 1e-9*max(1, x) {
				t.Errorf("accrue(%g, until(%g, %g)) = %g, want %g", f0, f0, x, got, x)
			}
		}
	}
}

// TestLeasesFollowEachOther checks the row's debt: a lease starts one
// spacing after the previous one's last slot, whichever process took it,
// also while the rate recovers (the next slot then comes a little sooner
// than the block's spacing alone would say).
func TestLeasesFollowEachOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, recovering := range []bool{false, true} {
		db := testdb.New(t, 4)
		cfg := Config{Name: "w", Rate: 40, Recovery: 0.5, Cooldown: time.Millisecond}
		a, b := New(db.Pool, cfg), New(db.Pool, cfg)
		// Each process maps the database's clock by its fastest answer so
		// far: give both a few answers first, as a running worker has, so
		// that one slow first answer on a busy machine (the CI runs every
		// package at once) is not what this test measures.
		for _, l := range []*Limiter{a, b} {
			for range 5 {
				var now time.Time
				if err := db.Pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
					t.Fatal(err)
				}
				l.clock.local(now, time.Now())
			}
		}
		if recovering {
			if _, err := a.Throttled(ctx, 0); err != nil {
				t.Fatal(err)
			}
		}
		var end time.Time
		for i, l := range []*Limiter{a, b, a, b} {
			ls, err := l.lease(ctx, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			first := ls.local.Add(ls.wait)
			if i > 0 {
				// Two processes map the database's clock each by its own
				// fastest answer: allow a busy machine's latencies (the
				// bound on grants is TestFleetBound's).
				if gap := first.Sub(end); gap < -30*time.Millisecond || gap > 60*time.Millisecond {
					t.Errorf("recovering %v: lease %d starts %s after the previous block's end, want about 0", recovering, i, gap)
				}
			}
			end = first.Add(time.Duration(ls.n) * ls.spacing)
		}
	}
}

func TestClockMapTakesTheFastestAnswer(t *testing.T) {
	t.Parallel()
	var c clockMap
	db := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // another host's clock
	local := time.Now()
	steps := []struct {
		name        string
		db, arrived time.Duration // since the first answer
		want        time.Duration // local time of db, since the first answer's arrival
	}{
		{"first answer", 0, 0, 0},
		{"slow answer: its latency is not the clocks' offset", time.Second, time.Second + 30*time.Millisecond, time.Second},
		{"faster than the first: the offset moves down", 2 * time.Second, 2*time.Second - 5*time.Millisecond, 2*time.Second - 5*time.Millisecond},
		{"slow again", 3 * time.Second, 3*time.Second + 40*time.Millisecond, 3*time.Second - 5*time.Millisecond},
		// 1000 s on, answers 50 ms later for good (drift): followed at 100 µs/s.
		{"drift", 1003 * time.Second, 1003*time.Second + 45*time.Millisecond, 1003*time.Second + 45*time.Millisecond},
	}
	for _, s := range steps {
		got := c.local(db.Add(s.db), local.Add(s.arrived)).Sub(local)
		// The estimate may creep up 100 µs a second between answers.
		if d := got - s.want; d < 0 || d > 200*time.Microsecond {
			t.Errorf("%s: mapped to +%s, want +%s", s.name, got, s.want)
		}
	}
}

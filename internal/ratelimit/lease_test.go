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
				// Local clocks of one process; the row's clock is the
				// database's: allow the read's latency.
				if gap := first.Sub(end); gap < -2*time.Millisecond || gap > 20*time.Millisecond {
					t.Errorf("recovering %v: lease %d starts %s after the previous block's end, want about 0", recovering, i, gap)
				}
			}
			end = first.Add(time.Duration(ls.n) * ls.spacing)
		}
	}
}

package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		db *testdb.DB
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{db: testdb.New(t, 10)}
	}

	t.Run("TwoProcessesShareOneRate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cfg := ratelimit.Config{Name: "w", Rate: 50, Headroom: 1}
		// Two limiters are two processes: each has its own turn, one row.
		procs := []*ratelimit.Limiter{ratelimit.New(b.db.Pool, cfg), ratelimit.New(b.db.Pool, cfg)}
		const grants = 100
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, grants)
		for i := range grants {
			wg.Go(func() {
				_, err := procs[i%2].Wait(ctx, time.Minute)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
		}
		elapsed := time.Since(start)
		// 100 grants at 50/s with a burst of 1 cannot take less than ~2 s.
		if elapsed < 1800*time.Millisecond {
			t.Fatalf("100 grants at 50/s across two processes took %s, want >= 1.8s", elapsed)
		}
		if elapsed > 20*time.Second {
			t.Fatalf("100 grants at 50/s took %s, want well under 20s", elapsed)
		}
		t.Logf("100 grants at 50/s over two processes: %s (%.1f/s)", elapsed, grants/elapsed.Seconds())
	})

	t.Run("ThrottledPausesAndCutsOncePerCooldown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w", Rate: 100, Cooldown: time.Minute})
		if _, err := l.Wait(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		pause, err := l.Throttled(ctx, 400*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if pause != 400*time.Millisecond {
			t.Fatalf("pause = %s, want Retry-After 400ms", pause)
		}
		// A second 429 from a request already in flight must not cut again.
		if _, err := l.Throttled(ctx, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		st, err := l.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Factor < 0.69 || st.Factor > 0.71 {
			t.Fatalf("factor after two 429s within the cooldown = %.3f, want one cut to 0.7", st.Factor)
		}
		start := time.Now()
		if _, err := l.Wait(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Fatalf("Wait after a 400ms Retry-After returned after %s, want the pause honoured", waited)
		}
	})

	t.Run("FleetBoundHoldsAcrossThreeProcesses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const rate, burst = 20.0, 1.5
		cfg := ratelimit.Config{Name: "w", Rate: rate, Headroom: 1, Burst: burst}
		var procs []*ratelimit.Limiter
		for range 3 {
			procs = append(procs, ratelimit.New(b.db.Pool, cfg))
		}
		got := spend(t, procs, 4, 3*time.Second)
		var due, returned []time.Time
		for _, g := range got {
			if len(g.due) == 0 {
				t.Errorf("a process was granted nothing in 3 s")
			}
			due = append(due, g.due...)
			returned = append(returned, g.returned...)
		}
		for _, ts := range [][]time.Time{due, returned} {
			sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		}
		// Never more than rate·W + Burst in any window W (sliding, 1 s).
		most := mostInWindow(due, time.Second)
		if bound := int(rate*time.Second.Seconds() + burst); most > bound {
			t.Errorf("%d grants in one second across three processes, want at most rate·1s + burst = %d", most, bound)
		}
		perSecond := float64(len(due)-1) / due[len(due)-1].Sub(due[0]).Seconds()
		if perSecond < 0.85*rate || perSecond > 1.02*rate {
			t.Errorf("three processes were granted %.1f/s together, want about %.0f/s", perSecond, rate)
		}
		var leases int64
		for _, p := range procs {
			leases += ratelimit.Leases(p)
		}
		// Goroutines run late on a busy machine: returns are logged, not
		// bounded.
		t.Logf("figure: 3 processes at %.0f/s: %.2f grants/s together, at most %d due in any second (%d returned); %d grants in %d lease transactions (%.1f grants per transaction)",
			rate, perSecond, most, mostInWindow(returned, time.Second), len(due), leases, float64(len(due))/float64(leases))
	})

	t.Run("GrantsPerLeaseTransaction", func(t *testing.T) {
		t.Parallel()
		for _, rate := range []float64{20, 100} {
			t.Run(fmt.Sprintf("%.0fPerSecond", rate), func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				l := ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w", Rate: rate})
				granted := len(spend(t, []*ratelimit.Limiter{l}, 10, 2*time.Second)[0].due)
				leases := ratelimit.Leases(l)
				per := float64(granted) / float64(leases)
				t.Logf("figure: one process at %.0f/s (10 waiters): %d grants in %d lease transactions = %.1f grants per transaction (one each before leases)",
					rate, granted, leases, per)
				// About rate × 250 ms a block; the first blocks are smaller.
				if want := rate * 0.25 / 2; per < want {
					t.Errorf("%.1f grants per lease transaction at %.0f/s, want at least %.1f", per, rate, want)
				}
			})
		}
	})

	t.Run("ThrottledDropsTheLocalBlock", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w", Rate: 20, Headroom: 1})
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var (
			mu     sync.Mutex
			grants []time.Time
			wg     sync.WaitGroup
		)
		for range 8 {
			wg.Go(func() {
				for ctx.Err() == nil {
					if _, err := l.Wait(ctx, 10*time.Second); err != nil {
						return
					}
					mu.Lock()
					grants = append(grants, time.Now())
					mu.Unlock()
				}
			})
		}
		// Let blocks run, with waiters holding slots ahead, then throttle.
		time.Sleep(700 * time.Millisecond)
		const pause = 600 * time.Millisecond
		at := time.Now()
		if _, err := l.Throttled(ctx, pause); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pause + 500*time.Millisecond)
		cancel()
		wg.Wait()
		var before, during, after int
		for _, g := range grants {
			switch {
			case g.Before(at.Add(20 * time.Millisecond)): // granted before the 429 was told
				before++
			case g.Before(at.Add(pause)):
				during++
			default:
				after++
			}
		}
		if before == 0 || after == 0 {
			t.Fatalf("grants before the pause %d, after it %d; want some of each", before, after)
		}
		if during != 0 {
			t.Errorf("%d grants during the %s pause, want none: the local block must be dropped", during, pause)
		}
	})

	t.Run("WaitTooLongBehindAnotherProcess", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cfg := ratelimit.Config{Name: "w", Rate: 4, Headroom: 1} // a slot every 250 ms
		a, other := ratelimit.New(b.db.Pool, cfg), ratelimit.New(b.db.Pool, cfg)
		if _, err := a.Wait(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		// The next slot on the row is 250 ms away, whoever asks.
		for name, l := range map[string]*ratelimit.Limiter{"the same process": a, "another process": other} {
			start := time.Now()
			_, err := l.Wait(ctx, 50*time.Millisecond)
			var tooLong *ratelimit.WaitTooLongError
			if !errors.As(err, &tooLong) {
				t.Fatalf("%s: Wait with maxWait 50ms: err = %v, want WaitTooLongError", name, err)
			}
			if tooLong.Delay <= 0 || tooLong.Delay > 300*time.Millisecond {
				t.Errorf("%s: Delay = %s, want up to the next slot (<= 250ms)", name, tooLong.Delay)
			}
			// One lease query at most, not a sleep until the slot (a busy
			// machine's query may take a while: the bound is loose).
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%s: Wait took %s to say so, want at once", name, took)
			}
		}
		// Taking the delay's advice is then granted.
		if _, err := other.Wait(ctx, time.Second); err != nil {
			t.Fatalf("Wait with room for the next slot: %v", err)
		}
	})

	t.Run("WaitTooLongReturnsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w", Rate: 10})
		if _, err := l.Throttled(ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := l.Wait(ctx, time.Second)
		var tooLong *ratelimit.WaitTooLongError
		if !errors.As(err, &tooLong) {
			t.Fatalf("Wait during a 30s pause with maxWait 1s: err = %v, want WaitTooLongError", err)
		}
		if tooLong.Delay < 25*time.Second || tooLong.Delay > 31*time.Second {
			t.Fatalf("Delay = %s, want about 30s", tooLong.Delay)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("Wait blocked %s; it should return at once", time.Since(start))
		}
	})

	t.Run("BackoffWithoutRetryAfterGrows", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w", Rate: 10, Cooldown: time.Millisecond,
			BaseBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond})
		var last time.Duration
		for i := range 6 {
			time.Sleep(2 * time.Millisecond)
			pause, err := l.Throttled(ctx, -1)
			if err != nil {
				t.Fatal(err)
			}
			if pause < 50*time.Millisecond || pause > 800*time.Millisecond {
				t.Fatalf("429 #%d without Retry-After: pause %s outside [50ms, 800ms]", i+1, pause)
			}
			last = pause
		}
		st, _ := l.State(ctx)
		if st.Streak < 6 {
			t.Fatalf("streak = %d after six 429s, want 6", st.Streak)
		}
		if st.Factor > 0.2 {
			t.Fatalf("factor = %.3f after six cuts, want <= 0.7^6", st.Factor)
		}
		t.Logf("last pause %s", last)
	})

	t.Run("RateRecoversAfterCut", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w", Rate: 100, Recovery: 1, Cooldown: time.Millisecond})
		if _, err := l.Throttled(ctx, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond)
		if _, err := l.Wait(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		st, _ := l.State(ctx)
		if st.Factor < 0.99 {
			t.Fatalf("factor %.3f 600ms after a cut with Recovery 1/s, want fully recovered", st.Factor)
		}
	})

	t.Run("ZeroRateIsUnlimited", func(t *testing.T) {
		t.Parallel()
		var l *ratelimit.Limiter
		if _, err := l.Wait(ctx, 0); err != nil {
			t.Fatalf("nil limiter: %v", err)
		}
		b := setup(t)
		l = ratelimit.New(b.db.Pool, ratelimit.Config{Name: "w"})
		for range 1000 {
			if _, err := l.Wait(ctx, 0); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// grantLog is one limiter's grants: when each was due on its block's
// grid, and when its Wait returned (later by however long the goroutine
// took to run again).
type grantLog struct{ due, returned []time.Time }

// spend runs waiters goroutines per limiter, each waiting for grants in a
// loop for d, and returns each limiter's grantLog.
func spend(t *testing.T, procs []*ratelimit.Limiter, waiters int, d time.Duration) []grantLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu     sync.Mutex
		got    = make([]grantLog, len(procs))
		wg     sync.WaitGroup
		failed error
	)
	for i, l := range procs {
		ratelimit.OnGrant(l, func(at time.Time) {
			mu.Lock()
			got[i].due = append(got[i].due, at)
			mu.Unlock()
		})
		for range waiters {
			wg.Go(func() {
				for {
					_, err := l.Wait(ctx, time.Minute)
					if ctx.Err() != nil {
						return
					}
					now := time.Now()
					mu.Lock()
					if err != nil {
						failed = err
					} else {
						got[i].returned = append(got[i].returned, now)
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if failed != nil {
		t.Fatalf("Wait: %v", failed)
	}
	return got
}

// mostInWindow is the most of times (sorted) in any window [t, t+w).
func mostInWindow(times []time.Time, w time.Duration) int {
	most := 0
	for i := range times {
		n := sort.Search(len(times), func(j int) bool { return !times[j].Before(times[i].Add(w)) }) - i
		most = max(most, n)
	}
	return most
}

// BenchmarkWait reports how many lease transactions a grant costs.
func BenchmarkWait(b *testing.B) {
	for _, rate := range []float64{100, 1000} {
		b.Run(fmt.Sprintf("%.0fPerSecond", rate), func(b *testing.B) {
			db := testdb.New(b, 10)
			l := ratelimit.New(db.Pool, ratelimit.Config{Name: "w", Rate: rate})
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Wait(context.Background(), time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(ratelimit.Leases(l))/float64(b.N), "leases/grant")
		})
	}
}

package ratelimit_test

import (
	"context"
	"errors"
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

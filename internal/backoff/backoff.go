// Package backoff is bulkassign's one backoff: how long to wait before the
// n-th retry, and the bound on any single wait. The workers' retries after
// Graph errors, the fleet limiter's pause after a 429 without Retry-After,
// River's retry of a failed job and the dry run's re-reads all use it.
package backoff

import (
	"math/rand/v2"
	"time"
)

// MaxWait bounds any single wait: a Retry-After (Graph's windows are 20 s;
// a date in year 9999 is a hostile or broken answer), a pause of the fleet,
// a snooze. Waiting this long and asking again costs at most one more 429.
const MaxWait = 10 * time.Minute

// Policy is an exponential backoff with jitter.
type Policy struct {
	// Base is the first delay, Max the cap (itself capped by MaxWait).
	Base, Max time.Duration
}

// Delay is the wait before attempt n (1 is the first retry): Base·2^(n-1),
// capped at Max, scaled by a random factor in [0.5, 1] so that many rows
// failing together do not come back together.
func (p Policy) Delay(n int) time.Duration {
	limit := Clamp(p.Max)
	d := p.Base << min(max(n-1, 0), 30)
	if d > limit || d <= 0 {
		d = limit
	}
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Clamp bounds d to [0, MaxWait]: no negative delay (time.Duration
// arithmetic on hostile input overflows into negatives) and no wait for ever.
func Clamp(d time.Duration) time.Duration {
	return min(max(d, 0), MaxWait)
}

package graphsim

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// LimitMode selects the throttling algorithm of a Limit.
type LimitMode int

const (
	// FixedWindow admits N writes per Window; windows are aligned to the
	// server start (window k is [start+k*Window, start+(k+1)*Window)).
	FixedWindow LimitMode = iota
	// TokenBucket admits a write when a token is available; the bucket holds
	// at most Burst tokens, starts full and refills at Rate tokens a second.
	TokenBucket
)

// Limit throttles Graph writes (POST and DELETE) tenant-wide. The zero
// value (FixedWindow with N == 0) is unlimited. A rejected write is answered
// 429 TooManyRequests with "Retry-After: <seconds>" (whole seconds, at least
// 1, until the quota frees), except for a NoRetryAfter fraction of them that
// carry no Retry-After at all, as Intune is reported to do.
type Limit struct {
	Mode   LimitMode
	N      int           // FixedWindow: writes admitted per window; 0 = unlimited
	Window time.Duration // FixedWindow: window length
	Rate   float64       // TokenBucket: tokens per second
	Burst  int           // TokenBucket: capacity; default max(1, ceil(Rate))
	// NoRetryAfter is the fraction (0..1) of 429s sent without Retry-After.
	NoRetryAfter float64
	// CountRejected makes rejected writes consume quota too, so hammering
	// makes it worse: in a fixed window the excess over N carries into the
	// following windows (at most N of it); a bucket goes into debt (at most
	// Burst tokens below zero).
	CountRejected bool
	// RetryAfter, when set, is sent verbatim as every 429's Retry-After
	// (hostile values such as a date in year 9999, for tests).
	RetryAfter string
}

// Enabled reports whether l throttles at all.
func (l Limit) Enabled() bool {
	if l.Mode == TokenBucket {
		return l.Rate > 0
	}
	return l.N > 0
}

func (l Limit) validate() error {
	if l.NoRetryAfter < 0 || l.NoRetryAfter > 1 || l.NoRetryAfter != l.NoRetryAfter {
		return errors.New("graphsim: Limit.NoRetryAfter must be in [0,1]")
	}
	switch l.Mode {
	case FixedWindow:
		if l.N < 0 {
			return errors.New("graphsim: Limit.N is negative")
		}
		if l.N > 0 && l.Window <= 0 {
			return errors.New("graphsim: fixed window Limit needs Window > 0")
		}
	case TokenBucket:
		if l.Rate <= 0 || math.IsInf(l.Rate, 0) || l.Rate != l.Rate {
			return errors.New("graphsim: token bucket Limit needs Rate > 0")
		}
		if l.Burst < 0 {
			return errors.New("graphsim: Limit.Burst is negative")
		}
	default:
		return errors.New("graphsim: unknown Limit.Mode")
	}
	return nil
}

// limiter is the state of a Limit; callers hold Server.mu.
type limiter struct {
	l     Limit
	start time.Time
	// fixed window
	window int64 // index of the current window
	used   int   // writes counted in it (with carried excess)
	// token bucket
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(l Limit, start time.Time) limiter {
	lm := limiter{l: l, start: start, last: start}
	if l.Mode == TokenBucket {
		b := l.Burst
		if b <= 0 {
			b = max(1, int(math.Ceil(l.Rate)))
		}
		lm.burst = float64(b)
		lm.tokens = lm.burst
		lm.last = time.Now()
	}
	return lm
}

// take admits one write at now, or reports how long until one would be
// admitted.
func (lm *limiter) take(now time.Time) (ok bool, wait time.Duration) {
	if !lm.l.Enabled() {
		return true, 0
	}
	if lm.l.Mode == TokenBucket {
		if el := now.Sub(lm.last); el > 0 {
			lm.tokens = math.Min(lm.burst, lm.tokens+el.Seconds()*lm.l.Rate)
			lm.last = now
		}
		if lm.tokens >= 1 {
			lm.tokens--
			return true, 0
		}
		if lm.l.CountRejected {
			lm.tokens = math.Max(lm.tokens-1, -lm.burst)
		}
		need := (1 - lm.tokens) / lm.l.Rate
		return false, time.Duration(need * float64(time.Second))
	}
	n, w := lm.l.N, lm.l.Window
	idx := int64(now.Sub(lm.start) / w)
	if idx > lm.window {
		k := idx - lm.window
		if k > int64(lm.used/n) {
			lm.used = 0
		} else {
			lm.used -= int(k) * n
			lm.used = max(lm.used, 0)
		}
		lm.window = idx
	}
	if lm.used < n {
		lm.used++
		return true, 0
	}
	if lm.l.CountRejected {
		lm.used = min(lm.used+1, 2*n)
	}
	// The first later window k with used-k*n < n.
	k := int64(lm.used / n)
	free := lm.start.Add(time.Duration(lm.window+k) * w)
	return false, free.Sub(now)
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}

var limitRE = regexp.MustCompile(`^(bucket:)?([0-9]+(?:\.[0-9]+)?)/([0-9]*[a-zµ]+)(?:,([0-9]+))?$`)

// ParseLimit reads a write limit written as "N/WINDOW" (fixed window, e.g.
// "100/20s"), "bucket:RATE/PER[,BURST]" (token bucket, e.g. "bucket:10/s")
// or "" / "none" (unlimited). A window without a number ("s", "m") means
// one unit. NoRetryAfter, CountRejected and RetryAfter are left zero.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return Limit{}, nil
	}
	m := limitRE.FindStringSubmatch(s)
	if m == nil {
		return Limit{}, fmt.Errorf(`write limit %q: want "N/WINDOW" (100/20s) or "bucket:RATE/PER[,BURST]" (bucket:10/s)`, s)
	}
	per := m[3]
	if per[0] < '0' || per[0] > '9' {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("write limit %q: bad window %q", s, m[3])
	}
	n, _ := strconv.ParseFloat(m[2], 64)
	if m[1] == "" {
		if m[4] != "" || n != math.Trunc(n) || n < 1 {
			return Limit{}, fmt.Errorf("write limit %q: a fixed window takes a whole N ≥ 1 and no burst", s)
		}
		return Limit{Mode: FixedWindow, N: int(n), Window: d}, nil
	}
	l := Limit{Mode: TokenBucket, Rate: n / d.Seconds()}
	if m[4] != "" {
		l.Burst, _ = strconv.Atoi(m[4])
	}
	if l.Rate <= 0 {
		return Limit{}, fmt.Errorf("write limit %q: rate must be positive", s)
	}
	return l, nil
}

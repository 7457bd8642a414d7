// Package ratelimit holds Graph's request budget for the whole fleet: one
// token bucket per limit, stored as a row in Postgres, shared by every worker
// process on the database. It is adaptive: a 429 pauses the fleet (for
// Retry-After, or an exponential backoff with jitter when Graph gives none)
// and cuts the rate, which then recovers gradually.
//
// Each process talks to the row through one goroutine at a time, so a
// process's waiters cost one query per grant, not one per waiter.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/backoff"
)

// Config describes one fleet-wide limit. Every process sharing Name must use
// the same values.
type Config struct {
	// Name is the row in rate_limits ("graph_write", "graph_read").
	Name string
	// Rate is the fleet's total requests per second. Zero or less disables
	// the limit (Wait returns at once).
	Rate float64
	// Headroom scales Rate down to keep jitter from tipping a window over
	// Graph's limit; default 0.97.
	Headroom float64
	// Burst is how many tokens may accumulate; default 1.5: even spacing,
	// with room for half an interval of lateness so a waiter that wakes late
	// does not lose the time.
	Burst float64
	// Decrease multiplies the rate on a 429; default 0.7.
	Decrease float64
	// MinFactor is the lowest fraction of Rate a 429 storm can push to; default 0.05.
	MinFactor float64
	// Recovery is how much of the full rate returns per second after a cut;
	// default 0.02 (a halved rate recovers in 25 s).
	Recovery float64
	// Cooldown ignores further 429s for the rate cut (not for the pause)
	// this long after one was counted: requests already in flight answer 429
	// together. Default 1 s.
	Cooldown time.Duration
	// BaseBackoff and MaxBackoff bound the pause after a 429 without
	// Retry-After: BaseBackoff·2^streak with full jitter. Defaults 1 s, 60 s.
	BaseBackoff, MaxBackoff time.Duration
}

func (c *Config) withDefaults() {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Headroom, 0.97)
	def(&c.Burst, 1.5)
	def(&c.Decrease, 0.7)
	def(&c.MinFactor, 0.05)
	def(&c.Recovery, 0.02)
	if c.Cooldown <= 0 {
		c.Cooldown = time.Second
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
}

// Limiter is one process's handle on a fleet-wide limit.
type Limiter struct {
	pool *pgxpool.Pool
	cfg  Config
	turn chan struct{} // one goroutine of this process asks the database at a time
}

// New returns a limiter for cfg.
func New(pool *pgxpool.Pool, cfg Config) *Limiter {
	cfg.withDefaults()
	return &Limiter{pool: pool, cfg: cfg, turn: make(chan struct{}, 1)}
}

// Config returns the limiter's configuration with defaults applied.
func (l *Limiter) Config() Config { return l.cfg }

// WaitTooLongError says a grant would come later than the caller is willing
// to wait in process; the caller should reschedule itself after Delay.
type WaitTooLongError struct{ Delay time.Duration }

// RetryDelay is when to ask again (graph.NotSent reads it).
func (e *WaitTooLongError) RetryDelay() time.Duration { return e.Delay }

func (e *WaitTooLongError) Error() string {
	return fmt.Sprintf("fleet rate limit: next grant in %s", e.Delay.Round(time.Millisecond))
}

// Wait blocks until the fleet grants one request, and returns how long it
// waited. When the grant would come more than maxWait from now it returns a
// *WaitTooLongError at once instead.
func (l *Limiter) Wait(ctx context.Context, maxWait time.Duration) (time.Duration, error) {
	if l == nil || l.cfg.Rate <= 0 {
		return 0, nil
	}
	start := time.Now()
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return time.Since(start), ctx.Err()
	}
	defer func() { <-l.turn }()
	for {
		granted, delay, err := l.take(ctx)
		if err != nil {
			return time.Since(start), err
		}
		if granted {
			return time.Since(start), nil
		}
		if waited := time.Since(start); waited+delay > maxWait {
			return waited, &WaitTooLongError{Delay: delay}
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return time.Since(start), ctx.Err()
		}
	}
}

// bucket is the row's state.
type bucket struct {
	tokens, factor       float64
	pausedUntil, lastCut time.Time
	streak               int
	updatedAt, now       time.Time
}

// advance refills the bucket from updatedAt to now at the (recovering) rate.
// Time spent paused neither refills nor recovers.
func (l *Limiter) advance(b *bucket) {
	from := b.updatedAt
	if b.pausedUntil.After(from) {
		from = b.pausedUntil
	}
	if dt := b.now.Sub(from).Seconds(); dt > 0 {
		// The rate grows linearly from factor while tokens accrue: integrate.
		f0 := b.factor
		f1 := math.Min(1, f0+l.cfg.Recovery*dt)
		var area float64 // ∫ factor dt
		if l.cfg.Recovery > 0 && f1 >= 1 && f0 < 1 {
			tUp := (1 - f0) / l.cfg.Recovery
			area = (f0+1)/2*tUp + (dt - tUp)
		} else {
			area = (f0 + f1) / 2 * dt
		}
		b.tokens = math.Min(l.cfg.Burst, b.tokens+area*l.rate())
		b.factor = f1
	}
	b.updatedAt = b.now
}

func (l *Limiter) rate() float64 { return l.cfg.Rate * l.cfg.Headroom }

const selectBucket = `SELECT tokens, factor, paused_until, last_throttle_at, throttle_streak, updated_at, clock_timestamp()
	FROM rate_limits WHERE name = $1 FOR UPDATE`

// lockBucket reads the row for update, creating it full on first use.
func (l *Limiter) lockBucket(ctx context.Context, tx pgx.Tx) (*bucket, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO rate_limits (name, tokens) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		l.cfg.Name, l.cfg.Burst); err != nil {
		return nil, fmt.Errorf("error creating rate limit %s: %w", l.cfg.Name, err)
	}
	b := &bucket{}
	if err := tx.QueryRow(ctx, selectBucket, l.cfg.Name).Scan(&b.tokens, &b.factor, &b.pausedUntil, &b.lastCut, &b.streak, &b.updatedAt, &b.now); err != nil {
		return nil, fmt.Errorf("error reading rate limit %s: %w", l.cfg.Name, err)
	}
	return b, nil
}

func (l *Limiter) store(ctx context.Context, tx pgx.Tx, b *bucket) error {
	_, err := tx.Exec(ctx, `UPDATE rate_limits SET tokens = $2, factor = $3, paused_until = $4, last_throttle_at = $5,
		throttle_streak = $6, updated_at = $7 WHERE name = $1`,
		l.cfg.Name, b.tokens, b.factor, b.pausedUntil, b.lastCut, b.streak, b.updatedAt)
	if err != nil {
		return fmt.Errorf("error updating rate limit %s: %w", l.cfg.Name, err)
	}
	return nil
}

// take tries to take one token; when none is free it says how long until one is.
func (l *Limiter) take(ctx context.Context) (granted bool, delay time.Duration, err error) {
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		b, err := l.lockBucket(ctx, tx)
		if err != nil {
			return err
		}
		if b.now.Before(b.pausedUntil) {
			delay = b.pausedUntil.Sub(b.now)
			return nil
		}
		l.advance(b)
		if b.tokens >= 1 {
			b.tokens--
			granted = true
		} else {
			delay = time.Duration((1 - b.tokens) / (b.factor * l.rate()) * float64(time.Second))
		}
		return l.store(ctx, tx, b)
	})
	if err != nil {
		return false, 0, err
	}
	// A little jitter keeps processes from asking in lockstep.
	if delay > 0 {
		delay += time.Duration(rand.Int64N(int64(2 * time.Millisecond)))
	}
	return granted, delay, nil
}

// Throttled tells the fleet that Graph answered 429 (or 503 with
// Retry-After). retryAfter < 0 means Graph gave none. It pauses every
// process until the pause ends, cuts the rate once per Cooldown, and returns
// the pause the caller's request should observe at least.
func (l *Limiter) Throttled(ctx context.Context, retryAfter time.Duration) (time.Duration, error) {
	if l == nil || l.cfg.Rate <= 0 {
		return l.pause(0, retryAfter), nil
	}
	var pause time.Duration
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		b, err := l.lockBucket(ctx, tx)
		if err != nil {
			return err
		}
		if b.now.After(b.pausedUntil) {
			l.advance(b)
		}
		// A streak ends once a quiet spell twice its pause has passed.
		if b.now.Sub(b.lastCut) > 2*l.backoffCap(b.streak)+l.cfg.Cooldown {
			b.streak = 0
		}
		if b.now.Sub(b.lastCut) >= l.cfg.Cooldown {
			b.factor = math.Max(l.cfg.MinFactor, b.factor*l.cfg.Decrease)
			b.streak++
			b.lastCut = b.now
		}
		pause = l.pause(b.streak, retryAfter)
		if until := b.now.Add(pause); until.After(b.pausedUntil) {
			b.pausedUntil = until
		}
		b.tokens = 0
		return l.store(ctx, tx, b)
	})
	if err != nil {
		return 0, err
	}
	return pause, nil
}

func (l *Limiter) backoffCap(streak int) time.Duration {
	d := l.cfg.BaseBackoff << min(max(streak-1, 0), 16)
	return backoff.Clamp(min(d, l.cfg.MaxBackoff))
}

// pause is Retry-After when given, else the shared backoff for the
// streak; bounded either way, so no answer can pause the fleet for ever.
func (l *Limiter) pause(streak int, retryAfter time.Duration) time.Duration {
	if retryAfter >= 0 {
		return backoff.Clamp(retryAfter)
	}
	return backoff.Policy{Base: l.cfg.BaseBackoff, Max: l.cfg.MaxBackoff}.Delay(streak)
}

// State is a snapshot of a limit, for status output and tests.
type State struct {
	Tokens, Factor float64
	PausedUntil    time.Time
	Streak         int
}

// State reads the limit's row (zero State when it was never used).
func (l *Limiter) State(ctx context.Context) (State, error) {
	var s State
	err := l.pool.QueryRow(ctx, `SELECT tokens, factor, paused_until, throttle_streak FROM rate_limits WHERE name = $1`,
		l.cfg.Name).Scan(&s.Tokens, &s.Factor, &s.PausedUntil, &s.Streak)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{Factor: 1}, nil
	}
	return s, err
}

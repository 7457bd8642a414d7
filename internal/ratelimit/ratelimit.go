// Package ratelimit holds Graph's request budget for the whole fleet: one
// token bucket per limit and tenant, stored as a row in Postgres, shared by
// every worker process on the database. It is adaptive: a 429 pauses the
// fleet (for Retry-After, or an exponential backoff with jitter when Graph
// gives none) and cuts the rate, which then recovers gradually.
//
// # Leases
//
// A process does not ask the row once per request. It leases a block of
// slots in one transaction and hands them out through a local pacer, a
// golang.org/x/time/rate.Limiter set to the tenant's current rate:
//
//   - The row is a bucket that holds at most one token and may go into
//     debt. A lease of n tokens takes the first slot when the row's level
//     reaches one (now, after an idle spell), then n-1 more, one spacing
//     apart (1/rate, the rate at the lease), and leaves the row in debt so
//     that its next slot comes one spacing after this block's last. Every
//     process's blocks are therefore slots of one bucket, back to back on
//     the database's clock: a block reserves time, not a share of a window.
//   - The block's pacer (burst 1) releases waiters on that grid, evenly,
//     never before a slot. A slot nobody took is dropped once it is more
//     than Burst-1 of a spacing old (a waiter then takes the next slot), so
//     a late token never lands on another block's slot. Hence, over any
//     window W, the fleet's grants are at most rate·W + Burst, as with one
//     bucket of capacity Burst (Burst above 2 counts as 2: a lease spends
//     evenly, it does not burst).
//   - A block is about rate·Lease tokens (Config.Lease, default 250 ms): at
//     least one, twice the last block when that was used up, what was used
//     of it when not, and at least the waiters queued for it. The next block
//     is leased near the end of the current one (Lease/5 before), when it
//     follows this one on the row or another process's.
//   - Throttled drops the process's block at once (waiters holding a slot
//     wake and wait out the pause) and remembers the pause, so the process
//     neither grants nor asks the row before it ends. Other processes learn
//     of the pause at their next lease: at most one block later. Leased
//     slots are never given back: after the pause the row is still in
//     debt for those that fall after its end.
//
// Slots are on the database's clock; a process maps them onto its own with
// the fastest answer it has seen (clockMap), so neither a slow answer nor a
// step of its wall clock moves its blocks. Each process leases through one
// goroutine at a time, so a process's waiters cost one transaction per
// block, not one per waiter or per grant.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

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
	// Burst bounds the fleet's grants in any window W to Rate·W + Burst;
	// default 1.5: even spacing, with room for half an interval of
	// lateness so a waiter that comes late to an unclaimed slot does not
	// lose it. One token of it waits in the row after an idle spell; the
	// rest is how late (in spacings, at most one) a process may still
	// spend a slot. Values below 1 count as 1, above 2 as 2.
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
	// Lease is how much time of the rate a process leases at once: a block
	// of about Rate·Lease tokens. Default 250 ms.
	Lease time.Duration
}

func (c *Config) withDefaults() {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Headroom, 0.97)
	def(&c.Burst, 1.5)
	c.Burst = min(max(c.Burst, 1), 2)
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
	if c.Lease <= 0 {
		c.Lease = 250 * time.Millisecond
	}
}

// Limiter is one process's handle on a fleet-wide limit.
type Limiter struct {
	pool *pgxpool.Pool
	cfg  Config
	turn chan struct{} // one goroutine of this process leases at a time

	mu        sync.Mutex
	blk       *block        // the block being spent; nil when none
	idleUntil time.Time     // no grant before this: a pause, or the fleet's queue
	dropped   chan struct{} // closed (and replaced) when Throttled drops the block
	queued    int           // waiters that need the next block
	size      int           // the next block's size, adapted to use

	clock   clockMap        // the database's clock on this process's
	leases  atomic.Int64    // lease transactions, for tests and benchmarks
	onGrant func(time.Time) // for tests: each grant's time on the grid
}

// New returns a limiter for cfg.
func New(pool *pgxpool.Pool, cfg Config) *Limiter {
	cfg.withDefaults()
	return &Limiter{pool: pool, cfg: cfg, turn: make(chan struct{}, 1), dropped: make(chan struct{}), size: 1}
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

// slotTolerance absorbs the pacer's float rounding (nanoseconds a block).
const slotTolerance = time.Microsecond

// block is a lease being spent: n slots on an even grid from first, spacing
// apart, released by a pacer aligned to the grid.
type block struct {
	pacer   *rate.Limiter
	first   time.Time
	spacing time.Duration
	n       int
	late    time.Duration // how long after its slot a token may still be spent
	at      time.Time     // the latest time given to pacer, which needs them in order
	taken   int           // slots reserved by waiters
}

func newBlock(first time.Time, spacing time.Duration, n int, late time.Duration) *block {
	b := &block{first: first, spacing: spacing, n: n, late: late}
	b.align(first)
	return b
}

// align restarts the pacer so that its next token comes at slot.
func (b *block) align(slot time.Time) {
	b.pacer = rate.NewLimiter(rate.Every(b.spacing), 1)
	b.at = slot.Add(-b.spacing)
	b.pacer.AllowN(b.at, 1) // empty one spacing before the slot
}

// clock is now for the pacer: never earlier than a time it was given.
func (b *block) clock(now time.Time) time.Time {
	if now.After(b.at) {
		b.at = now
	}
	return b.at
}

// end is when the slot after the block's last would be.
func (b *block) end() time.Time { return b.first.Add(time.Duration(b.n) * b.spacing) }

// reserve takes the block's next slot for a waiter arriving at now, and
// says when the waiter may go; ok is false when the block is spent.
func (b *block) reserve(now time.Time) (res *rate.Reservation, at time.Time, ok bool) {
	for {
		t := b.clock(now)
		res = b.pacer.ReserveN(t, 1)
		at = t.Add(res.DelayFrom(t))
		j := int((at.Sub(b.first) + slotTolerance) / b.spacing)
		if j >= b.n {
			res.CancelAt(t)
			return nil, time.Time{}, false
		}
		slot := b.first.Add(time.Duration(j) * b.spacing)
		if !at.Equal(t) || at.Sub(slot) <= b.late+slotTolerance {
			b.taken++
			return res, at, true
		}
		// The pacer held a token nobody took at its slot, longer ago than
		// a token may be late: drop it and pace from the next slot. (A
		// pacer holding a token has no reservation ahead: restarting it
		// moves no one.)
		b.align(slot.Add(b.spacing))
	}
}

// cancel gives back a reservation its waiter will not use.
func (b *block) cancel(res *rate.Reservation, now time.Time) {
	res.CancelAt(b.clock(now))
	b.taken--
}

// Wait blocks until the fleet grants one request, and returns how long it
// waited. When the grant would come more than maxWait from now it returns a
// *WaitTooLongError at once instead.
func (l *Limiter) Wait(ctx context.Context, maxWait time.Duration) (time.Duration, error) {
	if l == nil || l.cfg.Rate <= 0 {
		return 0, nil
	}
	start := time.Now()
	queued := false
	queue := func(on bool) { // under l.mu
		if on != queued {
			queued = on
			if on {
				l.queued++
			} else {
				l.queued--
			}
		}
	}
	defer func() {
		l.mu.Lock()
		queue(false)
		l.mu.Unlock()
	}()
	for {
		now := time.Now()
		waited := now.Sub(start)
		l.mu.Lock()
		dropped := l.dropped
		var sleep time.Duration
		switch b := l.blk; {
		case now.Before(l.idleUntil):
			sleep = l.idleUntil.Sub(now)
		case b != nil:
			res, at, ok := b.reserve(now)
			if ok {
				queue(false)
				d := at.Sub(now)
				if d > 0 && waited+d > maxWait {
					b.cancel(res, now)
					l.mu.Unlock()
					return waited, &WaitTooLongError{Delay: d}
				}
				l.mu.Unlock()
				woken, err := sleepUntil(ctx, d, dropped)
				if err != nil {
					l.mu.Lock()
					b.cancel(res, time.Now())
					l.mu.Unlock()
					return time.Since(start), err
				}
				if woken {
					continue // Throttled dropped the block: the slot is gone
				}
				if l.onGrant != nil {
					l.onGrant(at)
				}
				return time.Since(start), nil
			}
			// Spent: the next block is leased near this one's end.
			if leaseAt := b.end().Add(-l.cfg.Lease / 5); now.Before(leaseAt) {
				queue(true)
				if d := b.end().Sub(now); waited+d > maxWait {
					l.mu.Unlock()
					return waited, &WaitTooLongError{Delay: d}
				}
				sleep = leaseAt.Sub(now)
			}
		}
		if sleep > 0 {
			if waited+sleep > maxWait && now.Before(l.idleUntil) {
				l.mu.Unlock()
				return waited, &WaitTooLongError{Delay: sleep}
			}
			l.mu.Unlock()
			if _, err := sleepUntil(ctx, sleep, dropped); err != nil {
				return time.Since(start), err
			}
			continue
		}
		queue(true)
		seen := l.blk
		l.mu.Unlock()
		if err := l.renew(ctx, seen, max(maxWait-waited, 0)); err != nil {
			return time.Since(start), err
		}
	}
}

// sleepUntil waits d, or until ctx ends (its error) or dropped closes
// (woken).
func sleepUntil(ctx context.Context, d time.Duration, dropped <-chan struct{}) (woken bool, err error) {
	if d <= 0 {
		return false, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false, nil
	case <-dropped:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// renew leases the next block, unless another waiter of this process did
// since this one saw seen, or the limit is idle. A grant further than
// horizon is not leased: the limit is idle until then instead.
func (l *Limiter) renew(ctx context.Context, seen *block, horizon time.Duration) error {
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()
	l.mu.Lock()
	if l.blk != seen || time.Now().Before(l.idleUntil) {
		l.mu.Unlock()
		return nil
	}
	if seen != nil {
		// Twice the last block when it was used up, what was used of it
		// when not.
		if seen.taken >= seen.n {
			l.size = 2 * seen.n
		} else {
			l.size = max(1, seen.taken)
		}
	}
	want, dropped := max(l.size, l.queued), l.dropped
	l.mu.Unlock()

	ls, err := l.lease(ctx, want, horizon)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-dropped:
		// Throttled ran meanwhile: this block may be of before the pause.
		return nil
	default:
	}
	if ls.n == 0 {
		// A little jitter keeps processes from asking in lockstep.
		until := ls.local.Add(ls.wait + time.Duration(rand.Int64N(int64(2*time.Millisecond))))
		if until.After(l.idleUntil) {
			l.idleUntil = until
		}
		return nil
	}
	late := time.Duration((l.cfg.Burst - 1) * float64(ls.spacing))
	l.blk = newBlock(ls.local.Add(ls.wait), ls.spacing, ls.n, late)
	return nil
}

// clockMap maps the database's clock onto this process's. An answer never
// arrives before the database read its clock, so the least gap seen
// between the row's clock_timestamp() and the local time its answer
// arrived is the closest to the clocks' true offset. Mapping every lease
// with it keeps a process's blocks one spacing apart however slow one
// lease's answer was (mapping each with its own latency would squeeze a
// fast lease's block against a slow one's). Gaps are measured from the
// first answer, on the local monotonic clock, so a step of this host's
// wall clock moves nothing; the estimate may grow by driftAllowance of the
// time since it was last seen, for the clocks' drift.
type clockMap struct {
	mu               sync.Mutex
	anchor, anchorDB time.Time     // the first answer's arrival, and its clock_timestamp()
	offset           time.Duration // the least gap, relative to the anchor's
	seen             time.Time
}

const driftAllowance = 1e-4

// local is the local time of the database's dbNow, whose answer arrived
// at arrived (a local time, from time.Now).
func (c *clockMap) local(dbNow, arrived time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.anchor.IsZero() {
		c.anchor, c.anchorDB, c.seen = arrived, dbNow, arrived
	}
	gap := arrived.Sub(c.anchor) - dbNow.Sub(c.anchorDB)
	c.offset = min(gap, c.offset+time.Duration(driftAllowance*float64(arrived.Sub(c.seen))))
	c.seen = arrived
	return arrived.Add(c.offset - gap)
}

// bucket is the row's state.
type bucket struct {
	tokens, factor       float64
	pausedUntil, lastCut time.Time
	streak               int
	updatedAt, now       time.Time
}

// rowCap is the most the row holds: one token, ready after an idle spell.
// The rest of Burst is each process's leeway to spend a slot late.
const rowCap = 1.0

// accrue is what the row earns over dt seconds, not paused, from factor
// f0: tokens at the recovering rate, and the factor then.
func (l *Limiter) accrue(f0, dt float64) (tokens, f1 float64) {
	if dt <= 0 {
		return 0, f0
	}
	// The rate grows linearly from f0 while tokens accrue: integrate.
	rec := l.cfg.Recovery
	f1 = math.Min(1, f0+rec*dt)
	var area float64 // ∫ factor dt
	if rec > 0 && f1 >= 1 && f0 < 1 {
		tUp := (1 - f0) / rec
		area = (f0+1)/2*tUp + (dt - tUp)
	} else {
		area = (f0 + f1) / 2 * dt
	}
	return area * l.rate(), f1
}

// until is accrue's inverse: the seconds from factor f0 until x tokens
// have accrued.
func (l *Limiter) until(f0, x float64) float64 {
	if x <= 0 {
		return 0
	}
	a := x / l.rate() // ∫ factor dt needed
	rec := l.cfg.Recovery
	if rec <= 0 || f0 >= 1 {
		return a / f0
	}
	tUp := (1 - f0) / rec
	if aUp := (f0 + 1) / 2 * tUp; a > aUp {
		return tUp + (a - aUp)
	}
	return (math.Sqrt(f0*f0+2*rec*a) - f0) / rec
}

// advance refills the bucket from updatedAt to now at the (recovering) rate.
// Time spent paused neither refills nor recovers.
func (l *Limiter) advance(b *bucket) {
	from := b.updatedAt
	if b.pausedUntil.After(from) {
		from = b.pausedUntil
	}
	if dt := b.now.Sub(from).Seconds(); dt > 0 {
		earned, f1 := l.accrue(b.factor, dt)
		b.tokens = math.Min(rowCap, b.tokens+earned)
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
		l.cfg.Name, rowCap); err != nil {
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

// leased is a lease's answer: n slots, spacing apart, the first wait after
// local (the row's clock when it was read, on this process's clock). n is 0 when the
// first slot is further than the horizon: nothing was taken.
type leased struct {
	local   time.Time
	wait    time.Duration
	spacing time.Duration
	n       int
}

// lease takes up to want slots from the row in one transaction.
func (l *Limiter) lease(ctx context.Context, want int, horizon time.Duration) (leased, error) {
	l.leases.Add(1)
	var ls leased
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		b, err := l.lockBucket(ctx, tx)
		if err != nil {
			return err
		}
		ls = leased{local: l.clock.local(b.now, time.Now())}
		l.advance(b)
		// The row accrues again from the end of a pause, at the factor it
		// was left with.
		from := max(b.pausedUntil.Sub(b.now), 0)
		ls.wait = from + seconds(l.until(b.factor, 1-b.tokens))
		if ls.wait > horizon {
			return nil
		}
		rf := l.rate() * b.factor
		ls.spacing = time.Duration(math.Ceil(float64(time.Second) / rf))
		ls.n = min(max(want, 1), max(1, int(math.Round(rf*l.cfg.Lease.Seconds()))))
		// Leave the row one token short exactly one spacing after the
		// block's last slot: the next lease, of any process, starts there.
		// With the rate recovering this takes a little more than n.
		end := ls.wait + time.Duration(ls.n)*ls.spacing
		earned, _ := l.accrue(b.factor, (end - from).Seconds())
		b.tokens = math.Min(b.tokens-float64(ls.n), rowCap-earned)
		return l.store(ctx, tx, b)
	})
	if err != nil {
		return leased{}, err
	}
	return ls, nil
}

func seconds(s float64) time.Duration {
	return time.Duration(math.Min(s*float64(time.Second), float64(math.MaxInt64)))
}

// Throttled tells the fleet that Graph answered 429 (or 503 with
// Retry-After). retryAfter < 0 means Graph gave none. It pauses every
// process until the pause ends (this one at once: its block is dropped;
// others at their next lease), cuts the rate once per Cooldown, and returns
// the pause the caller's request should observe at least.
func (l *Limiter) Throttled(ctx context.Context, retryAfter time.Duration) (time.Duration, error) {
	if l == nil || l.cfg.Rate <= 0 {
		return l.pause(0, retryAfter), nil
	}
	l.drop(time.Time{})
	var pause, fleetPause time.Duration
	var local time.Time
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		b, err := l.lockBucket(ctx, tx)
		if err != nil {
			return err
		}
		local = l.clock.local(b.now, time.Now())
		if b.now.After(b.pausedUntil) {
			l.advance(b)
		}
		// Slots leased before this 429 run until the row's debt is repaid,
		// at the rate they were leased at, from here (or an earlier
		// pause's end).
		owedFrom, owedFactor := b.now, b.factor
		if b.pausedUntil.After(owedFrom) {
			owedFrom = b.pausedUntil
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
		fleetPause = b.pausedUntil.Sub(b.now)
		// After the pause the row starts empty, or still in debt for slots
		// leased before it that fall after its end.
		repaid, _ := l.accrue(owedFactor, b.pausedUntil.Sub(owedFrom).Seconds())
		b.tokens = math.Min(0, b.tokens+repaid)
		return l.store(ctx, tx, b)
	})
	if err != nil {
		return 0, err
	}
	// Drop again: a block leased while the pause was being written is of
	// before it.
	l.drop(local.Add(fleetPause))
	return pause, nil
}

// drop ends this process's block and wakes its waiters; none is granted
// before until.
func (l *Limiter) drop(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blk = nil
	close(l.dropped)
	l.dropped = make(chan struct{})
	if until.After(l.idleUntil) {
		l.idleUntil = until
	}
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

// State is a snapshot of a limit, for status output and tests. Tokens is
// the row's level when last written: at most one, below zero while leased
// slots are still owed.
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

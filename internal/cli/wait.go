package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/stall"
	"github.com/bulkassign/bulkassign/internal/store"
)

// waitFlags are the flags of every command that can follow a batch.
type waitFlags struct {
	wait     *bool
	interval *time.Duration
}

func addWaitFlags(fs *flag.FlagSet, what string) waitFlags {
	return waitFlags{
		wait: fs.Bool("wait", false, "follow "+what+" until every row is final: a live bar on a terminal, a line every -progress-interval otherwise; exit 1 if any row failed"),
		interval: fs.Duration("progress-interval", 5*time.Second,
			"with -wait when stderr is not a terminal: how often a progress line is written"),
	}
}

func (w waitFlags) check() error {
	if *w.interval <= 0 {
		return usageError("-progress-interval %s: must be a positive duration (e.g. 5s)", *w.interval)
	}
	return nil
}

const (
	// redrawEvery is the live bar's refresh period.
	redrawEvery = 250 * time.Millisecond
	// stallAfter is how long no row may finish before the hint that no
	// worker may be running, when the follower cannot ask why.
	stallAfter = 30 * time.Second
	// whyAfter is how long no row may finish before the follower asks why
	// (stall.Why) and says so; whyEvery spaces the asking.
	whyAfter = 3 * time.Second
	whyEvery = 2 * time.Second
)

// follower polls a batch and shows its progress on stderr until every row
// it follows is final.
type follower struct {
	env      *Env
	label    string // "batch 3f2a9c1e"
	interval time.Duration
	poll     func(context.Context) (progress, error)
	// why, when set, says why the rows do not move (stall.Why): printed
	// when no row finished for whyAfter and the reason changed.
	why  func(context.Context) (stall.Reason, error)
	hint string // the command to resume following, for the messages
}

// run follows until done, ctx ends (an error) or poll fails.
func (f *follower) run(ctx context.Context) (progress, error) {
	tty := f.env.StderrIsTerminal
	width := terminalWidth(f.env)
	meter := &rateMeter{window: 10 * time.Second}
	tick := min(f.interval, time.Second)
	if tty {
		tick = redrawEvery
	}
	var (
		last       progress
		lastPlain  time.Time
		lastChange = time.Now()
		hinted     bool
		drawn      bool
		lastWhy    time.Time
		said       string
	)
	endBar := func() {
		if drawn {
			fmt.Fprintln(f.env.Stderr)
			drawn = false
		}
	}
	for first := true; ; first = false {
		began := time.Now()
		p, err := f.poll(ctx)
		if err != nil {
			endBar()
			if ctx.Err() != nil {
				return last, f.stopped()
			}
			return last, err
		}
		now := time.Now()
		if first || p.done != last.done {
			lastChange = now
		}
		last = p
		meter.add(now, p.done)
		rate := meter.rate()
		switch {
		case tty:
			fmt.Fprintf(f.env.Stderr, "\r%s\x1b[K", barLine(width, p, rate))
			drawn = true
		case p.finished() || lastPlain.IsZero() || now.Sub(lastPlain) >= f.interval:
			fmt.Fprintln(f.env.Stderr, plainLine(f.label, p, rate))
			lastPlain = now
		}
		if p.finished() {
			endBar()
			return p, nil
		}
		if f.why != nil && now.Sub(lastChange) >= whyAfter && now.Sub(lastWhy) >= whyEvery {
			lastWhy = now
			r, err := f.why(ctx)
			if err != nil {
				endBar()
				if ctx.Err() != nil {
					return last, f.stopped()
				}
				return last, err
			}
			if r.Text != said {
				if r.Text != "" {
					endBar()
					fmt.Fprintf(f.env.Stderr, "%s: %s\n", f.label, r.Text)
				}
				said = r.Text
			}
		}
		if f.why == nil && !hinted && now.Sub(lastChange) >= stallAfter {
			endBar()
			fmt.Fprintf(f.env.Stderr, "%s: no row finished in the last %s: is a worker running? (start one with `worker`)\n",
				f.label, stallAfter)
			hinted = true
		}
		// A poll of a very large batch costs time: never spend more than
		// a fifth of the time polling.
		wait := max(tick, 4*time.Since(began))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			endBar()
			return last, f.stopped()
		case <-t.C:
		}
	}
}

func (f *follower) stopped() error {
	return fmt.Errorf("stopped following %s; it goes on without us (%s)", f.label, f.hint)
}

// terminalWidth is $COLUMNS when the shell exports it, else 80.
func terminalWidth(env *Env) int {
	if v, ok := env.Getenv("COLUMNS"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 20 {
			return n
		}
	}
	return 80
}

// batchProgress turns a batch's counts into progress.
func batchProgress(c store.StatusCounts) progress {
	p := progress{total: c.Total(), done: c.Final(), parts: []part{
		{"created", "created", c[assign.StatusCreated]},
		{"already_assigned", "already", c[assign.StatusAlreadyAssigned]},
		{"failed", "failed", c[assign.StatusFailed]},
	}}
	// Statuses most batches never have are shown only when counted.
	for _, o := range []struct {
		st    assign.Status
		short string
	}{{assign.StatusRemoved, "removed"}, {assign.StatusNotAssigned, "absent"}, {assign.StatusCanceled, "canceled"}} {
		if n := c[o.st]; n > 0 {
			p.parts = append(p.parts, part{string(o.st), o.short, n})
		}
	}
	return p
}

func revertProgress(c store.RevertCounts) progress {
	p := progress{total: c.Total(), done: c.Final(), parts: []part{
		{"reverted", "reverted", c[assign.RevertReverted]},
		{"failed", "failed", c[assign.RevertFailed]},
	}}
	if n := c[assign.RevertCanceled]; n > 0 {
		p.parts = append(p.parts, part{"canceled", "canceled", n})
	}
	return p
}

// followBatch follows a batch's rows until all are final.
func followBatch(ctx context.Context, env *Env, db *store.DB, b *store.Batch, interval time.Duration) (store.StatusCounts, time.Duration, error) {
	var counts store.StatusCounts
	start := time.Now()
	f := &follower{env: env, label: "batch " + shortID(b.ID), interval: interval,
		hint: "enqueue status " + b.ID + " --wait",
		why:  func(ctx context.Context) (stall.Reason, error) { return stall.Why(ctx, db, b.ID) },
		poll: func(ctx context.Context) (progress, error) {
			c, err := store.CountByStatus(ctx, db, b.ID)
			if err != nil {
				return progress{}, err
			}
			counts = c
			return batchProgress(c), nil
		}}
	_, err := f.run(ctx)
	return counts, time.Since(start), err
}

// followRevert follows a batch's revert until every row's revert is final.
func followRevert(ctx context.Context, env *Env, db *store.DB, b *store.Batch, interval time.Duration) (store.RevertCounts, time.Duration, error) {
	var counts store.RevertCounts
	start := time.Now()
	f := &follower{env: env, label: "revert " + shortID(b.ID), interval: interval,
		hint: "enqueue revert " + b.ID + " --wait",
		why:  func(ctx context.Context) (stall.Reason, error) { return stall.Why(ctx, db, b.ID) },
		poll: func(ctx context.Context) (progress, error) {
			c, err := store.CountReverts(ctx, db, b.ID)
			if err != nil {
				return progress{}, err
			}
			counts = c
			return revertProgress(c), nil
		}}
	_, err := f.run(ctx)
	return counts, time.Since(start), err
}

// waitForBatches follows each batch in turn, printing a summary table of
// each to stderr (stdout keeps its one-batch-id-a-line contract). It fails
// (exit 1) when any row of any batch ended failed or canceled.
func waitForBatches(ctx context.Context, env *Env, db *store.DB, batches []*store.Batch, interval time.Duration) error {
	var bad []error
	for _, b := range batches {
		counts, took, err := followBatch(ctx, env, db, b, interval)
		if err != nil {
			return err
		}
		tenants, err := store.CountByTenant(ctx, db, b.ID)
		if err != nil {
			return err
		}
		writeBatchSummary(env.Stderr, b, counts, tenants, took)
		rc, err := retryCounts(ctx, db, b, counts)
		if err != nil {
			return err
		}
		if err := batchOutcome(b, counts, rc); err != nil {
			bad = append(bad, err)
		}
	}
	return errors.Join(bad...)
}

// retryCounts counts the rows a retry can help, when some failed or were
// canceled (for batchOutcome).
func retryCounts(ctx context.Context, db *store.DB, b *store.Batch, c store.StatusCounts) (store.RetryCounts, error) {
	if c[assign.StatusFailed]+c[assign.StatusCanceled] == 0 {
		return store.RetryCounts{}, nil
	}
	rc, err := store.CountRetryable(ctx, db, b.ID)
	if err != nil {
		return rc, err
	}
	// A reverted batch is not retried (batchop.ErrReverted): no advice to.
	reverts, err := store.CountReverts(ctx, db, b.ID)
	if reverts.Total() > 0 {
		rc.Retryable, rc.NotFound = 0, 0
		rc.Reverted = true
	}
	return rc, err
}

// batchOutcome is nil when every row ended created or already_assigned. It
// suggests a retry only for rows it can help: a row whose configuration
// does not exist fails again until its list is fixed.
func batchOutcome(b *store.Batch, c store.StatusCounts, rc store.RetryCounts) error {
	failed, canceled := c[assign.StatusFailed], c[assign.StatusCanceled]
	if failed+canceled == 0 {
		return nil
	}
	id := shortID(b.ID)
	msg := fmt.Sprintf("batch %s: %d rows failed and %d were canceled: `enqueue results %s --status failed,canceled` lists them", id, failed, canceled, id)
	notFound := fmt.Sprintf("%d rows name a configuration that does not exist (HTTP 404) and fail the same way on a retry: fix their configuration ids in the list and enqueue it again", rc.NotFound)
	switch {
	case rc.Reverted:
		msg += "; the batch was reverted, so it is not retried: enqueue its list again instead"
	case rc.NotFound == 0:
		msg += fmt.Sprintf("; `enqueue retry %s` runs them again", id)
	case rc.Retryable == 0:
		msg += "; " + notFound
	default:
		msg += fmt.Sprintf("; `enqueue retry %s` runs the other %d again; %s", id, rc.Retryable, notFound)
	}
	return errors.New(msg)
}

// revertOutcome is nil when every queued revert ended reverted.
func revertOutcome(b *store.Batch, c store.RevertCounts) error {
	failed, canceled := c[assign.RevertFailed], c[assign.RevertCanceled]
	if failed+canceled == 0 {
		return nil
	}
	return fmt.Errorf("revert of batch %s: %d rows failed and %d were canceled: `enqueue results %s` shows why; `enqueue revert %s` tries them again",
		shortID(b.ID), failed, canceled, shortID(b.ID), shortID(b.ID))
}

func writeBatchSummary(w io.Writer, b *store.Batch, c store.StatusCounts, tenants store.TenantCounts, took time.Duration) {
	fmt.Fprintf(w, "batch %s  %s  %d rows  followed for %s\n", b.ID, b.Source, c.Total(), took.Round(time.Second))
	writeCounts(w, c)
	writeTenantCounts(w, tenants)
}

func writeRevertSummary(w io.Writer, b *store.Batch, c store.RevertCounts, took time.Duration) {
	fmt.Fprintf(w, "revert of batch %s  %s  %d assignments  followed for %s\n", b.ID, b.Source, c.Total(), took.Round(time.Second))
	writeRevertCounts(w, c)
}

// writeRevertCounts prints one line per revert status, then the total.
func writeRevertCounts(w io.Writer, c store.RevertCounts) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range assign.RevertStatuses {
		fmt.Fprintf(tw, "revert %s\t%d\t\n", s, c[s])
	}
	fmt.Fprintf(tw, "%s\t%d\t\n", strings.Repeat("-", 16), c.Total())
	tw.Flush()
}

// statusWait follows the batch, and its revert when one is under way, then
// prints the status as `enqueue status` does. It fails (exit 1) when any
// row (or revert) failed or was canceled.
func statusWait(ctx context.Context, env *Env, db *store.DB, b *store.Batch, interval time.Duration) error {
	counts, _, err := followBatch(ctx, env, db, b, interval)
	if err != nil {
		return err
	}
	reverts, err := store.CountReverts(ctx, db, b.ID)
	if err != nil {
		return err
	}
	if reverts.Final() < reverts.Total() {
		if reverts, _, err = followRevert(ctx, env, db, b, interval); err != nil {
			return err
		}
	}
	tenants, err := store.CountByTenant(ctx, db, b.ID)
	if err != nil {
		return err
	}
	counts = tenants.Sum()
	if err := printStatus(ctx, env, db, b, tenants); err != nil {
		return err
	}
	rc, err := retryCounts(ctx, db, b, counts)
	if err != nil {
		return err
	}
	outcome := batchOutcome(b, counts, rc)
	if reverts.Total() > 0 {
		outcome = errors.Join(outcome, revertOutcome(b, reverts))
	}
	return outcome
}

// printStatus is the output of `enqueue status`: the batch, its rows by
// status, by tenant when they are of more than one, and, when it was
// reverted, its reverts by status.
func printStatus(ctx context.Context, env *Env, db *store.DB, b *store.Batch, tenants store.TenantCounts) error {
	fmt.Fprintf(env.Stdout, "batch %s  %s  %d rows  enqueued %s\n", b.ID, b.Source, b.RowCount, b.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	writeCounts(env.Stdout, tenants.Sum())
	writeTenantCounts(env.Stdout, tenants)
	reverts, err := store.CountReverts(ctx, db, b.ID)
	if err != nil {
		return err
	}
	if reverts.Total() > 0 {
		writeRevertCounts(env.Stdout, reverts)
	}
	return nil
}

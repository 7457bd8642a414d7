package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/batchop"
	"github.com/bulkassign/bulkassign/internal/store"
)

// The commands of package batchop: retry, cancel and revert a batch.

// opBatch parses the one batch argument of an operation and opens the
// database.
func opBatch(ctx context.Context, env *Env, name, usage string, args []string, withWait bool) (*store.DB, *store.Batch, waitFlags, error) {
	fs := newFlagSet(env, "enqueue "+name, usage)
	var wf waitFlags
	if withWait {
		wf = addWaitFlags(fs, "the rows")
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, nil, wf, err
	}
	if withWait {
		if err := wf.check(); err != nil {
			return nil, nil, wf, err
		}
	} else {
		no := false
		wf.wait = &no
	}
	db, b, err := openBatch(ctx, env, name, pos, openMigrated, 4)
	return db, b, wf, err
}

const retryUsage = `usage: enqueue retry BATCH [--wait]

Runs the batch's failed and canceled rows again, as new attempts of the same
rows: each row's last outcome is kept in item_history and the row is worked
afresh (Graph re-read, so nothing is created twice). Rows whose previous job
is still finishing are left for a later retry. Not for a reverted batch.

flags:
`

func enqueueRetry(ctx context.Context, env *Env, args []string) error {
	db, b, wf, err := opBatch(ctx, env, "retry", retryUsage, args, true)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := batchop.Retry(ctx, db, b.ID)
	if errors.Is(err, batchop.ErrReverted) {
		return fmt.Errorf("batch %s was reverted: retrying it would undo the revert; enqueue its list again instead (enqueue revert %s runs again the reverts that failed)", shortID(b.ID), shortID(b.ID))
	}
	if err != nil {
		return err
	}
	if len(res.Queued) == 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: no failed or canceled rows to retry\n", shortID(b.ID))
	} else {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d failed or canceled rows queued again\n", shortID(b.ID), len(res.Queued))
	}
	if res.StillFinishing > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows are still finishing their previous run; retry again once they are done\n", shortID(b.ID), res.StillFinishing)
	}
	if !*wf.wait {
		return nil
	}
	return waitForBatches(ctx, env, db, []*store.Batch{b}, *wf.interval)
}

const cancelUsage = `usage: enqueue cancel BATCH [-settle-for 2m]

Stops the batch's rows that are not final yet. A row with no write in
flight ends canceled at once, and its queued job is canceled. A row whose
write may be in flight (or whose last write's answer was lost) is
cancelling: it starts no new write, and ends created (or removed) if that
write applied, canceled if not. Cancel waits up to -settle-for for those to
settle, then prints the batch's counts as they are: the counts it leaves.
A revert under way is stopped the same way.

flags:
`

// cancelPoll is how often cancel looks whether its cancelling rows settled.
const cancelPoll = 250 * time.Millisecond

func enqueueCancel(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue cancel", cancelUsage)
	settleFor := fs.Duration("settle-for", 2*time.Minute, "how long to wait for rows whose write was in flight to settle (0: do not wait)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *settleFor < 0 {
		return usageError("-settle-for %s: must be 0 or a positive duration (e.g. 2m)", *settleFor)
	}
	db, b, err := openBatch(ctx, env, "cancel", pos, openMigrated, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := batchop.Cancel(ctx, db, b.ID)
	if err != nil {
		return err
	}
	id := shortID(b.ID)
	stopped := res.Rows.Canceled + res.Rows.Cancelling + res.Reverts.Canceled + res.Reverts.Cancelling
	switch {
	case stopped == 0:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: nothing to cancel: every row is final or being cancelled\n", id)
	case res.Reverts.Canceled == 0:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows canceled\n", id, res.Rows.Canceled)
	default:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows and %d reverts canceled\n", id, res.Rows.Canceled, res.Reverts.Canceled)
	}
	rows, reverts := res.Rows.Cancelling, res.Reverts.Cancelling
	if rows+reverts > 0 && *settleFor > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows and %d reverts had a write in flight: waiting up to %s for each to settle\n",
			id, rows, reverts, *settleFor)
		wctx, cancel := context.WithTimeout(ctx, *settleFor)
		rows, reverts, err = batchop.Settled(wctx, db, b.ID, cancelPoll)
		cancel()
		if err != nil {
			return err
		}
	}
	counts, err := store.CountByStatus(ctx, db, b.ID)
	if err != nil {
		return err
	}
	rc, err := store.CountReverts(ctx, db, b.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "enqueue: batch %s: %s\n", id, countsLine(counts, rc))
	if rows+reverts > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows and %d reverts are still cancelling (a write in flight); each ends created, removed or reverted if it applied, canceled if not: enqueue status %s shows how they end\n",
			id, rows, reverts, id)
	}
	return nil
}

// countsLine is a batch's rows (and reverts) by status, in assign's order,
// leaving out the statuses no row has.
func countsLine(c store.StatusCounts, rc store.RevertCounts) string {
	var parts []string
	for _, st := range assign.Statuses {
		if n := c[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	line := fmt.Sprintf("%s (%d of %d rows final)", strings.Join(parts, ", "), c.Final(), c.Total())
	parts = parts[:0]
	for _, st := range assign.RevertStatuses {
		if n := rc[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	if len(parts) > 0 {
		line += "; reverts: " + strings.Join(parts, ", ")
	}
	return line
}

const revertUsage = `usage: enqueue revert BATCH [--wait]

Deletes exactly the assignments this batch created (rows created with an
assignment id); rows whose target was already assigned are left alone, so
the tenant returns to what it was before the batch. Each row records the
outcome of its revert (revert_status in assignment_results). The batch must
be finished (wait for it, or cancel it). Running it again re-tries only
reverts that failed or were canceled.

flags:
`

func enqueueRevert(ctx context.Context, env *Env, args []string) error {
	db, b, wf, err := opBatch(ctx, env, "revert", revertUsage, args, true)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := batchop.Revert(ctx, db, b.ID)
	var notFinal *batchop.NotFinalError
	var inFlight *batchop.InFlightError
	switch {
	case errors.As(err, &notFinal):
		return fmt.Errorf("batch %s has %d rows not final yet: wait for it (enqueue status %s --wait) or cancel it (enqueue cancel %s) first",
			shortID(b.ID), notFinal.Open, shortID(b.ID), shortID(b.ID))
	case errors.As(err, &inFlight):
		return fmt.Errorf("batch %s has %d rows still finishing a Graph call: run revert again in a minute", shortID(b.ID), inFlight.Rows)
	case err != nil:
		return err
	}
	if len(res.Queued) > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows queued to revert (an assignment it created is deleted, one it removed is put back); %d rows that found their target already assigned are left alone\n",
			shortID(b.ID), len(res.Queued), res.AlreadyAssigned)
	} else {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: nothing new to revert (%d of %d reverts done)\n", shortID(b.ID), res.Reverts.Final(), res.Reverts.Total())
	}
	if res.InDoubt > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows ended while a write of theirs may have applied unseen: their reverts read Graph first and undo only what applied\n",
			shortID(b.ID), res.InDoubt)
	}
	if !*wf.wait {
		return nil
	}
	reverts, took, err := followRevert(ctx, env, db, b, *wf.interval)
	if err != nil {
		return err
	}
	writeRevertSummary(env.Stderr, b, reverts, took)
	return revertOutcome(b, reverts)
}

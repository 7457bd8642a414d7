package cli

import (
	"context"
	"errors"
	"fmt"

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
		return fmt.Errorf("batch %s was reverted: retrying it would undo the revert; enqueue its list again instead", shortID(b.ID))
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

const cancelUsage = `usage: enqueue cancel BATCH

Stops the batch's rows that are not final yet: they end canceled, and their
queued jobs are canceled. Rows in flight finish their Graph call; one whose
create applied ends created (so that revert can find it). A revert under
way is stopped the same way.

flags:
`

func enqueueCancel(ctx context.Context, env *Env, args []string) error {
	db, b, _, err := opBatch(ctx, env, "cancel", cancelUsage, args, false)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := batchop.Cancel(ctx, db, b.ID)
	if err != nil {
		return err
	}
	switch {
	case res.Rows == 0 && res.Reverts == 0:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: nothing to cancel: every row is final\n", shortID(b.ID))
	case res.Reverts == 0:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows canceled\n", shortID(b.ID), res.Rows)
	default:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows and %d reverts canceled\n", shortID(b.ID), res.Rows, res.Reverts)
	}
	if res.InFlight > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows were in flight and finish their Graph call; a create that applies ends created\n",
			shortID(b.ID), res.InFlight)
	}
	return nil
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
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: warning: %d rows ended without a result while their create was in flight; it may have applied unseen: `enqueue retry %s` settles them, then revert again\n",
			shortID(b.ID), res.InDoubt, shortID(b.ID))
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

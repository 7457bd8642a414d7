package cli

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Retry, cancel and revert change a batch after it was enqueued. Each runs
// in one transaction holding the batch's row (store.LockBatch), so two of
// them never interleave, and each is safe to run again: a second run finds
// nothing left to do, or only what the first left unfinished.

func init() {
	enqueueCommands["retry"] = enqueueRetry
	enqueueCommands["cancel"] = enqueueCancel
	enqueueCommands["revert"] = enqueueRevert
}

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

// withBatchLocked runs fn in a transaction that holds the batch's row, so
// that no other operation on the batch interleaves.
func withBatchLocked(ctx context.Context, db *store.DB, batchID string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db.Pool(), func(tx pgx.Tx) error {
		if err := store.LockBatch(ctx, tx, batchID); err != nil {
			return err
		}
		return fn(tx)
	})
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
	rc, err := jobs.NewInsertClient(db.Pool())
	if err != nil {
		return err
	}
	var rows []int
	var left int
	err = withBatchLocked(ctx, db, b.ID, func(tx pgx.Tx) error {
		reverts, err := store.CountReverts(ctx, tx, b.ID)
		if err != nil {
			return err
		}
		if reverts.Total() > 0 {
			return fmt.Errorf("batch %s was reverted: retrying it would undo the revert; enqueue its list again instead", shortID(b.ID))
		}
		// A row whose last job still runs (canceled while in flight) must
		// not get a second job beside it: two jobs could both post.
		live, err := store.LiveJobRows(ctx, tx, jobs.AssignArgs{}.Kind(), b.ID)
		if err != nil {
			return err
		}
		if rows, err = store.RetryItems(ctx, tx, b.ID, live); err != nil {
			return err
		}
		if err := jobs.InsertJobs(ctx, tx, rc, len(rows), func(i int) river.JobArgs { return jobs.AssignArgs{Batch: b.ID, Row: rows[i]} }); err != nil {
			return err
		}
		counts, err := store.CountByStatus(ctx, tx, b.ID)
		left = counts[assign.StatusFailed] + counts[assign.StatusCanceled]
		return err
	})
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: no failed or canceled rows to retry\n", shortID(b.ID))
	} else {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d failed or canceled rows queued again\n", shortID(b.ID), len(rows))
	}
	if left > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows are still finishing their previous run; retry again once they are done\n", shortID(b.ID), left)
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
	var rows, reverts int
	err = withBatchLocked(ctx, db, b.ID, func(tx pgx.Tx) error {
		var err error
		if rows, err = store.CancelItems(ctx, tx, b.ID); err != nil {
			return err
		}
		if _, err = store.CancelJobs(ctx, tx, jobs.AssignArgs{}.Kind(), b.ID); err != nil {
			return err
		}
		if reverts, err = store.CancelReverts(ctx, tx, b.ID); err != nil {
			return err
		}
		_, err = store.CancelJobs(ctx, tx, jobs.RevertArgs{}.Kind(), b.ID)
		return err
	})
	if err != nil {
		return err
	}
	inFlight, err := store.LiveJobRows(ctx, db, jobs.AssignArgs{}.Kind(), b.ID)
	if err != nil {
		return err
	}
	switch {
	case rows == 0 && reverts == 0:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: nothing to cancel: every row is final\n", shortID(b.ID))
	case reverts == 0:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows canceled\n", shortID(b.ID), rows)
	default:
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows and %d reverts canceled\n", shortID(b.ID), rows, reverts)
	}
	if len(inFlight) > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d rows were in flight and finish their Graph call; a create that applies ends created\n",
			shortID(b.ID), len(inFlight))
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
	rc, err := jobs.NewInsertClient(db.Pool())
	if err != nil {
		return err
	}
	var rows []int
	var counts store.StatusCounts
	err = withBatchLocked(ctx, db, b.ID, func(tx pgx.Tx) error {
		var err error
		if counts, err = store.CountByStatus(ctx, tx, b.ID); err != nil {
			return err
		}
		if open := counts.Total() - counts.Final(); open > 0 {
			return fmt.Errorf("batch %s has %d rows not final yet: wait for it (enqueue status %s --wait) or cancel it (enqueue cancel %s) first",
				shortID(b.ID), open, shortID(b.ID), shortID(b.ID))
		}
		// A canceled row in flight may still end created: revert only
		// once no job of the batch can create anything.
		live, err := store.LiveJobRows(ctx, tx, jobs.AssignArgs{}.Kind(), b.ID)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return fmt.Errorf("batch %s has %d rows still finishing a Graph call: run revert again in a minute", shortID(b.ID), len(live))
		}
		if rows, err = store.QueueRevert(ctx, tx, b.ID); err != nil {
			return err
		}
		return jobs.InsertJobs(ctx, tx, rc, len(rows), func(i int) river.JobArgs { return jobs.RevertArgs{Batch: b.ID, Row: rows[i]} })
	})
	if err != nil {
		return err
	}
	reverts, err := store.CountReverts(ctx, db, b.ID)
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: %d assignments it created queued for deletion; %d rows that found their target already assigned are left alone\n",
			shortID(b.ID), len(rows), counts[assign.StatusAlreadyAssigned])
	} else {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: nothing new to revert (%d of %d reverts done)\n", shortID(b.ID), reverts.Final(), reverts.Total())
	}
	if n, err := store.CountInDoubt(ctx, db, b.ID); err != nil {
		return err
	} else if n > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: batch %s: warning: %d rows ended without a result while their create was in flight; it may have applied unseen: `enqueue retry %s` settles them, then revert again\n",
			shortID(b.ID), n, shortID(b.ID))
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

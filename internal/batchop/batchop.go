// Package batchop holds the operations that create and change batches:
// Enqueue writes lists as batches; Retry, Cancel and Revert change a batch
// after it was enqueued. The commands (internal/cli) parse their arguments,
// call these and print the results.
//
// Retry, cancel and revert each run in one transaction holding the batch's
// row (store.LockBatch), so two of them never interleave, and each is safe
// to run again: a second run finds nothing left to do, or only what the
// first left unfinished.
package batchop

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Enqueue writes each input as a batch with one job per row, all or none
// (see jobs.Enqueue), rows that name no tenant in the input's default
// tenant; invalid rows are a *jobs.InvalidInputError, and a row that
// names no tenant when the default is not a tenant id a
// *jobs.NoTenantError.
func Enqueue(ctx context.Context, db *store.DB, inputs []jobs.Input) ([]jobs.Enqueued, error) {
	rc, err := jobs.NewInsertClient(db.Pool())
	if err != nil {
		return nil, err
	}
	return jobs.Enqueue(ctx, db.Pool(), rc, inputs)
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

// RetryResult is what Retry did.
type RetryResult struct {
	// Queued are the failed and canceled rows queued again, in order.
	Queued []int
	// StillFinishing counts the failed and canceled rows left for a later
	// retry because their previous job still runs.
	StillFinishing int
}

// Retry runs the batch's failed and canceled rows again, as new attempts
// of the same rows (store.RetryItems), except rows whose previous job still
// runs. A reverted batch is ErrReverted.
func Retry(ctx context.Context, db *store.DB, batchID string) (RetryResult, error) {
	rc, err := jobs.NewInsertClient(db.Pool())
	if err != nil {
		return RetryResult{}, err
	}
	var res RetryResult
	err = withBatchLocked(ctx, db, batchID, func(tx pgx.Tx) error {
		st, err := ReadState(ctx, tx, batchID)
		if err != nil {
			return err
		}
		if err := st.Allowed(OpRetry); errors.Is(err, ErrReverted) {
			return err
		}
		// A row whose last job still runs (canceled while in flight) must
		// not get a second job beside it: two jobs could both post.
		live, err := store.LiveJobRows(ctx, tx, jobs.AssignArgs{}.Kind(), batchID)
		if err != nil {
			return err
		}
		rows, err := store.RetryItems(ctx, tx, batchID, live)
		if err != nil {
			return err
		}
		tenants, err := store.RowTenants(ctx, tx, batchID, rows)
		if err != nil {
			return err
		}
		if err := jobs.InsertJobs(ctx, tx, rc, len(rows), func(i int) river.JobArgs {
			return jobs.AssignArgs{Batch: batchID, Row: rows[i], Tenant: tenants[rows[i]]}
		}); err != nil {
			return err
		}
		counts, err := store.CountByStatus(ctx, tx, batchID)
		res = RetryResult{Queued: rows, StillFinishing: counts[assign.StatusFailed] + counts[assign.StatusCanceled]}
		return err
	})
	if err != nil {
		return RetryResult{}, err
	}
	return res, nil
}

// CancelResult is what Cancel did.
type CancelResult struct {
	// Rows and Reverts count the rows and the reverts cancel stopped.
	Rows, Reverts store.CancelCounts
}

// Cancel stops the batch's rows and reverts that are not final and cancels
// their queued jobs. A row with no write in flight ends canceled at once;
// one whose write may be in flight (or may have applied unseen) is
// cancelling: it starts no new write, and its run ends it created (or
// removed) if the write applied, canceled if not (store.CancelItems). Its
// job is kept and made due, so that it settles soon. Running jobs are left
// to finish their Graph call. Settled waits for the cancelling to end.
func Cancel(ctx context.Context, db *store.DB, batchID string) (CancelResult, error) {
	var res CancelResult
	err := withBatchLocked(ctx, db, batchID, func(tx pgx.Tx) error {
		var err error
		if res.Rows, err = store.CancelItems(ctx, tx, batchID); err != nil {
			return err
		}
		if _, err = store.CancelJobs(ctx, tx, jobs.AssignArgs{}.Kind(), batchID, false); err != nil {
			return err
		}
		if res.Reverts, err = store.CancelReverts(ctx, tx, batchID); err != nil {
			return err
		}
		_, err = store.CancelJobs(ctx, tx, jobs.RevertArgs{}.Kind(), batchID, true)
		return err
	})
	if err != nil {
		return CancelResult{}, err
	}
	return res, nil
}

// Cancelling counts the batch's rows and reverts still being cancelled.
func Cancelling(ctx context.Context, db *store.DB, batchID string) (rows, reverts int, err error) {
	counts, err := store.CountByStatus(ctx, db, batchID)
	if err != nil {
		return 0, 0, err
	}
	rc, err := store.CountReverts(ctx, db, batchID)
	if err != nil {
		return 0, 0, err
	}
	return counts[assign.StatusCancelling], rc[assign.RevertCancelling], nil
}

// Settled polls until no row or revert of the batch is cancelling, ctx
// ends, or a poll fails; it returns how many are still cancelling.
func Settled(ctx context.Context, db *store.DB, batchID string, every time.Duration) (rows, reverts int, err error) {
	for {
		rows, reverts, err = Cancelling(ctx, db, batchID)
		if err != nil || rows+reverts == 0 {
			return rows, reverts, err
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return rows, reverts, nil
		case <-t.C:
		}
	}
}

// RevertResult is what Revert did.
type RevertResult struct {
	// Queued are the rows whose created assignment is queued for deletion,
	// in order.
	Queued []int
	// AlreadyAssigned counts the rows left alone: they found their target
	// assigned already.
	AlreadyAssigned int
	// Reverts counts the batch's reverts by status, after queueing.
	Reverts store.RevertCounts
	// InDoubt counts the rows that ended while a write of theirs was in
	// flight: it may have applied unseen. Their reverts read Graph first
	// and undo only what applied.
	InDoubt int
}

// Revert queues the undoing of exactly what the batch did (store.QueueRevert):
// the assignments it created are deleted, those it removed put back, and
// rows whose write was in doubt are read first and undone only if it
// applied. A second run queues only reverts that failed or were canceled.
// The batch must be finished: *NotFinalError or *InFlightError otherwise
// (State.Allowed).
func Revert(ctx context.Context, db *store.DB, batchID string) (RevertResult, error) {
	rc, err := jobs.NewInsertClient(db.Pool())
	if err != nil {
		return RevertResult{}, err
	}
	var res RevertResult
	err = withBatchLocked(ctx, db, batchID, func(tx pgx.Tx) error {
		st, err := ReadState(ctx, tx, batchID)
		if err != nil {
			return err
		}
		// Revert only once no job of the batch can write anything; with
		// nothing (new) to revert, it queues nothing.
		if err := st.Allowed(OpRevert); err != nil && !errors.Is(err, ErrNothingTo) {
			return err
		}
		rows, err := store.QueueRevert(ctx, tx, batchID)
		if err != nil {
			return err
		}
		res.Queued, res.AlreadyAssigned, res.InDoubt = rows, st.Counts[assign.StatusAlreadyAssigned], st.InDoubt
		tenants, err := store.RowTenants(ctx, tx, batchID, rows)
		if err != nil {
			return err
		}
		return jobs.InsertJobs(ctx, tx, rc, len(rows), func(i int) river.JobArgs {
			return jobs.RevertArgs{Batch: batchID, Row: rows[i], Tenant: tenants[rows[i]]}
		})
	})
	if err != nil {
		return RevertResult{}, err
	}
	if res.Reverts, err = store.CountReverts(ctx, db, batchID); err != nil {
		return RevertResult{}, err
	}
	return res, nil
}

// Prune removes the finished batches enqueued more than olderThan ago
// (store.Prune): every row and revert final, no job left running, not the
// latest run of a schedule. Their rows and River jobs go with them, in
// short transactions. With dryRun it only reports what would go. removed,
// when set, sees each batch as it goes.
func Prune(ctx context.Context, db *store.DB, olderThan time.Duration, dryRun bool, removed func(store.PrunedBatch)) (store.PruneReport, error) {
	o := jobs.PruneOptions(olderThan)
	o.DryRun, o.Removed = dryRun, removed
	return store.Prune(ctx, db.Pool(), o)
}

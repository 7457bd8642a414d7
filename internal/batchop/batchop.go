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
	"fmt"
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

// ErrReverted refuses to retry a reverted batch: retrying would create
// again what the revert deleted.
var ErrReverted = errors.New("the batch was reverted")

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
		reverts, err := store.CountReverts(ctx, tx, batchID)
		if err != nil {
			return err
		}
		if reverts.Total() > 0 {
			return ErrReverted
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
	// Rows and Reverts count the rows and the reverts canceled.
	Rows, Reverts int
	// InFlight counts the rows whose job was running: they finish their
	// Graph call, and a create that applies ends created.
	InFlight int
}

// Cancel ends the batch's rows and reverts that are not final as canceled
// and cancels their queued jobs. Running jobs are left to finish their
// Graph call.
func Cancel(ctx context.Context, db *store.DB, batchID string) (CancelResult, error) {
	var res CancelResult
	err := withBatchLocked(ctx, db, batchID, func(tx pgx.Tx) error {
		var err error
		if res.Rows, err = store.CancelItems(ctx, tx, batchID); err != nil {
			return err
		}
		if _, err = store.CancelJobs(ctx, tx, jobs.AssignArgs{}.Kind(), batchID); err != nil {
			return err
		}
		if res.Reverts, err = store.CancelReverts(ctx, tx, batchID); err != nil {
			return err
		}
		_, err = store.CancelJobs(ctx, tx, jobs.RevertArgs{}.Kind(), batchID)
		return err
	})
	if err != nil {
		return CancelResult{}, err
	}
	inFlight, err := store.LiveJobRows(ctx, db, jobs.AssignArgs{}.Kind(), batchID)
	if err != nil {
		return CancelResult{}, err
	}
	res.InFlight = len(inFlight)
	return res, nil
}

// NotFinalError refuses to revert a batch with rows not final yet: they
// could still create assignments.
type NotFinalError struct {
	Open int // rows not final
}

func (e *NotFinalError) Error() string { return fmt.Sprintf("%d rows are not final yet", e.Open) }

// InFlightError refuses to revert a batch whose rows are all final but
// some of whose jobs still run: a canceled row in flight may still end
// created.
type InFlightError struct {
	Rows int // rows whose job still runs
}

func (e *InFlightError) Error() string {
	return fmt.Sprintf("%d rows are still finishing a Graph call", e.Rows)
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
	// InDoubt counts the rows that ended without a result while their
	// create was in flight: it may have applied unseen, and revert cannot
	// see it (a retry settles them).
	InDoubt int
}

// Revert queues the deletion of exactly the assignments the batch created
// (store.QueueRevert); a second run queues only reverts that failed or
// were canceled. The batch must be finished: *NotFinalError or
// *InFlightError otherwise.
func Revert(ctx context.Context, db *store.DB, batchID string) (RevertResult, error) {
	rc, err := jobs.NewInsertClient(db.Pool())
	if err != nil {
		return RevertResult{}, err
	}
	var res RevertResult
	err = withBatchLocked(ctx, db, batchID, func(tx pgx.Tx) error {
		counts, err := store.CountByStatus(ctx, tx, batchID)
		if err != nil {
			return err
		}
		if open := counts.Total() - counts.Final(); open > 0 {
			return &NotFinalError{Open: open}
		}
		// A canceled row in flight may still end created: revert only
		// once no job of the batch can create anything.
		live, err := store.LiveJobRows(ctx, tx, jobs.AssignArgs{}.Kind(), batchID)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			return &InFlightError{Rows: len(live)}
		}
		rows, err := store.QueueRevert(ctx, tx, batchID)
		if err != nil {
			return err
		}
		res.Queued, res.AlreadyAssigned = rows, counts[assign.StatusAlreadyAssigned]
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
	if res.InDoubt, err = store.CountInDoubt(ctx, db, batchID); err != nil {
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

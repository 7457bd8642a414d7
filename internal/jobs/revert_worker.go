package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/backoff"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// RevertArgs names one item whose assignment the batch created and is to
// delete. As with AssignArgs, the item holds everything else.
type RevertArgs struct {
	Batch  string `json:"batch"`
	Row    int    `json:"row"`
	Tenant string `json:"tenant,omitempty"`
}

// Kind is the River job kind.
func (RevertArgs) Kind() string { return "bulkassign_revert" }

// InsertOpts shares the tenant's assignment queue: reverts and creates draw
// on the same write budget, so one pool of workers serves both.
func (a RevertArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: TenantQueue(a.Tenant), MaxAttempts: maxAttempts}
}

// RevertWorker deletes the assignment one row created, or creates again
// the assignment a remove row deleted. DELETE is idempotent, so nothing is
// ever in doubt: a DELETE whose answer was lost is simply sent again, and a
// 404 means the assignment is gone (reverted before, or removed by someone
// else). A create is not: every attempt to put an assignment back first
// reads the configuration path's assignments, and one already there ends
// the revert (restore).
type RevertWorker struct {
	river.WorkerDefaults[RevertArgs]
	d *Deps
}

// NewRevertWorker returns the worker with defaults applied to d.Settings.
func NewRevertWorker(d *Deps) *RevertWorker {
	d.withDefaults()
	return &RevertWorker{d: d}
}

// Timeout bounds one run of the job.
func (w *RevertWorker) Timeout(*river.Job[RevertArgs]) time.Duration { return w.d.Settings.JobTimeout }

// Work reverts one row.
func (w *RevertWorker) Work(ctx context.Context, job *river.Job[RevertArgs]) error {
	a := job.Args
	st, err := store.MarkRevertRunning(ctx, w.d.Pool, a.Batch, a.Row)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if st.Status == assign.RevertNone || st.Status.Final() {
		return nil // canceled, or done by a run whose completion was lost: River completes the job
	}
	it, err := store.GetItem(ctx, w.d.Pool, a.Batch, a.Row)
	if err != nil {
		return err
	}
	log := w.d.Logger.With("op", "revert", "batch", a.Batch, "row", a.Row, "line", it.Line,
		"configuration", it.Spec.ConfigurationID, "assignment_id", it.AssignmentID)
	run := assign.NewID() // this run's hold on the row, when it restores (restore)
	outcome := func(v verdict) store.RevertOutcome {
		o := revertOutcome(v)
		o.Run = run
		return o
	}
	r := &rowRun{batchID: a.Batch, errors: st.Errors, elapsed: st.Elapsed, log: log,
		record: func(ctx context.Context, v verdict) error {
			_, err := store.RecordRevert(ctx, w.d.Pool, a.Batch, a.Row, outcome(v))
			return err
		},
		finish: func(ctx context.Context, v verdict) error { return w.finish(ctx, job, log, outcome(v)) },
	}
	if st.Status == assign.RevertCancelling {
		// Canceled while a run of it worked, and that run is gone (this
		// is River's rescue): nothing more is sent. Revert again settles
		// it (a DELETE is sent again; a put-back reads first).
		return r.finish(ctx, verdict{Final: true, ErrorMessage: "its run was cut off while its request may have been in flight; enqueue revert again settles it"})
	}
	// A row in doubt ended while a write of its own may have applied: its
	// revert reads Graph first and undoes only what did.
	inDoubt := !it.Status.Applied() && it.IntentRequestID != ""
	removed := it.Status == assign.StatusRemoved || inDoubt && it.Spec.Action == assign.ActionRemove
	if !removed && !inDoubt && (it.Status != assign.StatusCreated || it.AssignmentID == "") {
		return r.finish(ctx, verdict{Final: true, ErrorCode: assign.CodeNothingToRevert,
			ErrorMessage: fmt.Sprintf("the row is %s without an assignment this batch created or removed", it.Status)})
	}
	if v := w.d.outOfPatience(st.Elapsed); v != nil {
		return r.finish(ctx, *v)
	}
	t, err := w.d.tenant(ctx, it.TenantID)
	if err != nil {
		if v := notAllowed(err); v != nil {
			return r.finish(ctx, *v)
		}
		return err
	}
	if removed {
		return w.restore(ctx, job, r, it, t, run)
	}
	assignmentID := it.AssignmentID
	if inDoubt {
		list, resp := readList(ctx, t.Graph, it.Spec.ConfigurationID, it.Spec.Path, func(ctx context.Context) error { return w.d.wait(ctx, t.Reads) }, r.log)
		switch {
		case list == nil:
			return w.d.settle(ctx, r, resp, t.Reads)
		case !list.Found:
			return r.finish(ctx, verdict{Final: true, HTTPStatus: list.HTTPStatus, ErrorCode: list.ErrorCode,
				ErrorMessage: list.ErrorMessage, RequestID: list.RequestID})
		}
		id, ok := list.Keys[it.Spec.Target.Key()]
		if !ok {
			return w.finish(ctx, job, log, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: http.StatusOK,
				ErrorCode: assign.CodeNothingToRevert, Error: "its write in doubt had not applied: nothing to undo",
				RequestID: list.RequestID, Run: run})
		}
		assignmentID = id // its create applied unseen (the claim kept any other row off the target)
	}
	if err := w.d.wait(ctx, t.Writes); err != nil {
		return w.d.settle(ctx, r, graph.NotSent(graph.OpDelete, err), t.Writes)
	}
	resp := t.Graph.DeleteAssignment(ctx, it.Spec.ConfigurationID, it.Spec.Path, assignmentID, graph.NewRequestID())
	log.Debug("graph delete", "status", resp.StatusCode, "request_id", resp.RequestID, "client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	if graph.Classify(resp).Action == graph.Succeed {
		// Deleted, or already gone: the tenant is as the revert wants it.
		return w.finish(ctx, job, log, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: resp.StatusCode, RequestID: resp.RequestID})
	}
	return w.d.settle(ctx, r, resp, t.Writes)
}

// revertOutcome maps a verdict onto the row's revert.
func revertOutcome(v verdict) store.RevertOutcome {
	o := store.RevertOutcome{Status: assign.RevertRetrying, HTTPStatus: v.HTTPStatus, ErrorCode: v.ErrorCode,
		Error: v.ErrorMessage, RequestID: v.RequestID, CountError: v.CountError}
	if v.Final {
		o.Status = assign.RevertFailed
	}
	return o
}

// finish records a final revert outcome; once it has committed, the run
// returns and River completes the job, as for creates (outcomes.go). A
// revert that deleted the assignment releases the row's claim on the
// target in the same transaction.
func (w *RevertWorker) finish(ctx context.Context, job *river.Job[RevertArgs], log *slog.Logger, o store.RevertOutcome) error {
	err := pgx.BeginFunc(ctx, w.d.Pool, func(tx pgx.Tx) error {
		wrote, err := store.RecordRevert(ctx, tx, job.Args.Batch, job.Args.Row, o)
		if err != nil || !wrote || o.Status != assign.RevertReverted {
			return err
		}
		return store.ReleaseClaims(ctx, tx, job.Args.Batch, job.Args.Row)
	})
	if err != nil {
		return fmt.Errorf("error recording revert %s: %w", o.Status, err)
	}
	attrs := []any{"revert_status", o.Status, "http_status", o.HTTPStatus, "request_id", o.RequestID}
	if o.Status == assign.RevertFailed {
		log.Warn("revert failed", append(attrs, "error_code", o.ErrorCode, "error", o.Error)...)
	} else {
		log.Info("reverted", attrs...)
	}
	return nil
}

// restore reverts a remove row: it creates again the target the row
// deleted (with its filter). Each attempt reads the path's assignments
// first, under the read limit, so a create whose answer was lost is found
// rather than sent twice, and a target someone assigned again meanwhile is
// left as it is.
func (w *RevertWorker) restore(ctx context.Context, job *river.Job[RevertArgs], r *rowRun, it *store.Item, t *Tenant, run string) error {
	d := w.d
	// Read and create under a hold on the row, as an assign run does: a
	// second run of this revert (a job River rescued early) must not read
	// the same "not there" and create the target beside this one.
	var held *store.HeldError
	switch err := store.HoldRevert(ctx, d.Pool, it.BatchID, it.Row, run, d.Settings.JobTimeout+RunMargin); {
	case errors.As(err, &held):
		return river.JobSnooze(backoff.Clamp(held.Left + time.Second))
	case err != nil:
		return err
	}
	list, resp := readList(ctx, t.Graph, it.Spec.ConfigurationID, it.Spec.Path, func(ctx context.Context) error { return d.wait(ctx, t.Reads) }, r.log)
	switch {
	case list == nil:
		return d.settle(ctx, r, resp, t.Reads)
	case !list.Found:
		return r.finish(ctx, verdict{Final: true, HTTPStatus: list.HTTPStatus, ErrorCode: list.ErrorCode,
			ErrorMessage: list.ErrorMessage, RequestID: list.RequestID})
	}
	if id, ok := list.Keys[it.Spec.Target.Key()]; ok {
		return w.finish(ctx, job, r.log, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: http.StatusOK,
			AssignmentID: id, RequestID: list.RequestID})
	}
	if err := d.wait(ctx, t.Writes); err != nil {
		return d.settle(ctx, r, graph.NotSent(graph.OpCreate, err), t.Writes)
	}
	created, resp := t.Graph.CreateAssignment(ctx, it.Spec.ConfigurationID, it.Spec.Path, it.Spec.Target, graph.NewRequestID())
	r.log.Debug("graph create", "status", resp.StatusCode, "request_id", resp.RequestID, "client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	if created != nil {
		return w.finish(ctx, job, r.log, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: resp.StatusCode,
			AssignmentID: created.ID, RequestID: resp.RequestID})
	}
	return d.settle(ctx, r, resp, t.Writes)
}

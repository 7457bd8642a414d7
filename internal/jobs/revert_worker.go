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
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/store"
)

// RevertArgs names one item whose assignment the batch created and is to
// delete. As with AssignArgs, the item holds everything else.
type RevertArgs struct {
	Batch string `json:"batch"`
	Row   int    `json:"row"`
}

// Kind is the River job kind.
func (RevertArgs) Kind() string { return "bulkassign_revert" }

// InsertOpts shares the assignment queue: reverts and creates draw on the
// same write budget, so one pool of workers serves both.
func (RevertArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAssign, MaxAttempts: 25}
}

// RevertWorker deletes the assignment one row created. DELETE is
// idempotent, so unlike a create nothing is ever in doubt: a DELETE whose
// answer was lost is simply sent again, and a 404 means the assignment is
// gone (reverted before, or removed by someone else).
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
	if st.Status == store.RevertNone || st.Status.Final() {
		return completeWith(ctx, w.d.Pool, job, nil) // canceled, or done by a run whose completion was lost
	}
	it, err := store.GetItem(ctx, w.d.Pool, a.Batch, a.Row)
	if err != nil {
		return err
	}
	log := w.d.Logger.With("op", "revert", "batch", a.Batch, "row", a.Row, "line", it.Line,
		"configuration", it.Spec.ConfigurationID, "assignment_id", it.AssignmentID)
	if it.Status != assign.StatusCreated || it.AssignmentID == "" {
		return w.finish(ctx, job, log, store.RevertOutcome{Status: store.RevertFailed, ErrorCode: "NothingToRevert",
			Error: fmt.Sprintf("the row is %s without an assignment this batch created", it.Status)})
	}
	if waited := time.Since(st.StartedAt); waited > w.d.Settings.Patience {
		return w.finish(ctx, job, log, store.RevertOutcome{Status: store.RevertFailed, ErrorCode: "PatienceExceeded",
			Error: fmt.Sprintf("gave up after %s without a final answer from Graph (GRAPH_PATIENCE)", waited.Round(time.Second))})
	}

	if err := w.d.wait(ctx, w.d.Writes); err != nil {
		return w.snoozeForWait(ctx, job, err)
	}
	resp := w.d.Graph.DeleteAssignment(ctx, it.Spec.ConfigurationID, it.Spec.Path, it.AssignmentID, graph.NewRequestID())
	log.Debug("graph delete", "status", resp.StatusCode, "request_id", resp.RequestID, "client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	o := store.RevertOutcome{HTTPStatus: resp.StatusCode, ErrorCode: resp.ErrorCode, Error: resp.ErrorMessage, RequestID: resp.RequestID}
	if resp.Err != nil {
		o.ErrorCode, o.Error = noAnswerCode(resp.Err), resp.Err.Error()
	}
	switch {
	case resp.Err == nil && (resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK):
		return w.finish(ctx, job, log, store.RevertOutcome{Status: store.RevertReverted, HTTPStatus: resp.StatusCode, RequestID: resp.RequestID})
	case resp.StatusCode == http.StatusNotFound:
		// Already gone: the tenant is as the revert wants it.
		return w.finish(ctx, job, log, store.RevertOutcome{Status: store.RevertReverted, HTTPStatus: resp.StatusCode, RequestID: resp.RequestID})
	case resp.StatusCode == 0 && !resp.Sent && ctx.Err() != nil:
		return w.snoozeForWait(ctx, job, ctx.Err()) // shutting down before the request left
	}

	dec := graph.Classify(resp)
	switch dec.Action {
	case graph.Throttle:
		pause, err := w.d.Writes.Throttled(ctx, resp.RetryAfter)
		if err != nil {
			return err
		}
		o.Status = store.RevertRetrying
		if _, err := store.RecordRevert(ctx, w.d.Pool, a.Batch, a.Row, o); err != nil {
			return err
		}
		log.Info("graph throttled", "op", resp.Op, "retry_after", resp.RetryAfter, "pause", pause, "request_id", resp.RequestID)
		return river.JobSnooze(pause + jittered(100*time.Millisecond, 100*time.Millisecond, 1))

	case graph.Fail:
		o.Status = store.RevertFailed
		if o.Error == "" {
			o.Error = dec.Why
		}
		return w.finish(ctx, job, log, o)

	default: // Retry, Reconcile: DELETE can simply be sent again
		errorsSoFar := st.Errors + 1
		o.CountError = true
		if errorsSoFar >= w.d.Settings.MaxErrors {
			o.Status = store.RevertFailed
			o.Error = fmt.Sprintf("gave up after %d failed attempts: %s", errorsSoFar, resp.Error())
			return w.finish(ctx, job, log, o)
		}
		o.Status = store.RevertRetrying
		if _, err := store.RecordRevert(ctx, w.d.Pool, a.Batch, a.Row, o); err != nil {
			return err
		}
		delay := max(jittered(w.d.Settings.RetryBase, w.d.Settings.RetryMax, errorsSoFar), resp.RetryAfter)
		log.Warn("graph delete failed; will retry", "status", resp.StatusCode, "request_id", resp.RequestID,
			"client_request_id", resp.ClientRequestID, "error", resp.Error(), "retry_in", delay, "errors", errorsSoFar)
		return river.JobSnooze(delay)
	}
}

// snoozeForWait reschedules a revert whose wait for the write budget ran
// out (or was cut short by shutdown) without spending an attempt.
func (w *RevertWorker) snoozeForWait(ctx context.Context, job *river.Job[RevertArgs], err error) error {
	var tooLong *ratelimit.WaitTooLongError
	delay := time.Second
	switch {
	case errors.As(err, &tooLong):
		delay = tooLong.Delay
	case ctx.Err() == nil:
		return err // the database behind the limiter failed: River retries
	}
	_, _ = store.RecordRevert(context.WithoutCancel(ctx), w.d.Pool, job.Args.Batch, job.Args.Row, store.RevertOutcome{
		Status: store.RevertRetrying, ErrorCode: "Waiting", Error: "waiting for the fleet's Graph rate limit"})
	return river.JobSnooze(delay)
}

// finish records a final revert outcome and completes the job in one
// transaction, as AssignWorker.finish does for creates.
func (w *RevertWorker) finish(ctx context.Context, job *river.Job[RevertArgs], log *slog.Logger, o store.RevertOutcome) error {
	err := completeWith(ctx, w.d.Pool, job, func(tx pgx.Tx) error {
		_, err := store.RecordRevert(ctx, tx, job.Args.Batch, job.Args.Row, o)
		return err
	})
	if err != nil {
		return fmt.Errorf("error recording revert %s: %w", o.Status, err)
	}
	attrs := []any{"revert_status", o.Status, "http_status", o.HTTPStatus, "request_id", o.RequestID}
	if o.Status == store.RevertFailed {
		log.Warn("revert failed", append(attrs, "error_code", o.ErrorCode, "error", o.Error)...)
	} else {
		log.Info("reverted", attrs...)
	}
	return nil
}

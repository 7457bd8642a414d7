package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/backoff"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
)

// The assign and revert workers differ in what they ask Graph and where
// they write; what a Graph answer makes them do is the same, and lives
// here: settle applies the response policy's decision to a row's run.

// verdict is what settle decided for a row, for the worker to record.
type verdict struct {
	// Final: the row ends (failed); otherwise it waits and runs again.
	Final bool
	// Waiting: the row waits without having failed (limit, throttle).
	Waiting      bool
	HTTPStatus   int
	ErrorCode    string
	ErrorMessage string
	RequestID    string
	// CountError: a failed attempt, counted against GRAPH_MAX_ERRORS.
	CountError bool
	// Decision is the policy's row for the answer (Ambiguous: a create or
	// delete that may have applied).
	Decision graph.Decision
}

// rowRun is one run of a row's job, as settle needs it.
type rowRun struct {
	batchID string
	// errors is the row's failed attempts before this answer; elapsed how
	// long since the row first started (the database's clock).
	errors  int
	elapsed time.Duration
	log     *slog.Logger
	// record writes a verdict that is not final; finish writes a final one
	// and completes the job in the same transaction.
	record func(context.Context, verdict) error
	finish func(context.Context, verdict) error
}

// settle applies the policy to a failed (or held back) exchange: it waits
// out limits and throttling without spending an attempt, retries what may
// pass later within the error budget, and ends the row on what will not.
// It returns the job's result: a snooze, nil once finished, or an error for
// River to retry (the database failed).
func (d *Deps) settle(ctx context.Context, r *rowRun, resp *graph.Response, limiter *ratelimit.Limiter) error {
	dec := graph.Classify(resp)
	v := verdict{HTTPStatus: resp.StatusCode, ErrorCode: resp.ErrorCode, ErrorMessage: resp.ErrorMessage,
		RequestID: resp.RequestID, Decision: dec}
	if resp.Err != nil {
		v.ErrorCode, v.ErrorMessage = noAnswerCode(resp.Err), resp.Err.Error()
	}
	switch dec.Action {
	case graph.Wait:
		if ctx.Err() == nil && dec.Delay == 0 {
			return resp.Err // the limiter's database failed: River retries
		}
		v.Waiting, v.ErrorCode, v.ErrorMessage = true, assign.CodeWaiting, "waiting: "+resp.Err.Error()
		if ctx.Err() != nil {
			v.ErrorMessage = "interrupted by a shutdown before the request left; resumes on any worker"
		}
		if err := r.record(context.WithoutCancel(ctx), v); err != nil {
			return err
		}
		return d.snooze(r, max(dec.Delay, time.Second))

	case graph.Throttle:
		pause, err := limiter.Throttled(ctx, resp.RetryAfter)
		if err != nil {
			return err
		}
		v.Waiting = true
		if err := r.record(ctx, v); err != nil {
			return err
		}
		r.log.Info("graph throttled", "op", resp.Op, "retry_after", resp.RetryAfter, "pause", pause, "request_id", resp.RequestID)
		return d.snooze(r, pause+backoff.Policy{Base: 200 * time.Millisecond, Max: 200 * time.Millisecond}.Delay(1))

	case graph.Fail:
		v.Final = true
		if v.ErrorMessage == "" {
			v.ErrorMessage = dec.Why
		}
		if resp.StatusCode == http.StatusForbidden {
			if _, loaded := d.logged403.LoadOrStore(r.batchID, struct{}{}); !loaded {
				r.log.Error("PERMISSION DENIED by Graph: grant DeviceManagementConfiguration.ReadWrite.All (admin consent) to this app or user; the batch's remaining rows will fail the same way",
					"error_code", resp.ErrorCode, "request_id", resp.RequestID)
			}
		}
		return r.finish(ctx, v)

	case graph.Retry, graph.Reconcile:
		v.CountError = true
		errorsSoFar := r.errors + 1
		if errorsSoFar >= d.Settings.MaxErrors {
			v.Final = true
			v.ErrorMessage = fmt.Sprintf("gave up after %d failed attempts: %s", errorsSoFar, resp.Error())
			return r.finish(ctx, v)
		}
		if err := r.record(ctx, v); err != nil {
			return err
		}
		delay := max(d.Settings.retry().Delay(errorsSoFar), resp.RetryAfter)
		r.log.Warn("graph request failed; will retry", "op", resp.Op, "status", resp.StatusCode, "request_id", resp.RequestID,
			"client_request_id", resp.ClientRequestID, "error", resp.Error(), "ambiguous", dec.Ambiguous,
			"retry_in", delay, "errors", errorsSoFar)
		return d.snooze(r, delay)
	}
	return fmt.Errorf("settle: %s %s answered %d: %s is not a failure", resp.Method, resp.Op, resp.StatusCode, dec.Action)
}

// outOfPatience is the final verdict of a row that has waited longer than
// GRAPH_PATIENCE, or nil.
func (d *Deps) outOfPatience(elapsed time.Duration) *verdict {
	if elapsed <= d.Settings.Patience {
		return nil
	}
	return &verdict{Final: true, ErrorCode: assign.CodePatienceExceeded,
		ErrorMessage: fmt.Sprintf("gave up after %s without a final answer from Graph (GRAPH_PATIENCE)", elapsed.Round(time.Second))}
}

// snooze reschedules the row after delay without spending an attempt, but
// no later than the end of its patience (so a row told to wait an hour
// still ends when its patience does), and never for a negative or endless
// delay.
func (d *Deps) snooze(r *rowRun, delay time.Duration) error {
	left := d.Settings.Patience - r.elapsed + 100*time.Millisecond
	return river.JobSnooze(backoff.Clamp(min(delay, left)))
}

// noAnswerCode is the error_code of a request that got no HTTP answer.
func noAnswerCode(err error) string {
	switch {
	case errors.Is(err, graph.ErrSignInAgain):
		return assign.CodeSignInAgain // only a person can fix it: `worker login`
	case errors.Is(err, graph.ErrTokenAcquisition):
		return assign.CodeSignInFailed
	}
	return assign.CodeNoResponse
}

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
	Final        bool
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

// decide applies the response policy to a failed (or held back) exchange
// of a row that has failed errorsSoFar times before: the one place that
// says what an answer makes a caller do. A final verdict ends the row;
// otherwise the row comes back after the returned delay (a wait for the
// limit or a throttle spends no attempt; a retry counts an error). It
// tells the fleet's limiter of a throttle. An error means the database
// behind the limiter failed.
func decide(ctx context.Context, s *Settings, errorsSoFar int, resp *graph.Response, limiter *ratelimit.Limiter) (verdict, time.Duration, error) {
	dec := graph.Classify(resp)
	v := verdict{HTTPStatus: resp.StatusCode, ErrorCode: resp.ErrorCode, ErrorMessage: resp.ErrorMessage,
		RequestID: resp.RequestID, Decision: dec}
	if resp.Err != nil {
		v.ErrorCode, v.ErrorMessage = noAnswerCode(dec, resp.Err), resp.Err.Error()
	}
	switch dec.Action {
	case graph.Wait:
		if ctx.Err() == nil && dec.Delay == 0 {
			return v, 0, resp.Err // the limiter's database failed
		}
		v.ErrorCode, v.ErrorMessage = "", resp.Err.Error() // a reason to wait, not an error
		if ctx.Err() != nil {
			v.ErrorMessage = "interrupted by a shutdown before the request left; resumes on any worker"
		}
		return v, max(dec.Delay, time.Second), nil

	case graph.Throttle:
		pause, err := limiter.Throttled(ctx, resp.RetryAfter)
		if err != nil {
			return v, 0, err
		}
		return v, pause + backoff.Policy{Base: 200 * time.Millisecond, Max: 200 * time.Millisecond}.Delay(1), nil

	case graph.Retry, graph.Reconcile:
		v.CountError = true
		if errorsSoFar+1 >= s.MaxErrors {
			v.Final = true
			v.ErrorMessage = fmt.Sprintf("gave up after %d failed attempts: %s", errorsSoFar+1, resp.Error())
			return v, 0, nil
		}
		return v, max(s.retry().Delay(errorsSoFar+1), resp.RetryAfter), nil

	case graph.Fail:
		v.Final = true
		if v.ErrorMessage == "" || resp.StatusCode == http.StatusForbidden {
			v.ErrorMessage = joinReason(v.ErrorMessage, dec.Why)
		}
		return v, 0, nil
	}
	return v, 0, fmt.Errorf("%s %s answered %d: %s is not a failure", resp.Method, resp.Op, resp.StatusCode, dec.Action)
}

// errRowEnded is a record's answer when the outcome it wrote left the row
// final (a row being cancelled whose write did not apply ends canceled):
// the job completes instead of snoozing, so no job of a final row stays
// behind to hold revert back.
var errRowEnded = errors.New("the row ended")

// joinReason adds the policy's reason to Graph's message.
func joinReason(msg, why string) string {
	switch {
	case msg == "":
		return why
	case why == "" || msg == why:
		return msg
	}
	return msg + " (" + why + ")"
}

// settle applies decide's verdict to a row's run: it waits and retries by
// snoozing the job (spending no River attempt), and ends the row on a
// final verdict. It returns the job's result: a snooze, nil once finished,
// or an error for River to retry (the database failed).
func (d *Deps) settle(ctx context.Context, r *rowRun, resp *graph.Response, limiter *ratelimit.Limiter) error {
	v, delay, err := decide(ctx, &d.Settings, r.errors, resp, limiter)
	if err != nil {
		return err
	}
	if v.Final {
		if resp.StatusCode == http.StatusForbidden {
			if _, loaded := d.logged403.LoadOrStore(r.batchID+" "+string(resp.Op), struct{}{}); !loaded {
				r.log.Error("PERMISSION DENIED by Graph ("+v.Decision.Why+"): grant it, with admin consent, to this app or user; the batch's remaining rows will fail the same way",
					"op", resp.Op, "error_code", resp.ErrorCode, "request_id", resp.RequestID)
			}
		}
		return r.finish(ctx, v)
	}
	switch err := r.record(context.WithoutCancel(ctx), v); {
	case errors.Is(err, errRowEnded):
		return nil // River completes the job: its row is final
	case err != nil:
		return err
	}
	switch {
	case v.Decision.Action == graph.Throttle:
		r.log.Info("graph throttled", "op", resp.Op, "retry_after", resp.RetryAfter, "pause", delay, "request_id", resp.RequestID)
	case v.CountError:
		r.log.Warn("graph request failed; will retry", "op", resp.Op, "status", resp.StatusCode, "request_id", resp.RequestID,
			"client_request_id", resp.ClientRequestID, "error", resp.Error(), "ambiguous", v.Decision.Ambiguous,
			"retry_in", delay, "errors", r.errors+1)
	}
	return d.snooze(r, delay)
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

// noAnswerCode is the error_code of a request that got no HTTP answer,
// from the policy's decision on it (dec) and its error.
func noAnswerCode(dec graph.Decision, err error) string {
	switch {
	case dec.SignInAgain:
		return assign.CodeSignInAgain // only a person can fix it: `worker login`
	case dec.SignInRefused:
		return assign.CodeSignInRefused // an admin of the tenant must consent (or the tenant id is wrong)
	case errors.Is(err, graph.ErrTokenAcquisition):
		return assign.CodeSignInFailed
	case errors.Is(err, graph.ErrListTooLarge):
		return assign.CodeListTooLarge // the pages of a list exceed GRAPH_MAX_LIST_BYTES
	}
	return assign.CodeNoResponse
}

package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Settings tune the AssignWorker. Zero values take the defaults.
type Settings struct {
	// MaxWait is the longest a job waits in process for the fleet's write
	// or read budget; beyond it the job snoozes (no attempt used). Default 10 s.
	MaxWait time.Duration
	// Patience is how long a row may go unfinished after it first started
	// (throttled, waiting, retrying) before it ends failed. Default 6 h.
	Patience time.Duration
	// MaxErrors is how many failed Graph attempts (5xx, timeouts, resets)
	// a row may have before it ends failed. Default 8.
	MaxErrors int
	// RetryBase and RetryMax bound the backoff between failed attempts
	// (when Graph gives no Retry-After). Defaults 2 s and 5 min.
	RetryBase, RetryMax time.Duration
	// JobTimeout bounds one run of a job; default 45 s. It must stay well
	// below River's RescueStuckJobsAfter so a rescued job never overlaps a
	// live one.
	JobTimeout time.Duration
}

func (s *Settings) withDefaults() {
	if s.MaxWait <= 0 {
		s.MaxWait = 10 * time.Second
	}
	if s.Patience <= 0 {
		s.Patience = 6 * time.Hour
	}
	if s.MaxErrors <= 0 {
		s.MaxErrors = 8
	}
	if s.RetryBase <= 0 {
		s.RetryBase = 2 * time.Second
	}
	if s.RetryMax <= 0 {
		s.RetryMax = 5 * time.Minute
	}
	if s.JobTimeout <= 0 {
		s.JobTimeout = 45 * time.Second
	}
}

// Deps is what the workers need.
type Deps struct {
	Pool     *pgxpool.Pool
	Graph    *graph.Client
	Writes   *ratelimit.Limiter
	Reads    *ratelimit.Limiter
	Logger   *slog.Logger
	Settings Settings
	// OnOutcome, when set, is called after a row's outcome is committed.
	OnOutcome func(status assign.Status)
	// OnWait, when set, is told how long a job waited for the limits.
	OnWait func(time.Duration)
}

// withDefaults fills in what a worker built on d needs and was not given.
func (d *Deps) withDefaults() {
	d.Settings.withDefaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
}

// wait waits for l's budget, up to MaxWait, and reports the time waited.
func (d *Deps) wait(ctx context.Context, l *ratelimit.Limiter) error {
	waited, err := l.Wait(ctx, d.Settings.MaxWait)
	if d.OnWait != nil && waited > 0 {
		d.OnWait(waited)
	}
	return err
}

// completeWith runs record (when not nil) and completes job in one
// transaction: a job is never done in River without what record writes,
// nor the reverse.
func completeWith[T river.JobArgs](ctx context.Context, pool *pgxpool.Pool, job *river.Job[T], record func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if record != nil {
			if err := record(tx); err != nil {
				return err
			}
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// noAnswerCode is the error_code of a request that got no HTTP answer.
func noAnswerCode(err error) string {
	switch {
	case errors.Is(err, graph.ErrSignInAgain):
		return "SignInAgain" // only a person can fix it: `worker login`
	case errors.Is(err, graph.ErrTokenAcquisition):
		return "SignInFailed"
	}
	return "NoResponse"
}

// AssignWorker creates one assignment per item, never twice.
//
// The sequence for a row is: read what exists on its configuration path
// (once per batch, shared by the fleet); a matching target ends the row
// already_assigned; otherwise wait for the fleet's write budget, record the
// intent, POST, and classify the answer with graph.Classify. An answer that
// leaves the create in doubt keeps the intent, and the next attempt re-reads
// Graph before it may post again: a match then means this row created it.
type AssignWorker struct {
	river.WorkerDefaults[AssignArgs]
	d *Deps

	logged403 sync.Map // batch id → struct{}: permission failures are logged loudly once
}

// NewAssignWorker returns the worker with defaults applied to d.Settings.
func NewAssignWorker(d *Deps) *AssignWorker {
	d.withDefaults()
	return &AssignWorker{d: d}
}

// Timeout bounds one run of the job.
func (w *AssignWorker) Timeout(*river.Job[AssignArgs]) time.Duration { return w.d.Settings.JobTimeout }

// Work processes one row.
func (w *AssignWorker) Work(ctx context.Context, job *river.Job[AssignArgs]) error {
	a := job.Args
	it, err := store.MarkRunning(ctx, w.d.Pool, a.Batch, a.Row)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(err) // the batch was deleted
	}
	if err != nil {
		return err
	}
	if it.Status.Final() {
		// Canceled (or finished by an earlier run whose completion was lost).
		return completeWith(ctx, w.d.Pool, job, nil)
	}
	log := w.d.Logger.With("batch", a.Batch, "row", a.Row, "line", it.Line, "configuration", it.Spec.ConfigurationID)

	if waited := time.Since(*it.StartedAt); waited > w.d.Settings.Patience {
		return w.finish(ctx, job, it, log, store.Outcome{Status: assign.StatusFailed, ErrorCode: "PatienceExceeded",
			ErrorMessage: fmt.Sprintf("gave up after %s without a final answer from Graph (GRAPH_PATIENCE)", waited.Round(time.Second)),
			KeepIntent:   it.IntentRequestID != ""})
	}

	// What exists already? After a create whose answer was lost, read Graph
	// afresh rather than trust the batch's list.
	key := store.ListKey{BatchID: a.Batch, ConfigurationID: it.Spec.ConfigurationID, Path: it.Spec.Path}
	list, resp, err := w.assignments(ctx, key, it.IntentRequestID != "", log)
	if err != nil {
		return err
	}
	if resp != nil {
		return w.afterFailure(ctx, job, it, log, resp, false)
	}
	if !list.Found {
		return w.finish(ctx, job, it, log, store.Outcome{Status: assign.StatusFailed, HTTPStatus: list.HTTPStatus,
			ErrorCode: list.ErrorCode, ErrorMessage: list.ErrorMessage, RequestID: list.RequestID})
	}
	if id, ok := list.Keys[it.Spec.Target.Key()]; ok {
		o := store.Outcome{Status: assign.StatusAlreadyAssigned, AssignmentID: id, HTTPStatus: http.StatusOK, RequestID: list.RequestID}
		if it.IntentRequestID != "" {
			// Our earlier create applied although its answer was lost.
			o.Status, o.HTTPStatus = assign.StatusCreated, http.StatusCreated
		}
		return w.finish(ctx, job, it, log, o)
	}

	// Wait for the fleet's write budget.
	if err := w.d.wait(ctx, w.d.Writes); err != nil {
		return w.snoozeForWait(ctx, it, err)
	}
	crid := graph.NewRequestID()
	if err := store.RecordIntent(ctx, w.d.Pool, a.Batch, a.Row, crid); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return completeWith(ctx, w.d.Pool, job, nil) // canceled meanwhile
		}
		return err
	}
	created, resp := w.d.Graph.CreateAssignment(ctx, it.Spec.ConfigurationID, it.Spec.Path, it.Spec.Target, crid)
	log.Debug("graph create", "status", resp.StatusCode, "request_id", resp.RequestID, "client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	if created != nil {
		return w.finish(ctx, job, it, log, store.Outcome{Status: assign.StatusCreated, HTTPStatus: resp.StatusCode,
			AssignmentID: created.ID, RequestID: resp.RequestID})
	}
	return w.afterFailure(ctx, job, it, log, resp, true)
}

// assignments returns the batch's list for key, reading it from Graph when
// the batch has none yet (or fresh is set). A non-nil Response is a failed read.
func (w *AssignWorker) assignments(ctx context.Context, key store.ListKey, fresh bool, log *slog.Logger) (*store.AssignmentList, *graph.Response, error) {
	if !fresh {
		l, err := store.GetList(ctx, w.d.Pool, key)
		if err != nil || l != nil {
			return l, nil, err
		}
	}
	var (
		list *store.AssignmentList
		resp *graph.Response
	)
	err := pgx.BeginFunc(ctx, w.d.Pool, func(tx pgx.Tx) error {
		if err := store.LockList(ctx, tx, key); err != nil {
			return err
		}
		if !fresh {
			// Another worker may have read it while we waited for the lock.
			l, err := store.GetList(ctx, tx, key)
			if err != nil || l != nil {
				list = l
				return err
			}
		}
		found, r := w.d.Graph.ListAssignments(ctx, key.ConfigurationID, key.Path, func(ctx context.Context) error {
			return w.d.wait(ctx, w.d.Reads)
		})
		log.Debug("graph list", "status", r.StatusCode, "request_id", r.RequestID, "client_request_id", r.ClientRequestID,
			"duration", r.Duration, "assignments", len(found))
		l := &store.AssignmentList{Found: true, RequestID: r.RequestID, Keys: map[string]string{}}
		switch {
		case r.StatusCode == http.StatusOK && r.Err == nil:
			for _, a := range found {
				l.Keys[a.Target.Key()] = a.ID
			}
		case r.StatusCode == http.StatusNotFound:
			l.Found, l.HTTPStatus, l.ErrorCode, l.ErrorMessage = false, r.StatusCode, r.ErrorCode, r.ErrorMessage
		default:
			resp = r
			return nil
		}
		list = l
		return store.PutList(ctx, tx, key, l)
	})
	if err != nil {
		return nil, nil, err
	}
	return list, resp, nil
}

// snoozeForWait reschedules a row whose wait for the limits ran out (or was
// interrupted by shutdown) without spending an attempt.
func (w *AssignWorker) snoozeForWait(ctx context.Context, it *store.Item, err error) error {
	var tooLong *ratelimit.WaitTooLongError
	switch {
	case errors.As(err, &tooLong):
		w.markRetrying(ctx, it)
		return w.snooze(it, tooLong.Delay)
	case ctx.Err() != nil:
		w.markRetrying(ctx, it)
		return w.snooze(it, time.Second)
	}
	return err // the database behind the limiter failed: River retries
}

func (w *AssignWorker) markRetrying(ctx context.Context, it *store.Item) {
	_, _ = store.RecordOutcome(context.WithoutCancel(ctx), w.d.Pool, it.BatchID, it.Row, store.Outcome{
		Status: assign.StatusRetrying, KeepIntent: true, ErrorCode: "Waiting", ErrorMessage: "waiting for the fleet's Graph rate limit"})
}

// afterFailure applies the response policy to a failed read or create.
func (w *AssignWorker) afterFailure(ctx context.Context, job *river.Job[AssignArgs], it *store.Item, log *slog.Logger, resp *graph.Response, write bool) error {
	var tooLong *ratelimit.WaitTooLongError
	if errors.As(resp.Err, &tooLong) || (resp.StatusCode == 0 && !resp.Sent && ctx.Err() != nil) {
		return w.snoozeForWait(ctx, it, resp.Err)
	}
	dec := graph.Classify(resp)
	// Only a create that may have applied keeps (or sets) the intent; a
	// failed read keeps whatever intent the row had.
	keep := !write && it.IntentRequestID != "" || write && dec.Ambiguous
	o := store.Outcome{HTTPStatus: resp.StatusCode, ErrorCode: resp.ErrorCode, ErrorMessage: resp.ErrorMessage,
		RequestID: resp.RequestID, KeepIntent: keep}
	if resp.Err != nil {
		o.ErrorCode, o.ErrorMessage = noAnswerCode(resp.Err), resp.Err.Error()
	}
	switch dec.Action {
	case graph.Throttle:
		limiter := w.d.Writes
		if !write {
			limiter = w.d.Reads
		}
		pause, err := limiter.Throttled(ctx, resp.RetryAfter)
		if err != nil {
			return err
		}
		o.Status = assign.StatusRetrying
		if _, err := store.RecordOutcome(ctx, w.d.Pool, it.BatchID, it.Row, o); err != nil {
			return err
		}
		log.Info("graph throttled", "op", resp.Op, "retry_after", resp.RetryAfter, "pause", pause, "request_id", resp.RequestID)
		return w.snooze(it, pause+jittered(100*time.Millisecond, 100*time.Millisecond, 1))

	case graph.Fail:
		o.Status = assign.StatusFailed
		if o.ErrorMessage == "" {
			o.ErrorMessage = dec.Why
		}
		if resp.StatusCode == http.StatusForbidden {
			if _, loaded := w.logged403.LoadOrStore(it.BatchID, struct{}{}); !loaded {
				log.Error("PERMISSION DENIED by Graph: grant DeviceManagementConfiguration.ReadWrite.All (admin consent) to this app or user; the batch's remaining rows will fail the same way",
					"error_code", resp.ErrorCode, "request_id", resp.RequestID)
			}
		}
		return w.finish(ctx, job, it, log, o)

	default: // Retry, Reconcile
		errorsSoFar := it.Errors + 1
		if errorsSoFar >= w.d.Settings.MaxErrors {
			o.Status = assign.StatusFailed
			o.ErrorMessage = fmt.Sprintf("gave up after %d failed attempts: %s", errorsSoFar, resp.Error())
			o.CountError = true
			return w.finish(ctx, job, it, log, o)
		}
		o.Status, o.CountError = assign.StatusRetrying, true
		if _, err := store.RecordOutcome(ctx, w.d.Pool, it.BatchID, it.Row, o); err != nil {
			return err
		}
		delay := jittered(w.d.Settings.RetryBase, w.d.Settings.RetryMax, errorsSoFar)
		delay = max(delay, resp.RetryAfter)
		log.Warn("graph request failed; will retry", "op", resp.Op, "status", resp.StatusCode, "request_id", resp.RequestID,
			"client_request_id", resp.ClientRequestID, "error", resp.Error(),
			"ambiguous", write && dec.Ambiguous, "retry_in", delay, "errors", errorsSoFar)
		return w.snooze(it, delay)
	}
}

// snooze reschedules the row after d, but no later than the end of its
// patience, so a row told to wait an hour still ends when its patience does.
func (w *AssignWorker) snooze(it *store.Item, d time.Duration) error {
	if it.StartedAt != nil {
		left := time.Until(it.StartedAt.Add(w.d.Settings.Patience)) + 100*time.Millisecond
		d = min(d, max(left, 0))
	}
	return river.JobSnooze(d)
}

// finish records a final outcome and completes the job in one transaction:
// a row can never be done in River without its outcome, nor the reverse.
func (w *AssignWorker) finish(ctx context.Context, job *river.Job[AssignArgs], it *store.Item, log *slog.Logger, o store.Outcome) error {
	// The batch's list of existing assignments is not updated with this
	// create: intake removed duplicate rows, so no later row of the batch
	// can match it, and rewriting the list's JSON per row cost O(n²) per
	// configuration (BENCHMARKS.md).
	err := completeWith(ctx, w.d.Pool, job, func(tx pgx.Tx) error {
		_, err := store.RecordOutcome(ctx, tx, it.BatchID, it.Row, o)
		return err
	})
	if err != nil {
		return fmt.Errorf("error recording outcome %s: %w", o.Status, err)
	}
	attrs := []any{"status", o.Status, "assignment_id", o.AssignmentID, "http_status", o.HTTPStatus, "request_id", o.RequestID}
	if o.Status == assign.StatusFailed {
		log.Warn("row failed", append(attrs, "error_code", o.ErrorCode, "error", o.ErrorMessage)...)
	} else {
		log.Info("row done", attrs...)
	}
	if w.d.OnOutcome != nil {
		w.d.OnOutcome(o.Status)
	}
	return nil
}

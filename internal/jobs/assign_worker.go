package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/backoff"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Settings tune the workers. Zero values take config.Defaults (MaxWait
// and the retry backoff, which have no setting, are defaulted here).
type Settings struct {
	// MaxWait is the longest a job waits in process for the fleet's write
	// or read budget; beyond it the job snoozes (no attempt used). Default 10 s.
	MaxWait time.Duration
	// Patience is how long a row may go unfinished after it first started
	// (throttled, waiting, retrying) before it ends failed.
	Patience time.Duration
	// MaxErrors is how many failed Graph attempts (5xx, timeouts, resets)
	// a row may have before it ends failed.
	MaxErrors int
	// RetryBase and RetryMax bound the backoff between failed attempts
	// (when Graph gives no Retry-After). Defaults 2 s and 5 min.
	RetryBase, RetryMax time.Duration
	// JobTimeout bounds one run of a job. A run holds its row
	// for JobTimeout + RunMargin, so a second run of the same row (a job
	// River rescued early) never posts beside a live one.
	JobTimeout time.Duration
}

// RunMargin is how long past its job timeout a run keeps holding its row:
// room for the last statements of a run that was cut off at the timeout.
const RunMargin = 15 * time.Second

func (s *Settings) withDefaults() {
	if s.MaxWait <= 0 {
		s.MaxWait = 10 * time.Second
	}
	if s.Patience <= 0 {
		s.Patience = config.Defaults.Patience
	}
	if s.MaxErrors <= 0 {
		s.MaxErrors = config.Defaults.MaxErrors
	}
	if s.RetryBase <= 0 {
		s.RetryBase = 2 * time.Second
	}
	if s.RetryMax <= 0 {
		s.RetryMax = 5 * time.Minute
	}
	if s.JobTimeout <= 0 {
		s.JobTimeout = config.Defaults.JobTimeout
	}
}

// retry is the backoff between failed attempts.
func (s *Settings) retry() backoff.Policy { return backoff.Policy{Base: s.RetryBase, Max: s.RetryMax} }

// Deps is what the workers need.
type Deps struct {
	Pool *pgxpool.Pool
	// Graph, Writes and Reads serve the default tenant, DefaultTenant
	// (AZURE_TENANT_ID); Tenants, when set, serves every other.
	Graph         *graph.Client
	Writes        *ratelimit.Limiter
	Reads         *ratelimit.Limiter
	DefaultTenant string
	Tenants       Tenants
	// Allowlist is which tenants' rows may be worked (BULKASSIGN_TENANTS
	// with "onlyListed": true); the zero value allows every tenant.
	Allowlist config.TenantAllowlist
	Logger    *slog.Logger
	Settings  Settings
	// OnOutcome, when set, is called after a row's outcome is committed.
	OnOutcome func(tenant string, status assign.Status)
	// OnWait, when set, is told how long a job waited for the limits.
	OnWait func(time.Duration)

	logged403 sync.Map // batch id and op → struct{}: permission failures are logged loudly once
	flights   flights  // shared reads in progress in this process
	starts    *rounds[store.RunRequest, store.RunStart]
	claims    *rounds[store.ClaimRequest, store.ClaimResult]
	outcomes  *rounds[store.RowOutcome, store.Written]

	// shown are the display names this process knows are stored
	// (displaynames.go).
	shown shownNames
}

// withDefaults fills in what a worker built on d needs and was not given.
func (d *Deps) withDefaults() {
	d.Settings.withDefaults()
	if d.outcomes == nil {
		d.starts, d.claims, d.outcomes = newStartRounds(), newClaimRounds(), newOutcomeRounds()
	}
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

// AssignWorker creates one assignment per item, never twice.
//
// The sequence for a row is: read the row with the batch's list of its
// configuration path (a row another live run holds makes this run back
// off); resolve the names it gives (once per batch and tenant, shared by
// the fleet); read the list from Graph if the batch has none yet (once
// per batch, shared by the fleet); a matching target ends the row
// already_assigned (a remove row: no match ends it not_assigned);
// otherwise claim the target across batches, take the row for this run
// and record the intent, wait for the fleet's write budget, POST (or
// DELETE), and settle the answer with the response policy. The read, the
// claim and the outcome each go in a round shared by the process's runs
// (outcomes.go), and River completes the jobs in its own batches: a worked
// row sends no statement of its own. An answer that leaves the write in
// doubt keeps the intent, and the next attempt re-reads Graph before it
// may write again: a match then means this row created it (or, for a
// removal, no match means this row removed it).
type AssignWorker struct {
	river.WorkerDefaults[AssignArgs]
	d *Deps
}

// NewAssignWorker returns the worker with defaults applied to d.Settings.
func NewAssignWorker(d *Deps) *AssignWorker {
	d.withDefaults()
	return &AssignWorker{d: d}
}

// Timeout bounds one run of the job.
func (w *AssignWorker) Timeout(*river.Job[AssignArgs]) time.Duration { return w.d.Settings.JobTimeout }

// assignRun is one run of one row.
type assignRun struct {
	w   *AssignWorker
	it  *store.Item
	t   *Tenant
	run string // this run's hold on the row
	log *slog.Logger
	// resolved are the ids this run resolved the row's names to (none for
	// what the row gave by id, or a run before resolved), recorded with
	// its outcome.
	resolved store.Resolution
	// removing is the assignment a remove row's delete is for.
	removing string
	// unsent says the run's claim counted an attempt whose request never
	// left (the limit held it back): its outcome takes the count back.
	unsent bool
}

// Work processes one row.
func (w *AssignWorker) Work(ctx context.Context, job *river.Job[AssignArgs]) error {
	a := job.Args
	run := assign.NewID()
	it, err := w.d.start(ctx, a.Batch, a.Row, run)
	if it == nil || it.Status.Final() {
		return w.notToWork(it, err)
	}
	r := &assignRun{w: w, it: it, run: run,
		log: w.d.Logger.With("batch", a.Batch, "row", a.Row, "line", it.Line, "configuration", it.Spec.ConfigurationID)}
	if it.TenantID != "" {
		r.log = r.log.With("tenant", it.TenantID)
	}
	if v := w.d.outOfPatience(it.Elapsed); v != nil {
		return r.finish(ctx, *v)
	}
	if r.t, err = w.d.tenant(ctx, it.TenantID); err != nil {
		if v := notAllowed(err); v != nil {
			return r.finish(ctx, *v)
		}
		return err
	}
	r.lookUpDisplayNames(ctx) // never fails the row
	if it.Spec.Unresolved() {
		v, resp, err := r.resolve(ctx)
		switch {
		case err != nil:
			return err
		case resp != nil:
			return w.d.settle(ctx, r.rowRun(graph.OpResolve), resp, r.t.Reads)
		case v != nil:
			return r.done(ctx, r.outcome(graph.OpResolve, *v))
		}
	}
	return r.work(ctx, it.IntentRequestID != "")
}

// start reads the row for run, in a start round (store.StartRuns).
func (d *Deps) start(ctx context.Context, batchID string, row int, run string) (*store.Item, error) {
	st, err := d.starts.do(ctx, d.Pool, store.RunRequest{BatchID: batchID, Row: row, Run: run})
	if err != nil {
		return nil, err
	}
	return st.Item, st.Err
}

// notToWork is the job's result for a row this run may not work, as
// StartRun read it: another live run holds it (River rescued the job while
// a first run still works it: come back when its hold ends, and finish
// the row if that run died), it is final (canceled, or finished by a run
// whose completion was lost: River completes the job), or it is gone.
func (w *AssignWorker) notToWork(it *store.Item, err error) error {
	var held *store.HeldError
	switch {
	case errors.As(err, &held):
		return river.JobSnooze(backoff.Clamp(held.Left + time.Second))
	case errors.Is(err, store.ErrNotFound):
		return river.JobCancel(err) // the batch was deleted
	case err != nil:
		return err
	case it.Status.Final():
		return nil
	}
	return fmt.Errorf("item %s/%d is %s and held by no other run, yet this run could not write it", it.BatchID, it.Row, it.Status)
}

// yield is the job's result when this run could not write its row (a
// claim or an outcome refused): the row as it is now says why.
func (r *assignRun) yield(ctx context.Context) error {
	it, err := r.w.d.start(ctx, r.it.BatchID, r.it.Row, r.run)
	if err == nil && !it.Status.Final() {
		// Refused a moment ago, free now: work it again soon.
		return river.JobSnooze(time.Second)
	}
	return r.w.notToWork(it, err)
}

// work reads, claims and posts; fresh reads Graph rather than the batch's
// list (a create of ours, or of another row, may have applied unseen).
func (r *assignRun) work(ctx context.Context, fresh bool) error {
	d, it := r.w.d, r.it
	key := store.ListKey{BatchID: it.BatchID, ConfigurationID: it.Spec.ConfigurationID, Path: it.Spec.Path}
	// StartRun looked for the list unless the row knew its configuration
	// by name only (resolved by this run).
	known := r.resolved.ConfigurationID == ""
	list, resp, err := r.w.assignments(ctx, r.t, key, it.List, fresh, known, r.log)
	if err != nil {
		return err
	}
	if resp != nil {
		return d.settle(ctx, r.rowRun(graph.OpList), resp, r.t.Reads)
	}
	if !list.Found {
		return r.finish(ctx, verdict{Final: true, HTTPStatus: list.HTTPStatus, ErrorCode: list.ErrorCode,
			ErrorMessage: list.ErrorMessage, RequestID: list.RequestID})
	}
	if it.Spec.Action == assign.ActionRemove {
		return r.remove(ctx, list, fresh)
	}
	if id, ok := list.Keys[it.Spec.Target.Key()]; ok {
		o := store.Outcome{Status: assign.StatusAlreadyAssigned, AssignmentID: id, HTTPStatus: http.StatusOK, RequestID: list.RequestID}
		if it.IntentRequestID != "" {
			// Our earlier create applied although its answer was lost.
			o.Status, o.HTTPStatus = assign.StatusCreated, http.StatusCreated
		}
		return r.done(ctx, o)
	}
	if it.Status == assign.StatusCancelling {
		return r.done(ctx, r.notApplied(list))
	}

	crid, claim, err := r.claim(ctx, graph.OpCreate, list, fresh)
	if err != nil || claim == nil {
		return err
	}
	if claim.Verdict == store.HolderCreated {
		return r.done(ctx, store.Outcome{Status: assign.StatusAlreadyAssigned, AssignmentID: claim.Holder.AssignmentID})
	}

	created, resp := r.t.Graph.CreateAssignment(ctx, it.Spec.ConfigurationID, it.Spec.Path, it.Spec.Target, crid)
	r.log.Debug("graph create", "status", resp.StatusCode, "request_id", resp.RequestID, "client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	if created != nil {
		return r.done(ctx, store.Outcome{Status: assign.StatusCreated, HTTPStatus: resp.StatusCode,
			AssignmentID: created.ID, RequestID: resp.RequestID})
	}
	it.IntentRequestID = crid // the create may be in doubt from here on
	return d.settle(ctx, r.rowRun(graph.OpCreate), resp, r.t.Writes)
}

// notApplied ends a row being cancelled whose fresh list shows its write
// did not apply: canceled, with no write left in doubt.
func (r *assignRun) notApplied(list *store.AssignmentList) store.Outcome {
	return store.Outcome{Status: assign.StatusCanceled, HTTPStatus: http.StatusOK, RequestID: list.RequestID,
		ErrorMessage: "a read of Graph after the cancel found that its write had not applied"}
}

// claim waits for the fleet's write budget, then claims the row's target
// across batches and records the intent to write (op: create or delete)
// in one statement. It returns the claim when the run may go on: Claimed
// (write, with the returned client-request-id) or HolderCreated (another
// row created the target after list was read). Otherwise it has settled
// the run itself and returns a nil claim with the job's result: the limit
// or another row's write to wait for, the row final or held by another
// run, or the target to read again first.
func (r *assignRun) claim(ctx context.Context, op graph.Op, list *store.AssignmentList, fresh bool) (string, *store.ClaimResult, error) {
	d, it := r.w.d, r.it
	crid := graph.NewRequestID()
	claim, err := d.claims.do(ctx, d.Pool, store.ClaimRequest{BatchID: it.BatchID, Row: it.Row, Run: r.run,
		Hold: d.Settings.JobTimeout + RunMargin, Spec: it.Spec,
		TenantID: r.t.ID, ClientRequestID: crid, ListReadAt: list.ReadAt})
	if err != nil {
		return "", nil, err
	}
	switch claim.Verdict {
	case store.Refused:
		return "", nil, r.yield(ctx) // canceled, or another run holds the row
	case store.HolderBusy:
		// Another batch's row is writing the same target: wait for it
		// rather than write beside it.
		r.log.Info("target claimed by another row; waiting for it", "holder_batch", claim.Holder.BatchID, "holder_row", claim.Holder.Row)
		return "", nil, d.settle(ctx, r.rowRun(op), graph.NotSent(op, claimWait), r.t.Writes)
	case store.ReadFirst:
		if fresh {
			return "", nil, fmt.Errorf("target claim of %s/%d: taken over twice in one run", it.BatchID, it.Row)
		}
		return "", nil, r.work(ctx, true)
	case store.HolderCreated:
		return crid, &claim, nil // nothing to write: no budget spent
	}
	// The write leaves the moment the fleet's budget admits it: the claim
	// round, whose time varies with the rows it carries, comes before, so
	// that writes keep the pace the limiter set them (a round between the
	// two bunched writes into a tenant's next window, which answered 429).
	if err := d.wait(ctx, r.t.Writes); err != nil {
		r.unsent = true // the claim counted an attempt that never left
		return "", nil, d.settle(ctx, r.rowRun(op), graph.NotSent(op, err), r.t.Writes)
	}
	return crid, &claim, nil
}

// claimWait is the wait of a row whose target another row is writing.
var claimWait = sharedWait{2 * time.Second, "waiting for another row writing the same target"}

// tenantKey is the row's tenant as the fleet names it ("" the default).
func (r *assignRun) tenantKey() string {
	if r.t != nil {
		return r.t.ID
	}
	return TenantKey(r.it.TenantID, r.w.d.DefaultTenant)
}

// rowRun is the run as settle sees it, for an answer to op.
func (r *assignRun) rowRun(op graph.Op) *rowRun {
	return &rowRun{batchID: r.it.BatchID, errors: r.it.Errors, elapsed: r.it.Elapsed, log: r.log,
		record: func(ctx context.Context, v verdict) error {
			w, err := r.w.d.outcomes.do(ctx, r.w.d.Pool, r.rowOutcome(r.outcome(op, v)))
			if err == nil && w.Final() {
				// A cancel ended it: nothing to come back for.
				r.log.Info("row done", "status", w.Status, "http_status", v.HTTPStatus, "request_id", v.RequestID)
				if r.w.d.OnOutcome != nil {
					r.w.d.OnOutcome(r.tenantKey(), w.Status)
				}
				return errRowEnded
			}
			return err
		},
		finish: func(ctx context.Context, v verdict) error { return r.done(ctx, r.outcome(op, v)) },
	}
}

// outcome maps a verdict onto the row. Only a create that may have applied
// keeps (or sets) the intent; a failed read keeps whatever the row had.
func (r *assignRun) outcome(op graph.Op, v verdict) store.Outcome {
	o := store.Outcome{Status: assign.StatusRetrying, HTTPStatus: v.HTTPStatus, ErrorCode: v.ErrorCode,
		ErrorMessage: v.ErrorMessage, RequestID: v.RequestID, CountError: v.CountError}
	switch {
	case v.Final:
		o.Status = assign.StatusFailed
	case v.Decision.Action == graph.Wait || v.Decision.Action == graph.Throttle:
		o.Status = assign.StatusWaiting // no attempt spent: not an error
	}
	o.KeepIntent = r.it.IntentRequestID != ""
	if op == graph.OpCreate || op == graph.OpDelete {
		// A create or delete Graph answered (4xx, 429) did not apply; one
		// held back never left; an earlier intent stays until a read
		// settles it.
		o.KeepIntent = o.KeepIntent && (v.Decision.Ambiguous || v.Decision.Action == graph.Wait)
	}
	if op == graph.OpDelete {
		o.AssignmentID = r.removing // the assignment the delete was for
	}
	return o
}

// finish ends the row failed with v (before any create of this run).
func (r *assignRun) finish(ctx context.Context, v verdict) error {
	v.Final = true
	return r.done(ctx, r.outcome(graph.OpList, v))
}

// rowOutcome is o for this run's row.
func (r *assignRun) rowOutcome(o store.Outcome) store.RowOutcome {
	o.Resolved, o.Unsent = r.resolved, r.unsent
	return store.RowOutcome{BatchID: r.it.BatchID, Row: r.it.Row, Run: r.run, Outcome: o}
}

// done records a final outcome; once it has committed, the run returns
// and River completes the job (outcomes.go): a job is never done in River
// without its row's outcome.
func (r *assignRun) done(ctx context.Context, o store.Outcome) error {
	w, err := r.w.d.outcomes.do(ctx, r.w.d.Pool, r.rowOutcome(o))
	if err != nil {
		return fmt.Errorf("error recording outcome %s: %w", o.Status, err)
	}
	if !w.Wrote {
		return r.yield(ctx)
	}
	o.Status = w.Status // a row being cancelled may have ended canceled instead
	attrs := []any{"status", o.Status, "assignment_id", o.AssignmentID, "http_status", o.HTTPStatus, "request_id", o.RequestID}
	if o.Status == assign.StatusFailed {
		r.log.Warn("row failed", append(attrs, "error_code", o.ErrorCode, "error", o.ErrorMessage)...)
	} else {
		r.log.Info("row done", attrs...)
	}
	if r.w.d.OnOutcome != nil {
		r.w.d.OnOutcome(r.tenantKey(), o.Status)
	}
	return nil
}

// assignments returns the batch's list for key: stored (what StartRun
// found), else read from Graph when the batch has none yet; fresh reads
// Graph whatever is stored. known says StartRun looked for the list (and
// found none): the first look is skipped. A non-nil Response is a failed
// read, or a wait for another worker's read; a read that finds no such
// configuration is kept as such.
//
// No connection is held while Graph answers or the read limit is awaited:
// one worker of the fleet leases the list (store.LeaseList) and reads it,
// while the batch's other rows on the path poll for the stored list for a
// moment and then snooze. A lease runs for the job timeout: by then its
// reader's run has ended, read or not.
func (w *AssignWorker) assignments(ctx context.Context, t *Tenant, key store.ListKey, stored *store.AssignmentList, fresh, known bool, log *slog.Logger) (*store.AssignmentList, *graph.Response, error) {
	d := w.d
	if stored != nil && !fresh {
		return stored, nil, nil
	}
	read := func(readAt time.Time) (*store.AssignmentList, *graph.Response) {
		l, r := readList(ctx, t.Graph, key.ConfigurationID, key.Path, func(ctx context.Context) error { return d.wait(ctx, t.Reads) }, log)
		if l == nil {
			log.Debug("graph list", "status", r.StatusCode, "request_id", r.RequestID, "client_request_id", r.ClientRequestID,
				"duration", r.Duration)
			return nil, r // a failed read: settle decides
		}
		log.Debug("graph list", "status", r.StatusCode, "request_id", r.RequestID, "client_request_id", r.ClientRequestID,
			"duration", r.Duration, "assignments", len(l.Keys))
		l.ReadAt = readAt
		return l, nil
	}
	if fresh {
		readAt, err := store.Now(ctx, d.Pool)
		if err != nil {
			return nil, nil, err
		}
		l, resp := read(readAt)
		if resp != nil {
			return nil, resp, nil
		}
		// Stored even when the run was cut off meanwhile.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listWriteTimeout)
		defer cancel()
		return l, nil, store.PutList(wctx, d.Pool, key, l)
	}

	var readAt time.Time
	return sharedRead(ctx, sharedReadOps[*store.AssignmentList]{
		op: graph.OpList, busy: listBeingRead, log: log, what: "an assignment list",
		key: "list " + key.BatchID + " " + key.ConfigurationID + " " + string(key.Path), flights: &d.flights,
		get: func(ctx context.Context) (*store.AssignmentList, error) { return store.GetList(ctx, d.Pool, key) },
		lease: func(ctx context.Context, reader string) (bool, error) {
			at, ok, err := store.LeaseList(ctx, d.Pool, key, reader, d.Settings.JobTimeout)
			readAt = at
			return ok, err
		},
		read: func() (*store.AssignmentList, *graph.Response) { return read(readAt) },
		store: func(ctx context.Context, reader string, l *store.AssignmentList) error {
			_, err := store.StoreLeasedList(ctx, d.Pool, key, reader, l)
			return err
		},
		release: func(ctx context.Context, reader string) error { return store.ReleaseList(ctx, d.Pool, key, reader) },
	}, known)
}

// sharedReadOps are what sharedRead needs of one kind of shared read (an
// assignment list, a name lookup): where the result is stored, and how
// it is read from Graph.
type sharedReadOps[T comparable] struct {
	op   graph.Op
	busy error  // the wait of a row whose read another worker does
	what string // for the log
	log  *slog.Logger
	// key names the read among the process's flights, which let runs of
	// one process share one read (flight.go); nil flights: no sharing.
	key     string
	flights *flights
	// get returns the stored result, or the zero T when none is stored.
	get     func(context.Context) (T, error)
	lease   func(ctx context.Context, reader string) (bool, error)
	read    func() (T, *graph.Response) // a non-nil Response is a failed read
	store   func(ctx context.Context, reader string, v T) error
	release func(ctx context.Context, reader string) error
}

// sharedRead is the one way the fleet reads what a batch reads once: one
// worker leases the read and does it, with no connection held while Graph
// answers or the read limit is awaited, and stores the result; the
// batch's other rows that need it poll for the stored result for a moment,
// then snooze (the returned Response says why). A lease runs for the job
// timeout: by then its reader's run has ended, read or not. known says
// the caller has just found nothing stored (the first get is skipped).
func sharedRead[T comparable](ctx context.Context, o sharedReadOps[T], known bool) (T, *graph.Response, error) {
	var zero T
	if o.flights != nil {
		f, lead := o.flights.join(o.key)
		if !lead {
			// Another run of this process is at it: take its result. A
			// failed read that fails every row sharing it (flight.final)
			// is this run's answer too; any other failed read is the
			// leader's own to settle (a throttle is told to the limiter
			// once), and this run comes back for the read.
			if err := f.wait(ctx); err != nil {
				return zero, graph.NotSent(o.op, err), nil
			}
			if !f.ok {
				if f.final != nil {
					answer := *f.final
					return zero, &answer, nil
				}
				if f.err != nil {
					return zero, nil, f.err
				}
				return zero, graph.NotSent(o.op, o.busy), nil
			}
			return f.val.(T), nil, nil
		}
		alone := o
		alone.flights = nil // the read itself, led by this run
		v, resp, err := sharedRead(ctx, alone, known)
		o.flights.land(o.key, f, v, resp, err)
		return v, resp, err
	}
	reader := assign.NewID()
	for polls, start := 1, time.Now(); ; polls++ {
		if polls > 1 || !known {
			v, err := o.get(ctx)
			if err != nil || v != zero {
				return v, nil, err
			}
		}
		ok, err := o.lease(ctx, reader)
		if err != nil {
			return zero, nil, err
		}
		if ok {
			break
		}
		// Another worker is reading it: wait a moment for its result.
		delay := listPoll.Delay(polls)
		if time.Since(start)+delay > listPollFor {
			return zero, graph.NotSent(o.op, o.busy), nil
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return zero, graph.NotSent(o.op, ctx.Err()), nil
		case <-timer.C:
		}
	}

	v, resp := o.read()
	// What a finished read writes is written even when the run was cut
	// off meanwhile: rows waiting for the result need it (or the lease back).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listWriteTimeout)
	defer cancel()
	if resp != nil {
		if err := o.release(wctx, reader); err != nil {
			// The lease runs out by itself; the rows waiting for it wait longer.
			o.log.Warn("could not give back the lease on "+o.what, "error", err)
		}
		return zero, resp, nil
	}
	if err := o.store(wctx, reader, v); err != nil {
		return zero, nil, err
	}
	return v, nil, nil
}

// How a row whose list another worker is reading waits for it: it polls
// for the stored list (a read takes tens of milliseconds to a few seconds,
// with the read limit's wait), then snoozes and asks again.
var (
	listPoll    = backoff.Policy{Base: 25 * time.Millisecond, Max: 500 * time.Millisecond}
	listPollFor = 2 * time.Second
)

// listBeingRead is the wait of a row whose list another worker is reading.
var listBeingRead = sharedWait{2 * time.Second, "another worker is reading the configuration's assignments"}

// sharedWait is the wait of a row for what another row or worker does.
type sharedWait struct {
	delay time.Duration
	what  string
}

func (w sharedWait) Error() string             { return w.what }
func (w sharedWait) RetryDelay() time.Duration { return w.delay }

// listWriteTimeout bounds storing a list, or giving its lease back, after
// the read.
const listWriteTimeout = 10 * time.Second

// readList reads one configuration path's assignments and reduces the
// answer with the response policy: a list (Found), a configuration that
// does not exist (not Found, with Graph's status and code), or neither
// (a nil list: the read failed, and the returned Response says why). The
// workers, their reverts and the dry run read through it.
//
// An id that is not a device configuration may be a policy of a kind
// bulkassign does not assign: after a 404, it is looked up in each such
// kind (probeKinds), and one that exists makes the list's error code
// assign.CodeUnsupportedPolicyType.
func readList(ctx context.Context, gc *graph.Client, cfgID string, p assign.Path, wait func(context.Context) error, log *slog.Logger) (*store.AssignmentList, *graph.Response) {
	found, r := gc.ListAssignments(ctx, cfgID, p, wait)
	l := &store.AssignmentList{RequestID: r.RequestID, Keys: map[string]string{}}
	switch dec := graph.Classify(r); {
	case dec.Action == graph.Succeed:
		l.Found = true
		for _, a := range found {
			l.Keys[a.Target.Key()] = a.ID
		}
	case dec.Gone:
		l.HTTPStatus, l.ErrorCode, l.ErrorMessage = r.StatusCode, r.ErrorCode, r.ErrorMessage
		if l.ErrorMessage == "" {
			l.ErrorMessage = dec.Why
		}
		if pr := probeKinds(ctx, gc, cfgID, l, wait, log); pr != nil {
			return nil, pr
		}
	default:
		return nil, r // a failed read: its caller settles it
	}
	return l, r
}

// probeKinds looks cfgID up in each kind of policy bulkassign does not
// assign, one read each under the read limit, until one has it (l then
// says which) or says it has not. A probe Graph refuses (403, 400) leaves
// the 404 as it is: the id is not a device configuration all the same. A
// probe that could not be answered (not sent, throttled, 5xx) is returned:
// the read failed, and its caller settles it and reads again.
//
// Each probe is logged at debug on log, when not nil.
func probeKinds(ctx context.Context, gc *graph.Client, cfgID string, l *store.AssignmentList, wait func(context.Context) error, log *slog.Logger) *graph.Response {
	for _, kind := range graph.UnsupportedKinds {
		if wait != nil {
			if err := wait(ctx); err != nil {
				return graph.NotSent(graph.OpProbe, err)
			}
		}
		r := gc.GetPolicy(ctx, kind, cfgID)
		if log != nil {
			log.Debug("graph probe", "kind", kind.Collection, "status", r.StatusCode, "request_id", r.RequestID,
				"client_request_id", r.ClientRequestID, "duration", r.Duration)
		}
		switch dec := graph.Classify(r); {
		case dec.Action == graph.Succeed:
			l.ErrorCode = assign.CodeUnsupportedPolicyType
			l.ErrorMessage = fmt.Sprintf("%s is %s (%s), not a device configuration: bulkassign assigns device configurations only",
				cfgID, kind.Name, kind.Collection)
			return nil
		case dec.Gone:
			continue
		case dec.Action == graph.Fail:
			return nil
		default:
			return r
		}
	}
	return nil
}

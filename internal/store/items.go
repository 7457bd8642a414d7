package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/text"
)

// Item is one row of a batch as the worker sees it.
type Item struct {
	BatchID         string
	Row             int
	Line            int
	TenantID        string // the tenant the row writes to; "" for a row enqueued before rows named one
	Spec            assign.Spec
	Status          assign.Status
	Attempts        int
	Errors          int
	AssignmentID    string
	IntentRequestID string
	IntentAt        *time.Time
	StartedAt       *time.Time
	// Elapsed is how long ago the row first started, by the database's
	// clock (patience counts from it; a worker's clock may be off).
	Elapsed time.Duration
	// List is the batch's stored list of the row's configuration path, as
	// StartRun found it; nil when none was stored (or read) yet.
	List *AssignmentList
}

// workColumns lists the columns scanItem reads, in order, from items
// named i.
const workColumns = `i.line, coalesce(i.configuration_id::text, ''), i.path, i.target_type, i.group_id::text, i.collection_id,
	i.filter_id::text, i.filter_type, i.status, i.attempts, i.errors, i.assignment_id, i.intent_request_id, i.intent_at,
	i.started_at, coalesce(now() - i.started_at, '0'), coalesce(i.tenant_id, ''), coalesce(i.action, ''),
	coalesce(i.configuration_name, ''), coalesce(i.group_name, ''), coalesce(i.filter_name, '')`

// itemScan receives workColumns (then more: the values of further
// columns); item checks what it read.
type itemScan struct {
	it                                               Item
	path, ttype, status, action                      string
	group, coll, filter, ftype, assignmentID, intent *string
}

func (sc *itemScan) dest(more ...any) []any {
	it, n := &sc.it, &sc.it.Spec.Names
	return append([]any{&it.Line, &it.Spec.ConfigurationID, &sc.path, &sc.ttype, &sc.group, &sc.coll, &sc.filter, &sc.ftype,
		&sc.status, &it.Attempts, &it.Errors, &sc.assignmentID, &sc.intent, &it.IntentAt, &it.StartedAt, &it.Elapsed,
		&it.TenantID, &sc.action, &n.Configuration, &n.Group, &n.Filter}, more...)
}

// item is the row scanned as batchID's row rowNo. What comes back from the
// database is checked like input: a path outside the allow-list never
// reaches a Graph URL.
func (sc *itemScan) item(batchID string, rowNo int) (*Item, error) {
	it := sc.it
	it.BatchID, it.Row = batchID, rowNo
	var err error
	if it.Spec.Path, err = assign.ParsePath(sc.path); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid path: %w", batchID, rowNo, err)
	}
	it.Spec.Target = assign.Target{Type: assign.TargetType(sc.ttype), GroupID: deref(sc.group), CollectionID: deref(sc.coll),
		FilterID: deref(sc.filter), FilterType: assign.FilterType(deref(sc.ftype))}
	if it.Spec.Action, err = assign.ParseAction(sc.action); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid action: %w", batchID, rowNo, err)
	}
	if err := it.Spec.ValidateStored(); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid target: %w", batchID, rowNo, err)
	}
	it.Status = assign.Status(sc.status)
	it.AssignmentID = deref(sc.assignmentID)
	it.IntentRequestID = deref(sc.intent)
	return &it, nil
}

// scanItem scans workColumns, then more (the values of further columns).
func scanItem(row pgx.Row, batchID string, rowNo int, more ...any) (*Item, error) {
	var sc itemScan
	err := row.Scan(sc.dest(more...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("item %s/%d: %w", batchID, rowNo, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading item %s/%d: %w", batchID, rowNo, err)
	}
	return sc.item(batchID, rowNo)
}

// GetItem reads one item.
func GetItem(ctx context.Context, q Querier, batchID string, row int) (*Item, error) {
	return scanItem(q.QueryRow(ctx, `SELECT `+workColumns+` FROM items i WHERE i.batch_id = $1 AND i.row = $2`, batchID, row), batchID, row)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// HeldError says another run of the row holds it (a job rescued while its
// first run still lives): this run must not touch Graph for it.
type HeldError struct {
	// Left is how long the other run's hold lasts at most.
	Left time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("another run holds the row for up to %s", e.Left.Round(time.Millisecond))
}

// RunRequest names a row and the run that asks for it (StartRuns).
type RunRequest struct {
	BatchID string
	Row     int
	Run     string
}

// RunStart is what StartRuns found for one request: the row, or why the
// run may not have it (ErrNotFound, *HeldError, a row that holds invalid
// values).
type RunStart struct {
	Item *Item
	Err  error
}

// StartRun is StartRuns of one.
func StartRun(ctx context.Context, q Querier, batchID string, row int, run string) (*Item, error) {
	res, err := StartRuns(ctx, q, []RunRequest{{BatchID: batchID, Row: row, Run: run}})
	if err != nil {
		return nil, err
	}
	return res[0].Item, res[0].Err
}

// StartRuns reads rows for runs of their jobs, each with its batch's
// stored list of the row's configuration path (Item.List, nil when none is
// stored yet, or when the row knows its configuration by name only), in
// one statement that writes nothing. A row that another live run holds (it
// claimed the target and may be writing) is not handed out: its answer is
// *HeldError. A final row is returned as it is. A run takes its row when
// it claims the target (Claims), and every outcome it records ends its
// hold. Its answers are in the order of reqs.
func StartRuns(ctx context.Context, q Querier, reqs []RunRequest) ([]RunStart, error) {
	n := len(reqs)
	batches, rows, runs := make([]string, n), make([]int32, n), make([]string, n)
	for i, r := range reqs {
		batches[i], rows[i], runs[i] = r.BatchID, int32(r.Row), r.Run
	}
	rs, err := q.Query(ctx, `SELECT `+workColumns+`, `+listColumns+`,
			CASE WHEN NOT bulkassign_final(i.status) AND NOT bulkassign_free(i.run_id, i.run_until, o.run)
				THEN i.run_until - now() END, o.k
		FROM unnest($1::uuid[], $2::int[], $3::uuid[]) WITH ORDINALITY AS o(batch_id, row, run, k)
		JOIN items i ON i.batch_id = o.batch_id AND i.row = o.row
		LEFT JOIN assignment_lists l ON l.batch_id = i.batch_id AND l.configuration_id = i.configuration_id
			AND l.path = i.path AND l.reader IS NULL`, batches, rows, runs)
	if err != nil {
		return nil, fmt.Errorf("error reading items: %w", err)
	}
	defer rs.Close()
	out := make([]RunStart, n)
	for i, r := range reqs {
		out[i].Err = fmt.Errorf("item %s/%d: %w", r.BatchID, r.Row, ErrNotFound)
	}
	for rs.Next() {
		var (
			sc     itemScan
			stored listScan
			held   *time.Duration
			k      int
		)
		if err := rs.Scan(sc.dest(append(stored.dest(), &held, &k)...)...); err != nil {
			return nil, fmt.Errorf("error reading items: %w", err)
		}
		if k < 1 || k > n {
			return nil, fmt.Errorf("error reading items: answer for request %d of %d", k, n)
		}
		r := &out[k-1]
		req := reqs[k-1]
		switch it, err := sc.item(req.BatchID, req.Row); {
		case err != nil:
			r.Err = err
		case held != nil:
			r.Err = &HeldError{Left: max(*held, 0)}
		default:
			it.List = stored.list()
			r.Item, r.Err = it, nil
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("error reading items: %w", err)
	}
	return out, nil
}

// Outcome is what the last Graph exchange of a row said.
type Outcome struct {
	Status       assign.Status
	HTTPStatus   int
	AssignmentID string
	ErrorCode    string
	ErrorMessage string
	RequestID    string
	// CountError adds one to the row's error count (a failed attempt).
	CountError bool
	// KeepIntent leaves the intent in place: the create (or delete) may
	// have applied.
	KeepIntent bool
	// Unsent takes back the attempt the row's claim counted: the request
	// it was for never left (the fleet's limit held it back).
	Unsent bool
	// Resolved are the ids the row's names resolved to in its tenant,
	// recorded with any outcome (a row keeps the name given and the id
	// used); empty ids leave the row's as they are.
	Resolved Resolution
}

// Resolution is what a row's display names resolved to.
type Resolution struct {
	ConfigurationID, GroupID, FilterID string
}

// RowOutcome is an outcome for one row, written by the run that holds it
// (Run "" writes whoever holds it).
type RowOutcome struct {
	BatchID string
	Row     int
	Run     string
	Outcome
}

// RecordOutcome writes one row's outcome: RecordOutcomes of one.
func RecordOutcome(ctx context.Context, q Querier, batchID string, row int, run string, o Outcome) (bool, error) {
	wrote, err := RecordOutcomes(ctx, q, []RowOutcome{{BatchID: batchID, Row: row, Run: run, Outcome: o}})
	if err != nil {
		return false, err
	}
	return wrote[0], nil
}

// RecordOutcomes writes outcomes to their items in one statement, each
// for the run that holds its row (or any run while no live run does: a
// hold that has run out was left by a run that can no longer post). A row's
// first outcome sets its start (patience counts from it, or from the
// claim). For a final status it also sets
// finished_at and ends the run's hold, and the row is done: its River job
// may be completed after (never before) this commits. Any outcome but a
// final one also ends the hold (the job is about to snooze). It never
// overwrites a row that is already final: a final status never changes
// (cancel ends a row canceled only once no write of it can be in flight).
// A row being cancelled takes the outcome by bulkassign_settle's rule: what
// its write did, else canceled (or still cancelling while the write is in
// doubt). It reports, per outcome, whether it wrote. Text is made storable
// (valid UTF-8, no NUL, bounded).
func RecordOutcomes(ctx context.Context, q Querier, os []RowOutcome) ([]bool, error) {
	ws, err := WriteOutcomes(ctx, q, os)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(ws))
	for i, w := range ws {
		out[i] = w.Wrote
	}
	return out, nil
}

// Written is what WriteOutcomes did with one outcome: whether it wrote it,
// and whether the row is final after it (a row being cancelled ends
// canceled on an outcome that is not final itself: its run then has
// nothing left to come back for).
type Written struct {
	Wrote bool
	// Status is the row's status after the write (bulkassign_settle may
	// have made it another than the outcome's).
	Status assign.Status
}

// Final reports whether the row is final after the write.
func (w Written) Final() bool { return w.Wrote && w.Status.Final() }

// WriteOutcomes is RecordOutcomes, saying also whether each row it wrote
// is final now.
func WriteOutcomes(ctx context.Context, q Querier, os []RowOutcome) ([]Written, error) {
	n := len(os)
	var (
		batches, statuses, assignmentIDs, codes, messages, requestIDs, runs = make([]string, n), make([]string, n),
			make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		rows, httpStatuses, countErrors = make([]int32, n), make([]*int32, n), make([]int32, n)
		keepIntents                     = make([]bool, n)
		resolvedCfgs, resolvedGroups    = make([]*string, n), make([]*string, n)
		resolvedFilters                 = make([]*string, n)
		unsent                          = make([]int32, n)
	)
	for i, o := range os {
		batches[i], rows[i], statuses[i] = o.BatchID, int32(o.Row), string(o.Status)
		if o.HTTPStatus != 0 {
			hs := int32(o.HTTPStatus)
			httpStatuses[i] = &hs
		}
		assignmentIDs[i], codes[i] = nullable(text.Short(o.AssignmentID)), nullable(text.Short(o.ErrorCode))
		messages[i], requestIDs[i] = nullable(text.Message(o.ErrorMessage)), nullable(text.Short(o.RequestID))
		countErrors[i], keepIntents[i], runs[i] = int32(boolInt(o.CountError)), o.KeepIntent, nullable(o.Run)
		unsent[i] = int32(boolInt(o.Unsent))
		resolvedCfgs[i], resolvedGroups[i] = nullable(o.Resolved.ConfigurationID), nullable(o.Resolved.GroupID)
		resolvedFilters[i] = nullable(o.Resolved.FilterID)
	}
	rs, err := q.Query(ctx, `UPDATE items i SET status = bulkassign_settle(i.status, o.status, o.keep_intent), http_status = o.http_status,
			assignment_id = coalesce(o.assignment_id, i.assignment_id),
			error_code = CASE WHEN i.status = 'cancelling' AND NOT bulkassign_settle(i.status, o.status, o.keep_intent) IN ('created', 'removed', 'already_assigned', 'not_assigned')
				THEN $16 ELSE o.error_code END,
			error_message = CASE WHEN i.status = 'cancelling' AND NOT bulkassign_settle(i.status, o.status, o.keep_intent) IN ('created', 'removed', 'already_assigned', 'not_assigned')
				THEN 'canceled by enqueue cancel' || CASE WHEN o.keep_intent THEN ' while a write was in flight: it may have applied, and revert reads Graph to settle it'
					ELSE '' END || coalesce(' (last answer: ' || o.error_message || ')', '')
				ELSE o.error_message END,
			request_id = coalesce(o.request_id, i.request_id), errors = i.errors + o.count_error,
			attempts = i.attempts - o.unsent,
			intent_request_id = CASE WHEN o.keep_intent THEN i.intent_request_id END,
			intent_at = CASE WHEN o.keep_intent THEN i.intent_at END,
			started_at = coalesce(i.started_at, now()),
			finished_at = CASE WHEN bulkassign_final(bulkassign_settle(i.status, o.status, o.keep_intent)) THEN now() END,
			run_id = NULL, run_until = NULL,
			configuration_id = coalesce(i.configuration_id, o.configuration_id),
			group_id = coalesce(i.group_id, o.group_id), filter_id = coalesce(i.filter_id, o.filter_id),
			updated_at = now()
		FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[], $11::bool[],
				$12::int[], $13::uuid[], $14::uuid[], $15::uuid[])
			AS o(batch_id, row, run, status, http_status, assignment_id, error_code, error_message, request_id, count_error, keep_intent,
				unsent, configuration_id, group_id, filter_id)
		WHERE i.batch_id = o.batch_id AND i.row = o.row
			AND NOT bulkassign_final(i.status)
			AND (o.run IS NULL OR bulkassign_free(i.run_id, i.run_until, o.run))
		RETURNING i.batch_id::text, i.row, i.status`,
		batches, rows, runs, statuses, httpStatuses, assignmentIDs, codes, messages, requestIDs, countErrors, keepIntents, unsent,
		resolvedCfgs, resolvedGroups, resolvedFilters, assign.CodeCanceled)
	if err != nil {
		return nil, fmt.Errorf("error recording outcomes: %w", err)
	}
	type key struct {
		batch string
		row   int
	}
	written := map[key]Written{}
	for rs.Next() {
		var k key
		w := Written{Wrote: true}
		if err := rs.Scan(&k.batch, &k.row, &w.Status); err != nil {
			rs.Close()
			return nil, fmt.Errorf("error recording outcomes: %w", err)
		}
		written[k] = w
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("error recording outcomes: %w", err)
	}
	out := make([]Written, n)
	for i, o := range os {
		out[i] = written[key{o.BatchID, o.Row}]
	}
	return out, nil
}

func nullInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

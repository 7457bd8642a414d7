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

// scanItem scans workColumns, then more (the values of further columns).
func scanItem(row pgx.Row, batchID string, rowNo int, more ...any) (*Item, error) {
	it := &Item{BatchID: batchID, Row: rowNo}
	var path, ttype, status, action string
	var group, coll, filter, ftype, assignmentID, intent *string
	n := &it.Spec.Names
	err := row.Scan(append([]any{&it.Line, &it.Spec.ConfigurationID, &path, &ttype, &group, &coll, &filter, &ftype, &status,
		&it.Attempts, &it.Errors, &assignmentID, &intent, &it.IntentAt, &it.StartedAt, &it.Elapsed, &it.TenantID, &action,
		&n.Configuration, &n.Group, &n.Filter}, more...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("item %s/%d: %w", batchID, rowNo, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading item %s/%d: %w", batchID, rowNo, err)
	}
	// What comes back from the database is checked like input: a path
	// outside the allow-list never reaches a Graph URL.
	if it.Spec.Path, err = assign.ParsePath(path); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid path: %w", batchID, rowNo, err)
	}
	it.Spec.Target = assign.Target{Type: assign.TargetType(ttype), GroupID: deref(group), CollectionID: deref(coll),
		FilterID: deref(filter), FilterType: assign.FilterType(deref(ftype))}
	if it.Spec.Action, err = assign.ParseAction(action); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid action: %w", batchID, rowNo, err)
	}
	if err := it.Spec.ValidateStored(); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid target: %w", batchID, rowNo, err)
	}
	it.Status = assign.Status(status)
	it.AssignmentID = deref(assignmentID)
	it.IntentRequestID = deref(intent)
	return it, nil
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

// StartRun reads the row for one run of its job, with the batch's stored
// list of the row's configuration path (Item.List, nil when none is
// stored yet), in one statement that writes nothing. A row that another
// live run holds (it claimed the target and may be posting) is not handed
// out: StartRun returns *HeldError. A final row is returned as it is. The
// run takes the row when it claims the target (Claim), and every outcome
// it records ends its hold.
func StartRun(ctx context.Context, q Querier, batchID string, row int, run string) (*Item, error) {
	var (
		stored listScan
		held   *time.Duration
	)
	it, err := scanItem(q.QueryRow(ctx, `SELECT `+workColumns+`, `+listColumns+`,
			CASE WHEN NOT bulkassign_final(i.status) AND NOT bulkassign_free(i.run_id, i.run_until, $3::uuid)
				THEN i.run_until - now() END
		FROM items i
		LEFT JOIN assignment_lists l ON l.batch_id = i.batch_id AND l.configuration_id = i.configuration_id
			AND l.path = i.path AND l.reader IS NULL
		WHERE i.batch_id = $1 AND i.row = $2`, batchID, row, run), batchID, row, append(stored.dest(), &held)...)
	if err != nil {
		return nil, err
	}
	if held != nil {
		return nil, &HeldError{Left: max(*held, 0)}
	}
	it.List = stored.list()
	return it, nil
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
// final one also ends the hold (the job is about to snooze). It does not
// overwrite a row that is already final (a cancel that raced the worker
// wins), except that a create or delete which did apply is always
// recorded, so revert can find it. It reports, per outcome, whether it wrote. Text is
// made storable (valid UTF-8, no NUL, bounded).
func RecordOutcomes(ctx context.Context, q Querier, os []RowOutcome) ([]bool, error) {
	n := len(os)
	var (
		batches, statuses, assignmentIDs, codes, messages, requestIDs, runs = make([]string, n), make([]string, n),
			make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		rows, httpStatuses, countErrors = make([]int32, n), make([]*int32, n), make([]int32, n)
		keepIntents                     = make([]bool, n)
		resolved                        = make([]*string, 3*n) // configuration, group, filter ids, row by row
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
		resolved[3*i], resolved[3*i+1], resolved[3*i+2] = nullable(o.Resolved.ConfigurationID), nullable(o.Resolved.GroupID),
			nullable(o.Resolved.FilterID)
	}
	rs, err := q.Query(ctx, `UPDATE items i SET status = o.status, http_status = o.http_status,
			assignment_id = coalesce(o.assignment_id, i.assignment_id), error_code = o.error_code, error_message = o.error_message,
			request_id = coalesce(o.request_id, i.request_id), errors = i.errors + o.count_error,
			intent_request_id = CASE WHEN o.keep_intent THEN i.intent_request_id END,
			intent_at = CASE WHEN o.keep_intent THEN i.intent_at END,
			started_at = coalesce(i.started_at, now()),
			finished_at = CASE WHEN bulkassign_final(o.status) THEN now() END,
			run_id = NULL, run_until = NULL,
			configuration_id = coalesce(i.configuration_id, ($12::uuid[])[(3 * o.n - 2)::int]),
			group_id = coalesce(i.group_id, ($12::uuid[])[(3 * o.n - 1)::int]),
			filter_id = coalesce(i.filter_id, ($12::uuid[])[(3 * o.n)::int]),
			updated_at = now()
		FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[], $11::bool[])
			WITH ORDINALITY AS o(batch_id, row, run, status, http_status, assignment_id, error_code, error_message, request_id, count_error, keep_intent, n)
		WHERE i.batch_id = o.batch_id AND i.row = o.row
			AND (NOT bulkassign_final(i.status) OR (o.status IN ('created', 'removed') AND i.status = 'canceled'))
			AND (o.run IS NULL OR bulkassign_free(i.run_id, i.run_until, o.run))
		RETURNING i.batch_id::text, i.row`,
		batches, rows, runs, statuses, httpStatuses, assignmentIDs, codes, messages, requestIDs, countErrors, keepIntents, resolved)
	if err != nil {
		return nil, fmt.Errorf("error recording outcomes: %w", err)
	}
	type key struct {
		batch string
		row   int
	}
	written := map[key]bool{}
	for rs.Next() {
		var k key
		if err := rs.Scan(&k.batch, &k.row); err != nil {
			rs.Close()
			return nil, fmt.Errorf("error recording outcomes: %w", err)
		}
		written[k] = true
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("error recording outcomes: %w", err)
	}
	out := make([]bool, n)
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

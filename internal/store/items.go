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
}

// itemReturning lists the columns scanItem reads, in order.
const itemReturning = `line, configuration_id::text, path, target_type, group_id::text, collection_id,
	filter_id::text, filter_type, status, attempts, errors, assignment_id, intent_request_id, intent_at, started_at,
	coalesce(now() - started_at, '0'), coalesce(tenant_id, '')`

func scanItem(row pgx.Row, batchID string, rowNo int) (*Item, error) {
	it := &Item{BatchID: batchID, Row: rowNo}
	var path, ttype, status string
	var group, coll, filter, ftype, assignmentID, intent *string
	err := row.Scan(&it.Line, &it.Spec.ConfigurationID, &path, &ttype, &group, &coll, &filter, &ftype, &status,
		&it.Attempts, &it.Errors, &assignmentID, &intent, &it.IntentAt, &it.StartedAt, &it.Elapsed, &it.TenantID)
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
	if err := it.Spec.Target.Validate(); err != nil {
		return nil, fmt.Errorf("item %s/%d holds an invalid target: %w", batchID, rowNo, err)
	}
	it.Status = assign.Status(status)
	it.AssignmentID = deref(assignmentID)
	it.IntentRequestID = deref(intent)
	return it, nil
}

// GetItem reads one item.
func GetItem(ctx context.Context, q Querier, batchID string, row int) (*Item, error) {
	return scanItem(q.QueryRow(ctx, `SELECT `+itemReturning+` FROM items WHERE batch_id = $1 AND row = $2`, batchID, row), batchID, row)
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

// StartRun takes the row for one run of its job: it records that a worker
// has the row (keeping the first start time, from which patience counts),
// and holds it for run until hold has passed on the database's clock. A
// row held by another live run is not taken: StartRun returns *HeldError.
// A final row is returned as it is, not held.
func StartRun(ctx context.Context, q Querier, batchID string, row int, run string, hold time.Duration) (*Item, error) {
	it, err := scanItem(q.QueryRow(ctx, `UPDATE items SET
			status = CASE WHEN bulkassign_final(status) THEN status ELSE 'running' END,
			started_at = CASE WHEN bulkassign_final(status) THEN started_at ELSE coalesce(started_at, now()) END,
			run_id = CASE WHEN bulkassign_final(status) THEN run_id ELSE $3::uuid END,
			run_until = CASE WHEN bulkassign_final(status) THEN run_until ELSE now() + $4::interval END,
			updated_at = now()
		WHERE batch_id = $1 AND row = $2
			AND (bulkassign_final(status) OR run_until IS NULL OR run_until <= now() OR run_id = $3::uuid)
		RETURNING `+itemReturning, batchID, row, run, hold), batchID, row)
	if !errors.Is(err, ErrNotFound) {
		return it, err
	}
	var left *time.Duration
	err = q.QueryRow(ctx, `SELECT run_until - now() FROM items WHERE batch_id = $1 AND row = $2`, batchID, row).Scan(&left)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("item %s/%d: %w", batchID, row, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading item %s/%d: %w", batchID, row, err)
	}
	return nil, &HeldError{Left: max(deref0(left), 0)}
}

func deref0(d *time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return *d
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
	// KeepIntent leaves the intent in place: the create may have applied.
	KeepIntent bool
}

// RecordOutcome writes an outcome to its item, for the run that holds it
// (run "" writes whoever holds it). For a final status it also sets
// finished_at and ends the run's hold; callers complete the River job in
// the same transaction. Any outcome but a final one also ends the hold (the
// job is about to snooze). It does not overwrite a row that is already
// final (a cancel that raced the worker wins), except that a create which
// did apply is always recorded, so revert can find it. It reports whether
// it wrote. Text is made storable (valid UTF-8, no NUL, bounded).
func RecordOutcome(ctx context.Context, q Querier, batchID string, row int, run string, o Outcome) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE items SET status = $3, http_status = $4,
			assignment_id = coalesce($5, assignment_id), error_code = $6, error_message = $7,
			request_id = coalesce($8, request_id), errors = errors + $9::int,
			intent_request_id = CASE WHEN $10 THEN intent_request_id END,
			intent_at = CASE WHEN $10 THEN intent_at END,
			finished_at = CASE WHEN bulkassign_final($3) THEN now() END,
			run_id = NULL, run_until = NULL,
			updated_at = now()
		WHERE batch_id = $1 AND row = $2 AND (NOT bulkassign_final(status) OR ($3 = 'created' AND status = 'canceled'))
			AND ($11::uuid IS NULL OR run_id = $11::uuid OR run_id IS NULL)`,
		batchID, row, string(o.Status), nullInt(o.HTTPStatus), nullable(text.Short(o.AssignmentID)), nullable(text.Short(o.ErrorCode)),
		nullable(text.Message(o.ErrorMessage)), nullable(text.Short(o.RequestID)), boolInt(o.CountError), o.KeepIntent, nullable(run))
	if err != nil {
		return false, fmt.Errorf("error recording outcome: %w", err)
	}
	return tag.RowsAffected() == 1, nil
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

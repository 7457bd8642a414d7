package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Item is one row of a batch as the worker sees it.
type Item struct {
	BatchID         string
	Row             int
	Line            int
	Spec            assign.Spec
	Status          assign.Status
	Attempts        int
	Errors          int
	AssignmentID    string
	IntentRequestID string
	IntentAt        *time.Time
	StartedAt       *time.Time
}

// itemReturning lists the columns scanItem reads, in order.
const itemReturning = `line, configuration_id::text, path, target_type, group_id::text, collection_id,
	filter_id::text, filter_type, status, attempts, errors, assignment_id, intent_request_id, intent_at, started_at`

func scanItem(row pgx.Row, batchID string, rowNo int) (*Item, error) {
	it := &Item{BatchID: batchID, Row: rowNo}
	var path, ttype, status string
	var group, coll, filter, ftype, assignmentID, intent *string
	err := row.Scan(&it.Line, &it.Spec.ConfigurationID, &path, &ttype, &group, &coll, &filter, &ftype, &status,
		&it.Attempts, &it.Errors, &assignmentID, &intent, &it.IntentAt, &it.StartedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("item %s/%d: %w", batchID, rowNo, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading item %s/%d: %w", batchID, rowNo, err)
	}
	it.Spec.Path = assign.Path(path)
	it.Spec.Target = assign.Target{Type: assign.TargetType(ttype), GroupID: deref(group), CollectionID: deref(coll),
		FilterID: deref(filter), FilterType: assign.FilterType(deref(ftype))}
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

// MarkRunning records that a worker has the row, keeping the first start
// time (the row's patience counts from it), and returns the row: one round
// trip where a worker used to need two. A final row is left as it is.
func MarkRunning(ctx context.Context, q Querier, batchID string, row int) (*Item, error) {
	return scanItem(q.QueryRow(ctx, `UPDATE items SET
			status = CASE WHEN status IN ('created', 'already_assigned', 'failed', 'canceled') THEN status ELSE 'running' END,
			started_at = coalesce(started_at, now()), updated_at = now()
		WHERE batch_id = $1 AND row = $2 RETURNING `+itemReturning, batchID, row), batchID, row)
}

// RecordIntent commits, before a create request leaves the process, that it
// is about to: if the answer is lost, the next attempt knows a create may have
// been applied. It counts the attempt.
func RecordIntent(ctx context.Context, q Querier, batchID string, row int, clientRequestID string) error {
	tag, err := q.Exec(ctx, `UPDATE items SET intent_request_id = $3, intent_at = now(), client_request_id = $3,
			attempts = attempts + 1, status = 'running', updated_at = now()
		WHERE batch_id = $1 AND row = $2 AND status NOT IN ('created', 'already_assigned', 'failed', 'canceled')`,
		batchID, row, clientRequestID)
	if err != nil {
		return fmt.Errorf("error recording intent: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("item %s/%d is final or gone: %w", batchID, row, ErrNotFound)
	}
	return nil
}

// ClearIntent forgets an intent whose request is known not to have been
// applied (Graph answered 4xx or 429).
func ClearIntent(ctx context.Context, q Querier, batchID string, row int) error {
	_, err := q.Exec(ctx, `UPDATE items SET intent_request_id = NULL, intent_at = NULL, updated_at = now()
		WHERE batch_id = $1 AND row = $2`, batchID, row)
	if err != nil {
		return fmt.Errorf("error clearing intent: %w", err)
	}
	return nil
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

// RecordOutcome writes an outcome to its item. For a final status it also
// sets finished_at; callers complete the River job in the same transaction.
// It does not overwrite a row that is already final (a cancel that raced the
// worker wins), except that a create which did apply is always recorded, so
// revert can find it. It reports whether it wrote.
func RecordOutcome(ctx context.Context, q Querier, batchID string, row int, o Outcome) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE items SET status = $3, http_status = $4,
			assignment_id = coalesce($5, assignment_id), error_code = $6, error_message = $7,
			request_id = coalesce($8, request_id), errors = errors + $9::int,
			intent_request_id = CASE WHEN $10 THEN intent_request_id END,
			intent_at = CASE WHEN $10 THEN intent_at END,
			finished_at = CASE WHEN $3 IN ('created', 'already_assigned', 'failed', 'canceled') THEN now() END,
			updated_at = now()
		WHERE batch_id = $1 AND row = $2 AND (status NOT IN ('created', 'already_assigned', 'failed', 'canceled')
			OR ($3 = 'created' AND status = 'canceled'))`,
		batchID, row, string(o.Status), nullInt(o.HTTPStatus), nullable(o.AssignmentID), nullable(o.ErrorCode),
		nullable(truncate(o.ErrorMessage, 2000)), nullable(o.RequestID), boolInt(o.CountError), o.KeepIntent)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

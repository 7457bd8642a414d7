package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/text"
)

// This file holds the SQL of the operations on a batch after it was
// enqueued: retry, cancel, revert, and the listings that follow them.

// LockBatch holds the batch's row until tx ends, so that retry, cancel and
// revert of one batch never interleave.
func LockBatch(ctx context.Context, tx pgx.Tx, batchID string) error {
	var id string
	err := tx.QueryRow(ctx, `SELECT id::text FROM batches WHERE id = $1 FOR UPDATE`, batchID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("batch %s: %w", batchID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("error locking batch: %w", err)
	}
	return nil
}

// LiveJobRows lists the rows of a batch whose River job of kind (an
// assign job) may still act: it waits, is snoozed, or runs while its row
// is not final or is held by a live run (a run holds its row from its
// claim until its outcome is written). A job that still shows running
// after its run wrote a final outcome (River completes jobs in batches,
// moments later) can change nothing and is not listed. Jobs are found by
// their args, which name the batch and the row (River's GIN index on args
// serves @>).
func LiveJobRows(ctx context.Context, q Querier, kind, batchID string) ([]int, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT (j.args->>'row')::int FROM river_job j
		LEFT JOIN items i ON i.batch_id = $2::uuid AND i.row = (j.args->>'row')::int
		WHERE j.kind = $1 AND j.args @> jsonb_build_object('batch', $2::text) AND j.state::text = ANY($3)
			AND (j.state <> 'running' OR i.row IS NULL OR NOT bulkassign_final(i.status)
				OR NOT bulkassign_free(i.run_id, i.run_until, NULL))`,
		kind, batchID, QueueStates)
	if err != nil {
		return nil, fmt.Errorf("error reading the batch's jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("error reading the batch's jobs: %w", err)
	}
	return out, nil
}

// CancelJobs cancels the batch's jobs of kind that are not running, except
// those of rows (or reverts, with revert) being cancelled: their job must
// run once more to settle a write that may have applied, and is made due
// now. Running jobs are left to finish: interrupting a write in flight
// would leave it in doubt, and the workers complete the job of a row they
// find final.
func CancelJobs(ctx context.Context, tx pgx.Tx, kind, batchID string, revert bool) (int, error) {
	cancelling := `i.status = 'cancelling'`
	if revert {
		cancelling = `i.revert_status = 'cancelling'`
	}
	settling := `EXISTS (SELECT 1 FROM items i WHERE i.batch_id = $2::uuid AND i.row = (j.args->>'row')::int AND ` + cancelling + `)`
	tag, err := tx.Exec(ctx, `UPDATE river_job j SET state = 'cancelled', finalized_at = now()
		WHERE kind = $1 AND args @> jsonb_build_object('batch', $2::text)
			AND state IN ('available', 'scheduled', 'retryable', 'pending') AND NOT `+settling, kind, batchID)
	if err != nil {
		return 0, fmt.Errorf("error canceling jobs: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE river_job j SET scheduled_at = now()
		WHERE kind = $1 AND args @> jsonb_build_object('batch', $2::text)
			AND state IN ('scheduled', 'retryable') AND scheduled_at > now() AND `+settling, kind, batchID); err != nil {
		return 0, fmt.Errorf("error making the jobs of rows being cancelled due: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CancelCounts is what a cancel did to a batch's rows (or reverts).
type CancelCounts struct {
	// Canceled ended canceled at once: no write of theirs was in flight.
	Canceled int
	// Cancelling may have a write in flight (or one whose answer was
	// lost): they end created or removed if it applied, canceled if not.
	Cancelling int
}

// CancelItems ends the batch's rows that are not final as canceled, or,
// when a write of the row may be in flight or may have applied unseen (it
// has an intent), marks them cancelling: such a row starts no new write
// (bulkassign_claims refuses it), and its run ends it created or removed
// if the write applied, canceled if not. So a row is canceled only once no
// run of it can still write, and a final status never changes. Rows are
// locked in key order, as the claims and outcomes lock them.
func CancelItems(ctx context.Context, tx pgx.Tx, batchID string) (CancelCounts, error) {
	var c CancelCounts
	err := tx.QueryRow(ctx, `WITH picked AS (
			SELECT row FROM items WHERE batch_id = $1 AND NOT bulkassign_final(status) AND status <> 'cancelling'
			ORDER BY row FOR UPDATE
		), done AS (
			UPDATE items i SET status = CASE WHEN i.intent_request_id IS NULL THEN 'canceled' ELSE 'cancelling' END,
				error_code = $2, error_message = CASE WHEN i.intent_request_id IS NULL THEN 'canceled by enqueue cancel'
					ELSE 'enqueue cancel: a write of this row may be in flight; it ends created if that write applied, else canceled' END,
				finished_at = CASE WHEN i.intent_request_id IS NULL THEN now() END, updated_at = now()
			FROM picked p WHERE i.batch_id = $1 AND i.row = p.row
			RETURNING i.status)
		SELECT count(*) FILTER (WHERE status = 'canceled'), count(*) FILTER (WHERE status = 'cancelling') FROM done`,
		batchID, assign.CodeCanceled).Scan(&c.Canceled, &c.Cancelling)
	if err != nil {
		return c, fmt.Errorf("error canceling rows: %w", err)
	}
	return c, nil
}

// RetryItems sends the batch's failed and canceled rows round again, except
// those listed in skip (rows whose previous job still runs). Each row's
// finished run is archived in item_history; the row returns to queued with
// a fresh error budget and patience, keeping its attempts count and any
// create intent (so a create in doubt is reconciled, not repeated). The
// batch's cached assignment lists of the rows' paths, and the lookups of
// the names they give, are dropped, so the rows see Graph as it is now. It returns the rows, in order.
func RetryItems(ctx context.Context, tx pgx.Tx, batchID string, skip []int) ([]int, error) {
	if skip == nil {
		skip = []int{} // not nil: pgx sends nil as NULL, and row <> ALL(NULL) is never true
	}
	rows, err := tx.Query(ctx, `WITH picked AS (
			SELECT row FROM items WHERE batch_id = $1 AND status IN ('failed', 'canceled') AND row <> ALL($2::int[])
			FOR UPDATE
		), archived AS (
			INSERT INTO item_history (batch_id, row, run, status, http_status, attempts, errors, error_code, error_message,
				request_id, started_at, finished_at)
			SELECT i.batch_id, i.row, i.retries, i.status, i.http_status, i.attempts, i.errors, i.error_code, i.error_message,
				i.request_id, i.started_at, i.finished_at
			FROM items i JOIN picked p ON i.batch_id = $1 AND i.row = p.row
		), cleared AS (
			DELETE FROM assignment_lists l USING items i, picked p
			WHERE l.batch_id = $1 AND i.batch_id = $1 AND i.row = p.row
				AND l.configuration_id = i.configuration_id AND l.path = i.path
		), names_cleared AS (
			DELETE FROM name_lookups n USING items i, picked p
			WHERE n.batch_id = $1 AND i.batch_id = $1 AND i.row = p.row AND n.tenant_id = coalesce(i.tenant_id, '')
				AND (n.kind, n.name) IN (('configuration', i.configuration_name), ('group', i.group_name), ('filter', i.filter_name))
		)
		UPDATE items i SET status = 'queued', retries = i.retries + 1, errors = 0, http_status = NULL, error_code = NULL,
			error_message = NULL, request_id = NULL, started_at = NULL, finished_at = NULL, updated_at = now()
		FROM picked p WHERE i.batch_id = $1 AND i.row = p.row
		RETURNING i.row`, batchID, skip)
	if err != nil {
		return nil, fmt.Errorf("error resetting rows for retry: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("error resetting rows for retry: %w", err)
	}
	slices.Sort(out) // RETURNING has no order
	return out, nil
}

// inDoubt is the rule of a row in doubt: it ended (failed, or canceled)
// while a write of its own may have applied unseen.
const inDoubt = `status IN ('failed', 'canceled') AND intent_request_id IS NOT NULL`

// CountInDoubt counts the batch's rows in doubt: a write that may have
// applied unseen. Their reverts read Graph first (QueueRevert).
func CountInDoubt(ctx context.Context, q Querier, batchID string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM items WHERE batch_id = $1 AND `+inDoubt, batchID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("error counting rows in doubt: %w", err)
	}
	return n, nil
}

// QueueRevert marks for revert every row of the batch that created its
// assignment or removed one, or that is in doubt (its revert reads Graph
// and undoes only what applied), skipping rows already reverted or on
// their way: a second revert re-queues only failed and canceled reverts.
// Rows that found their target already assigned, or nothing to remove, are
// never touched. It returns the rows, in order.
func QueueRevert(ctx context.Context, tx pgx.Tx, batchID string) ([]int, error) {
	rows, err := tx.Query(ctx, `UPDATE items SET revert_status = 'queued', revert_http_status = NULL,
			revert_error_code = NULL, revert_error = NULL, revert_request_id = NULL, revert_errors = 0,
			revert_started_at = NULL, reverted_at = NULL, updated_at = now()
		WHERE batch_id = $1 AND (status = 'created' AND assignment_id IS NOT NULL OR status = 'removed' OR `+inDoubt+`)
			AND (revert_status IS NULL OR revert_status IN ('failed', 'canceled'))
		RETURNING row`, batchID)
	if err != nil {
		return nil, fmt.Errorf("error queueing revert: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("error queueing revert: %w", err)
	}
	slices.Sort(out) // RETURNING has no order
	return out, nil
}

// CancelReverts ends the batch's reverts that are not final as canceled,
// or as cancelling while a run of theirs is working (its request may be in
// flight): that run ends the revert reverted if its request applied, else
// canceled.
func CancelReverts(ctx context.Context, tx pgx.Tx, batchID string) (CancelCounts, error) {
	var c CancelCounts
	err := tx.QueryRow(ctx, `WITH done AS (
			UPDATE items SET revert_status = CASE WHEN revert_status = 'running' THEN 'cancelling' ELSE 'canceled' END,
				revert_error_code = $2, revert_error = CASE WHEN revert_status = 'running'
					THEN 'enqueue cancel: the revert''s request may be in flight; it ends reverted if that applied, else canceled'
					ELSE 'canceled by enqueue cancel' END, updated_at = now()
			WHERE batch_id = $1 AND NOT bulkassign_revert_final(revert_status) AND revert_status <> 'cancelling'
			RETURNING revert_status)
		SELECT count(*) FILTER (WHERE revert_status = 'canceled'), count(*) FILTER (WHERE revert_status = 'cancelling') FROM done`,
		batchID, assign.CodeCanceled).Scan(&c.Canceled, &c.Cancelling)
	if err != nil {
		return c, fmt.Errorf("error canceling reverts: %w", err)
	}
	return c, nil
}

// RevertCounts counts a batch's rows by revert status (rows without a
// revert are not counted).
type RevertCounts map[assign.RevertStatus]int

// Total is the number of rows with a revert.
func (c RevertCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Final is the number of rows whose revert is over.
func (c RevertCounts) Final() int {
	n := 0
	for s, v := range c {
		if s.Final() {
			n += v
		}
	}
	return n
}

// CountReverts counts a batch's rows by revert status, from its kept
// counts (see CountByTenant).
func CountReverts(ctx context.Context, q Querier, batchID string) (RevertCounts, error) {
	rows, err := q.Query(ctx, `SELECT revert_status, sum(n) FROM batch_counts
		WHERE batch_id = $1 AND revert_status <> '' GROUP BY revert_status HAVING sum(n) <> 0`, batchID)
	if err != nil {
		return nil, fmt.Errorf("error counting reverts: %w", err)
	}
	out := RevertCounts{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[assign.RevertStatus(s)] = n
	}
	return out, rows.Err()
}

// RevertState is what the revert worker needs to know of a row's revert.
type RevertState struct {
	Status assign.RevertStatus
	Errors int
	// Elapsed is how long ago the revert first started, by the
	// database's clock.
	Elapsed time.Duration
}

// MarkRevertRunning records that a worker has the row's revert, keeping the
// first start time. A final (or absent) revert, or one being cancelled, is
// left alone and reported through the returned status.
func MarkRevertRunning(ctx context.Context, q Querier, batchID string, row int) (RevertState, error) {
	var st RevertState
	var status *string
	err := q.QueryRow(ctx, `UPDATE items SET
			revert_status = CASE WHEN NOT bulkassign_revert_final(revert_status) AND revert_status <> 'cancelling' THEN 'running'
				ELSE revert_status END,
			revert_started_at = CASE WHEN NOT bulkassign_revert_final(revert_status)
				THEN coalesce(revert_started_at, now()) ELSE revert_started_at END,
			updated_at = now()
		WHERE batch_id = $1 AND row = $2
		RETURNING revert_status, revert_errors, coalesce(now() - revert_started_at, '0')`, batchID, row).Scan(&status, &st.Errors, &st.Elapsed)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("item %s/%d: %w", batchID, row, ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("error marking revert running: %w", err)
	}
	st.Status = assign.RevertStatus(deref(status))
	return st, nil
}

// HoldRevert takes the row for run's revert until hold has passed on the
// database's clock (the rule of bulkassign_free, as an assign run's hold:
// the row is final, so its hold is free for its revert). It returns
// *HeldError while another live run holds it.
func HoldRevert(ctx context.Context, q Querier, batchID string, row int, run string, hold time.Duration) error {
	var left *time.Duration
	err := q.QueryRow(ctx, `WITH taken AS (
			UPDATE items SET run_id = $3::uuid, run_until = now() + $4::interval
			WHERE batch_id = $1 AND row = $2 AND bulkassign_free(run_id, run_until, $3::uuid)
			RETURNING 1)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM taken) THEN NULL ELSE
			(SELECT run_until - now() FROM items WHERE batch_id = $1 AND row = $2) END`,
		batchID, row, run, hold).Scan(&left)
	if err != nil {
		return fmt.Errorf("error holding the row for its revert: %w", err)
	}
	if left != nil {
		return &HeldError{Left: max(*left, 0)}
	}
	return nil
}

// RevertOutcome is what the last request of a row's revert said: the
// DELETE of the assignment a create row made, or the create that puts
// back what a remove row deleted.
type RevertOutcome struct {
	Status     assign.RevertStatus
	HTTPStatus int
	ErrorCode  string
	Error      string
	RequestID  string
	// CountError adds one to the revert's error count (a failed attempt).
	CountError bool
	// AssignmentID is the assignment a remove row's revert created again
	// (or found in place).
	AssignmentID string
	// Run is the revert run that writes the outcome: a hold it took on
	// the row (HoldRevert) ends with it.
	Run string
}

// RecordRevert writes a revert outcome to its item; callers complete the
// River job in the same transaction when the status is final. A final
// revert is never overwritten. A revert being cancelled ends reverted if
// its request applied, else canceled. It reports whether it wrote.
func RecordRevert(ctx context.Context, q Querier, batchID string, row int, o RevertOutcome) (bool, error) {
	tag, err := q.Exec(ctx, `UPDATE items SET
			revert_status = CASE WHEN revert_status = 'cancelling' AND $3 <> 'reverted' THEN 'canceled' ELSE $3 END,
			revert_http_status = $4,
			revert_error_code = CASE WHEN revert_status = 'cancelling' AND $3 <> 'reverted' THEN $11 ELSE $5 END,
			revert_error = CASE WHEN revert_status = 'cancelling' AND $3 <> 'reverted'
				THEN 'canceled by enqueue cancel' || coalesce(' (last answer: ' || $6 || ')', '') ELSE $6 END, revert_request_id = coalesce($7, revert_request_id), revert_errors = revert_errors + $8::int,
			reverted_at = CASE WHEN $3 = 'reverted' THEN now() END,
			revert_assignment_id = coalesce($9, revert_assignment_id),
			run_id = CASE WHEN run_id = $10::uuid THEN NULL ELSE run_id END,
			run_until = CASE WHEN run_id = $10::uuid THEN NULL ELSE run_until END, updated_at = now()
		WHERE batch_id = $1 AND row = $2
			AND NOT bulkassign_revert_final(revert_status)`,
		batchID, row, string(o.Status), nullInt(o.HTTPStatus), nullable(text.Short(o.ErrorCode)), nullable(text.Message(o.Error)),
		nullable(text.Short(o.RequestID)), boolInt(o.CountError), nullable(text.Short(o.AssignmentID)), nullable(o.Run), assign.CodeCanceled)
	if err != nil {
		return false, fmt.Errorf("error recording revert: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// BatchSummary is one batch with its rows counted by status.
type BatchSummary struct {
	Batch
	Counts  StatusCounts
	Reverts RevertCounts
	// Tenants splits Counts by tenant.
	Tenants TenantCounts
}

// ListBatches returns the most recent batches, newest first, with counts.
// It reads the batches' kept counts (see CountByTenant), not their rows, and
// the newest batches along batches_created: its cost follows limit, not the
// batches' sizes nor how many there are.
func ListBatches(ctx context.Context, q Querier, limit int) ([]BatchSummary, error) {
	rows, err := q.Query(ctx, `SELECT b.id::text, b.source, b.sha256, b.bytes, b.row_count, b.duplicate_rows, b.created_at,
			coalesce(b.created_by, ''),
			coalesce((SELECT jsonb_object_agg(tenant_id, counts) FROM
				(SELECT tenant_id, jsonb_object_agg(status, n) AS counts FROM
					(SELECT tenant_id, status, sum(n) AS n FROM batch_counts WHERE batch_id = b.id
					 GROUP BY tenant_id, status HAVING sum(n) <> 0) s
				 GROUP BY tenant_id) t), '{}'),
			coalesce((SELECT jsonb_object_agg(revert_status, n) FROM
				(SELECT revert_status, sum(n) AS n FROM batch_counts WHERE batch_id = b.id AND revert_status <> ''
				 GROUP BY revert_status HAVING sum(n) <> 0) r), '{}')
		FROM (SELECT * FROM batches ORDER BY created_at DESC, id LIMIT $1) b
		ORDER BY b.created_at DESC, b.id`, limit)
	if err != nil {
		return nil, fmt.Errorf("error listing batches: %w", err)
	}
	defer rows.Close()
	var out []BatchSummary
	for rows.Next() {
		var s BatchSummary
		var tenants map[string]map[string]int
		var reverts map[string]int
		if err := rows.Scan(&s.ID, &s.Source, &s.SHA256, &s.Bytes, &s.RowCount, &s.DuplicateRows, &s.CreatedAt,
			&s.CreatedBy, &tenants, &reverts); err != nil {
			return nil, fmt.Errorf("error listing batches: %w", err)
		}
		s.Tenants, s.Reverts = TenantCounts{}, RevertCounts{}
		for tenant, counts := range tenants {
			s.Tenants[tenant] = StatusCounts{}
			for k, v := range counts {
				s.Tenants[tenant][assign.Status(k)] = v
			}
		}
		s.Counts = s.Tenants.Sum()
		for k, v := range reverts {
			s.Reverts[assign.RevertStatus(k)] = v
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// RowTenants maps the batch's rows to their tenant ids ("" for rows enqueued
// before rows named tenants), for the jobs of a retry or a revert.
func RowTenants(ctx context.Context, q Querier, batchID string, rows []int) (map[int]string, error) {
	out := make(map[int]string, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	rs, err := q.Query(ctx, `SELECT row, coalesce(tenant_id, '') FROM items WHERE batch_id = $1 AND row = ANY($2::int[])`, batchID, rows)
	if err != nil {
		return nil, fmt.Errorf("error reading the rows' tenants: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var row int
		var tenant string
		if err := rs.Scan(&row, &tenant); err != nil {
			return nil, fmt.Errorf("error reading the rows' tenants: %w", err)
		}
		out[row] = tenant
	}
	return out, rs.Err()
}

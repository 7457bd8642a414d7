package store

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// SweepResult says what Sweep ended, and how many ended jobs it looked at.
type SweepResult struct {
	Rows, Reverts int
	Jobs          int
	// Chunks is the number of statements the sweep took.
	Chunks int
}

// SweepChunk is how many ended jobs one statement of a sweep looks at: a
// cancel of a large batch ends every queued job at once, and the sweep
// reads them in statements this size, each short, committing its progress.
const SweepChunk = 2000

// sweepMargin is how far before its mark a sweep looks again: a job
// finalized before the mark may commit after it.
const sweepMargin = 5 * time.Minute

// Sweep ends the rows (and reverts) whose River job was discarded or
// cancelled by anything but bulkassign — River giving up after its
// attempts, a cancel in River UI — and that have no other job left to move
// them: they end failed, keeping any create intent, with the reason (a row
// being cancelled ends canceled). It looks at jobs finalized since the
// last sweep (with a margin for late commits), in chunks of SweepChunk
// jobs along (finalized_at, id), each its own statement that moves the
// mark: its cost follows the jobs that ended, and a sweep cut off keeps
// what it did. Jobs of rows already final (those bulkassign's own cancel
// ended) are passed over by their item's key alone.
func Sweep(ctx context.Context, q Querier, assignKind, revertKind string) (SweepResult, error) {
	var (
		res     SweepResult
		afterAt time.Time
		afterID int64
		start   time.Time
	)
	err := q.QueryRow(ctx, `SELECT coalesce((SELECT swept_until FROM sweeps WHERE name = 'jobs') - $1::interval, 'epoch'::timestamptz), now()`,
		sweepMargin).Scan(&afterAt, &start)
	if err != nil {
		return res, fmt.Errorf("error reading the sweep's mark: %w", err)
	}
	for {
		var rows, reverts, seen int
		var lastAt *time.Time
		var lastID *int64
		err := q.QueryRow(ctx, `WITH ended AS (
				SELECT j.id, j.finalized_at, j.kind, j.state, (j.args->>'batch')::uuid AS batch_id, (j.args->>'row')::int AS row,
					j.attempt, j.errors[array_upper(j.errors, 1)] ->> 'error' AS last_error
				FROM river_job j
				WHERE j.state IN ('discarded', 'cancelled') AND j.kind IN ($1, $2)
					AND j.finalized_at >= $6 AND (j.finalized_at, j.id) > ($6, $7)
				ORDER BY j.finalized_at, j.id
				LIMIT $8
			), open AS (
				SELECT e.* FROM ended e JOIN items i ON i.batch_id = e.batch_id AND i.row = e.row
				WHERE (e.kind = $1 AND NOT bulkassign_final(i.status) OR e.kind = $2 AND NOT bulkassign_revert_final(i.revert_status))
					AND NOT EXISTS (SELECT 1 FROM river_job l WHERE l.kind = e.kind
						AND l.args @> jsonb_build_object('batch', e.batch_id::text, 'row', e.row)
						AND l.state::text = ANY($5))
			), rows AS (
				UPDATE items i SET status = CASE WHEN i.status = 'cancelling' THEN 'canceled' ELSE 'failed' END,
					error_code = CASE WHEN i.status = 'cancelling' THEN $9 WHEN e.state = 'discarded' THEN $3 ELSE $4 END,
					error_message = left(CASE WHEN i.status = 'cancelling' THEN 'canceled by enqueue cancel; then '
						ELSE '' END || CASE e.state
						WHEN 'discarded' THEN format('River gave up on the row''s job after %s attempts: %s', e.attempt, coalesce(e.last_error, 'no error recorded'))
						ELSE 'the row''s job was cancelled outside bulkassign (River UI or API)' END
						|| CASE WHEN i.intent_request_id IS NOT NULL THEN '; a write was in flight and may have applied: revert reads Graph to settle it' ELSE '' END, 2000),
					finished_at = now(), updated_at = now(), run_id = NULL, run_until = NULL
				FROM open e
				WHERE e.kind = $1 AND i.batch_id = e.batch_id AND i.row = e.row AND NOT bulkassign_final(i.status)
				RETURNING 1
			), reverts AS (
				UPDATE items i SET revert_status = CASE WHEN i.revert_status = 'cancelling' THEN 'canceled' ELSE 'failed' END,
					revert_error_code = CASE WHEN i.revert_status = 'cancelling' THEN $9 WHEN e.state = 'discarded' THEN $3 ELSE $4 END,
					revert_error = left(CASE e.state
						WHEN 'discarded' THEN format('River gave up on the revert''s job after %s attempts: %s', e.attempt, coalesce(e.last_error, 'no error recorded'))
						ELSE 'the revert''s job was cancelled outside bulkassign (River UI or API)' END, 2000),
					updated_at = now()
				FROM open e
				WHERE e.kind = $2 AND i.batch_id = e.batch_id AND i.row = e.row AND NOT bulkassign_revert_final(i.revert_status)
				RETURNING 1
			), last AS (
				SELECT finalized_at, id FROM ended ORDER BY finalized_at DESC, id DESC LIMIT 1
			)
			SELECT (SELECT count(*) FROM rows), (SELECT count(*) FROM reverts), (SELECT count(*) FROM ended),
				(SELECT finalized_at FROM last), (SELECT id FROM last)`,
			assignKind, revertKind, assign.CodeJobDiscarded, assign.CodeJobCancelled, QueueStates, afterAt, afterID, SweepChunk,
			assign.CodeCanceled).Scan(&rows, &reverts, &seen, &lastAt, &lastID)
		if err != nil {
			return res, fmt.Errorf("error sweeping rows whose job ended (after %d jobs in %d chunks): %w", res.Jobs, res.Chunks, err)
		}
		res.Rows, res.Reverts, res.Jobs, res.Chunks = res.Rows+rows, res.Reverts+reverts, res.Jobs+seen, res.Chunks+1
		mark := start
		if seen == SweepChunk && lastAt != nil {
			mark, afterAt, afterID = *lastAt, *lastAt, *lastID
		}
		if _, err := q.Exec(ctx, `INSERT INTO sweeps (name, swept_until) VALUES ('jobs', $1)
			ON CONFLICT (name) DO UPDATE SET swept_until = greatest(sweeps.swept_until, $1)`, mark); err != nil {
			return res, fmt.Errorf("error moving the sweep's mark: %w", err)
		}
		if seen < SweepChunk {
			return res, nil
		}
	}
}

package store

import (
	"context"
	"fmt"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// SweepResult says what Sweep ended.
type SweepResult struct {
	Rows, Reverts int
}

// Sweep ends the rows (and reverts) whose River job was discarded or
// cancelled by anything but bulkassign — River giving up after its
// attempts, a cancel in River UI — and that have no other job left to move
// them: they end failed, keeping any create intent, with the reason. It
// looks at jobs finalized since the last sweep (with a margin for late
// commits), so its cost follows the jobs that ended, not the store's size.
func Sweep(ctx context.Context, q Querier, assignKind, revertKind string) (SweepResult, error) {
	var res SweepResult
	err := q.QueryRow(ctx, `WITH mark AS (
			INSERT INTO sweeps (name, swept_until) VALUES ('jobs', now())
			ON CONFLICT (name) DO UPDATE SET swept_until = now()
			RETURNING (SELECT swept_until FROM sweeps WHERE name = 'jobs') AS since
		), ended AS (
			SELECT j.kind, j.state, (j.args->>'batch')::uuid AS batch_id, (j.args->>'row')::int AS row,
				j.attempt, j.errors[array_upper(j.errors, 1)] ->> 'error' AS last_error
			FROM river_job j, mark
			WHERE j.state IN ('discarded', 'cancelled') AND j.kind IN ($1, $2)
				AND j.finalized_at > coalesce(mark.since - interval '5 minutes', '-infinity')
				AND NOT EXISTS (SELECT 1 FROM river_job l WHERE l.kind = j.kind
					AND l.args @> jsonb_build_object('batch', j.args->>'batch', 'row', (j.args->>'row')::int)
					AND l.state::text = ANY($5))
		), rows AS (
			UPDATE items i SET status = 'failed',
				error_code = CASE e.state WHEN 'discarded' THEN $3 ELSE $4 END,
				error_message = left(CASE e.state
					WHEN 'discarded' THEN format('River gave up on the row''s job after %s attempts: %s', e.attempt, coalesce(e.last_error, 'no error recorded'))
					ELSE 'the row''s job was cancelled outside bulkassign (River UI or API)' END
					|| CASE WHEN i.intent_request_id IS NOT NULL THEN '; a create was in flight and may have applied: enqueue retry settles it' ELSE '' END, 2000),
				finished_at = now(), updated_at = now(), run_id = NULL, run_until = NULL
			FROM ended e
			WHERE e.kind = $1 AND i.batch_id = e.batch_id AND i.row = e.row AND NOT bulkassign_final(i.status)
			RETURNING 1
		), reverts AS (
			UPDATE items i SET revert_status = 'failed',
				revert_error_code = CASE e.state WHEN 'discarded' THEN $3 ELSE $4 END,
				revert_error = left(CASE e.state
					WHEN 'discarded' THEN format('River gave up on the revert''s job after %s attempts: %s', e.attempt, coalesce(e.last_error, 'no error recorded'))
					ELSE 'the revert''s job was cancelled outside bulkassign (River UI or API)' END, 2000),
				updated_at = now()
			FROM ended e
			WHERE e.kind = $2 AND i.batch_id = e.batch_id AND i.row = e.row AND NOT bulkassign_revert_final(i.revert_status)
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM rows), (SELECT count(*) FROM reverts)`,
		assignKind, revertKind, assign.CodeJobDiscarded, assign.CodeJobCancelled, QueueStates).Scan(&res.Rows, &res.Reverts)
	if err != nil {
		return res, fmt.Errorf("error sweeping rows whose job ended: %w", err)
	}
	return res, nil
}

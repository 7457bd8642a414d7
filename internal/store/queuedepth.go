package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// QueueStates are the River job states that are not yet final: the ones a
// queue's depth is made of.
var QueueStates = []string{"available", "scheduled", "running", "retryable", "pending"}

// QueueDepth counts the jobs of a River queue and of its tenants' queues
// (queue + "_t_" + tenant) by state, for every state in QueueStates (zero
// included). Final states are left out: they pile up until
// River's cleaner removes them and would make the count slow.
func QueueDepth(ctx context.Context, q Querier, queue string) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT state::text, count(*) FROM river_job
		WHERE (queue = $1 OR starts_with(queue, $1 || '_t_')) AND state = ANY($2::river_job_state[]) GROUP BY state`, queue, QueueStates)
	if err != nil {
		return nil, fmt.Errorf("error counting queue %s: %w", queue, err)
	}
	defer rows.Close()
	out := make(map[string]int64, len(QueueStates))
	for _, s := range QueueStates {
		out[s] = 0
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// QueuesWithWork lists the River queues whose name starts with prefix that
// hold jobs waiting to run (available, scheduled or retryable) or running:
// the queues a worker must serve, and must not retire yet. It walks
// River's fetch index (state, queue, ...) one queue at a time, so its cost
// follows the number of queues, not of jobs.
func QueuesWithWork(ctx context.Context, q Querier, prefix string) ([]string, error) {
	rows, err := q.Query(ctx, `WITH RECURSIVE states(state) AS (
			VALUES ('available'::river_job_state), ('scheduled'::river_job_state), ('retryable'::river_job_state),
				('running'::river_job_state)
		), walk(state, queue) AS (
			SELECT s.state, (SELECT min(j.queue) FROM river_job j WHERE j.state = s.state AND j.queue > $1 AND j.queue < $1 || '~')
			FROM states s
			UNION ALL
			SELECT w.state, (SELECT min(j.queue) FROM river_job j WHERE j.state = w.state AND j.queue > w.queue AND j.queue < $1 || '~')
			FROM walk w WHERE w.queue IS NOT NULL
		)
		SELECT DISTINCT queue FROM walk WHERE queue IS NOT NULL ORDER BY queue`, prefix)
	if err != nil {
		return nil, fmt.Errorf("error listing queues: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("error listing queues: %w", err)
	}
	return out, nil
}

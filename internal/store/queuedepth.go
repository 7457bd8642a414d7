package store

import (
	"context"
	"fmt"
)

// QueueStates are the River job states that are not yet final: the ones a
// queue's depth is made of.
var QueueStates = []string{"available", "scheduled", "running", "retryable", "pending"}

// QueueDepth counts a River queue's jobs by state, for every state in
// QueueStates (zero included). Final states are left out: they pile up until
// River's cleaner removes them and would make the count slow.
func QueueDepth(ctx context.Context, q Querier, queue string) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT state::text, count(*) FROM river_job
		WHERE queue = $1 AND state = ANY($2::river_job_state[]) GROUP BY state`, queue, QueueStates)
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

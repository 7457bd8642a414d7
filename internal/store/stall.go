package store

import (
	"context"
	"fmt"
	"time"
)

// StallFacts are what the database knows of why a batch's rows may not
// move; internal/stall turns them into one reason.
type StallFacts struct {
	// WorkerAlive: a River leader holds an unexpired lease, so some worker
	// process runs (every started worker takes part in the election and
	// the leader renews its lease every few seconds).
	WorkerAlive bool
	// Open counts the rows (and reverts) not final yet.
	Open int
	// Waiting counts the open rows whose last turn was held back by the
	// fleet's limit, a throttle or another row (status waiting).
	Waiting int
	// SignIn counts the open rows whose last attempt could not sign in;
	// SignInCode is the most common of their codes.
	SignIn     int
	SignInCode string
	// ThrottledUntil is the end of the latest pause after a 429 of a limit
	// the batch's open rows use, when it is still ahead; zero otherwise.
	ThrottledUntil time.Time
	// LastFinished is when a row of the batch last ended; zero if none has.
	LastFinished time.Time
	// Now is the database's clock.
	Now time.Time
}

// ReadStallFacts reads the facts for a batch. The limits are named as the
// worker names them (graph_write, graph_write:<tenant>, the same for
// graph_read): the default tenant's and those of the open rows' tenants.
func ReadStallFacts(ctx context.Context, q Querier, batchID string) (StallFacts, error) {
	var f StallFacts
	var until, last *time.Time
	err := q.QueryRow(ctx, `WITH open AS (
			SELECT tenant_id, status, error_code FROM items
			WHERE batch_id = $1 AND (NOT bulkassign_final(status) OR NOT bulkassign_revert_final(revert_status))
		)
		SELECT EXISTS (SELECT 1 FROM river_leader WHERE expires_at > now()),
			(SELECT count(*) FROM open),
			(SELECT count(*) FROM open WHERE status = 'waiting'),
			(SELECT count(*) FROM open WHERE error_code LIKE 'SignIn%'),
			coalesce((SELECT error_code FROM open WHERE error_code LIKE 'SignIn%'
				GROUP BY error_code ORDER BY count(*) DESC, error_code LIMIT 1), ''),
			(SELECT max(paused_until) FROM rate_limits WHERE paused_until > now()
				AND (name IN ('graph_write', 'graph_read')
					OR split_part(name, ':', 2) IN (SELECT DISTINCT tenant_id FROM open WHERE tenant_id IS NOT NULL))),
			(SELECT max(finished_at) FROM items WHERE batch_id = $1),
			now()`, batchID).Scan(&f.WorkerAlive, &f.Open, &f.Waiting, &f.SignIn, &f.SignInCode, &until, &last, &f.Now)
	if err != nil {
		return f, fmt.Errorf("error reading why the batch waits: %w", err)
	}
	if until != nil {
		f.ThrottledUntil = *until
	}
	if last != nil {
		f.LastFinished = *last
	}
	return f, nil
}

package store

import (
	"context"
	"fmt"
)

// RetryCounts splits a batch's failed and canceled rows by whether running
// them again (enqueue retry) can change their outcome.
type RetryCounts struct {
	// Retryable are the canceled rows and the rows that failed otherwise
	// than below: a retry reads Graph afresh and may create them.
	Retryable int
	// NotFound are the rows that failed because Graph answered 404: their
	// configuration (or path) does not exist, and a retry fails them the
	// same way until their list is fixed.
	NotFound int
}

// CountRetryable counts the batch's failed and canceled rows by whether a
// retry can help them.
func CountRetryable(ctx context.Context, q Querier, batchID string) (RetryCounts, error) {
	var c RetryCounts
	err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'canceled' OR http_status IS DISTINCT FROM 404),
			count(*) FILTER (WHERE status = 'failed' AND http_status = 404)
		FROM items WHERE batch_id = $1 AND status IN ('failed', 'canceled')`, batchID).Scan(&c.Retryable, &c.NotFound)
	if err != nil {
		return RetryCounts{}, fmt.Errorf("error counting rows to retry: %w", err)
	}
	return c, nil
}

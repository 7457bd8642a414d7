package store

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/bulkassign/bulkassign/internal/assign"
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
	// Reverted: the batch has reverts, and a retry is refused; the counts
	// are then zero. Set by callers that know (the CLI's advice).
	Reverted bool
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

// TenantCounts counts a batch's rows by tenant, then by status. Rows
// enqueued before rows named a tenant are counted under "".
type TenantCounts map[string]StatusCounts

// Tenants are the tenants counted, sorted.
func (c TenantCounts) Tenants() []string {
	return slices.Sorted(maps.Keys(c))
}

// Sum is the counts of every tenant together.
func (c TenantCounts) Sum() StatusCounts {
	out := StatusCounts{}
	for _, sc := range c {
		for s, n := range sc {
			out[s] += n
		}
	}
	return out
}

// A batch's rows are counted as they change, not when asked: triggers on
// items add a delta row to batch_counts per statement and key (tenant,
// status, revert status) it changed, and the leader folds each key's deltas
// into one row every few seconds (CompactCounts). A count sums the batch's
// rows in batch_counts: a handful, whatever the size of the batch or of the
// store (migrations/009_results_store.sql).

// CountByTenant counts a batch's items by tenant and status.
func CountByTenant(ctx context.Context, q Querier, batchID string) (TenantCounts, error) {
	rows, err := q.Query(ctx, `SELECT tenant_id, status, sum(n) FROM batch_counts WHERE batch_id = $1
		GROUP BY tenant_id, status HAVING sum(n) <> 0`, batchID)
	if err != nil {
		return nil, fmt.Errorf("error counting items by tenant: %w", err)
	}
	defer rows.Close()
	out := TenantCounts{}
	for rows.Next() {
		var tenant, s string
		var n int
		if err := rows.Scan(&tenant, &s, &n); err != nil {
			return nil, fmt.Errorf("error counting items by tenant: %w", err)
		}
		if out[tenant] == nil {
			out[tenant] = StatusCounts{}
		}
		out[tenant][assign.Status(s)] = n
	}
	return out, rows.Err()
}

// CompactResult says what CompactCounts did.
type CompactResult struct {
	// Folded delta rows became Kept rows (keys whose deltas summed to zero
	// keep none).
	Folded, Kept int
}

// CompactCounts folds the delta rows of each key of batch_counts into one.
// It deletes the rows it folds and inserts their sum in one statement, so a
// count read at any moment is exact; rows that triggers add meanwhile are
// not in its snapshot and stay for the next run, and two compactions at
// once each fold only the rows they deleted. Its cost follows the number of
// batches and the rows changed since the last run, not the items.
func CompactCounts(ctx context.Context, q Querier) (CompactResult, error) {
	var res CompactResult
	err := q.QueryRow(ctx, `WITH keys AS (
			SELECT batch_id, tenant_id, status, revert_status FROM batch_counts
			GROUP BY 1, 2, 3, 4 HAVING count(*) > 1
		), folded AS (
			DELETE FROM batch_counts c USING keys k
			WHERE c.batch_id = k.batch_id AND c.tenant_id = k.tenant_id AND c.status = k.status
				AND c.revert_status = k.revert_status
			RETURNING c.batch_id, c.tenant_id, c.status, c.revert_status, c.n
		), kept AS (
			INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
			SELECT batch_id, tenant_id, status, revert_status, sum(n) FROM folded
			GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM folded), (SELECT count(*) FROM kept)`).Scan(&res.Folded, &res.Kept)
	if err != nil {
		return res, fmt.Errorf("error compacting batch counts: %w", err)
	}
	return res, nil
}

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

// CountByTenant counts a batch's items by tenant and status. It reads the
// batch's rows as CountByStatus does.
func CountByTenant(ctx context.Context, q Querier, batchID string) (TenantCounts, error) {
	rows, err := q.Query(ctx, `SELECT coalesce(tenant_id, ''), status, count(*) FROM items WHERE batch_id = $1
		GROUP BY tenant_id, status`, batchID)
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

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// FindBatchByKey returns the id of the batch enqueued with the console's
// request key, or "" when there is none.
func FindBatchByKey(ctx context.Context, q Querier, key string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT id::text FROM batches WHERE request_key = $1`, key).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("error finding the batch of a request: %w", err)
	}
	return id, nil
}

// IsDuplicateRequestKey reports whether err is the database refusing a
// second batch with a request key already used.
func IsDuplicateRequestKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "batches_request_key"
}

// PageFilter picks a page of a batch's rows for the console.
type PageFilter struct {
	ResultFilter
	// ConfigurationID picks rows of one configuration (a canonical GUID).
	ConfigurationID string
	// After is the last row of the previous page (0: the first page).
	After int
	// Limit is the page's size.
	Limit int
}

// PageResults reads one page of a batch's rows in row order, by the items'
// primary key (batch_id, row): the first rows after f.After that f picks.
// It reads one row more than the page, to tell whether another follows.
func PageResults(ctx context.Context, q Querier, batchID string, f PageFilter) (page []Result, more bool, err error) {
	statuses := []string{}
	for _, s := range f.Statuses {
		statuses = append(statuses, string(s))
	}
	rows, err := q.Query(ctx, `SELECT row, line, configuration_id::text, path, target_type,
			coalesce(group_id::text, ''), coalesce(collection_id, ''), coalesce(filter_id::text, ''), coalesce(filter_type, ''),
			status, coalesce(http_status, 0), coalesce(assignment_id, ''), attempts, coalesce(error_code, ''),
			coalesce(error_message, ''), coalesce(request_id, ''), created_at, updated_at, coalesce(tenant_id, '')
		FROM items WHERE batch_id = $1 AND row > $2 AND (cardinality($3::text[]) = 0 OR status = ANY($3))
			AND ($4 = '' OR tenant_id = $4) AND ($5 = '' OR configuration_id::text = $5)
		ORDER BY row LIMIT $6`, batchID, f.After, statuses, f.TenantID, f.ConfigurationID, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("error reading results: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := Result{BatchID: batchID}
		var status string
		if err := rows.Scan(&r.Row, &r.Line, &r.ConfigurationID, &r.Path, &r.TargetType, &r.GroupID, &r.CollectionID,
			&r.FilterID, &r.FilterType, &status, &r.HTTPStatus, &r.AssignmentID, &r.Attempts, &r.ErrorCode,
			&r.ErrorMessage, &r.RequestID, &r.CreatedAt, &r.UpdatedAt, &r.TenantID); err != nil {
			return nil, false, fmt.Errorf("error reading results: %w", err)
		}
		r.Status = assign.Status(status)
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("error reading results: %w", err)
	}
	if len(page) > f.Limit {
		return page[:f.Limit], true, nil
	}
	return page, false, nil
}

// RecentRate is how many of the batch's rows ended in the last window
// seconds (by the database's clock), per second.
func RecentRate(ctx context.Context, q Querier, batchID string, windowSeconds int) (float64, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM items WHERE batch_id = $1
		AND finished_at > now() - make_interval(secs => $2)`, batchID, windowSeconds).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("error measuring the batch's rate: %w", err)
	}
	return float64(n) / float64(windowSeconds), nil
}

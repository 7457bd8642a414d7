package store

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Result is one row of the assignment_results view.
type Result struct {
	BatchID         string
	ItemID          int
	Line            int
	ConfigurationID string
	Path            string
	TargetType      string
	GroupID         string
	CollectionID    string
	FilterID        string
	FilterType      string
	Status          assign.Status
	HTTPStatus      int
	AssignmentID    string
	Attempts        int
	ErrorCode       string
	ErrorMessage    string
	RequestID       string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// ResultColumns are the view's columns ListResults reads, in order.
var ResultColumns = []string{"batch_id", "item_id", "line", "configuration_id", "path", "target_type", "group_id",
	"collection_id", "filter_id", "filter_type", "status", "http_status", "assignment_id", "attempts", "error_code",
	"error_message", "request_id", "created_at", "updated_at"}

// ListResults calls fn for each result row of a batch in input order,
// optionally only those with one of statuses. It streams: a batch of any
// size is read with flat memory.
func ListResults(ctx context.Context, q Querier, batchID string, statuses []assign.Status, fn func(*Result) error) error {
	filter := []string{} // not nil: pgx sends nil as NULL
	for _, s := range statuses {
		filter = append(filter, string(s))
	}
	rows, err := q.Query(ctx, `SELECT batch_id::text, item_id, line, configuration_id::text, path, target_type,
			coalesce(group_id::text, ''), coalesce(collection_id, ''), coalesce(filter_id::text, ''), coalesce(filter_type, ''),
			status, coalesce(http_status, 0), coalesce(assignment_id, ''), attempts, coalesce(error_code, ''),
			coalesce(error_message, ''), coalesce(request_id, ''), created_at, updated_at
		FROM assignment_results WHERE batch_id = $1 AND (cardinality($2::text[]) = 0 OR status = ANY($2))
		ORDER BY item_id`, batchID, filter)
	if err != nil {
		return fmt.Errorf("error reading results: %w", err)
	}
	defer rows.Close()
	var r Result
	for rows.Next() {
		var status string
		if err := rows.Scan(&r.BatchID, &r.ItemID, &r.Line, &r.ConfigurationID, &r.Path, &r.TargetType, &r.GroupID,
			&r.CollectionID, &r.FilterID, &r.FilterType, &status, &r.HTTPStatus, &r.AssignmentID, &r.Attempts,
			&r.ErrorCode, &r.ErrorMessage, &r.RequestID, &r.CreatedAt, &r.UpdatedAt); err != nil {
			return err
		}
		r.Status = assign.Status(status)
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

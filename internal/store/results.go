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
	Row             int
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
	// TenantID is the tenant the row writes to; "" (NULL in the view) for
	// a row enqueued before rows named one.
	TenantID string
	Action   assign.Action
	// The display names the row gave instead of ids; the id beside each is
	// the one it resolved to ("" until resolved, or when it did not).
	ConfigurationName, GroupName, FilterName string
	// Display are the names Graph gave the ids the row gave (looked up once
	// per batch); TenantName is the row's tenant's. "" where none is known.
	Display    assign.Names
	TenantName string
}

// Names are the row's names to show: each one the row gave, else Graph's.
func (r Result) Names() assign.Names {
	return assign.Names{Configuration: or(r.ConfigurationName, r.Display.Configuration),
		Group: or(r.GroupName, r.Display.Group), Filter: or(r.FilterName, r.Display.Filter)}
}

// setNames puts the view's configuration, group and filter names each
// where it belongs, by whether the row gave it: the view shows a name the
// row gave or else Graph's, and Spec keeps the row's words only.
func (r *Result) setNames(names [3]string, given [3]bool) {
	own, graph := [3]string{}, [3]string{}
	for i, n := range names {
		if given[i] {
			own[i] = n
		} else {
			graph[i] = n
		}
	}
	r.ConfigurationName, r.GroupName, r.FilterName = own[0], own[1], own[2]
	r.Display = assign.Names{Configuration: graph[0], Group: graph[1], Filter: graph[2]}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Spec is what the row asks for, with both the names it gave and the ids
// they resolved to.
func (r Result) Spec() assign.Spec {
	return assign.Spec{ConfigurationID: r.ConfigurationID, Path: assign.Path(r.Path), Target: assign.Target{
		Type: assign.TargetType(r.TargetType), GroupID: r.GroupID, CollectionID: r.CollectionID,
		FilterID: r.FilterID, FilterType: assign.FilterType(r.FilterType)},
		Action: r.Action, Names: assign.Names{Configuration: r.ConfigurationName, Group: r.GroupName, Filter: r.FilterName}}
}

// shown is the row's spec with the names to show (Names).
func (r Result) shown() assign.Spec {
	s := r.Spec()
	s.Names = r.Names()
	return s
}

// TargetLabel is the row's target as one compact line (assign.Spec.Label),
// with the names Graph gave the ids the row gave.
func (r Result) TargetLabel() string { return r.shown().Label() }

// ConfigurationLabel is the row's configuration: id, name or both.
func (r Result) ConfigurationLabel() string { return r.shown().ConfigurationLabel() }

// TenantLabel is the row's tenant: id, name or both ("" for neither).
func (r Result) TenantLabel() string { return assign.NameLabel(r.TenantID, r.TenantName) }

// ErrorLabel is the row's error as one text: code and message. A waiting
// row has none: waiting is not failing (its message says what it waits
// for, WaitLabel).
func (r Result) ErrorLabel() string {
	switch {
	case r.Status == assign.StatusWaiting:
		return ""
	case r.ErrorCode != "" && r.ErrorMessage != "":
		return r.ErrorCode + ": " + r.ErrorMessage
	case r.ErrorCode != "":
		return r.ErrorCode
	}
	return r.ErrorMessage
}

// WaitLabel is what a waiting row waits for; "" for any other row.
func (r Result) WaitLabel() string {
	if r.Status != assign.StatusWaiting {
		return ""
	}
	return r.ErrorMessage
}

// ResultColumns are the view's columns behind Result's fields, in order.
var ResultColumns = []string{"batch_id", "row", "line", "configuration_id", "path", "target_type", "group_id",
	"collection_id", "filter_id", "filter_type", "status", "http_status", "assignment_id", "attempts", "error_code",
	"error_message", "request_id", "created_at", "updated_at", "tenant_id"}

// ListResults calls fn for each result row of a batch in input order,
// optionally only those with one of statuses. It streams: a batch of any
// size is read with flat memory.
func ListResults(ctx context.Context, q Querier, batchID string, statuses []assign.Status, fn func(*Result) error) error {
	return ExportResults(ctx, q, batchID, statuses, func(r *ExportRow) error { return fn(&r.Result) })
}

// ResultFilter picks rows of a batch. The zero value picks every row.
type ResultFilter struct {
	Statuses []assign.Status // rows with one of these statuses; all when empty
	TenantID string          // rows of this tenant (a canonical GUID); all when ""
}

// ExportRow is one row of the assignment_results view, every column.
type ExportRow struct {
	Result
	Source           string
	FinishedAt       *time.Time
	Retries          int
	RevertStatus     assign.RevertStatus
	RevertHTTPStatus int
	RevertErrorCode  string
	RevertError      string
	RevertRequestID  string
	RevertedAt       *time.Time
	CreatedBy        string // the batch's: who started it
	// RevertAssignmentID is the assignment a remove row's revert created
	// again.
	RevertAssignmentID string
}

// ExportColumns are the view's columns ExportResults reads, in the view's
// order ("final" aside, which Status implies).
var ExportColumns = []string{"batch_id", "row", "line", "source", "configuration_id", "path", "target_type", "group_id",
	"collection_id", "filter_id", "filter_type", "status", "http_status", "assignment_id", "attempts", "error_code",
	"error_message", "request_id", "created_at", "updated_at", "finished_at", "retries", "revert_status",
	"revert_http_status", "revert_error_code", "revert_error", "revert_request_id", "reverted_at", "tenant_id", "created_by",
	"action", "configuration_name", "group_name", "filter_name", "revert_assignment_id", "tenant_name",
	"configuration_name_given", "group_name_given", "filter_name_given"}

// ExportResults calls fn for each row of a batch in input order with every
// column of the view, optionally only rows with one of statuses. It streams.
func ExportResults(ctx context.Context, q Querier, batchID string, statuses []assign.Status, fn func(*ExportRow) error) error {
	return ExportResultsWhere(ctx, q, batchID, ResultFilter{Statuses: statuses}, fn)
}

// ExportResultsWhere is ExportResults for the rows f picks. The batch is
// read by its primary key in row order whatever the filter: a filter costs
// no more than the whole batch.
func ExportResultsWhere(ctx context.Context, q Querier, batchID string, f ResultFilter, fn func(*ExportRow) error) error {
	filter := []string{}
	for _, s := range f.Statuses {
		filter = append(filter, string(s))
	}
	rows, err := q.Query(ctx, `SELECT batch_id::text, row, line, source, coalesce(configuration_id::text, ''), path, target_type,
			coalesce(group_id::text, ''), coalesce(collection_id, ''), coalesce(filter_id::text, ''), coalesce(filter_type, ''),
			status, coalesce(http_status, 0), coalesce(assignment_id, ''), attempts, coalesce(error_code, ''),
			coalesce(error_message, ''), coalesce(request_id, ''), created_at, updated_at, finished_at, retries,
			coalesce(revert_status, ''), coalesce(revert_http_status, 0), coalesce(revert_error_code, ''),
			coalesce(revert_error, ''), coalesce(revert_request_id, ''), reverted_at, coalesce(tenant_id, ''),
			coalesce(created_by, ''), action, coalesce(configuration_name, ''), coalesce(group_name, ''),
			coalesce(filter_name, ''), coalesce(revert_assignment_id, ''), coalesce(tenant_name, ''),
			coalesce(configuration_name_given, true), coalesce(group_name_given, true), coalesce(filter_name_given, true)
		FROM assignment_results WHERE batch_id = $1 AND (cardinality($2::text[]) = 0 OR status = ANY($2))
			AND ($3 = '' OR tenant_id = $3)
		ORDER BY row`, batchID, filter, f.TenantID)
	if err != nil {
		return fmt.Errorf("error reading results: %w", err)
	}
	defer rows.Close()
	var r ExportRow
	for rows.Next() {
		var status, revert, action string
		var given [3]bool
		if err := rows.Scan(&r.BatchID, &r.Row, &r.Line, &r.Source, &r.ConfigurationID, &r.Path, &r.TargetType, &r.GroupID,
			&r.CollectionID, &r.FilterID, &r.FilterType, &status, &r.HTTPStatus, &r.AssignmentID, &r.Attempts,
			&r.ErrorCode, &r.ErrorMessage, &r.RequestID, &r.CreatedAt, &r.UpdatedAt, &r.FinishedAt, &r.Retries,
			&revert, &r.RevertHTTPStatus, &r.RevertErrorCode, &r.RevertError, &r.RevertRequestID, &r.RevertedAt,
			&r.TenantID, &r.CreatedBy, &action, &r.ConfigurationName, &r.GroupName, &r.FilterName,
			&r.RevertAssignmentID, &r.TenantName, &given[0], &given[1], &given[2]); err != nil {
			return fmt.Errorf("error reading results: %w", err)
		}
		r.setNames([3]string{r.ConfigurationName, r.GroupName, r.FilterName}, given)
		r.Status, r.RevertStatus = assign.Status(status), assign.RevertStatus(revert)
		if r.Action, err = assign.ParseAction(action); err != nil {
			return fmt.Errorf("error reading results: row %d: %w", r.Row, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}

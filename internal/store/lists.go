package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/text"
)

// AssignmentList is what a batch knows of the assignments on one
// configuration path, read from Graph once per batch (and again for a row
// whose create may have applied unseen). Creates are not added to it:
// intake de-duplicates a batch's rows, and target_claims settles rows of
// different batches (claims.go).
type AssignmentList struct {
	Found        bool // false: the configuration does not exist (Graph said 404)
	HTTPStatus   int
	ErrorCode    string
	ErrorMessage string
	RequestID    string
	Keys         map[string]string // target key → assignment id
	// ReadAt is the database time the read began, taken before the request
	// was sent: a target created after it and missing from Keys was created
	// after the read (claims.go relies on it).
	ReadAt time.Time
}

// ListKey names one assignments collection within a batch.
type ListKey struct {
	BatchID         string
	ConfigurationID string
	Path            assign.Path
}

// listColumns lists the columns listScan reads, in order, from
// assignment_lists named l (a stored list: reader IS NULL).
const listColumns = `l.batch_id IS NOT NULL, l.found, l.http_status, l.error_code, l.error_message, l.request_id, l.keys, l.read_at`

// listScan receives listColumns, which may come from an outer join that
// found no list.
type listScan struct {
	stored           bool
	found            *bool
	status           *int
	code, msg, reqID *string
	keys             map[string]string
	readAt           *time.Time
}

func (s *listScan) dest() []any {
	return []any{&s.stored, &s.found, &s.status, &s.code, &s.msg, &s.reqID, &s.keys, &s.readAt}
}

// list is the scanned list, or nil when none was stored.
func (s *listScan) list() *AssignmentList {
	if !s.stored || s.found == nil {
		return nil
	}
	l := &AssignmentList{Found: *s.found, ErrorCode: deref(s.code), ErrorMessage: deref(s.msg), RequestID: deref(s.reqID), Keys: s.keys}
	if s.status != nil {
		l.HTTPStatus = *s.status
	}
	if s.readAt != nil {
		l.ReadAt = *s.readAt
	}
	if l.Keys == nil {
		l.Keys = map[string]string{}
	}
	return l
}

// GetList returns the stored list, or nil when none was read yet (or its
// read is still in progress).
func GetList(ctx context.Context, q Querier, k ListKey) (*AssignmentList, error) {
	var s listScan
	err := q.QueryRow(ctx, `SELECT `+listColumns+` FROM assignment_lists l
		WHERE l.batch_id = $1 AND l.configuration_id = $2 AND l.path = $3 AND l.reader IS NULL`,
		k.BatchID, k.ConfigurationID, string(k.Path)).Scan(s.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error reading assignment list: %w", err)
	}
	return s.list(), nil
}

// One worker of the fleet reads a batch's list from Graph while the batch's
// other rows on that path wait for the result, and nobody holds a
// connection meanwhile: the reader leases the list's row (LeaseList), reads
// with no transaction open, and stores the list under its lease
// (StoreLeasedList), or gives the lease back when the read failed
// (ReleaseList). A reader that dies leaves a lease that runs out on the
// database's clock, and the next row to ask takes the read over.

// LeaseList makes reader the one worker reading k's list from Graph, until
// lease has passed on the database's clock. It returns the database time
// the lease began (the list's ReadAt: the request is sent after it), or
// ok false when the list is stored already or another reader's lease is
// live (GetList tells which).
func LeaseList(ctx context.Context, q Querier, k ListKey, reader string, lease time.Duration) (readAt time.Time, ok bool, err error) {
	err = q.QueryRow(ctx, `INSERT INTO assignment_lists (batch_id, configuration_id, path, found, reader, lease_until, read_at)
		VALUES ($1, $2, $3, NULL, $4::uuid, now() + $5::interval, now())
		ON CONFLICT (batch_id, configuration_id, path) DO UPDATE SET reader = excluded.reader,
			lease_until = excluded.lease_until, read_at = excluded.read_at
			WHERE assignment_lists.reader IS NOT NULL AND assignment_lists.lease_until <= now()
		RETURNING read_at`,
		k.BatchID, k.ConfigurationID, string(k.Path), reader, lease).Scan(&readAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("error leasing assignment list: %w", err)
	}
	return readAt, true, nil
}

// StoreLeasedList stores the list reader read under its lease, ending the
// lease (l.ReadAt stays the lease's start). It reports false, storing
// nothing, when the lease is no longer reader's: another worker took it
// over after it ran out, a fresher read was stored (PutList), or a retry
// of the batch dropped the list. The caller may still use its own list.
func StoreLeasedList(ctx context.Context, q Querier, k ListKey, reader string, l *AssignmentList) (bool, error) {
	keys := l.Keys
	if keys == nil {
		keys = map[string]string{}
	}
	tag, err := q.Exec(ctx, `UPDATE assignment_lists SET found = $5, http_status = $6, error_code = $7, error_message = $8,
			request_id = $9, keys = $10, reader = NULL, lease_until = NULL
		WHERE batch_id = $1 AND configuration_id = $2 AND path = $3 AND reader = $4::uuid`,
		k.BatchID, k.ConfigurationID, string(k.Path), reader, l.Found, nullInt(l.HTTPStatus), nullable(text.Short(l.ErrorCode)),
		nullable(text.Message(l.ErrorMessage)), nullable(text.Short(l.RequestID)), keys)
	if err != nil {
		return false, fmt.Errorf("error storing assignment list: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseList gives reader's lease on k's list back after a read that
// found nothing to store (held back by the limit, throttled, failed), so
// that the next row to ask reads at once instead of waiting for the lease
// to run out.
func ReleaseList(ctx context.Context, q Querier, k ListKey, reader string) error {
	if _, err := q.Exec(ctx, `DELETE FROM assignment_lists
		WHERE batch_id = $1 AND configuration_id = $2 AND path = $3 AND reader = $4::uuid`,
		k.BatchID, k.ConfigurationID, string(k.Path), reader); err != nil {
		return fmt.Errorf("error releasing assignment list lease: %w", err)
	}
	return nil
}

// Now is the database's clock: a read that takes no lease (a fresh read)
// takes its ReadAt from it before sending the request.
func Now(ctx context.Context, q Querier) (time.Time, error) {
	var t time.Time
	if err := q.QueryRow(ctx, "SELECT now()").Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("error reading the database clock: %w", err)
	}
	return t, nil
}

// PutList stores a list read without a lease (a fresh read, l.ReadAt taken
// from Now before the request was sent). It replaces a stored list, or a
// read in progress, that began no later than l.ReadAt, and leaves a later
// one in place.
func PutList(ctx context.Context, q Querier, k ListKey, l *AssignmentList) error {
	keys := l.Keys
	if keys == nil {
		keys = map[string]string{}
	}
	_, err := q.Exec(ctx, `INSERT INTO assignment_lists (batch_id, configuration_id, path, found, http_status, error_code, error_message, request_id, keys, read_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (batch_id, configuration_id, path) DO UPDATE SET found = excluded.found, http_status = excluded.http_status,
			error_code = excluded.error_code, error_message = excluded.error_message, request_id = excluded.request_id,
			keys = excluded.keys, read_at = excluded.read_at, reader = NULL, lease_until = NULL
			WHERE assignment_lists.read_at <= excluded.read_at`,
		k.BatchID, k.ConfigurationID, string(k.Path), l.Found, nullInt(l.HTTPStatus), nullable(text.Short(l.ErrorCode)),
		nullable(text.Message(l.ErrorMessage)), nullable(text.Short(l.RequestID)), keys, l.ReadAt)
	if err != nil {
		return fmt.Errorf("error storing assignment list: %w", err)
	}
	return nil
}

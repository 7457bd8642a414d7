package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
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
	// ReadAt is the database time the read began (set by GetList; PutList
	// stores the time of its transaction's start, which precedes the read).
	ReadAt time.Time
}

// ListKey names one assignments collection within a batch.
type ListKey struct {
	BatchID         string
	ConfigurationID string
	Path            assign.Path
}

// LockList takes a transaction-scoped advisory lock on one list, so one
// worker in the fleet reads it from Graph while the others wait for its
// result instead of reading it again.
func LockList(ctx context.Context, tx pgx.Tx, k ListKey) error {
	h := fnv.New64a()
	h.Write([]byte("list|" + k.BatchID + "|" + k.ConfigurationID + "|" + string(k.Path)))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(h.Sum64())); err != nil {
		return fmt.Errorf("error locking assignment list: %w", err)
	}
	return nil
}

// GetList returns the stored list, or nil when none was read yet.
func GetList(ctx context.Context, q Querier, k ListKey) (*AssignmentList, error) {
	l := &AssignmentList{}
	var status *int
	var code, msg, reqID *string
	err := q.QueryRow(ctx, `SELECT found, http_status, error_code, error_message, request_id, keys, read_at
		FROM assignment_lists WHERE batch_id = $1 AND configuration_id = $2 AND path = $3`,
		k.BatchID, k.ConfigurationID, string(k.Path)).Scan(&l.Found, &status, &code, &msg, &reqID, &l.Keys, &l.ReadAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("error reading assignment list: %w", err)
	}
	if status != nil {
		l.HTTPStatus = *status
	}
	l.ErrorCode, l.ErrorMessage, l.RequestID = deref(code), deref(msg), deref(reqID)
	return l, nil
}

// PutList stores (or replaces) a list read from Graph, in the transaction
// that read it, and sets l.ReadAt to that transaction's start.
func PutList(ctx context.Context, q Querier, k ListKey, l *AssignmentList) error {
	keys := l.Keys
	if keys == nil {
		keys = map[string]string{}
	}
	err := q.QueryRow(ctx, `INSERT INTO assignment_lists (batch_id, configuration_id, path, found, http_status, error_code, error_message, request_id, keys, read_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
		ON CONFLICT (batch_id, configuration_id, path) DO UPDATE SET found = excluded.found, http_status = excluded.http_status,
			error_code = excluded.error_code, error_message = excluded.error_message, request_id = excluded.request_id,
			keys = excluded.keys, read_at = excluded.read_at
		RETURNING read_at`,
		k.BatchID, k.ConfigurationID, string(k.Path), l.Found, nullInt(l.HTTPStatus), nullable(text.Short(l.ErrorCode)),
		nullable(text.Message(l.ErrorMessage)), nullable(text.Short(l.RequestID)), keys).Scan(&l.ReadAt)
	if err != nil {
		return fmt.Errorf("error storing assignment list: %w", err)
	}
	return nil
}

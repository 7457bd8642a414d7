package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// A row about to create its target claims it first (target_claims), in the
// transaction that records its intent, so that no two rows of any batches
// post the same target on the same configuration path. A row that finds
// another's claim learns from the holder's row what to do instead.

// ClaimVerdict is what Claim found.
type ClaimVerdict int

const (
	// Claimed: the row holds the claim and its intent is recorded: post.
	Claimed ClaimVerdict = iota
	// ReadFirst: the row took the claim over from a row that ended while
	// its create was in doubt (or whose batch is gone): read Graph afresh
	// before posting, then Claim again.
	ReadFirst
	// HolderBusy: another row holds the claim and is not final (or still
	// runs): wait for it.
	HolderBusy
	// HolderCreated: another row created (or found) the target after this
	// row's list was read: the target is assigned (Holder.AssignmentID).
	HolderCreated
)

// Holder is the row that held a claim.
type Holder struct {
	BatchID      string
	Row          int
	Status       assign.Status
	AssignmentID string
}

// ClaimResult is Claim's answer.
type ClaimResult struct {
	Verdict ClaimVerdict
	Holder  Holder // for every verdict but Claimed
}

// ClaimRequest names the row, its run, the intent it records on success,
// and when its view of the configuration's assignments was read.
type ClaimRequest struct {
	BatchID         string
	Row             int
	Run             string
	Spec            assign.Spec
	TenantID        string
	ClientRequestID string
	// ListReadAt is the database time the row's assignment list was read
	// (began to be read): a holder that created the target before then,
	// yet is not in the list, has seen its assignment deleted since.
	ListReadAt time.Time
}

// Claim claims the row's target and, when it holds the claim, records the
// intent to create (counting the attempt) in the same transaction. It
// returns ErrNotFound when the row is final or its run no longer holds it.
func Claim(ctx context.Context, db Beginner, r ClaimRequest) (ClaimResult, error) {
	var res ClaimResult
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		res, err = claim(ctx, tx, r)
		if err != nil || res.Verdict != Claimed {
			return err
		}
		return recordIntent(ctx, tx, r.BatchID, r.Row, r.Run, r.ClientRequestID)
	})
	return res, err
}

// Beginner starts transactions: a pool or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

func claim(ctx context.Context, tx pgx.Tx, r ClaimRequest) (ClaimResult, error) {
	key := []any{r.TenantID, r.Spec.ConfigurationID, string(r.Spec.Path), r.Spec.Target.Key()}
	tag, err := tx.Exec(ctx, `INSERT INTO target_claims (tenant_id, configuration_id, path, target_key, batch_id, row)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, append(key, r.BatchID, r.Row)...)
	if err != nil {
		return ClaimResult{}, fmt.Errorf("error claiming target: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return ClaimResult{Verdict: Claimed}, nil
	}
	var (
		h                        Holder
		status, assignmentID     *string
		finishedAt               *time.Time
		exists, inDoubt, running bool
	)
	err = tx.QueryRow(ctx, `SELECT c.batch_id::text, c.row, i.row IS NOT NULL, i.status, i.assignment_id, i.finished_at,
			coalesce(i.intent_request_id IS NOT NULL, false), coalesce(i.run_until > now(), false)
		FROM target_claims c LEFT JOIN items i ON i.batch_id = c.batch_id AND i.row = c.row
		WHERE c.tenant_id = $1 AND c.configuration_id = $2 AND c.path = $3 AND c.target_key = $4
		FOR UPDATE OF c`, key...).Scan(&h.BatchID, &h.Row, &exists, &status, &assignmentID, &finishedAt, &inDoubt, &running)
	if errors.Is(err, pgx.ErrNoRows) {
		// Released between the two statements (a revert): try once more.
		return claim(ctx, tx, r)
	}
	if err != nil {
		return ClaimResult{}, fmt.Errorf("error reading target claim: %w", err)
	}
	if h.BatchID == r.BatchID && h.Row == r.Row {
		return ClaimResult{Verdict: Claimed}, nil // ours: a later run of the same row
	}
	h.Status, h.AssignmentID = assign.Status(deref(status)), deref(assignmentID)
	res := ClaimResult{Holder: h}
	switch {
	case exists && (running || !h.Status.Final()):
		res.Verdict = HolderBusy
		return res, nil
	case exists && (h.Status == assign.StatusCreated || h.Status == assign.StatusAlreadyAssigned) &&
		h.AssignmentID != "" && finishedAt != nil && !finishedAt.Before(r.ListReadAt):
		res.Verdict = HolderCreated
		return res, nil
	}
	// The holder is done and has no assignment this row's list could have
	// missed: it failed, was canceled, is gone, or its assignment was
	// deleted since. Take the claim over.
	if _, err := tx.Exec(ctx, `UPDATE target_claims SET batch_id = $5, row = $6, claimed_at = now()
		WHERE tenant_id = $1 AND configuration_id = $2 AND path = $3 AND target_key = $4`, append(key, r.BatchID, r.Row)...); err != nil {
		return ClaimResult{}, fmt.Errorf("error taking over target claim: %w", err)
	}
	if !exists || (inDoubt && h.Status != assign.StatusCreated) {
		res.Verdict = ReadFirst
		return res, nil
	}
	res.Verdict = Claimed
	return res, nil
}

// recordIntent commits, before a create request leaves the process, that it
// is about to: if the answer is lost, the next attempt knows a create may
// have been applied. It counts the attempt, and only the run holding the
// row may record it.
func recordIntent(ctx context.Context, q Querier, batchID string, row int, run, clientRequestID string) error {
	tag, err := q.Exec(ctx, `UPDATE items SET intent_request_id = $3, intent_at = now(), client_request_id = $3,
			attempts = attempts + 1, status = 'running', updated_at = now()
		WHERE batch_id = $1 AND row = $2 AND NOT bulkassign_final(status) AND run_id = $4::uuid AND run_until > now()`,
		batchID, row, clientRequestID, run)
	if err != nil {
		return fmt.Errorf("error recording intent: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("item %s/%d is final, gone, or held by another run: %w", batchID, row, ErrNotFound)
	}
	return nil
}

// ReleaseClaims drops the claims a row holds: its assignment was deleted
// (reverted), so the target is free for any row to create again.
func ReleaseClaims(ctx context.Context, q Querier, batchID string, row int) error {
	if _, err := q.Exec(ctx, `DELETE FROM target_claims WHERE batch_id = $1 AND row = $2`, batchID, row); err != nil {
		return fmt.Errorf("error releasing target claims: %w", err)
	}
	return nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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
	BatchID string
	Row     int
	Run     string
	// Hold is how long the run holds the row once it claims (on the
	// database's clock): past its job's timeout, so no second run of the
	// row posts while this one may.
	Hold            time.Duration
	Spec            assign.Spec
	TenantID        string
	ClientRequestID string
	// ListReadAt is the database time the row's assignment list was read
	// (began to be read): a holder that created the target before then,
	// yet is not in the list, has seen its assignment deleted since.
	ListReadAt time.Time
}

// Claim claims the row's target and, when it holds the claim, takes the
// row for r.Run and records the intent to create (counting the attempt),
// atomically in one statement:
// the rule is bulkassign_claim's (migrations/010_row_cost.sql). It
// returns ErrNotFound when the row is final or another live run holds it;
// nothing is then claimed or recorded.
func Claim(ctx context.Context, q Querier, r ClaimRequest) (ClaimResult, error) {
	var (
		verdict                           string
		holderBatch, status, assignmentID *string
		holderRow                         *int
	)
	err := q.QueryRow(ctx, `SELECT verdict, holder_batch::text, holder_row, holder_status, holder_assignment
		FROM bulkassign_claim($1, $2, $3, $4, $5, $6, $7::uuid, $8, $9, $10)`,
		r.TenantID, r.Spec.ConfigurationID, string(r.Spec.Path), r.Spec.Target.Key(), r.BatchID, r.Row, r.Run, r.Hold,
		r.ClientRequestID, r.ListReadAt).Scan(&verdict, &holderBatch, &holderRow, &status, &assignmentID)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == noDataFound {
		return ClaimResult{}, fmt.Errorf("item %s/%d is final, gone, or held by another run: %w", r.BatchID, r.Row, ErrNotFound)
	}
	if err != nil {
		return ClaimResult{}, fmt.Errorf("error claiming target: %w", err)
	}
	res := ClaimResult{Holder: Holder{BatchID: deref(holderBatch), Status: assign.Status(deref(status)), AssignmentID: deref(assignmentID)}}
	if holderRow != nil {
		res.Holder.Row = *holderRow
	}
	switch verdict {
	case "claimed":
		res = ClaimResult{Verdict: Claimed}
	case "read_first":
		res.Verdict = ReadFirst
	case "holder_busy":
		res.Verdict = HolderBusy
	case "holder_created":
		res.Verdict = HolderCreated
	default:
		return ClaimResult{}, fmt.Errorf("error claiming target: unknown verdict %q", verdict)
	}
	return res, nil
}

// noDataFound is the SQLSTATE bulkassign_claim raises for a row that is
// final, gone, or held by another run.
const noDataFound = "P0002"

// ReleaseClaims drops the claims a row holds: its assignment was deleted
// (reverted), so the target is free for any row to create again.
func ReleaseClaims(ctx context.Context, q Querier, batchID string, row int) error {
	if _, err := q.Exec(ctx, `DELETE FROM target_claims WHERE batch_id = $1 AND row = $2`, batchID, row); err != nil {
		return fmt.Errorf("error releasing target claims: %w", err)
	}
	return nil
}

package store

import (
	"context"
	"fmt"
	"time"

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
	// Refused: the row is final, gone, or held by another live run:
	// nothing was claimed or recorded for it.
	Refused
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

// Claim is Claims of one request; a refused claim is ErrNotFound.
func Claim(ctx context.Context, q Querier, r ClaimRequest) (ClaimResult, error) {
	res, err := Claims(ctx, q, []ClaimRequest{r})
	if err != nil {
		return ClaimResult{}, err
	}
	if res[0].Verdict == Refused {
		return ClaimResult{}, fmt.Errorf("item %s/%d is final, gone, or held by another run: %w", r.BatchID, r.Row, ErrNotFound)
	}
	return res[0], nil
}

// Claims claims the targets of a round of rows and, for each row that
// holds its claim, takes the row for its run and records the intent to
// write (counting the attempt), in one statement and one transaction: the
// rule is bulkassign_claims' (migrations/012_claim_rounds.sql). A row that
// is final or that another live run holds is Refused, and nothing of it is
// claimed or recorded. Every request of a round has the same Hold (the
// longest is used). Its answers are in the order of reqs.
func Claims(ctx context.Context, q Querier, reqs []ClaimRequest) ([]ClaimResult, error) {
	n := len(reqs)
	var (
		tenants, cfgs, paths, targets = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		batches, runs, requests       = make([]string, n), make([]string, n), make([]string, n)
		rows                          = make([]int32, n)
		readAts                       = make([]time.Time, n)
		hold                          time.Duration
	)
	for i, r := range reqs {
		tenants[i], cfgs[i], paths[i], targets[i] = r.TenantID, r.Spec.ConfigurationID, string(r.Spec.Path), r.Spec.Target.Key()
		batches[i], rows[i], runs[i], requests[i], readAts[i] = r.BatchID, int32(r.Row), r.Run, r.ClientRequestID, r.ListReadAt
		hold = max(hold, r.Hold)
	}
	rs, err := q.Query(ctx, `SELECT k, verdict, holder_batch::text, holder_row, holder_status, holder_assignment
		FROM bulkassign_claims($1, $2::uuid[], $3, $4, $5::uuid[], $6, $7::uuid[], $8, $9, $10)`,
		tenants, cfgs, paths, targets, batches, rows, runs, hold, requests, readAts)
	if err != nil {
		return nil, fmt.Errorf("error claiming targets: %w", err)
	}
	out := make([]ClaimResult, n)
	seen := 0
	for rs.Next() {
		var (
			k                                 int
			verdict                           string
			holderBatch, status, assignmentID *string
			holderRow                         *int
		)
		if err := rs.Scan(&k, &verdict, &holderBatch, &holderRow, &status, &assignmentID); err != nil {
			rs.Close()
			return nil, fmt.Errorf("error claiming targets: %w", err)
		}
		if k < 1 || k > n {
			rs.Close()
			return nil, fmt.Errorf("error claiming targets: answer for request %d of %d", k, n)
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
		case "refused":
			res = ClaimResult{Verdict: Refused}
		default:
			rs.Close()
			return nil, fmt.Errorf("error claiming targets: unknown verdict %q", verdict)
		}
		out[k-1] = res
		seen++
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("error claiming targets: %w", err)
	}
	if seen != n {
		return nil, fmt.Errorf("error claiming targets: %d answers for %d requests", seen, n)
	}
	return out, nil
}

// ReleaseClaims drops the claims a row holds: its assignment was deleted
// (reverted), so the target is free for any row to create again.
func ReleaseClaims(ctx context.Context, q Querier, batchID string, row int) error {
	if _, err := q.Exec(ctx, `DELETE FROM target_claims WHERE batch_id = $1 AND row = $2`, batchID, row); err != nil {
		return fmt.Errorf("error releasing target claims: %w", err)
	}
	return nil
}

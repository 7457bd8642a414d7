package batchop

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Op is an operation on a batch after it was enqueued.
type Op string

const (
	OpRetry  Op = "retry"
	OpCancel Op = "cancel"
	OpRevert Op = "revert"
)

// State is what decides which operations a batch allows.
type State struct {
	Counts  store.StatusCounts
	Reverts store.RevertCounts
	// Live counts the rows whose assign job may still act.
	Live int
	// InDoubt counts the rows that ended while a write of theirs may have
	// applied unseen: revert reads Graph for each and undoes what applied.
	InDoubt int
}

// ReadState reads a batch's State.
func ReadState(ctx context.Context, q store.Querier, batchID string) (State, error) {
	var s State
	var err error
	if s.Counts, err = store.CountByStatus(ctx, q, batchID); err != nil {
		return s, err
	}
	if s.Reverts, err = store.CountReverts(ctx, q, batchID); err != nil {
		return s, err
	}
	live, err := store.LiveJobRows(ctx, q, jobs.AssignArgs{}.Kind(), batchID)
	if err != nil {
		return s, err
	}
	s.Live = len(live)
	if s.InDoubt, err = store.CountInDoubt(ctx, q, batchID); err != nil {
		return s, err
	}
	return s, nil
}

// ErrNothingTo says an operation would find nothing to do.
var ErrNothingTo = errors.New("nothing to do")

// ErrReverted refuses to retry a reverted batch: retrying would create
// again what the revert deleted. After a revert, only the revert itself
// may run again (it re-runs the reverts that failed or were canceled), and
// cancel stops it; rows whose write was in doubt are the revert's to
// settle, not a retry's.
var ErrReverted = errors.New("the batch was reverted")

// NotFinalError refuses to revert a batch with rows not final yet: they
// could still create assignments.
type NotFinalError struct {
	Open int // rows not final
}

func (e *NotFinalError) Error() string { return fmt.Sprintf("%d rows are not final yet", e.Open) }

// InFlightError refuses to revert a batch whose rows are all final but
// some of whose jobs still run.
type InFlightError struct {
	Rows int // rows whose job still runs
}

func (e *InFlightError) Error() string {
	return fmt.Sprintf("%d rows are still finishing a Graph call", e.Rows)
}

// Allowed reports whether op may run on a batch in s: nil, or why not
// (ErrNothingTo, ErrReverted, *NotFinalError, *InFlightError). It is the
// one rule the commands, the CLI's advice and the console's offers follow.
func (s State) Allowed(op Op) error {
	switch op {
	case OpRetry:
		if s.Reverts.Total() > 0 {
			return ErrReverted
		}
		if s.Counts[assign.StatusFailed]+s.Counts[assign.StatusCanceled] == 0 {
			return fmt.Errorf("no failed or canceled rows to retry: %w", ErrNothingTo)
		}
		return nil
	case OpCancel:
		open := s.Counts.Total() - s.Counts.Final() - s.Counts[assign.StatusCancelling]
		openReverts := s.Reverts.Total() - s.Reverts.Final() - s.Reverts[assign.RevertCancelling]
		if open+openReverts == 0 {
			return fmt.Errorf("every row is final or being cancelled: %w", ErrNothingTo)
		}
		return nil
	case OpRevert:
		if open := s.Counts.Total() - s.Counts.Final(); open > 0 {
			return &NotFinalError{Open: open}
		}
		if s.Live > 0 {
			return &InFlightError{Rows: s.Live}
		}
		applied := s.Counts[assign.StatusCreated] + s.Counts[assign.StatusRemoved] + s.InDoubt
		if applied == 0 {
			return fmt.Errorf("no row created or removed an assignment: %w", ErrNothingTo)
		}
		if s.Reverts.Total() > 0 && s.Reverts.Total() == s.Reverts[assign.RevertReverted] {
			return fmt.Errorf("every revert is done: %w", ErrNothingTo)
		}
		return nil
	}
	return fmt.Errorf("unknown operation %q", op)
}

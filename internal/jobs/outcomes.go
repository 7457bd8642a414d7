package jobs

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/store"
)

// A row's outcome is written once Graph has answered, and its job is done
// only after the write has committed: a run hands its outcome to the
// process's outcomeWriter and waits for the commit, then returns, and
// River's completer completes the job in its own batched statements. A
// process that dies between the two leaves a final row whose job River
// rescues later; that run finds the row final and completes at once.
//
// The writer is a group commit: whoever hands an outcome over while no
// write is in progress writes every outcome waiting, in one statement
// (store.RecordOutcomes); the outcomes handed over meanwhile wait for the
// next round. Under load a statement carries many rows; alone, a row
// waits for nobody.
type outcomeWriter struct {
	mu      sync.Mutex
	pending []*outcomeRequest
	writing bool
}

type outcomeRequest struct {
	o     store.RowOutcome
	done  chan struct{}
	wrote bool
	err   error
}

// Bounds of one round: how many outcomes one statement carries at most,
// and how long it may take (a round outlives the run that started it:
// other runs wait for it).
const (
	outcomeRoundMax     = 500
	outcomeWriteTimeout = 30 * time.Second
)

// record writes o and reports whether it wrote (see store.RecordOutcomes),
// once the write has committed.
func (w *outcomeWriter) record(ctx context.Context, q store.Querier, o store.RowOutcome) (bool, error) {
	req := &outcomeRequest{o: o, done: make(chan struct{})}
	w.mu.Lock()
	w.pending = append(w.pending, req)
	lead := !w.writing
	w.writing = true
	w.mu.Unlock()
	if lead {
		w.round(context.WithoutCancel(ctx), q)
	}
	<-req.done
	return req.wrote, req.err
}

// round writes the outcomes waiting, then hands the next round (if
// outcomes arrived meanwhile) to a goroutine of its own, so that the run
// that led this one goes on.
func (w *outcomeWriter) round(ctx context.Context, q store.Querier) {
	w.mu.Lock()
	n := min(len(w.pending), outcomeRoundMax)
	reqs := slices.Clone(w.pending[:n])
	w.pending = slices.Delete(w.pending, 0, n)
	w.mu.Unlock()

	// Rows in key order: the statement locks them in the order a batch's
	// cancel or retry does, so the two do not deadlock.
	slices.SortFunc(reqs, func(a, b *outcomeRequest) int {
		return cmp.Or(cmp.Compare(a.o.BatchID, b.o.BatchID), cmp.Compare(a.o.Row, b.o.Row))
	})
	os := make([]store.RowOutcome, len(reqs))
	for i, r := range reqs {
		os[i] = r.o
	}
	wctx, cancel := context.WithTimeout(ctx, outcomeWriteTimeout)
	wrote, err := store.RecordOutcomes(wctx, q, os)
	cancel()
	for i, r := range reqs {
		if err != nil {
			r.err = err
		} else {
			r.wrote = wrote[i]
		}
		close(r.done)
	}

	w.mu.Lock()
	more := len(w.pending) > 0
	w.writing = more
	w.mu.Unlock()
	if more {
		go w.round(ctx, q)
	}
}

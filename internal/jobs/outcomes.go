package jobs

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/store"
)

// A worked row goes to Postgres three times: its start (the row read with
// its batch's list), its claim (with the intent to write) before its
// Graph write, and its outcome after. Each is a group commit (rounds):
// whoever hands a request over while no round is in progress leads one:
// after roundLinger it sends every request waiting, in one statement, and
// the requests handed over meanwhile wait for the next round. Under load a
// statement carries many rows; alone, a row waits roundLinger.
//
// A row's job is done only after its outcome has committed: the run waits
// for its round, then returns, and River's completer completes the job in
// its own batched statements. A process that dies between the two leaves
// a final row whose job River rescues later; that run finds the row final
// and completes at once.

// rounds is one group commit of requests Req answered by Res.
type rounds[Req, Res any] struct {
	mu      sync.Mutex
	pending []*roundRequest[Req, Res]
	writing bool
	// write writes one round; order sorts a round (rows in key order: the
	// statement locks them in the order a batch's cancel or retry does,
	// so the two do not deadlock).
	write func(ctx context.Context, q store.Querier, reqs []Req) ([]Res, error)
	order func(a, b Req) int
}

type roundRequest[Req, Res any] struct {
	req  Req
	done chan struct{}
	res  Res
	err  error
}

// Bounds of one round: how many requests one statement carries at most,
// and how long it may take (a round outlives the run that started it:
// other runs wait for it).
const (
	roundMax     = 500
	roundTimeout = 30 * time.Second
	// roundLinger is how long the leader of a round waits for other runs'
	// requests before it writes, as a database's commit delay does: in
	// bench 5a (50 tenants, no limit) it halves the row reads' statements
	// (6 rows a statement to 13) and takes a fifth off the claims' and
	// outcomes'; a row alone waits 2 ms a round, nothing beside a Graph
	// call.
	roundLinger = 2 * time.Millisecond
)

// do writes req in a round and returns its answer once the round has
// committed.
func (w *rounds[Req, Res]) do(ctx context.Context, q store.Querier, req Req) (Res, error) {
	r := &roundRequest[Req, Res]{req: req, done: make(chan struct{})}
	w.mu.Lock()
	w.pending = append(w.pending, r)
	lead := !w.writing
	w.writing = true
	w.mu.Unlock()
	if lead {
		time.Sleep(roundLinger)
		w.round(context.WithoutCancel(ctx), q)
	}
	<-r.done
	return r.res, r.err
}

// round writes the requests waiting, then hands the next round (if
// requests arrived meanwhile) to a goroutine of its own, so that the run
// that led this one goes on.
func (w *rounds[Req, Res]) round(ctx context.Context, q store.Querier) {
	w.mu.Lock()
	n := min(len(w.pending), roundMax)
	rs := slices.Clone(w.pending[:n])
	w.pending = slices.Delete(w.pending, 0, n)
	w.mu.Unlock()

	slices.SortFunc(rs, func(a, b *roundRequest[Req, Res]) int { return w.order(a.req, b.req) })
	reqs := make([]Req, len(rs))
	for i, r := range rs {
		reqs[i] = r.req
	}
	wctx, cancel := context.WithTimeout(ctx, roundTimeout)
	res, err := w.write(wctx, q, reqs)
	cancel()
	for i, r := range rs {
		if err != nil {
			r.err = err
		} else {
			r.res = res[i]
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

// byRow orders a round by row key.
func byRow(batchA string, rowA int, batchB string, rowB int) int {
	return cmp.Or(cmp.Compare(batchA, batchB), cmp.Compare(rowA, rowB))
}

// newOutcomeRounds writes outcomes (store.WriteOutcomes): each answer
// says whether the outcome was written, and whether the row is final.
func newOutcomeRounds() *rounds[store.RowOutcome, store.Written] {
	return &rounds[store.RowOutcome, store.Written]{
		write: store.WriteOutcomes,
		order: func(a, b store.RowOutcome) int { return byRow(a.BatchID, a.Row, b.BatchID, b.Row) },
	}
}

// newClaimRounds claims targets and records intents (store.Claims).
func newClaimRounds() *rounds[store.ClaimRequest, store.ClaimResult] {
	return &rounds[store.ClaimRequest, store.ClaimResult]{
		write: store.Claims,
		order: func(a, b store.ClaimRequest) int { return byRow(a.BatchID, a.Row, b.BatchID, b.Row) },
	}
}

// newStartRounds reads rows for their runs (store.StartRuns).
func newStartRounds() *rounds[store.RunRequest, store.RunStart] {
	return &rounds[store.RunRequest, store.RunStart]{
		write: store.StartRuns,
		order: func(a, b store.RunRequest) int { return byRow(a.BatchID, a.Row, b.BatchID, b.Row) },
	}
}

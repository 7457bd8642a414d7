package jobs

import (
	"context"
	"sync"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// flights lets the runs of one process that need the same shared read
// (a batch's list of one configuration path, one name) wait in memory for
// the one among them that does it, instead of each asking Postgres in
// turn whether the fleet has it yet: one run per process leases, polls
// and reads (sharedRead); the others take its result.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// flight is one shared read in progress in this process.
type flight struct {
	done chan struct{}
	val  any
	ok   bool // the read gave a result (val); otherwise its followers wait again
	err  error
	// final is the leader's failed answer when it is every sharer's
	// answer (graph.Fail: the configuration is gone, the tenant refuses
	// the app, ...): its followers end with it instead of reading again.
	final *graph.Response
}

// join returns the flight of key and whether the caller leads it (and
// must end it with land).
func (fs *flights) join(key string) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// land ends the flight of key with its leader's result: val, or the
// answer resp of a read that failed (or err).
func (fs *flights) land(key string, f *flight, val any, resp *graph.Response, err error) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	f.val, f.ok, f.err = val, resp == nil && err == nil, err
	if resp != nil && graph.Classify(resp).Action == graph.Fail {
		f.final = resp
	}
	close(f.done)
}

// wait waits for f to land, or for ctx.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

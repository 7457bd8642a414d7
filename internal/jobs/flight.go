package jobs

import (
	"context"
	"sync"
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

// land ends the flight of key with its leader's result.
func (fs *flights) land(key string, f *flight, val any, ok bool, err error) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	f.val, f.ok, f.err = val, ok, err
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

package jobs

import (
	"context"
	"strconv"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/store"
)

// ReadListSettings bound ReadList's patience.
type ReadListSettings struct {
	// Settings supply MaxErrors and the retry backoff (defaults as the
	// workers'); MaxWait bounds one wait for the read limit.
	Settings
	// MaxWaits bounds the waits (limit, throttling) before giving up.
	MaxWaits int
}

// ReadList reads one configuration path's assignments now, in process,
// for a caller with no queue to come back to later (the dry run). It reads
// through the workers' readList and settles each failed read as the
// workers do (inProcess). The list is Found, or not Found with Graph's
// status (the configuration does not exist); a read that could not be
// done returns a nil list and the final verdict's message.
func ReadList(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, cfgID string, p assign.Path, s ReadListSettings) (*store.AssignmentList, string) {
	var l *store.AssignmentList
	why := inProcess(ctx, reads, s, func(wait func(context.Context) error) *graph.Response {
		var resp *graph.Response
		if l, resp = readList(ctx, gc, cfgID, p, wait, nil); l != nil {
			return nil
		}
		return resp
	})
	if why != "" {
		return nil, why
	}
	return l, ""
}

// LookUpName reads the objects of kind named name in gc's tenant now, in
// process, as ReadList reads a list: the workers' lookUpName, settled as
// the workers do. A lookup that could not be done returns nil and why.
func LookUpName(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, kind graph.NameKind, name string, s ReadListSettings) (*store.NameLookup, string) {
	var l *store.NameLookup
	why := inProcess(ctx, reads, s, func(wait func(context.Context) error) *graph.Response {
		var resp *graph.Response
		l, resp = lookUpName(ctx, gc, kind, name, wait, nil)
		return resp
	})
	if why != "" {
		return nil, why
	}
	return l, ""
}

// inProcess runs one read (attempt: nil when it is done, else the failed
// answer) until it is done, settling each failure with decide as the
// workers do, but waiting in process instead of snoozing. It returns ""
// when done, else the final verdict's message.
func inProcess(ctx context.Context, reads *ratelimit.Limiter, s ReadListSettings, attempt func(wait func(context.Context) error) *graph.Response) string {
	s.withDefaults()
	if s.MaxWaits <= 0 {
		s.MaxWaits = 20
	}
	wait := func(ctx context.Context) error {
		_, err := reads.Wait(ctx, s.MaxWait)
		return err
	}
	var errs, waits int
	for {
		resp := attempt(wait)
		if resp == nil {
			return ""
		}
		v, delay, err := decide(ctx, &s.Settings, errs, resp, reads)
		switch {
		case err != nil:
			return err.Error()
		case v.Final:
			return v.ErrorMessage
		case v.CountError:
			errs++
		default:
			if waits++; waits > s.MaxWaits {
				return "still waiting after " + strconv.Itoa(s.MaxWaits) + " tries: " + v.ErrorMessage
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err().Error()
		case <-t.C:
		}
	}
}

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
// through the workers' readList and settles each failed read with decide,
// as the workers do, but waits in process instead of snoozing. The list is
// Found, or not Found with Graph's status (the configuration does not
// exist); a read that could not be done returns a nil list and the final
// verdict's message.
func ReadList(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, cfgID string, p assign.Path, s ReadListSettings) (*store.AssignmentList, string) {
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
		l, resp := readList(ctx, gc, cfgID, p, wait, nil)
		if l.Found || l.HTTPStatus != 0 {
			return l, ""
		}
		v, delay, err := decide(ctx, &s.Settings, errs, resp, reads)
		switch {
		case err != nil:
			return nil, err.Error()
		case v.Final:
			return nil, v.ErrorMessage
		case v.CountError:
			errs++
		default:
			if waits++; waits > s.MaxWaits {
				return nil, "still waiting after " + strconv.Itoa(s.MaxWaits) + " tries: " + v.ErrorMessage
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err().Error()
		case <-t.C:
		}
	}
}

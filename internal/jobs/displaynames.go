package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/store"
)

// A row that gives ids is shown with the names Graph holds for them: its
// configuration's, group's and filter's display names, and its tenant's.
// A run looks up the ones its row needs before it works the row: each
// (tenant, kind, id) of a batch is read from Graph once for the whole
// fleet (sharedRead, as names are resolved), under the read limit, and
// stored with the batch (store.DisplayKey); the assignment_results view
// joins them. The names only label the row: a lookup that fails, or that
// the read limit would hold back more than displayMaxWait, is logged and
// the name is absent (the id is shown), and the row goes on the same.

// displayKinds are the kinds of the ids a row may give, in order.
var displayKinds = []graph.NameKind{graph.NameConfiguration, graph.NameGroup, graph.NameFilter}

// DisplayKeys are the display names spec's row is shown with, in tenant
// (of no batch: the dry run's): each id it gave without a name, and the
// tenant's own name.
func DisplayKeys(tenant string, spec *assign.Spec) []store.DisplayKey {
	return displayKeys("", tenant, spec)
}

// displayKeys are the display names spec's row of batchID is shown with,
// in tenant: each id it gave without a name, and the tenant's own name.
func displayKeys(batchID, tenant string, spec *assign.Spec) []store.DisplayKey {
	out := make([]store.DisplayKey, 0, 4)
	ids := [...][2]string{{spec.ConfigurationID, spec.Names.Configuration}, {spec.Target.GroupID, spec.Names.Group},
		{spec.Target.FilterID, spec.Names.Filter}}
	for i, kind := range displayKinds {
		if ids[i][0] != "" && ids[i][1] == "" {
			out = append(out, store.DisplayKey{BatchID: batchID, TenantID: tenant, Kind: kind.String(), ID: ids[i][0]})
		}
	}
	return append(out, store.DisplayKey{BatchID: batchID, TenantID: tenant, Kind: store.KindTenant})
}

// shownNames remembers the display names this process knows a batch has
// stored (read, or known unreadable), so that a row whose names are known
// costs no statement. It forgets everything at maxShownNames entries.
type shownNames struct {
	mu sync.Mutex
	m  map[store.DisplayKey]struct{}
}

const maxShownNames = 100_000

func (s *shownNames) has(k store.DisplayKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	return ok
}

func (s *shownNames) add(k store.DisplayKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= maxShownNames {
		s.m = map[store.DisplayKey]struct{}{}
	}
	s.m[k] = struct{}{}
}

// lookUpDisplayNames makes sure the batch has the display names of the
// run's row, reading from Graph those no one has read yet. It never fails
// the row: what it cannot read stays absent, logged at debug.
func (r *assignRun) lookUpDisplayNames(ctx context.Context) {
	d, it := r.w.d, r.it
	var want []store.DisplayKey
	for _, k := range displayKeys(it.BatchID, it.TenantID, &it.Spec) {
		if !d.shown.has(k) {
			want = append(want, k)
		}
	}
	if len(want) == 0 {
		return
	}
	kinds, ids := make([]string, len(want)), make([]string, len(want))
	for i, k := range want {
		kinds[i], ids[i] = k.Kind, k.ID
	}
	stored, err := store.GetDisplayNames(ctx, d.Pool, it.BatchID, it.TenantID, kinds, ids)
	if err != nil {
		r.log.Debug("display names not read", "error", err)
		return
	}
	for _, k := range want {
		if stored[[2]string{k.Kind, k.ID}] == nil {
			n, resp, err := r.lookUpDisplayName(ctx, k)
			switch {
			case err != nil:
				r.log.Debug("display name not stored", "kind", k.Kind, "id", k.ID, "error", err)
				continue
			case resp != nil:
				r.log.Debug("display name not read", "kind", k.Kind, "id", k.ID, "error", resp.Error())
				continue
			case n == nil:
				continue
			}
		}
		d.shown.add(k)
	}
}

// lookUpDisplayName reads one display name from Graph, shared by the fleet.
func (r *assignRun) lookUpDisplayName(ctx context.Context, k store.DisplayKey) (*store.DisplayName, *graph.Response, error) {
	d, t := r.w.d, r.t
	return sharedRead(ctx, sharedReadOps[*store.DisplayName]{
		op: graph.OpResolve, busy: displayBeingRead, log: r.log, what: "a display name",
		key: "display " + k.BatchID + " " + k.TenantID + " " + k.Kind + " " + k.ID, flights: &d.flights,
		get: func(ctx context.Context) (*store.DisplayName, error) { return store.GetDisplayName(ctx, d.Pool, k) },
		lease: func(ctx context.Context, reader string) (bool, error) {
			return store.LeaseDisplayName(ctx, d.Pool, k, reader, d.Settings.JobTimeout)
		},
		read: func() (*store.DisplayName, *graph.Response) {
			return readDisplayName(ctx, t.Graph, t.Reads, k, func(ctx context.Context) error {
				waited, err := t.Reads.Wait(ctx, displayMaxWait)
				if d.OnWait != nil && waited > 0 {
					d.OnWait(waited)
				}
				return err
			}, r.log)
		},
		store: func(ctx context.Context, reader string, n *store.DisplayName) error {
			_, err := store.StoreLeasedDisplayName(ctx, d.Pool, k, reader, n)
			return err
		},
		release: func(ctx context.Context, reader string) error {
			return store.ReleaseDisplayName(ctx, d.Pool, k, reader)
		},
	}, true)
}

// readDisplayName reads k's name from Graph: the workers and the dry run
// read through it. A name, or an answer that says Graph has none to give
// (the object is gone, the app may not read it: Fail), is a result; any
// other answer (throttled, not sent, a server error) is a failed read,
// returned as its Response: nothing is kept, and a later row asks again.
// A throttle slows reads (reads, when not nil) as any other read's does.
func readDisplayName(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, k store.DisplayKey, wait func(context.Context) error, log *slog.Logger) (*store.DisplayName, *graph.Response) {
	var name string
	var resp *graph.Response
	if k.Kind == store.KindTenant {
		name, resp = gc.TenantName(ctx, wait)
	} else {
		name, resp = gc.DisplayName(ctx, nameKind(k.Kind), k.ID, wait)
	}
	if log != nil {
		log.Debug("graph display name", "kind", k.Kind, "id", k.ID, "status", resp.StatusCode, "request_id", resp.RequestID,
			"client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	}
	switch dec := graph.Classify(resp); dec.Action {
	case graph.Succeed:
		return &store.DisplayName{Name: name, HTTPStatus: resp.StatusCode, RequestID: resp.RequestID}, nil
	case graph.Fail:
		if dec.SignInAgain || dec.SignInRefused {
			return nil, resp // the row's own reads will say so
		}
		return &store.DisplayName{HTTPStatus: resp.StatusCode, RequestID: resp.RequestID}, nil
	case graph.Throttle:
		if reads != nil {
			if _, err := reads.Throttled(ctx, resp.RetryAfter); err != nil && log != nil {
				log.Debug("could not slow reads after a throttled display name read", "error", err)
			}
		}
	}
	return nil, resp
}

// nameKind is the NameKind whose String is s.
func nameKind(s string) graph.NameKind {
	for _, k := range displayKinds {
		if k.String() == s {
			return k
		}
	}
	return graph.NameConfiguration
}

// LookUpDisplayName reads k's display name now, in process, for the dry
// run: the workers' read, once, waiting for the read limit no longer than
// they do (a name only labels a row: a failed read is not retried, and a
// large list is not held up by its names). It returns "" when Graph gave
// none or it was not read.
func LookUpDisplayName(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, k store.DisplayKey) string {
	n, _ := readDisplayName(ctx, gc, reads, k, func(ctx context.Context) error {
		_, err := reads.Wait(ctx, displayMaxWait)
		return err
	}, nil)
	if n == nil {
		return ""
	}
	return n.Name
}

// displayMaxWait is the longest a row waits for the read limit to read a
// display name: a label is not worth holding the row's write back. When
// the limit is busier the row goes on without it, and a later row of the
// batch that needs the same name reads it.
const displayMaxWait = 250 * time.Millisecond

// displayBeingRead is the wait of a row whose display name another
// worker is reading: the row goes on without it.
var displayBeingRead = sharedWait{time.Second, "another worker is reading the display name from Graph"}

package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// A row may give its configuration, group and filter by display name. A
// run resolves them in the row's tenant before it reads or writes
// anything: each distinct name is read from Graph once per batch for the
// whole fleet (sharedRead, like the assignment lists), under the read
// limit. A name that matches nothing, or more than one object, ends the
// row failed (NameNotFound, NameAmbiguous). The ids are recorded with the
// row's next outcome, so the row keeps both the name given and the id
// used, and a later run starts from the ids.

// maxCandidates is how many matching ids a lookup keeps: enough to list an
// ambiguous name's candidates in its row's message.
const maxCandidates = 5

// NameRef is one name of a row to resolve.
type NameRef struct {
	Kind graph.NameKind
	Name string
}

// Set gives s the id its name n resolved to.
func (n NameRef) Set(s *assign.Spec, id string) {
	switch n.Kind {
	case graph.NameConfiguration:
		s.ConfigurationID = id
	case graph.NameGroup:
		s.Target.GroupID = id
	case graph.NameFilter:
		s.Target.FilterID = id
	}
}

// Names lists the names of s that have no id yet: the workers and the dry
// run resolve these.
func Names(s *assign.Spec) []NameRef {
	var out []NameRef
	if s.Names.Configuration != "" && s.ConfigurationID == "" {
		out = append(out, NameRef{graph.NameConfiguration, s.Names.Configuration})
	}
	if s.Names.Group != "" && s.Target.GroupID == "" {
		out = append(out, NameRef{graph.NameGroup, s.Names.Group})
	}
	if s.Names.Filter != "" && s.Target.FilterID == "" {
		out = append(out, NameRef{graph.NameFilter, s.Names.Filter})
	}
	return out
}

// resolve fills in the ids of the run's row's names. It returns a
// non-nil verdict for a name that does not resolve to one object (final),
// or a Response for a lookup that could not be done (settle decides).
func (r *assignRun) resolve(ctx context.Context) (*verdict, *graph.Response, error) {
	d, it := r.w.d, r.it
	refs := Names(&it.Spec)
	if len(refs) == 0 {
		return nil, nil, nil
	}
	kinds, ns := make([]string, len(refs)), make([]string, len(refs))
	for i, ref := range refs {
		kinds[i], ns[i] = ref.Kind.String(), ref.Name
	}
	stored, err := store.GetNames(ctx, d.Pool, it.BatchID, it.TenantID, kinds, ns)
	if err != nil {
		return nil, nil, err
	}
	var got assign.Spec // the ids resolved here, and only those
	for _, ref := range refs {
		k := store.NameKey{BatchID: it.BatchID, TenantID: it.TenantID, Kind: ref.Kind.String(), Name: ref.Name}
		l := stored[[2]string{k.Kind, k.Name}]
		if l == nil {
			var resp *graph.Response
			l, resp, err = r.lookUp(ctx, k, ref.Kind)
			if err != nil || resp != nil {
				return nil, resp, err
			}
		}
		if v := nameVerdict(ref, l, it.TenantID); v != nil {
			return v, nil, nil
		}
		ref.Set(&it.Spec, l.IDs[0])
		ref.Set(&got, l.IDs[0])
	}
	r.resolved = store.Resolution{ConfigurationID: got.ConfigurationID, GroupID: got.Target.GroupID, FilterID: got.Target.FilterID}
	r.log.Debug("names resolved", "configuration", got.ConfigurationID, "group", got.Target.GroupID, "filter", got.Target.FilterID)
	return nil, nil, nil
}

// lookUp reads one name from Graph, shared by the fleet.
func (r *assignRun) lookUp(ctx context.Context, k store.NameKey, kind graph.NameKind) (*store.NameLookup, *graph.Response, error) {
	d, t := r.w.d, r.t
	return sharedRead(ctx, sharedReadOps[*store.NameLookup]{
		op: graph.OpResolve, busy: nameBeingRead, log: r.log, what: "a name lookup",
		key: "name " + k.BatchID + " " + k.TenantID + " " + k.Kind + " " + k.Name, flights: &d.flights,
		get: func(ctx context.Context) (*store.NameLookup, error) { return store.GetName(ctx, d.Pool, k) },
		lease: func(ctx context.Context, reader string) (bool, error) {
			return store.LeaseName(ctx, d.Pool, k, reader, d.Settings.JobTimeout)
		},
		read: func() (*store.NameLookup, *graph.Response) {
			return lookUpName(ctx, t.Graph, kind, k.Name, func(ctx context.Context) error { return d.wait(ctx, t.Reads) }, r.log)
		},
		store: func(ctx context.Context, reader string, l *store.NameLookup) error {
			_, err := store.StoreLeasedName(ctx, d.Pool, k, reader, l)
			return err
		},
		release: func(ctx context.Context, reader string) error { return store.ReleaseName(ctx, d.Pool, k, reader) },
	}, true)
}

// lookUpName reads the objects of kind named name: the workers and the dry
// run read through it. A non-nil Response is a failed read.
func lookUpName(ctx context.Context, gc *graph.Client, kind graph.NameKind, name string, wait func(context.Context) error, log *slog.Logger) (*store.NameLookup, *graph.Response) {
	found, resp := gc.FindByName(ctx, kind, name, wait)
	if log != nil {
		log.Debug("graph name lookup", "kind", kind, "status", resp.StatusCode, "request_id", resp.RequestID,
			"client_request_id", resp.ClientRequestID, "duration", resp.Duration, "matches", len(found))
	}
	if graph.Classify(resp).Action != graph.Succeed {
		return nil, resp
	}
	l := &store.NameLookup{RequestID: resp.RequestID, IDs: []string{}}
	for _, n := range found {
		if len(l.IDs) == maxCandidates {
			l.More = true
			break
		}
		l.IDs = append(l.IDs, n.ID)
	}
	return l, nil
}

// nameVerdict is the final verdict of a row whose name ref looked up as
// l, unless l is exactly one object.
func nameVerdict(ref NameRef, l *store.NameLookup, tenant string) *verdict {
	if len(l.IDs) == 1 {
		return nil
	}
	v := &verdict{Final: true, RequestID: l.RequestID}
	v.ErrorCode, v.ErrorMessage = NameProblem(ref.Kind, ref.Name, l, tenant)
	return v
}

// NameProblem is the error code and message of a name that looked up as
// l and is not one object: NameNotFound, or NameAmbiguous naming the
// candidates' ids. Workers and the dry run word it the same way.
func NameProblem(kind graph.NameKind, name string, l *store.NameLookup, tenant string) (code, msg string) {
	in := ""
	if tenant != "" {
		in = " in tenant " + tenant
	}
	if len(l.IDs) == 0 {
		return assign.CodeNameNotFound, fmt.Sprintf("no %s is named %q%s", kind, name, in)
	}
	n, ids := strconv.Itoa(len(l.IDs)), strings.Join(l.IDs, ", ")
	if l.More {
		n, ids = "more than "+n, ids+", ..."
	}
	return assign.CodeNameAmbiguous, fmt.Sprintf("%s %ss are named %q%s: %s; give the %s's id instead", n, kind, name, in, ids, kind)
}

// nameBeingRead is the wait of a row whose name another worker is reading.
var nameBeingRead = sharedWait{2 * time.Second, "another worker is reading the name's objects from Graph"}

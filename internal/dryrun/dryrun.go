// Package dryrun tells what enqueueing lists would do to each row, writing
// nothing: it reads the existing assignments of every configuration path
// the rows name, in each row's tenant (once each, within the fleet's read
// limit), and compares each row's target with them. `enqueue --dry-run`
// (internal/cli) prints the report.
package dryrun

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/backoff"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// Result is what a dry run finds for a row.
type Result string

const (
	WouldCreate           Result = "would_create"
	AlreadyAssigned       Result = "already_assigned"
	ConfigurationNotFound Result = "configuration_not_found"
	// UnsupportedPolicyType: the id is not a device configuration but a
	// policy of a kind bulkassign does not assign (Why names the kind).
	UnsupportedPolicyType Result = "unsupported_policy_type"
	ReadFailed            Result = "read_failed" // the row's list (or a name) could not be read: not checked
	// WouldRemove and NotAssigned are a remove row's: its target is
	// assigned (AssignmentID) and would be deleted, or it is not.
	WouldRemove Result = "would_remove"
	NotAssigned Result = "not_assigned"
	// NameNotFound and NameAmbiguous: a display name the row gives matches
	// no object, or several (Why lists them); the row would fail.
	NameNotFound  Result = "name_not_found"
	NameAmbiguous Result = "name_ambiguous"
	// Conflict: the row would create a group's assignment beside one the
	// tenant already holds for the same group on the same path, with
	// another filter or on the other side (included against excluded),
	// which Intune refuses or which would change what the group gets (Why
	// says which, AssignmentID is the existing one).
	Conflict Result = "conflict"
	// GroupNotFound: the row's group id is no group of its tenant (a typo,
	// a deleted group, a user's id); Graph would take the assignment all
	// the same and assign nobody.
	GroupNotFound Result = "group_not_found"
)

// readers is how many lists a dry run reads at once; the fleet's read
// limit (GRAPH_READ_RATE) paces them.
const readers = 4

// Row is one input row.
type Row struct {
	Source   string // the input's name
	Line     int
	TenantID string // the row's tenant, or the default tenant (as enqueue fills it in)
	Spec     assign.Spec
}

// key is one configuration path in one tenant, whose assignments are read
// once.
type key struct {
	tenant string
	cfg    string
	path   assign.Path
}

// list is what Graph said of one configuration path.
type list struct {
	found       bool
	unsupported bool              // not found: a policy of a kind not assigned (err says which)
	keys        map[string]string // target key → assignment id
	err         string            // the read failed: why
	// groups holds the list's group and exclusion group targets by group
	// id (conflicts are found through it); built with the list.
	groups map[string][]assign.Target
}

// nameKey is one display name in one tenant, looked up once.
type nameKey struct {
	tenant string
	kind   graph.NameKind
	name   string
}

// lookup is what one name looked up as: ids, or why it could not be read.
type lookup struct {
	l   *store.NameLookup
	err string
}

// Plan is a dry run's input: every row, and the configuration paths they
// name.
type Plan struct {
	Rows []Row
	// Intake is each input's intake result, with its warnings and invalid
	// rows.
	Intake []*intake.Summary
	// NoTenant, when not nil, names the first row that names no tenant
	// while its input's default tenant is not a tenant id: enqueue would
	// refuse the inputs, and the plan is not run.
	NoTenant *jobs.NoTenantError
	// CheckGroups has Read check that the group ids of the rows it would
	// create exist in their tenants (GroupNotFound otherwise).
	CheckGroups bool
	names       []nameKey // each once, in order of first use
}

// NewPlan reads and validates the inputs, as enqueue would, rows that name
// no tenant going to their input's default tenant.
func NewPlan(inputs []jobs.Input) (*Plan, error) {
	p := &Plan{}
	seen := map[nameKey]bool{}
	for _, in := range inputs {
		rd := intake.Reader{Name: in.Name, Format: in.Format, DefaultTenant: in.DefaultTenantID()}
		res, err := rd.Read(in.Reader, func(r intake.Row) error {
			if r.TenantID == "" && p.NoTenant == nil {
				p.NoTenant = &jobs.NoTenantError{File: in.Name, Line: r.Line, DefaultTenant: in.DefaultTenant}
			}
			p.Rows = append(p.Rows, Row{Source: in.Name, Line: r.Line, TenantID: r.TenantID, Spec: r.Spec})
			for _, ref := range jobs.Names(&r.Spec) {
				k := nameKey{r.TenantID, ref.Kind, ref.Name}
				if !seen[k] {
					seen[k] = true
					p.names = append(p.names, k)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		p.Intake = append(p.Intake, res)
	}
	return p, nil
}

// Invalid reports whether some input has invalid rows; such a plan is not
// run.
func (p *Plan) Invalid() bool {
	for _, r := range p.Intake {
		if r.Err() != nil {
			return true
		}
	}
	return false
}

// Outcome is what a row would come to. Its Spec holds the ids its names
// resolved to, beside the names.
type Outcome struct {
	Row
	Result       Result
	AssignmentID string // the existing assignment: AlreadyAssigned, WouldRemove, Conflict
	Why          string // for the results that are not what the row asks for
	// Display are the names Graph gave the ids the row gave, TenantName
	// its tenant's ("" where Graph gave none), read as the workers read
	// them (jobs.LookUpDisplayName), each once.
	Display    assign.Names
	TenantName string
}

// Shown is the row's spec with the names to show: each one the row gave,
// else Graph's.
func (o *Outcome) Shown() assign.Spec {
	s := o.Spec
	for _, n := range [...][2]*string{{&s.Names.Configuration, &o.Display.Configuration},
		{&s.Names.Group, &o.Display.Group}, {&s.Names.Filter, &o.Display.Filter}} {
		if *n[0] == "" {
			*n[0] = *n[1]
		}
	}
	return s
}

// TenantLabel is the row's tenant: its id, with its name when known.
func (o *Outcome) TenantLabel() string { return assign.NameLabel(o.TenantID, o.TenantName) }

// Report is a dry run's finding: an outcome per row, in input order.
type Report struct {
	Rows   []Outcome
	Counts map[Result]int
	// Lists is how many assignment lists were read, Names how many
	// display names were looked up.
	Lists, Names int
	// Lookups is what each distinct name resolved to, in order of first
	// use.
	Lookups []Lookup
	// GroupReads is how many reads checked that the rows' group ids
	// exist (up to graph.MaxIDsPerFilter ids a read); GroupsNotChecked
	// says, per tenant, why some could not be (the rows are then told
	// as if their groups exist).
	GroupReads       int
	GroupsNotChecked []string
	// groupNames are the display names the group check read with the ids
	// ("" for an id that is no group): each id checked is named by it.
	groupNames map[groupKey]string
}

// Lookup is one display name in one tenant and what it resolved to: one
// id (resolved), none or several (IDs; More: Graph had more than were
// kept), or Err when it could not be read.
type Lookup struct {
	TenantID string
	Kind     graph.NameKind
	Name     string
	IDs      []string
	More     bool
	Err      string
}

// Resolution is the lookup in words: the id, or what is wrong.
func (l Lookup) Resolution() string {
	switch {
	case l.Err != "":
		return "not read: " + l.Err
	case len(l.IDs) == 1:
		return l.IDs[0]
	}
	_, msg := jobs.NameProblem(l.Kind, l.Name, &store.NameLookup{IDs: l.IDs, More: l.More}, "")
	return msg
}

// Run signs in as the settings say and reads every list the plan names,
// within the fleet's read limit, which it shares with the workers (its
// bucket is in db) so that a dry run never pushes the tenant into
// throttling. It writes nothing but its turns at the read limit.
//
// Every tenant's lists are read with the one sign-in of the settings:
// there is no sign-in per tenant yet. When there is, it slots in as the
// Clients that Read is given.
func Run(ctx context.Context, db *store.DB, gcfg config.Graph, wcfg config.Worker, p *Plan) (*Report, error) {
	tokens, err := auth.NewTokenSource(ctx, gcfg, db)
	if err != nil {
		return nil, err
	}
	tenants, err := worker.NewTenants(db.Pool(), gcfg, wcfg, tokens)
	if err != nil {
		return nil, err
	}
	return p.Read(ctx, func(tenant string) (*jobs.Tenant, error) { return tenants.Tenant(ctx, tenant) })
}

// Clients gives the tenant whose Graph client (signed in to it) and read
// limit read its lists. An error leaves the tenant's rows not checked
// (ReadFailed), saying why.
type Clients func(tenant string) (*jobs.Tenant, error)

// Read reads every list the plan names, each in its tenant through what
// clients gives, and reports what each row would come to.
func (p *Plan) Read(ctx context.Context, clients Clients) (*Report, error) {
	found, err := readAll(ctx, p.names, func(k nameKey) *lookup { return lookUp(ctx, clients, k) })
	if err != nil {
		return nil, err
	}
	rows := slices.Clone(p.Rows)
	unresolved := map[int]Outcome{}
	for i := range rows {
		if o, ok := resolve(&rows[i], found); !ok {
			unresolved[i] = o
		}
	}
	keys := listKeys(rows, unresolved)
	lists, err := readAll(ctx, keys, func(k key) *list { return readList(ctx, clients, k) })
	if err != nil {
		return nil, err
	}
	rep := newReport(rows, lists, unresolved)
	if p.CheckGroups {
		if err := rep.checkGroups(ctx, clients); err != nil {
			return nil, err
		}
	}
	rep.Names = len(found)
	if err := showNames(ctx, clients, rep); err != nil {
		return nil, err
	}
	for _, k := range p.names {
		lu := Lookup{TenantID: k.tenant, Kind: k.kind, Name: k.name}
		if f := found[k]; f == nil {
			lu.Err = "not read"
		} else if f.err != "" {
			lu.Err = f.err
		} else {
			lu.IDs, lu.More = f.l.IDs, f.l.More
		}
		rep.Lookups = append(rep.Lookups, lu)
	}
	return rep, nil
}

// showNames reads the display names of the ids the report's rows gave,
// and of their tenants, each once, and labels the rows with them; rows
// whose reads failed are left as they are. A name that cannot be read is
// absent: the row shows its id.
func showNames(ctx context.Context, clients Clients, rep *Report) error {
	var keys []store.DisplayKey
	seen := map[store.DisplayKey]bool{}
	for i := range rep.Rows {
		o := &rep.Rows[i]
		if o.Result == ReadFailed {
			continue
		}
		for _, k := range jobs.DisplayKeys(o.TenantID, &o.Row.Spec) {
			if _, checked := rep.groupNames[groupKey{k.TenantID, k.ID}]; checked && k.Kind == graph.NameGroup.String() {
				continue
			}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	names, err := readAll(ctx, keys, func(k store.DisplayKey) string {
		t, err := clients(k.TenantID)
		if err != nil {
			return ""
		}
		return jobs.LookUpDisplayName(ctx, t.Graph, t.Reads, k)
	})
	if err != nil {
		return err
	}
	for i := range rep.Rows {
		o := &rep.Rows[i]
		if o.Result == ReadFailed {
			continue
		}
		name := func(kind, id string) string { return names[store.DisplayKey{TenantID: o.TenantID, Kind: kind, ID: id}] }
		s := &o.Row.Spec
		if s.Names.Configuration == "" {
			o.Display.Configuration = name(graph.NameConfiguration.String(), s.ConfigurationID)
		}
		if s.Names.Group == "" && s.Target.GroupID != "" {
			o.Display.Group = name(graph.NameGroup.String(), s.Target.GroupID)
			if n, checked := rep.groupNames[groupKey{o.TenantID, s.Target.GroupID}]; checked {
				o.Display.Group = n
			}
		}
		if s.Names.Filter == "" && s.Target.FilterID != "" {
			o.Display.Filter = name(graph.NameFilter.String(), s.Target.FilterID)
		}
		o.TenantName = name(store.KindTenant, "")
	}
	return nil
}

// listKeys is the configuration paths rows name, each once, in order of
// first use, but for the rows skipped (their names did not resolve).
func listKeys(rows []Row, skipped map[int]Outcome) []key {
	var keys []key
	seen := map[key]bool{}
	for i, r := range rows {
		if _, skip := skipped[i]; skip {
			continue
		}
		k := key{r.TenantID, r.Spec.ConfigurationID, r.Spec.Path}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// resolve fills in the ids of r's names from what they looked up as, or
// returns the outcome of a row with a name that does not resolve.
func resolve(r *Row, found map[nameKey]*lookup) (Outcome, bool) {
	for _, ref := range jobs.Names(&r.Spec) {
		lu := found[nameKey{r.TenantID, ref.Kind, ref.Name}]
		switch {
		case lu == nil:
			return Outcome{Row: *r, Result: ReadFailed, Why: "not read"}, false
		case lu.err != "":
			return Outcome{Row: *r, Result: ReadFailed, Why: lu.err}, false
		}
		switch code, msg := jobs.NameProblem(ref.Kind, ref.Name, lu.l, r.TenantID); {
		case len(lu.l.IDs) == 0:
			return Outcome{Row: *r, Result: NameNotFound, Why: code + ": " + msg}, false
		case len(lu.l.IDs) > 1:
			return Outcome{Row: *r, Result: NameAmbiguous, Why: code + ": " + msg}, false
		}
		ref.Set(&r.Spec, lu.l.IDs[0])
	}
	return Outcome{}, true
}

// readAll reads every key with read, readers at a time.
func readAll[K comparable, V any](ctx context.Context, keys []K, read func(K) V) (map[K]V, error) {
	out := make(map[K]V, len(keys))
	var mu sync.Mutex
	work := make(chan K)
	var wg sync.WaitGroup
	for range min(readers, len(keys)) {
		wg.Go(func() {
			for k := range work {
				v := read(k)
				mu.Lock()
				out[k] = v
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dry run interrupted: %w", err)
	}
	return out, nil
}

// readSettings are the dry run's patience with Graph, for lists and names.
var readSettings = jobs.ReadListSettings{
	Settings: jobs.Settings{MaxErrors: 4, RetryBase: time.Second, RetryMax: 30 * time.Second, MaxWait: 5 * time.Minute},
}

// lookUp looks one name up through the workers' lookup (jobs.LookUpName).
func lookUp(ctx context.Context, clients Clients, k nameKey) *lookup {
	t, err := clients(k.tenant)
	if err != nil {
		return &lookup{err: err.Error()}
	}
	l, why := jobs.LookUpName(ctx, t.Graph, t.Reads, k.kind, k.name, readSettings)
	if l == nil {
		return &lookup{err: why}
	}
	return &lookup{l: l}
}

// readList reads one list through the workers' read (jobs.ReadList): the
// same reduction of Graph's answer and the same response policy, waiting
// in process because a dry run has no queue to come back to later. It is
// the dry run's one Graph read.
func readList(ctx context.Context, clients Clients, k key) *list {
	t, err := clients(k.tenant)
	if err != nil {
		return &list{found: true, err: err.Error()}
	}
	l, why := jobs.ReadList(ctx, t.Graph, t.Reads, k.cfg, k.path, readSettings)
	switch {
	case l == nil:
		return &list{found: true, err: why}
	case !l.Found && l.ErrorCode == assign.CodeUnsupportedPolicyType:
		return &list{unsupported: true, err: fmt.Sprintf("%s: %s", l.ErrorCode, l.ErrorMessage)}
	case !l.Found:
		return &list{err: fmt.Sprintf("HTTP %d %s (request-id %s)", l.HTTPStatus, l.ErrorCode, l.RequestID)}
	}
	out := &list{found: true, keys: l.Keys, groups: map[string][]assign.Target{}}
	for k := range l.Keys {
		if t, ok := assign.TargetFromKey(k); ok && t.GroupID != "" {
			out.groups[t.GroupID] = append(out.groups[t.GroupID], t)
		}
	}
	return out
}

// newReport is the outcome of every row, given the lists and the rows
// whose names did not resolve (by index).
func newReport(rows []Row, lists map[key]*list, unresolved map[int]Outcome) *Report {
	rep := &Report{Rows: make([]Outcome, len(rows)), Counts: map[Result]int{}, Lists: len(lists)}
	for i := range rows {
		o, ok := unresolved[i]
		if !ok {
			o = outcome(rows[i], lists)
		}

		rep.Rows[i] = o
		rep.Counts[o.Result]++
	}
	return rep
}

// outcome is what a row would come to, given the lists.
func outcome(r Row, lists map[key]*list) Outcome {
	o := Outcome{Row: r}
	l := lists[key{r.TenantID, r.Spec.ConfigurationID, r.Spec.Path}]
	switch {
	case l == nil:
		o.Result, o.Why = ReadFailed, "not read"
	case l.unsupported:
		o.Result, o.Why = UnsupportedPolicyType, l.err
	case !l.found:
		o.Result, o.Why = ConfigurationNotFound, l.err
	case l.err != "":
		o.Result, o.Why = ReadFailed, l.err
	case r.Spec.Action == assign.ActionRemove:
		if id, ok := l.keys[r.Spec.Target.Key()]; ok {
			o.Result, o.AssignmentID = WouldRemove, id
		} else {
			o.Result = NotAssigned
		}
	default:
		if id, ok := l.keys[r.Spec.Target.Key()]; ok {
			o.Result, o.AssignmentID = AlreadyAssigned, id
		} else if why, id := conflict(r.Spec.Target, l); why != "" {
			o.Result, o.AssignmentID, o.Why = Conflict, id, why
		} else {
			o.Result = WouldCreate
		}
	}
	return o
}

// conflict says why creating t beside what l holds would conflict, and
// the existing assignment it conflicts with: the same group already
// assigned on the path with another filter, or on the other side.
func conflict(t assign.Target, l *list) (why, id string) {
	if t.GroupID == "" {
		return "", ""
	}
	for _, have := range l.groups[t.GroupID] {
		switch {
		case have.Type != t.Type:
			side := "included"
			if have.Type == assign.TargetExclusionGroup {
				side = "excluded"
			}
			return "the group is already " + side + " on this configuration path; Intune refuses a group both included and excluded", l.keys[have.Key()]
		case have.FilterID != t.FilterID || have.FilterType != t.FilterType:
			f := "no filter"
			if have.FilterID != "" {
				f = "filter " + have.FilterID + " (" + string(have.FilterType) + ")"
			}
			return "the group is already assigned here with " + f + "; remove that assignment first to change its filter", l.keys[have.Key()]
		}
	}
	return "", ""
}

// groupKey is one group id in one tenant.
type groupKey struct{ tenant, id string }

// groupChunk is up to graph.MaxIDsPerFilter group ids of one tenant, read
// at once; ids holds them comma-separated (a map key must be comparable).
type groupChunk struct{ tenant, ids string }

// groupRead is what one chunk's read found: the ids that are groups, or
// why it could not be read.
type groupRead struct {
	found map[string]string // id → display name
	err   string
}

// checkGroups reads whether the group ids of the rows that would create
// an assignment (would_create, conflict) exist, each id once per tenant,
// graph.MaxIDsPerFilter ids a read, and turns the rows of a missing group
// into GroupNotFound. Rows that name their group found it by name;
// removals of a missing group are simply not assigned. A chunk that
// cannot be read leaves its rows as they are, told in GroupsNotChecked.
func (rep *Report) checkGroups(ctx context.Context, clients Clients) error {
	byTenant := map[string][]string{}
	var tenants []string
	seen := map[groupKey]bool{}
	for _, o := range rep.Rows {
		t := o.Spec.Target
		if (o.Result != WouldCreate && o.Result != Conflict) || o.Spec.Names.Group != "" || t.GroupID == "" {
			continue
		}
		k := groupKey{o.TenantID, t.GroupID}
		if seen[k] {
			continue
		}
		seen[k] = true
		if byTenant[k.tenant] == nil {
			tenants = append(tenants, k.tenant)
		}
		byTenant[k.tenant] = append(byTenant[k.tenant], k.id)
	}
	var chunks []groupChunk
	for _, t := range tenants {
		for ids := range slices.Chunk(byTenant[t], graph.MaxIDsPerFilter) {
			chunks = append(chunks, groupChunk{t, strings.Join(ids, ",")})
		}
	}
	reads, err := readAll(ctx, chunks, func(k groupChunk) *groupRead { return readGroups(ctx, clients, k) })
	if err != nil {
		return err
	}
	rep.GroupReads = len(chunks)
	missing := map[groupKey]bool{}
	for _, k := range chunks {
		g := reads[k]
		if g.err != "" {
			if why := "tenant " + k.tenant + ": " + g.err; !slices.Contains(rep.GroupsNotChecked, why) {
				rep.GroupsNotChecked = append(rep.GroupsNotChecked, why)
			}
			continue
		}
		for _, id := range strings.Split(k.ids, ",") {
			name, ok := g.found[id]
			if !ok {
				missing[groupKey{k.tenant, id}] = true
			}
			// The read that checked the group named it too (or found no
			// group to name): showNames reads it no more.
			if rep.groupNames == nil {
				rep.groupNames = map[groupKey]string{}
			}
			rep.groupNames[groupKey{k.tenant, id}] = name
		}
	}
	for i := range rep.Rows {
		o := &rep.Rows[i]
		if (o.Result == WouldCreate || o.Result == Conflict) && o.Spec.Names.Group == "" && missing[groupKey{o.TenantID, o.Spec.Target.GroupID}] {
			rep.Counts[o.Result]--
			o.Result, o.AssignmentID = GroupNotFound, ""
			o.Why = "the tenant has no group " + o.Spec.Target.GroupID + " (deleted, mistyped, or not a group's id): the assignment would target nobody"
			rep.Counts[o.Result]++
		}
	}
	return nil
}

// readGroups reads one chunk of group ids (graph.Client.FindGroups)
// within the tenant's read limit (settle); a chunk that cannot be read
// (a 403: no Group.Read.All) is not checked.
func readGroups(ctx context.Context, clients Clients, k groupChunk) *groupRead {
	t, err := clients(k.tenant)
	if err != nil {
		return &groupRead{err: err.Error()}
	}
	ids := strings.Split(k.ids, ",")
	var found map[string]string
	why := settle(ctx, t, func(wait func(context.Context) error) *graph.Response {
		var resp *graph.Response
		found, resp = t.Graph.FindGroups(ctx, ids, wait)
		if found != nil {
			return nil
		}
		return resp
	})
	if why != "" {
		return &groupRead{err: why}
	}
	return &groupRead{found: found}
}

// maxWaits bounds the throttles and limiter waits of one settled read.
const maxWaits = 20

// settle runs attempt (nil when it is done, else the failed answer)
// within t's read limit until it is done, settling each failure with the
// response policy: throttles slow the fleet and wait, transient errors
// are retried up to readSettings.MaxErrors times, anything else is final.
// It returns "" when done, else why not.
func settle(ctx context.Context, t *jobs.Tenant, attempt func(wait func(context.Context) error) *graph.Response) string {
	var wait func(context.Context) error
	if t.Reads != nil {
		wait = func(ctx context.Context) error {
			_, err := t.Reads.Wait(ctx, readSettings.MaxWait)
			return err
		}
	}
	retry := backoff.Policy{Base: readSettings.RetryBase, Max: readSettings.RetryMax}
	for errs, waits := 0, 0; ; {
		resp := attempt(wait)
		if resp == nil {
			return ""
		}
		var delay time.Duration
		switch d := graph.Classify(resp); d.Action {
		case graph.Throttle:
			if t.Reads != nil {
				delay, _ = t.Reads.Throttled(ctx, resp.RetryAfter)
			} else {
				delay = max(resp.RetryAfter, retry.Delay(waits+1))
			}
			waits++
		case graph.Wait:
			delay = d.Delay
			waits++
		case graph.Retry:
			if errs++; errs >= readSettings.MaxErrors {
				return resp.Error()
			}
			delay = retry.Delay(errs)
		case graph.Fail:
			if resp.StatusCode >= 400 {
				return resp.Error() + ": " + d.Why
			}
			return resp.Error()
		default:
			return resp.Error()
		}
		if waits > maxWaits {
			return "still waiting after " + strconv.Itoa(maxWaits) + " tries: " + resp.Error()
		}
		tm := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err().Error()
		case <-tm.C:
		}
	}
}

// Package dryrun tells what enqueueing lists would do to each row, writing
// nothing: it reads the existing assignments of every configuration path
// the rows name, in each row's tenant (once each, within the fleet's read
// limit), and compares each row's target with them. `enqueue --dry-run`
// (internal/cli) prints the report.
package dryrun

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
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
	ReadFailed            Result = "read_failed" // the row's list could not be read: not checked
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
	keys     []key // each once, in order of first use
}

// NewPlan reads and validates the inputs, as enqueue would, rows that name
// no tenant going to their input's default tenant.
func NewPlan(inputs []jobs.Input) (*Plan, error) {
	p := &Plan{}
	seen := map[key]bool{}
	for _, in := range inputs {
		rd := intake.Reader{Name: in.Name, Format: in.Format, DefaultTenant: in.DefaultTenantID()}
		res, err := rd.Read(in.Reader, func(r intake.Row) error {
			if r.TenantID == "" && p.NoTenant == nil {
				p.NoTenant = &jobs.NoTenantError{File: in.Name, Line: r.Line, DefaultTenant: in.DefaultTenant}
			}
			p.Rows = append(p.Rows, Row{Source: in.Name, Line: r.Line, TenantID: r.TenantID, Spec: r.Spec})
			k := key{r.TenantID, r.Spec.ConfigurationID, r.Spec.Path}
			if !seen[k] {
				seen[k] = true
				p.keys = append(p.keys, k)
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

// Outcome is what a row would come to.
type Outcome struct {
	Row
	Result       Result
	AssignmentID string // the existing assignment, when AlreadyAssigned
	Why          string // when ConfigurationNotFound or ReadFailed
}

// Report is a dry run's finding: an outcome per row, in input order.
type Report struct {
	Rows   []Outcome
	Counts map[Result]int
	// Lists is how many assignment lists were read.
	Lists int
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
	lists, err := readLists(ctx, clients, p.keys)
	if err != nil {
		return nil, err
	}
	return newReport(p.Rows, lists), nil
}

// readLists reads every list, readers at a time.
func readLists(ctx context.Context, clients Clients, keys []key) (map[key]*list, error) {
	out := make(map[key]*list, len(keys))
	var mu sync.Mutex
	work := make(chan key)
	var wg sync.WaitGroup
	for range min(readers, len(keys)) {
		wg.Go(func() {
			for k := range work {
				l := readList(ctx, clients, k)
				mu.Lock()
				out[k] = l
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

// readList reads one list through the workers' read (jobs.ReadList): the
// same reduction of Graph's answer and the same response policy, waiting
// in process because a dry run has no queue to come back to later. It is
// the dry run's one Graph read.
func readList(ctx context.Context, clients Clients, k key) *list {
	t, err := clients(k.tenant)
	if err != nil {
		return &list{found: true, err: err.Error()}
	}
	l, why := jobs.ReadList(ctx, t.Graph, t.Reads, k.cfg, k.path, jobs.ReadListSettings{
		Settings: jobs.Settings{MaxErrors: 4, RetryBase: time.Second, RetryMax: 30 * time.Second, MaxWait: 5 * time.Minute},
	})
	switch {
	case l == nil:
		return &list{found: true, err: why}
	case !l.Found && l.ErrorCode == assign.CodeUnsupportedPolicyType:
		return &list{unsupported: true, err: fmt.Sprintf("%s: %s", l.ErrorCode, l.ErrorMessage)}
	case !l.Found:
		return &list{err: fmt.Sprintf("HTTP %d %s (request-id %s)", l.HTTPStatus, l.ErrorCode, l.RequestID)}
	}
	return &list{found: true, keys: l.Keys}
}

// newReport is the outcome of every row, given the lists.
func newReport(rows []Row, lists map[key]*list) *Report {
	rep := &Report{Rows: make([]Outcome, len(rows)), Counts: map[Result]int{}, Lists: len(lists)}
	for i := range rows {
		o := outcome(rows[i], lists)
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
	default:
		if id, ok := l.keys[r.Spec.Target.Key()]; ok {
			o.Result, o.AssignmentID = AlreadyAssigned, id
		} else {
			o.Result = WouldCreate
		}
	}
	return o
}

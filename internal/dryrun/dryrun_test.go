package dryrun

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	group := func(n int) assign.Target { return assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(n)} }
	row := func(cfg, g int) Row {
		return Row{Source: "in.csv", Line: 2, Spec: assign.Spec{ConfigurationID: testenv.Config(cfg), Target: group(g)}}
	}
	lists := map[key]*list{
		{"", testenv.Config(0), ""}: {found: true, keys: map[string]string{group(1).Key(): "a1"}},
		{"", testenv.Config(1), ""}: {err: "HTTP 404 ResourceNotFound (request-id r)"},
		{"", testenv.Config(2), ""}: {found: true, err: "gave up after 4 failed reads"},
		{"", testenv.Config(4), ""}: {unsupported: true, err: "UnsupportedPolicyType: a compliance policy"},
	}
	tests := []struct {
		name string
		row  Row
		want Outcome
	}{
		{"NotAssignedYet", row(0, 2), Outcome{Result: WouldCreate}},
		{"AssignedAlready", row(0, 1), Outcome{Result: AlreadyAssigned, AssignmentID: "a1"}},
		{"NoConfiguration", row(1, 1), Outcome{Result: ConfigurationNotFound, Why: "HTTP 404 ResourceNotFound (request-id r)"}},
		{"ReadFailed", row(2, 1), Outcome{Result: ReadFailed, Why: "gave up after 4 failed reads"}},
		{"NotRead", row(3, 1), Outcome{Result: ReadFailed, Why: "not read"}},
		{"UnsupportedPolicyType", row(4, 1), Outcome{Result: UnsupportedPolicyType, Why: "UnsupportedPolicyType: a compliance policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.want.Row = tt.row
			if got := outcome(tt.row, lists); got != tt.want {
				t.Errorf("outcome = %+v, want %+v", got, tt.want)
			}
		})
	}

	rows := []Row{row(0, 1), row(0, 2), row(0, 3), row(1, 1), row(3, 1), row(4, 1)}
	rep := newReport(rows, lists, nil)
	if len(rep.Rows) != 6 || rep.Lists != 4 || rep.Counts[WouldCreate] != 2 || rep.Counts[AlreadyAssigned] != 1 ||
		rep.Counts[ConfigurationNotFound] != 1 || rep.Counts[ReadFailed] != 1 || rep.Counts[UnsupportedPolicyType] != 1 {
		t.Fatalf("report: %d rows, %d lists, counts %v; want 6 rows, 4 lists, 2 would_create and one of each other result", len(rep.Rows), rep.Lists, rep.Counts)
	}
}

const (
	tenantA = "2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d"
	tenantB = "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29180"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	// Two files on three configurations: each configuration path is read
	// once, in order of first use.
	p, err := NewPlan([]jobs.Input{
		{Name: "a.csv", Format: intake.FormatCSV, Reader: strings.NewReader(testenv.GroupCSV(4, 2)), DefaultTenant: tenantA},
		{Name: "b.csv", Format: intake.FormatCSV, Reader: strings.NewReader(testenv.GroupCSV(3, 3)), DefaultTenant: tenantA},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Invalid() || p.NoTenant != nil || len(p.Rows) != 7 || len(p.Intake) != 2 {
		t.Fatalf("plan: invalid %v, no tenant %v, %d rows, %d intake results; want valid, 7 and 2", p.Invalid(), p.NoTenant, len(p.Rows), len(p.Intake))
	}
	want := []key{{tenantA, testenv.Config(0), ""}, {tenantA, testenv.Config(1), ""}, {tenantA, testenv.Config(2), ""}}
	if keys := listKeys(p.Rows, nil); !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if r := p.Rows[4]; r.Source != "b.csv" || r.Line != 2 || r.TenantID != tenantA {
		t.Fatalf("row 5: %+v, want b.csv line 2 in the default tenant", r)
	}

	bad, err := NewPlan([]jobs.Input{{Name: "bad.csv", Format: intake.FormatCSV, DefaultTenant: tenantA,
		Reader: strings.NewReader("configuration_id,target_type,group_id\nnot-a-guid,group," + testenv.Group(1) + "\n")}})
	if err != nil || !bad.Invalid() {
		t.Fatalf("a plan with an invalid row: %v, invalid %v; want it marked invalid", err, bad != nil && bad.Invalid())
	}
}

// TestPlanTenants: a configuration path is read once per tenant that names
// it; rows without a tenant are the default tenant's; without a default
// tenant id, the plan names the first row that needs one.
func TestPlanTenants(t *testing.T) {
	t.Parallel()
	list := "configuration_id,target_type,group_id,tenant_id\n" +
		testenv.Config(0) + ",group," + testenv.Group(0) + "," + tenantB + "\n" +
		testenv.Config(0) + ",group," + testenv.Group(0) + ",\n" + // the default tenant: another row
		testenv.Config(0) + ",group," + testenv.Group(1) + "," + tenantA + "\n" + // the default tenant, named
		testenv.Config(0) + ",group," + testenv.Group(2) + "," + tenantB + "\n"
	plan := func(def string) *Plan {
		t.Helper()
		p, err := NewPlan([]jobs.Input{{Name: "t.csv", Format: intake.FormatCSV, Reader: strings.NewReader(list), DefaultTenant: def}})
		if err != nil || p.Invalid() {
			t.Fatalf("NewPlan: %v, invalid %v", err, p.Invalid())
		}
		return p
	}

	p := plan(strings.ToUpper(tenantA))
	want := []key{{tenantB, testenv.Config(0), ""}, {tenantA, testenv.Config(0), ""}}
	if keys := listKeys(p.Rows, nil); p.NoTenant != nil || !slices.Equal(keys, want) {
		t.Fatalf("keys %v (no tenant %v), want %v", keys, p.NoTenant, want)
	}
	if p.Rows[1].TenantID != tenantA {
		t.Fatalf("a row without a tenant: %+v, want the default tenant's", p.Rows[1])
	}

	// Each (tenant, configuration, path) is asked of its tenant's client,
	// once; a tenant without one leaves its rows not checked.
	var (
		mu    sync.Mutex // lists are read by several readers at once
		asked []string
	)
	rep, err := p.Read(context.Background(), func(tenant string) (*jobs.Tenant, error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, tenant)
		return nil, errors.New("no sign-in for tenant " + tenant)
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(asked)
	if !slices.Equal(asked, []string{tenantA, tenantB}) || rep.Lists != 2 || rep.Counts[ReadFailed] != 4 ||
		rep.Rows[0].Why != "no sign-in for tenant "+tenantB || rep.Rows[1].Why != "no sign-in for tenant "+tenantA {
		t.Fatalf("asked %v; report %+v", asked, rep)
	}

	for _, def := range []string{"", "contoso.onmicrosoft.com"} {
		p := plan(def)
		if p.NoTenant == nil || p.NoTenant.File != "t.csv" || p.NoTenant.Line != 3 || p.NoTenant.DefaultTenant != def {
			t.Errorf("default tenant %q: NoTenant = %+v, want t.csv line 3", def, p.NoTenant)
		}
	}
}

// TestOutcomeOfRemovalsAndConflicts: a remove row would remove what the
// list holds or find nothing; an assign row conflicts with the same group
// assigned on the path with another filter, with none, or on the other
// side — naming the existing assignment — and not with other groups.
func TestOutcomeOfRemovalsAndConflicts(t *testing.T) {
	t.Parallel()
	filter := "f0000000-0000-4000-8000-000000000001"
	have := []assign.Target{
		{Type: assign.TargetGroup, GroupID: testenv.Group(1)},
		{Type: assign.TargetGroup, GroupID: testenv.Group(2), FilterID: filter, FilterType: assign.FilterInclude},
		{Type: assign.TargetExclusionGroup, GroupID: testenv.Group(3)},
		{Type: assign.TargetAllDevices},
	}
	l := &list{found: true, keys: map[string]string{}, groups: map[string][]assign.Target{}}
	for i, tg := range have {
		l.keys[tg.Key()] = "a" + strconv.Itoa(i)
		if tg.GroupID != "" {
			l.groups[tg.GroupID] = append(l.groups[tg.GroupID], tg)
		}
	}
	lists := map[key]*list{{"", testenv.Config(0), ""}: l}
	row := func(tg assign.Target, a assign.Action) Row {
		return Row{Line: 2, Spec: assign.Spec{ConfigurationID: testenv.Config(0), Target: tg, Action: a}}
	}
	g := func(n int) assign.Target { return assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(n)} }
	for _, tt := range []struct {
		name   string
		row    Row
		result Result
		id     string
		why    string
	}{
		{"RemoveAssigned", row(have[1], assign.ActionRemove), WouldRemove, "a1", ""},
		{"RemoveAllDevices", row(have[3], assign.ActionRemove), WouldRemove, "a3", ""},
		{"RemoveWithAnotherFilter", row(g(2), assign.ActionRemove), NotAssigned, "", ""},
		{"RemoveNothing", row(g(9), assign.ActionRemove), NotAssigned, "", ""},
		{"SameGroupOtherFilter", row(assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(1), FilterID: filter, FilterType: assign.FilterExclude}, assign.ActionAssign),
			Conflict, "a0", "already assigned here with no filter"},
		{"SameGroupNoFilter", row(g(2), assign.ActionAssign), Conflict, "a1", "with filter " + filter + " (include)"},
		{"IncludeWhatIsExcluded", row(g(3), assign.ActionAssign), Conflict, "a2", "already excluded"},
		{"ExcludeWhatIsIncluded", row(assign.Target{Type: assign.TargetExclusionGroup, GroupID: testenv.Group(1)}, assign.ActionAssign), Conflict, "a0", "already included"},
		{"OtherGroup", row(g(9), assign.ActionAssign), WouldCreate, "", ""},
		{"Already", row(g(1), assign.ActionAssign), AlreadyAssigned, "a0", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := outcome(tt.row, lists)
			if o.Result != tt.result || o.AssignmentID != tt.id || !strings.Contains(o.Why, tt.why) {
				t.Errorf("outcome %s %q %q, want %s %q with %q", o.Result, o.AssignmentID, o.Why, tt.result, tt.id, tt.why)
			}
		})
	}
}

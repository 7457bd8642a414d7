package family_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/family"
)

func entry(id string, a family.Assignment) family.Entry {
	return family.Entry{ID: id, Source: family.SourceDirect, Assignment: a}
}

func setEntry(id, setID string, t assign.Target) family.Entry {
	return family.Entry{ID: id, Source: family.SourcePolicySets, SourceID: setID, Assignment: family.Assignment{Target: t}}
}

func known(e ...family.Entry) family.Current { return family.Current{Entries: e, Complete: true} }

// labels is the next set as sorted-by-order labels, policy-set entries
// marked, for comparison.
func labels(next []family.Entry) string {
	var s []string
	for _, e := range next {
		l := e.Label()
		if e.PolicySet() {
			l += " [set " + e.SourceID + "]"
		}
		if e.ID != "" {
			l = e.ID + "=" + l
		}
		s = append(s, l)
	}
	return strings.Join(s, "; ")
}

func outcomes(steps []family.Step) string {
	var s []string
	for _, st := range steps {
		o := string(st.Outcome)
		if st.Of >= 0 {
			o += fmt.Sprintf("(of %d)", st.Of)
		}
		s = append(s, o)
	}
	return strings.Join(s, " ")
}

func TestMerge(t *testing.T) {
	t.Parallel()
	g := func(n int) assign.Target { return group(fmt.Sprintf("00000000-0000-4000-8000-%012d", n)) }
	ga := func(n int) family.Assignment { return family.Assignment{Target: g(n)} }
	app := func(n int, in family.Intent) family.Assignment { return family.Assignment{Target: g(n), Intent: in} }
	tests := []struct {
		name     string
		fam      family.Name
		cur      family.Current
		adds     []family.Assignment
		removes  []assign.Target
		next     string
		addOut   string
		rmOut    string
		kept     int
		changed  bool
		wantErr  error
		errMatch string
	}{
		{name: "empty current, adds", fam: family.Compliance, cur: known(),
			adds:   []family.Assignment{ga(1), ga(2)},
			next:   "group:00000000-0000-4000-8000-000000000001; group:00000000-0000-4000-8000-000000000002",
			addOut: "added added", changed: true},
		{name: "adds beside what is there, already there", fam: family.SettingsCatalog,
			cur:    known(entry("a", ga(1)), entry("b", ga(2))),
			adds:   []family.Assignment{ga(2), ga(3)},
			next:   "a=group:00000000-0000-4000-8000-000000000001; b=group:00000000-0000-4000-8000-000000000002; group:00000000-0000-4000-8000-000000000003",
			addOut: "already_there added", kept: 1, changed: true},
		{name: "nothing to do", fam: family.UpdateProfile, cur: known(entry("a", ga(1))),
			adds: []family.Assignment{ga(1)}, removes: []assign.Target{g(9)},
			next: "a=group:00000000-0000-4000-8000-000000000001", addOut: "already_there", rmOut: "not_there"},
		{name: "policy sets kept, never matched", fam: family.SettingsCatalog,
			cur:     known(setEntry("s", "set1", g(1)), entry("a", ga(2))),
			adds:    []family.Assignment{ga(1)},
			removes: []assign.Target{g(2)},
			next:    "s=group:00000000-0000-4000-8000-000000000001 [set set1]; group:00000000-0000-4000-8000-000000000001",
			addOut:  "added", rmOut: "removed", kept: 1, changed: true},
		{name: "remove of a policy-set target", fam: family.Compliance,
			cur:     known(setEntry("s", "set1", g(1))),
			removes: []assign.Target{g(1)},
			next:    "s=group:00000000-0000-4000-8000-000000000001 [set set1]", rmOut: "policy_set"},
		{name: "replace on a new filter", fam: family.Compliance,
			cur:    known(entry("a", ga(1)), entry("b", ga(2))),
			adds:   []family.Assignment{{Target: filtered(g(1), f1, assign.FilterInclude)}},
			next:   "b=group:00000000-0000-4000-8000-000000000002; group:00000000-0000-4000-8000-000000000001 (include " + f1 + ")",
			addOut: "replaced", kept: 1, changed: true},
		{name: "replace on a new intent", fam: family.App,
			cur:    known(entry("a", app(1, family.IntentAvailable)), entry("b", app(2, family.IntentRequired))),
			adds:   []family.Assignment{app(1, family.IntentRequired), app(2, family.IntentRequired)},
			next:   "b=group:00000000-0000-4000-8000-000000000002 intent=required; group:00000000-0000-4000-8000-000000000001 intent=required",
			addOut: "replaced already_there", changed: true},
		{name: "remove of absent is not there", fam: family.Script, cur: known(entry("a", ga(1))),
			removes: []assign.Target{g(2)},
			next:    "a=group:00000000-0000-4000-8000-000000000001", rmOut: "not_there", kept: 1},
		{name: "remove is exact: a filtered entry stays", fam: family.SettingsCatalog,
			cur:     known(entry("a", family.Assignment{Target: filtered(g(1), f1, assign.FilterInclude)})),
			removes: []assign.Target{g(1)},
			next:    "a=group:00000000-0000-4000-8000-000000000001 (include " + f1 + ")", rmOut: "not_there", kept: 1},
		{name: "removing all users keeps all devices", fam: family.Compliance,
			cur:     known(entry("u", family.Assignment{Target: allUsers}), entry("d", family.Assignment{Target: allDevices})),
			removes: []assign.Target{allUsers},
			next:    "d=all_devices", rmOut: "removed", kept: 1, changed: true},
		{name: "a target held twice is removed twice", fam: family.Compliance,
			cur:     known(entry("a", ga(1)), entry("b", ga(1)), entry("c", ga(2))),
			removes: []assign.Target{g(1)},
			next:    "c=group:00000000-0000-4000-8000-000000000002", rmOut: "removed", kept: 1, changed: true},
		{name: "duplicates in adds and removes share the first", fam: family.Compliance,
			cur:     known(entry("a", ga(1))),
			adds:    []family.Assignment{ga(2), ga(2), ga(1), ga(1)},
			removes: []assign.Target{g(3), g(3)},
			next:    "a=group:00000000-0000-4000-8000-000000000001; group:00000000-0000-4000-8000-000000000002",
			addOut:  "added added(of 0) already_there already_there(of 2)", rmOut: "not_there not_there(of 0)", changed: true},
		{name: "two adds of one slot conflict: the first wins", fam: family.App, cur: known(),
			adds:   []family.Assignment{app(1, family.IntentRequired), app(1, family.IntentUninstall)},
			next:   "group:00000000-0000-4000-8000-000000000001 intent=required",
			addOut: "added conflict(of 0)", changed: true},
		{name: "an add and a remove of one slot: the add wins", fam: family.Compliance,
			cur:     known(entry("a", ga(1))),
			adds:    []family.Assignment{{Target: filtered(g(1), f1, assign.FilterExclude)}},
			removes: []assign.Target{g(1)},
			next:    "group:00000000-0000-4000-8000-000000000001 (exclude " + f1 + ")",
			addOut:  "replaced", rmOut: "conflict(of 0)", changed: true},
		{name: "incomplete current refused", fam: family.Compliance,
			cur:     family.Current{Entries: []family.Entry{entry("a", ga(1))}, Why: "page 2 answered 503"},
			adds:    []family.Assignment{ga(2)},
			wantErr: family.ErrIncomplete, errMatch: "page 2 answered 503"},
		{name: "unvouched empty current refused", fam: family.App, cur: family.Current{},
			adds:    []family.Assignment{app(1, family.IntentRequired)},
			wantErr: family.ErrIncomplete, errMatch: "not marked complete"},
		{name: "an id listed twice refused", fam: family.Compliance,
			cur:     known(entry("a", ga(1)), entry("a", ga(1))),
			wantErr: family.ErrIncomplete, errMatch: "listed twice"},
		{name: "an entry without a known target refused", fam: family.Compliance,
			cur:     known(entry("a", family.Assignment{Target: assign.Target{Type: "scopeTag"}})),
			wantErr: family.ErrIncomplete, errMatch: "no known target type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next, plan, err := family.Lookup(tt.fam).Merge(tt.cur, tt.adds, tt.removes)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errMatch) || next != nil {
					t.Fatalf("err %v, next %v; want %v containing %q and no set", err, next, tt.wantErr, tt.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := labels(next); got != tt.next {
				t.Errorf("next\n got %s\nwant %s", got, tt.next)
			}
			if got := outcomes(plan.Adds); got != tt.addOut {
				t.Errorf("adds: got %q, want %q", got, tt.addOut)
			}
			if got := outcomes(plan.Removes); got != tt.rmOut {
				t.Errorf("removes: got %q, want %q", got, tt.rmOut)
			}
			if len(plan.Kept) != tt.kept || plan.Changed != tt.changed {
				t.Errorf("kept %d changed %v, want %d %v", len(plan.Kept), plan.Changed, tt.kept, tt.changed)
			}
		})
	}
}

// TestMergeReplacedKeepsSettings: an app entry given a new filter keeps
// its typed settings; a new intent does not carry them over.
func TestMergeReplacedKeepsSettings(t *testing.T) {
	t.Parallel()
	f := family.Lookup(family.App)
	set := []byte(`{"@odata.type":"#microsoft.graph.win32LobAppAssignmentSettings"}`)
	cur := known(family.Entry{ID: "a", Source: family.SourceDirect, Assignment: family.Assignment{Target: group(g1), Intent: family.IntentRequired, Settings: set}})
	next, plan, err := f.Merge(cur, []family.Assignment{{Target: filtered(group(g1), f1, assign.FilterInclude), Intent: family.IntentRequired}}, nil)
	if err != nil || len(next) != 1 || string(next[0].Settings) != string(set) || plan.Adds[0].Outcome != family.Replaced || plan.Adds[0].Replaced[0].ID != "a" {
		t.Fatalf("new filter: %v %+v %+v", err, next, plan)
	}
	next, _, err = f.Merge(cur, []family.Assignment{{Target: group(g1), Intent: family.IntentUninstall}}, nil)
	if err != nil || len(next) != 1 || next[0].Settings != nil {
		t.Fatalf("new intent: %v %+v", err, next)
	}
}

// TestOutcomeStatus: each row-facing outcome ends its row with the
// status the issue names; the others fail it.
func TestOutcomeStatus(t *testing.T) {
	t.Parallel()
	for o, want := range map[family.Outcome]assign.Status{
		family.Added: assign.StatusCreated, family.Replaced: assign.StatusCreated,
		family.AlreadyThere: assign.StatusAlreadyAssigned, family.Removed: assign.StatusRemoved,
		family.NotThere: assign.StatusNotAssigned, family.PolicySet: "", family.Conflict: "", family.Kept: "",
	} {
		got, ok := o.Status()
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", o, got, ok, want)
		}
	}
}

// TestMergeCheck: the check on a merge's result refuses a set that drops
// more than was asked, drops a policy-set entry, misses an add, or keeps
// a removed target, whoever built it.
func TestMergeCheck(t *testing.T) {
	t.Parallel()
	f := family.Lookup(family.Compliance)
	a, b := entry("a", family.Assignment{Target: group(g1)}), entry("b", family.Assignment{Target: group(g2)})
	s := setEntry("s", "set1", allDevices)
	cur := known(a, b, s)
	tests := []struct {
		name    string
		next    []family.Entry
		adds    []family.Assignment
		removes []assign.Target
		want    string // "" for accepted
	}{
		{"as asked", []family.Entry{b, s}, nil, []assign.Target{group(g1)}, ""},
		{"removes more than asked", []family.Entry{s}, nil, []assign.Target{group(g1)}, "would remove assignment b"},
		{"removes unasked", []family.Entry{a, s}, nil, nil, "which no row asked to remove"},
		{"drops a policy-set entry", []family.Entry{a, b}, nil, nil, "of policy set set1"},
		{"misses an add", []family.Entry{a, b, s}, []family.Assignment{{Target: allUsers}}, nil, "does not hold all_licensed_users"},
		{"keeps a removed target", []family.Entry{a, b, s}, nil, []assign.Target{group(g1)}, "still holds group:" + g1},
	}
	for _, tt := range tests {
		err := f.Check(cur, tt.next, tt.adds, tt.removes)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, family.ErrRefused) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrRefused with %q", tt.name, err, tt.want)
		}
	}
}

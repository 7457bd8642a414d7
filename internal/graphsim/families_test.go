package graphsim_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/family"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

// famPolicy is the policy id the family tests use, in every collection.
const famPolicy = "cccccccc-1111-4222-8333-444444444444"

// addFamilyPolicy registers famPolicy in collection (device
// configurations included).
func addFamilyPolicy(t *testing.T, s *graphsim.Server, f *family.Family, c *family.Collection) {
	t.Helper()
	if f.Name == family.DeviceConfiguration {
		s.AddConfiguration(famPolicy)
		return
	}
	if err := s.NamePolicy(c.Name, famPolicy, "policy of "+c.Name); err != nil {
		t.Fatal(err)
	}
}

// want is an assignment the family accepts on target t: apps need an
// intent.
func want(f *family.Family, t assign.Target) family.Assignment {
	a := family.Assignment{Target: t}
	if len(f.Intents) > 0 {
		a.Intent = family.IntentRequired
	}
	return a
}

func grp(n int) assign.Target { return assign.Target{Type: assign.TargetGroup, GroupID: groupN(n)} }

// wireEntry is one assignment as a client reads it.
type wireEntry struct {
	ODataType            string          `json:"@odata.type"`
	ID                   string          `json:"id"`
	Source               string          `json:"source"`
	SourceID             string          `json:"sourceId"`
	Intent               string          `json:"intent"`
	Settings             json.RawMessage `json:"settings"`
	RunRemediationScript *bool           `json:"runRemediationScript"`
	Target               assign.Wire     `json:"target"`
}

// readSet reads a policy's whole set as a client does, following
// @odata.nextLink; it returns the entries and the page count.
func readSet(t *testing.T, s *graphsim.Server, tok string, c *family.Collection, query string) ([]family.Entry, []wireEntry, int) {
	t.Helper()
	var out []family.Entry
	var raw []wireEntry
	pages := 0
	for u := s.GraphBaseURL() + c.AssignmentsPath(famPolicy) + query; u != ""; pages++ {
		r := call(t, http.MethodGet, u, tok, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", u, r.status, r.body)
		}
		var l struct {
			NextLink string      `json:"@odata.nextLink"`
			Value    []wireEntry `json:"value"`
		}
		r.decode(t, &l)
		for _, w := range l.Value {
			tg, err := w.Target.Target()
			if err != nil {
				t.Fatal(err)
			}
			if w.ODataType != c.AssignmentType {
				t.Fatalf("@odata.type %q, want %q", w.ODataType, c.AssignmentType)
			}
			e := family.Entry{ID: w.ID, Source: family.Source(w.Source), SourceID: w.SourceID, Assignment: family.Assignment{Target: tg}}
			if f, _ := family.ByCollection(c.Name); len(f.Intents) > 0 {
				e.Intent = family.Intent(w.Intent)
			}
			out = append(out, e)
		}
		raw = append(raw, l.Value...)
		u = l.NextLink
	}
	return out, raw, pages
}

// assignBody is an /assign body carrying entries (ids kept).
func assignBody(f *family.Family, c *family.Collection, entries []family.Entry) map[string]any {
	list := []any{}
	for _, e := range entries {
		m := map[string]any{"@odata.type": c.AssignmentType, "target": e.Target.Wire()}
		if e.ID != "" {
			m["id"] = e.ID
		}
		if e.Intent != "" {
			m["intent"] = e.Intent
		}
		list = append(list, m)
	}
	return map[string]any{f.BodyKey: list}
}

// slots lists entries as "slot source" strings, in order.
func slots(entries []family.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, family.Slot(e.Target)+" "+string(e.Source))
	}
	return out
}

// TestFamilyAssignReplaces: in every collection of every family, /assign
// replaces the whole set: what the body leaves out is removed (policy-set
// entries too), entries named by id keep their id and source, others are
// new direct entries; Graph's answer is 200 with the set or 204 as the
// family's; the ledger has the set before and after.
func TestFamilyAssignReplaces(t *testing.T) {
	t.Parallel()
	for _, f := range family.Families {
		for i := range f.Collections {
			c := &f.Collections[i]
			t.Run(c.Name, func(t *testing.T) {
				t.Parallel()
				s := newServer(t, graphsim.Config{})
				tok := appToken(t, s)
				addFamilyPolicy(t, s, f, c)
				ids, err := s.SeedAssignments(c.Name, famPolicy,
					family.Entry{Assignment: want(f, grp(1))},
					family.Entry{Assignment: want(f, grp(2))},
					family.Entry{Source: family.SourcePolicySets, SourceID: groupN(90), Assignment: want(f, grp(3))},
					family.Entry{Source: family.SourcePolicySets, SourceID: groupN(91), Assignment: want(f, grp(4))})
				if err != nil {
					t.Fatal(err)
				}
				before := s.PolicyAssignments(c.Name, famPolicy)
				// Keep group 2 and the policy set entry of group 3 by id,
				// add group 5; leave out group 1 and the set entry of 4.
				body := assignBody(f, c, []family.Entry{
					{ID: strings.ToUpper(ids[1]), Assignment: want(f, grp(2))},
					{ID: ids[2], Source: family.SourcePolicySets, Assignment: want(f, grp(3))},
					{Assignment: want(f, grp(5))},
				})
				r := call(t, http.MethodPost, s.GraphBaseURL()+c.AssignPath(famPolicy), tok, body)
				if r.status != f.AssignStatus {
					t.Fatalf("POST assign: %d %s, want %d", r.status, r.body, f.AssignStatus)
				}
				after := s.PolicyAssignments(c.Name, famPolicy)
				wantSlots := []string{family.Slot(grp(2)) + " direct", family.Slot(grp(3)) + " policySets", family.Slot(grp(5)) + " direct"}
				if got := slots(after); !slices.Equal(got, wantSlots) {
					t.Fatalf("after assign: %v, want %v", got, wantSlots)
				}
				if after[0].ID != ids[1] || after[1].ID != ids[2] || after[1].SourceID != groupN(90) || after[2].ID == "" || after[2].SourceID != famPolicy {
					t.Errorf("ids and sources: %+v (seeded %v)", after, ids)
				}
				if f.AssignStatus == http.StatusOK {
					var out struct{ Value []wireEntry }
					r.decode(t, &out)
					if len(out.Value) != 3 || out.Value[2].ID != after[2].ID {
						t.Errorf("200 answer %s, want the new set", r.body)
					}
				} else if len(r.body) != 0 {
					t.Errorf("204 with a body: %s", r.body)
				}
				led := s.AssignLedger()
				if len(led) != 1 || led[0].Op != "assign" || led[0].Family != f.Name || led[0].Collection != c.Name || led[0].PolicyID != famPolicy ||
					!slices.Equal(slots(led[0].Before), slots(before)) || !slices.Equal(slots(led[0].After), wantSlots) ||
					led[0].RequestID != r.header.Get("request-id") || !led[0].Answered {
					t.Errorf("ledger %+v", led)
				}
				// An empty list empties the policy: replace means replace.
				if r := call(t, http.MethodPost, s.GraphBaseURL()+c.AssignPath(famPolicy), tok, map[string]any{f.BodyKey: []any{}}); r.status != f.AssignStatus {
					t.Fatalf("POST empty assign: %d %s", r.status, r.body)
				}
				if got := s.PolicyAssignments(c.Name, famPolicy); len(got) != 0 {
					t.Errorf("after an empty assign: %v", slots(got))
				}
			})
		}
	}
}

// TestFamilyAssignBadBodies: the family table decides what an /assign
// accepts; anything else is 400 and changes nothing.
func TestFamilyAssignBadBodies(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	tok := appToken(t, s)
	for _, f := range family.Families {
		addFamilyPolicy(t, s, f, &f.Collections[0])
	}
	allUsers := assign.Target{Type: assign.TargetAllLicensedUsers}
	filtered := grp(1)
	filtered.FilterID, filtered.FilterType = groupN(50), assign.FilterInclude
	body := func(n family.Name, e family.Entry) (string, any) {
		f := family.Lookup(n)
		return s.GraphBaseURL() + f.Collections[0].AssignPath(famPolicy), assignBody(f, &f.Collections[0], []family.Entry{e})
	}
	tests := []struct {
		name   string
		fam    family.Name
		mutate func(map[string]any)
		entry  family.Entry
		status int
		msg    string
	}{
		{name: "all licensed users on app protection", fam: family.AppProtection, entry: family.Entry{Assignment: family.Assignment{Target: allUsers}}, status: 400, msg: "appProtection cannot target all licensed users"},
		{name: "a filter on an update profile", fam: family.UpdateProfile, entry: family.Entry{Assignment: family.Assignment{Target: filtered}}, status: 400, msg: "updateProfile takes no assignment filter"},
		{name: "an app without intent", fam: family.App, entry: family.Entry{Assignment: family.Assignment{Target: grp(1)}}, status: 400, msg: "app needs an intent"},
		{name: "intent on compliance", fam: family.Compliance, entry: family.Entry{Assignment: family.Assignment{Target: grp(1), Intent: family.IntentRequired}}, status: 400, msg: "'intent' does not exist"},
		{name: "another family's body key", fam: family.App, mutate: func(b map[string]any) {
			b["assignments"] = b["mobileAppAssignments"]
			delete(b, "mobileAppAssignments")
		},
			entry: family.Entry{Assignment: want(family.Lookup(family.App), grp(1))}, status: 400, msg: "'assignments' in the request payload is not a valid parameter"},
		{name: "no body key", fam: family.Script, mutate: func(b map[string]any) { delete(b, "deviceManagementScriptAssignments") }, entry: family.Entry{Assignment: family.Assignment{Target: grp(1)}}, status: 400, msg: "is missing"},
		{name: "wrong assignment type", fam: family.Remediation, mutate: func(b map[string]any) {
			b["deviceHealthScriptAssignments"].([]any)[0].(map[string]any)["@odata.type"] = "#microsoft.graph.mobileAppAssignment"
		}, entry: family.Entry{Assignment: family.Assignment{Target: grp(1)}}, status: 400, msg: "could not be resolved"},
	}
	for _, tt := range tests {
		u, b := body(tt.fam, tt.entry)
		if tt.mutate != nil {
			tt.mutate(b.(map[string]any))
		}
		r := call(t, http.MethodPost, u, tok, b)
		if r.status != tt.status || r.errorCode(t) != "BadRequest" || !strings.Contains(string(r.body), tt.msg) {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, r.status, r.body, tt.status, tt.msg)
		}
	}
	if led := s.AssignLedger(); len(led) != 0 {
		t.Errorf("refused bodies applied: %+v", led)
	}
	// An app's settings are kept verbatim; an exclusion refuses them.
	app := family.Lookup(family.App).Collections[0]
	settings := map[string]any{"@odata.type": "#microsoft.graph.win32LobAppAssignmentSettings", "notifications": "hideAll"}
	for _, tc := range []struct {
		target assign.Target
		status int
	}{{grp(1), 204}, {assign.Target{Type: assign.TargetExclusionGroup, GroupID: groupN(2)}, 400}} {
		b := map[string]any{"mobileAppAssignments": []any{map[string]any{"@odata.type": app.AssignmentType, "intent": "required", "target": tc.target.Wire(), "settings": settings}}}
		if r := call(t, http.MethodPost, s.GraphBaseURL()+app.AssignPath(famPolicy), tok, b); r.status != tc.status {
			t.Errorf("app assign with settings on %s: %d %s, want %d", tc.target.Type, r.status, r.body, tc.status)
		}
	}
	if got := s.PolicyAssignments(app.Name, famPolicy); len(got) != 1 || !strings.Contains(string(got[0].Settings), `"notifications":"hideAll"`) {
		t.Errorf("app set: %+v", got)
	}
	if r := call(t, http.MethodGet, s.GraphBaseURL()+app.AssignmentsPath(famPolicy), tok, nil); !strings.Contains(string(r.body), `"settings":{"@odata.type":"#microsoft.graph.win32LobAppAssignmentSettings","notifications":"hideAll"}`) {
		t.Errorf("app GET: %s", r.body)
	}
	// A device configuration's entry may carry back the intent it was
	// read with (apply or remove), nothing else.
	dc := family.Lookup(family.DeviceConfiguration).Collections[0]
	for in, st := range map[string]int{"apply": 200, "required": 400} {
		b := map[string]any{"assignments": []any{map[string]any{"@odata.type": dc.AssignmentType, "target": grp(1).Wire(), "intent": in}}}
		if r := call(t, http.MethodPost, s.GraphBaseURL()+dc.AssignPath(famPolicy), tok, b); r.status != st {
			t.Errorf("device configuration assign with intent %s: %d %s, want %d", in, r.status, r.body, st)
		}
	}
	// An unknown policy is 404.
	c := family.Lookup(family.Compliance).Collections[0]
	if r := call(t, http.MethodPost, s.GraphBaseURL()+c.AssignPath(groupN(77)), tok, map[string]any{"assignments": []any{}}); r.status != 404 || r.errorCode(t) != "ResourceNotFound" {
		t.Errorf("assign of an unknown policy: %d %s", r.status, r.body)
	}
	// A remediation's schedule and an app's settings round-trip.
	rem := family.Lookup(family.Remediation).Collections[0]
	rb := map[string]any{"deviceHealthScriptAssignments": []any{map[string]any{
		"@odata.type": rem.AssignmentType, "target": grp(1).Wire(), "runRemediationScript": true,
		"runSchedule": map[string]any{"@odata.type": "#microsoft.graph.deviceHealthScriptDailySchedule", "interval": 1, "time": "01:00:00", "useUtc": false},
	}}}
	if r := call(t, http.MethodPost, s.GraphBaseURL()+rem.AssignPath(famPolicy), tok, rb); r.status != 204 {
		t.Fatalf("remediation assign: %d %s", r.status, r.body)
	}
	got := s.PolicyAssignments(rem.Name, famPolicy)
	if len(got) != 1 || !got[0].RunRemediationScript || got[0].Schedule == nil || *got[0].Schedule != (family.Schedule{Kind: family.ScheduleDaily, Interval: 1, Time: "01:00:00"}) {
		t.Errorf("remediation set: %+v", got)
	}
	r := call(t, http.MethodGet, s.GraphBaseURL()+rem.AssignmentsPath(famPolicy), tok, nil)
	if !strings.Contains(string(r.body), `"runSchedule":{"@odata.type":"#microsoft.graph.deviceHealthScriptDailySchedule","interval":1,"time":"01:00:00","useUtc":false}`) {
		t.Errorf("remediation GET: %s", r.body)
	}
}

// TestFamilyAssignmentsPaging: a large set reads in pages of at most
// PageSize ($top smaller), with absolute next links, in order, whole.
func TestFamilyAssignmentsPaging(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{PageSize: 100})
	tok := appToken(t, s)
	f := family.Lookup(family.SettingsCatalog)
	c := &f.Collections[0]
	addFamilyPolicy(t, s, f, c)
	var seed []family.Entry
	for i := range 250 {
		seed = append(seed, family.Entry{Assignment: family.Assignment{Target: grp(i)}})
	}
	ids, err := s.SeedAssignments(c.Name, famPolicy, seed...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		pages int
	}{{"", 3}, {"?$top=40", 7}, {"?$top=500", 3}} {
		got, _, pages := readSet(t, s, tok, c, tc.query)
		var gotIDs []string
		for _, e := range got {
			gotIDs = append(gotIDs, e.ID)
		}
		if !slices.Equal(gotIDs, ids) || pages != tc.pages {
			t.Errorf("%q: %d entries in %d pages, want 250 in order in %d", tc.query, len(gotIDs), pages, tc.pages)
		}
	}
	if r := call(t, http.MethodGet, s.GraphBaseURL()+c.AssignmentsPath(famPolicy)+"?$top=0", tok, nil); r.status != 400 {
		t.Errorf("$top=0: %d", r.status)
	}
	one := call(t, http.MethodGet, s.GraphBaseURL()+c.AssignmentsPath(famPolicy)+"/"+ids[7], tok, nil)
	var w wireEntry
	if one.decode(t, &w); one.status != 200 || w.ID != ids[7] || w.Target.GroupID != groupN(7) {
		t.Errorf("GET one: %d %s", one.status, one.body)
	}
	if r := call(t, http.MethodGet, s.GraphBaseURL()+c.AssignmentsPath(famPolicy)+"/"+groupN(999), tok, nil); r.status != 404 {
		t.Errorf("GET an unknown assignment: %d", r.status)
	}
	pol := call(t, http.MethodGet, s.GraphBaseURL()+c.PolicyPath(famPolicy), tok, nil)
	if pol.status != 200 || !strings.Contains(string(pol.body), `"displayName":"policy of configurationPolicies"`) {
		t.Errorf("GET the policy: %d %s", pol.status, pol.body)
	}
}

// TestFamilyPerAssignmentRoutes: POST …/assignments and DELETE
// …/assignments/{id} answer 400 "No method match route template" in every
// family but apps (and device configurations, graph.go's), where they
// create (201) and delete (204).
func TestFamilyPerAssignmentRoutes(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	tok := appToken(t, s)
	for _, f := range family.Families {
		if f.Name == family.DeviceConfiguration {
			continue
		}
		for i := range f.Collections {
			c := &f.Collections[i]
			addFamilyPolicy(t, s, f, c)
			ids, err := s.SeedAssignments(c.Name, famPolicy, family.Entry{Assignment: want(f, grp(1))})
			if err != nil {
				t.Fatal(err)
			}
			el := assignBody(f, c, []family.Entry{{Assignment: want(f, grp(2))}})[f.BodyKey].([]any)[0]
			post := call(t, http.MethodPost, s.GraphBaseURL()+c.AssignmentsPath(famPolicy), tok, el)
			del := call(t, http.MethodDelete, s.GraphBaseURL()+c.AssignmentsPath(famPolicy)+"/"+ids[0], tok, nil)
			got := slots(s.PolicyAssignments(c.Name, famPolicy))
			if f.PerAssignment {
				if post.status != 201 || del.status != 204 || !slices.Equal(got, []string{family.Slot(grp(2)) + " direct"}) {
					t.Errorf("%s: POST %d %s, DELETE %d, set %v; want 201, 204, group 2 alone", c.Name, post.status, post.body, del.status, got)
				}
				if led := s.AssignLedger(); len(led) < 2 || led[len(led)-2].Op != "create" || led[len(led)-1].Op != "delete" {
					t.Errorf("%s: ledger %+v", c.Name, led)
				}
				continue
			}
			for _, r := range []result{post, del} {
				if r.status != 400 || r.errorCode(t) != "No method match route template" ||
					!strings.Contains(string(r.body), "No OData route exists that match template ~/singleton/navigation/key/navigation") ||
					!strings.Contains(string(r.body), c.Path+"('"+famPolicy+"')/assignments") {
					t.Errorf("%s: %d %s, want 400 No method match route template", c.Name, r.status, r.body)
				}
			}
			if !slices.Equal(got, []string{family.Slot(grp(1)) + " direct"}) {
				t.Errorf("%s: set changed to %v", c.Name, got)
			}
		}
	}
}

// TestFamilyPolicySetEntries: seeded policy-set entries are read with
// source policySets and their sourceId (beta; v1.0 writes neither).
func TestFamilyPolicySetEntries(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	tok := appToken(t, s)
	f := family.Lookup(family.Compliance)
	c := &f.Collections[0]
	addFamilyPolicy(t, s, f, c)
	if _, err := s.SeedAssignments(c.Name, famPolicy,
		family.Entry{Assignment: family.Assignment{Target: grp(1)}},
		family.Entry{Source: family.SourcePolicySets, SourceID: groupN(90), Assignment: family.Assignment{Target: grp(2)}}); err != nil {
		t.Fatal(err)
	}
	_, raw, _ := readSet(t, s, tok, c, "")
	if len(raw) != 2 || raw[0].Source != "direct" || raw[0].SourceID != famPolicy || raw[1].Source != "policySets" || raw[1].SourceID != groupN(90) {
		t.Errorf("beta: %+v", raw)
	}
	r := call(t, http.MethodGet, strings.Replace(s.GraphBaseURL(), "/beta", "/v1.0", 1)+c.AssignmentsPath(famPolicy), tok, nil)
	if r.status != 200 || strings.Contains(string(r.body), "source") {
		t.Errorf("v1.0: %d %s", r.status, r.body)
	}
	// Other processes' tests read the same through /_sim.
	sr := call(t, http.MethodGet, s.URL()+"/_sim/policyAssignments?collection="+c.Name+"&id="+famPolicy, "", nil)
	var viaSim []family.Entry
	if sr.decode(t, &viaSim); sr.status != 200 || len(viaSim) != 2 || viaSim[1].Source != family.SourcePolicySets || viaSim[1].Target != grp(2) {
		t.Errorf("/_sim/policyAssignments: %d %s", sr.status, sr.body)
	}
	if sr := call(t, http.MethodGet, s.URL()+"/_sim/policyAssignments?collection="+c.Name+"&id="+groupN(66), "", nil); sr.status != 404 {
		t.Errorf("/_sim/policyAssignments of an unknown policy: %d", sr.status)
	}
	if sr := call(t, http.MethodGet, s.URL()+"/_sim/assignLedger", "", nil); sr.status != 200 || string(sr.body) != "[]" {
		t.Errorf("/_sim/assignLedger: %d %s", sr.status, sr.body)
	}
	if _, err := s.SeedAssignments(c.Name, groupN(66), family.Entry{}); err == nil {
		t.Error("SeedAssignments of an unknown policy: nil error")
	}
}

// TestFamilyConcurrentEditor: an editor changes the set after a client's
// read. A writer that posts the union of that read loses the edit (the
// ledger shows it before, not after); one that reads again just before
// posting keeps it: the set ends exactly before ∪ adds − removes.
func TestFamilyConcurrentEditor(t *testing.T) {
	t.Parallel()
	for _, n := range []family.Name{family.App, family.DeviceConfiguration, family.Remediation} {
		t.Run(string(n), func(t *testing.T) {
			t.Parallel()
			testConcurrentEditor(t, family.Lookup(n))
		})
	}
}

func testConcurrentEditor(t *testing.T, f *family.Family) {
	s := newServer(t, graphsim.Config{PageSize: 2})
	tok := appToken(t, s)
	c := &f.Collections[0]
	addFamilyPolicy(t, s, f, c)
	if _, err := s.SeedAssignments(c.Name, famPolicy,
		family.Entry{Assignment: want(f, grp(1))}, family.Entry{Assignment: want(f, grp(2))},
		family.Entry{Source: family.SourcePolicySets, SourceID: groupN(90), Assignment: want(f, grp(3))}); err != nil {
		t.Fatal(err)
	}
	editorAdds := family.Entry{Assignment: want(f, grp(9))}
	arm := func() {
		t.Helper()
		if err := s.EditBetweenReadAndWrite(c.Name, famPolicy, func(set []family.Entry) []family.Entry { return append(set, editorAdds) }); err != nil {
			t.Fatal(err)
		}
	}
	adds, removes := []family.Assignment{want(f, grp(4))}, []assign.Target{grp(1)}
	post := func(cur []family.Entry) {
		t.Helper()
		next, _, err := f.Merge(family.Current{Entries: cur, Complete: true}, adds, removes)
		if err != nil {
			t.Fatal(err)
		}
		if r := call(t, http.MethodPost, s.GraphBaseURL()+c.AssignPath(famPolicy), tok, assignBody(f, c, next)); r.status != f.AssignStatus {
			t.Fatalf("assign: %d %s", r.status, r.body)
		}
	}

	// The careless writer: one read, then the post.
	arm()
	cur, _, _ := readSet(t, s, tok, c, "")
	post(cur)
	led := s.AssignLedger()
	last := led[len(led)-1]
	if !slices.Contains(slots(last.Before), family.Slot(grp(9))+" direct") || slices.Contains(slots(last.After), family.Slot(grp(9))+" direct") {
		t.Fatalf("careless writer: before %v after %v; want the edit in before and lost after", slots(last.Before), slots(last.After))
	}

	// The careful writer: it reads, the editor edits, it reads again
	// just before posting and merges from that.
	arm()
	readSet(t, s, tok, c, "")
	before := s.PolicyAssignments(c.Name, famPolicy)
	cur, _, _ = readSet(t, s, tok, c, "")
	post(cur)
	got := slots(s.PolicyAssignments(c.Name, famPolicy))
	wantSet := []string{family.Slot(grp(2)) + " direct", family.Slot(grp(3)) + " policySets", family.Slot(grp(4)) + " direct", family.Slot(grp(9)) + " direct"}
	slices.Sort(got)
	slices.Sort(wantSet)
	if !slices.Equal(got, wantSet) {
		t.Fatalf("careful writer: %v, want %v (before %v)", got, wantSet, slots(before))
	}
}

// TestFamilyAssignIsOneWrite: an /assign of 60 targets is one write: it
// counts once in the statistics and once in the write limit, which
// throttles it like any other write; the fault mix applies to it.
func TestFamilyAssignIsOneWrite(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{WriteLimit: graphsim.Limit{N: 3, Window: time.Hour}})
	tok := appToken(t, s)
	f := family.Lookup(family.Compliance)
	c := &f.Collections[0]
	addFamilyPolicy(t, s, f, c)
	var set []family.Entry
	for i := range 60 {
		set = append(set, family.Entry{Assignment: family.Assignment{Target: grp(i)}})
	}
	u := s.GraphBaseURL() + c.AssignPath(famPolicy)
	w0 := s.Stats().Writes
	if r := call(t, http.MethodPost, u, tok, assignBody(f, c, set)); r.status != 200 {
		t.Fatalf("assign: %d %s", r.status, r.body)
	}
	if w := s.Stats().Writes - w0; w != 1 {
		t.Errorf("one assign of 60 counted as %d writes", w)
	}
	// A per-row write and the assign share the window: 3 admitted.
	cfg := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
	s.AddConfiguration(cfgA)
	if r := call(t, http.MethodPost, cfg, tok, groupBody(groupN(1))); r.status != 201 {
		t.Fatalf("create: %d", r.status)
	}
	if r := call(t, http.MethodPost, u, tok, assignBody(f, c, set[:1])); r.status != 200 {
		t.Fatalf("third write: %d %s", r.status, r.body)
	}
	r := call(t, http.MethodPost, u, tok, assignBody(f, c, nil))
	if r.status != 429 || r.errorCode(t) != "TooManyRequests" {
		t.Fatalf("fourth write: %d %s, want 429", r.status, r.body)
	}
	if got := s.PolicyAssignments(c.Name, famPolicy); len(got) != 1 || len(s.AssignLedger()) != 2 {
		t.Errorf("a throttled assign applied: %d entries, %d ledger records", len(got), len(s.AssignLedger()))
	}

	// Faults: a 503 applies nothing; an applied-then-504 applies, and the
	// ledger says the caller was not told.
	for _, tc := range []struct {
		faults  graphsim.Faults
		status  int
		applied bool
	}{{graphsim.Faults{P503: 1}, 503, false}, {graphsim.Faults{PAppliedThen504: 1}, 504, true}} {
		s := newServer(t, graphsim.Config{Faults: tc.faults})
		tok := appToken(t, s)
		addFamilyPolicy(t, s, f, c)
		r := call(t, http.MethodPost, s.GraphBaseURL()+c.AssignPath(famPolicy), tok, assignBody(f, c, set[:5]))
		led := s.AssignLedger()
		if r.status != tc.status || (len(s.PolicyAssignments(c.Name, famPolicy)) == 5) != tc.applied || (len(led) == 1) != tc.applied {
			t.Errorf("%+v: %d, %d entries, ledger %+v", tc.faults, r.status, len(s.PolicyAssignments(c.Name, famPolicy)), led)
		}
		if tc.applied && (led[0].Answered || led[0].Outcome != graphsim.OutcomeAppliedThen504) {
			t.Errorf("applied then 504: ledger %+v", led[0])
		}
	}
}

// TestFamilyTenants: a policy lives in one tenant, served to that
// tenant's tokens only; a tenant whose app lacks the permission is
// answered 403 on reads and on /assign, and nothing is written.
func TestFamilyTenants(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: tenantB}, {ID: tenantC, NoPermission: true}}})
	f := family.Lookup(family.Remediation)
	c := &f.Collections[0]
	if err := s.Tenant(tenantB).NamePolicy(c.Name, famPolicy, "B's"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tenant(tenantC).NamePolicy(c.Name, famPolicy, "C's"); err != nil {
		t.Fatal(err)
	}
	body := assignBody(f, c, []family.Entry{{Assignment: family.Assignment{Target: grp(1)}}})
	u := s.GraphBaseURL() + c.AssignPath(famPolicy)
	if r := call(t, http.MethodPost, u, appToken(t, s), body); r.status != 404 {
		t.Errorf("default tenant: %d %s, want 404", r.status, r.body)
	}
	if r := call(t, http.MethodPost, u, mustTokenFor(t, s, tenantB), body); r.status != 204 {
		t.Errorf("tenant B: %d %s, want 204", r.status, r.body)
	}
	tokC := mustTokenFor(t, s, tenantC)
	for _, r := range []result{call(t, http.MethodPost, u, tokC, body), call(t, http.MethodGet, s.GraphBaseURL()+c.AssignmentsPath(famPolicy), tokC, nil)} {
		if r.status != 403 || r.errorCode(t) != "Forbidden" {
			t.Errorf("tenant C: %d %s, want 403", r.status, r.body)
		}
	}
	if b, cc := s.Tenant(tenantB), s.Tenant(tenantC); len(b.PolicyAssignments(c.Name, famPolicy)) != 1 || len(b.AssignLedger()) != 1 ||
		len(cc.AssignLedger()) != 0 || len(s.AssignLedger()) != 0 {
		t.Errorf("ledgers: B %d, C %d, default %d", len(b.AssignLedger()), len(cc.AssignLedger()), len(s.AssignLedger()))
	}
	if err := s.NamePolicy("deviceConfigurations", famPolicy, "x"); err == nil {
		t.Error("NamePolicy of a device configuration: nil error")
	}
	if err := s.NamePolicy("intents", famPolicy, "x"); err == nil {
		t.Error("NamePolicy of an unknown collection: nil error")
	}
}

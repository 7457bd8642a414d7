package graphsim_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

type namedJSON struct {
	ODataType   string  `json:"@odata.type"`
	ID          string  `json:"id"`
	DisplayName *string `json:"displayName"`
}

type namedListJSON struct {
	Context  string      `json:"@odata.context"`
	NextLink string      `json:"@odata.nextLink"`
	Value    []namedJSON `json:"value"`
}

// lookup GETs collection (below the Graph base) with $filter=filter and
// the extra query, encoded as a client should: every reserved character
// escaped, spaces as %20.
func lookup(t *testing.T, s *graphsim.Server, tok, collection, filter, extra string) result {
	t.Helper()
	u := s.GraphBaseURL() + collection + "?$filter=" + strings.ReplaceAll(url.QueryEscape(filter), "+", "%20")
	if extra != "" {
		u += "&" + extra
	}
	return call(t, http.MethodGet, u, tok, nil)
}

// idsOf follows a named list's @odata.nextLink chain from r and returns
// the ids and the number of pages.
func idsOf(t *testing.T, r result, tok string) ([]string, int) {
	t.Helper()
	var ids []string
	for pages := 1; ; pages++ {
		if r.status != http.StatusOK {
			t.Fatalf("page %d: %d %s", pages, r.status, r.body)
		}
		var l namedListJSON
		r.decode(t, &l)
		for _, v := range l.Value {
			ids = append(ids, v.ID)
		}
		if l.NextLink == "" {
			return ids, pages
		}
		r = call(t, http.MethodGet, l.NextLink, tok, nil)
	}
}

// TestNameFilter: $filter=displayName eq '…' as Graph reads it — an OData
// string literal with quotes doubled, compared case-insensitively over the
// whole string, any character (non-ASCII, '&', '#', '+') — and a 400 in
// Graph's shape for a filter that is not valid OData or not that one.
func TestNameFilter(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	names := map[string]string{
		cfgA:      "Win11 – BitLocker",
		cfgB:      "O'Brien's & Co #1 + more",
		groupN(1): "Été  Ünïcode",
		groupN(2): " padded ",
	}
	for id, n := range names {
		s.NameConfiguration(id, n)
	}
	s.AddConfiguration(groupN(3)) // keeps the default name
	tok := appToken(t, s)
	const coll = "/deviceManagement/deviceConfigurations"
	good := []struct {
		filter string
		want   []string
	}{
		{"displayName eq 'Win11 – BitLocker'", []string{cfgA}},
		{"DISPLAYNAME EQ 'wIN11 – bitlocker'", []string{cfgA}},
		{"  displayName\teq   'Win11 – BitLocker'  ", []string{cfgA}},
		{"displayName eq 'Win11'", nil},
		{"displayName eq 'Win11 – BitLocker '", nil},
		{"displayName eq 'O''Brien''s & Co #1 + more'", []string{cfgB}},
		{"displayName eq 'été  üNÏCODE'", []string{groupN(1)}},
		{"displayName eq ' padded '", []string{groupN(2)}},
		{"displayName eq 'padded'", nil},
		{"displayName eq ''", nil},
		{"displayName eq 'Configuration " + groupN(3)[:8] + "'", []string{groupN(3)}},
	}
	for _, tc := range good {
		r := lookup(t, s, tok, coll, tc.filter, "$select=id,displayName")
		var l namedListJSON
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", tc.filter, r.status, r.body)
			continue
		}
		r.decode(t, &l)
		var got []string
		for _, v := range l.Value {
			got = append(got, v.ID)
			if v.DisplayName == nil || *v.DisplayName != names[v.ID] && v.ID != groupN(3) {
				t.Errorf("%s: %s has displayName %v", tc.filter, v.ID, v.DisplayName)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: ids %v, want %v", tc.filter, got, tc.want)
		}
		if l.Context != s.URL()+"/beta/$metadata#deviceManagement/deviceConfigurations(id,displayName)" {
			t.Errorf("%s: @odata.context %q", tc.filter, l.Context)
		}
	}

	bad := []struct{ filter, mention string }{
		{"displayName eq 'Win11", "unterminated string literal at position 15"},
		// The literal is 'O': a quote inside must be doubled.
		{"displayName eq 'O'Brien''s & Co #1 + more'", "Syntax error at position 18"},
		{"displayName eq 'O''Brien", "unterminated"},
		{"displayName eq", "Syntax error"},
		{"displayName 'x'", "Syntax error"},
		{"displayName eq'x'", "Syntax error"},
		{"displayName eq 'a' 'b'", "Syntax error"},
		{"displayName eq 42", "Syntax error"},
		{"", "Syntax error at position 0"},
		{"'x' eq displayName", "Syntax error"},
		{"id eq 'x'", "serves only"},
		{"displayName ne 'x'", "serves only"},
		{"startswith(displayName,'Win')", "serves only"},
		{"displayName eq 'a' and displayName eq 'b'", "serves only"},
	}
	for _, bad := range bad {
		r := lookup(t, s, tok, coll, bad.filter, "")
		if r.status != http.StatusBadRequest || r.errorCode(t) != "BadRequest" || !strings.Contains(string(r.body), bad.mention) {
			t.Errorf("$filter=%s: %d %s, want 400 BadRequest mentioning %q", bad.filter, r.status, r.body, bad.mention)
		}
	}
	// A '+' that was not escaped is a space, as in every query string.
	r := call(t, http.MethodGet, s.GraphBaseURL()+coll+"?$filter=displayName+eq+'Win11+–+BitLocker'", tok, nil)
	if ids, _ := idsOf(t, r, tok); !slices.Equal(ids, []string{cfgA}) {
		t.Errorf("'+' for spaces: %v", ids)
	}
	if st, want := s.Stats(), (graphsim.LookupCounts{Configurations: int64(len(good) + len(bad) + 1)}); st.NameLookups != want {
		t.Errorf("NameLookups = %+v, want %+v", st.NameLookups, want)
	}
}

// TestGroupsAndFiltersByName: groups may share a display name (the
// ambiguity a lookup must see), a name shared by more than a page of
// groups is read through @odata.nextLink with the filter kept, $select
// and $top work as in Graph, and each kind of lookup is counted apart.
func TestGroupsAndFiltersByName(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{PageSize: 2})
	s.AddGroup(strings.ToUpper(groupN(1)), "Pilot devices")
	s.AddGroup(groupN(2), "PILOT DEVICES")
	s.AddGroup(groupN(3), "Pilot devices (old)")
	for i := 10; i < 15; i++ {
		s.AddGroup(groupN(i), "Everyone")
	}
	s.AddGroup(groupN(20), "Renamed later")
	s.AddGroup(groupN(20), "Renamed")
	s.AddFilter(groupN(30), "Corporate devices")
	s.AddFilter(groupN(31), "Personal devices")
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)

	for _, version := range []string{"beta", "v1.0"} {
		u := s.URL() + "/" + version + "/groups?$filter=" + url.QueryEscape("displayName eq 'pilot devices'") + "&$select=id,displayName"
		ids, pages := idsOf(t, call(t, http.MethodGet, u, tok, nil), tok)
		if !slices.Equal(ids, []string{groupN(1), groupN(2)}) || pages != 1 {
			t.Errorf("%s: two groups of one name: %v in %d pages", version, ids, pages)
		}
	}
	ids, pages := idsOf(t, lookup(t, s, tok, "/groups", "displayName eq 'Everyone'", "$select=id,displayName"), tok)
	if len(ids) != 5 || pages != 3 || ids[0] != groupN(10) || ids[4] != groupN(14) {
		t.Errorf("five groups, page size 2: %v in %d pages", ids, pages)
	}
	if ids, pages := idsOf(t, lookup(t, s, tok, "/groups", "displayName eq 'Everyone'", "$top=1"), tok); len(ids) != 5 || pages != 5 {
		t.Errorf("$top=1: %d ids in %d pages", len(ids), pages)
	}
	r := lookup(t, s, tok, "/groups", "displayName eq 'Everyone'", "$select=id")
	var l namedListJSON
	r.decode(t, &l)
	if len(l.Value) != 2 || l.Value[0].DisplayName != nil || !strings.Contains(l.NextLink, "$filter=") || !strings.Contains(l.NextLink, "$select=id") {
		t.Errorf("$select=id: %s", r.body)
	}
	if ids, _ := idsOf(t, lookup(t, s, tok, "/groups", "displayName eq 'Renamed'", "$select=id,colour"), tok); !slices.Equal(ids, []string{groupN(20)}) {
		t.Errorf("renamed group, unknown $select field: %v", ids)
	}
	if ids, _ := idsOf(t, lookup(t, s, tok, "/groups", "displayName eq 'Renamed later'", ""), tok); len(ids) != 0 {
		t.Errorf("old name still found: %v", ids)
	}
	if ids, _ := idsOf(t, lookup(t, s, tok, "/deviceManagement/assignmentFilters", "displayName eq 'corporate DEVICES'", "$select=id,displayName"), tok); !slices.Equal(ids, []string{groupN(30)}) {
		t.Errorf("filter by name: %v", ids)
	}
	if ids, _ := idsOf(t, call(t, http.MethodGet, s.GraphBaseURL()+"/deviceManagement/assignmentFilters", tok, nil), tok); len(ids) != 2 {
		t.Errorf("every filter: %v", ids)
	}
	for _, bad := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/groups/" + groupN(1) + "/members", http.StatusBadRequest},
		{http.MethodPost, "/groups", http.StatusMethodNotAllowed},
		{http.MethodGet, "/deviceManagement/assignmentFilters/" + groupN(30) + "/payloads", http.StatusBadRequest},
		{http.MethodGet, "/groups?$top=0", http.StatusBadRequest},
		{http.MethodGet, "/groups?$skiptoken=nope", http.StatusBadRequest},
	} {
		if r := call(t, bad.method, s.GraphBaseURL()+bad.path, tok, nil); r.status != bad.want {
			t.Errorf("%s %s: %d, want %d", bad.method, bad.path, r.status, bad.want)
		}
	}
	st := s.Stats()
	// Groups: one page in each version, 3 pages of Everyone, 5 with $top=1,
	// the first page with $select=id, Renamed and Renamed later; the other
	// requests carry no $filter.
	if want := (graphsim.LookupCounts{Groups: 2 + 3 + 5 + 1 + 1 + 1, Filters: 1}); st.NameLookups != want {
		t.Errorf("NameLookups = %+v, want %+v", st.NameLookups, want)
	}
	if st.Reads != st.Methods["GET"].S2xx+st.Methods["GET"].S4xx {
		t.Errorf("reads %d, GET answers %+v", st.Reads, st.Methods["GET"])
	}
}

// TestGroupReadDenied: a tenant whose app was not granted Group.Read.All
// answers group reads 403 in Graph's words; configurations and filters
// stay readable, and the setting can change at run time. A tenant without
// Intune's permission still reads groups but not filters.
func TestGroupReadDenied(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Tenants: []graphsim.TenantConfig{
		{ID: tenantB, NoGroupRead: true},
		{ID: tenantC, NoPermission: true},
	}})
	b, c := s.Tenant(tenantB), s.Tenant(tenantC)
	for _, ten := range []*graphsim.Tenant{b, c} {
		ten.AddGroup(groupN(1), "Pilot")
		ten.AddFilter(groupN(2), "Corporate")
		ten.NameConfiguration(cfgA, "Baseline")
	}
	tokB, tokC := mustTokenFor(t, s, tenantB), mustTokenFor(t, s, tenantC)
	r := lookup(t, s, tokB, "/groups", "displayName eq 'Pilot'", "")
	if r.status != http.StatusForbidden || r.errorCode(t) != "Authorization_RequestDenied" || !strings.Contains(string(r.body), `"Insufficient privileges to complete the operation."`) {
		t.Fatalf("group read denied: %d %s", r.status, r.body)
	}
	for _, coll := range []string{"/deviceManagement/assignmentFilters", "/deviceManagement/deviceConfigurations"} {
		want := "Corporate"
		if strings.HasSuffix(coll, "Configurations") {
			want = "Baseline"
		}
		if ids, _ := idsOf(t, lookup(t, s, tokB, coll, "displayName eq '"+want+"'", ""), tokB); len(ids) != 1 {
			t.Errorf("%s in a tenant without group reads: %v", coll, ids)
		}
	}
	b.SetNoGroupRead(false)
	if ids, _ := idsOf(t, lookup(t, s, tokB, "/groups", "displayName eq 'Pilot'", ""), tokB); !slices.Equal(ids, []string{groupN(1)}) {
		t.Errorf("group read allowed again: %v", ids)
	}
	if st := b.Stats(); st.Forbidden != 1 || st.NameLookups.Groups != 2 || st.Methods["GET"].S4xx != 1 {
		t.Errorf("B stats: forbidden %d, lookups %+v, GET %+v", st.Forbidden, st.NameLookups, st.Methods["GET"])
	}

	if ids, _ := idsOf(t, lookup(t, s, tokC, "/groups", "displayName eq 'Pilot'", ""), tokC); len(ids) != 1 {
		t.Errorf("groups in a tenant without Intune's permission: %v", ids)
	}
	r = lookup(t, s, tokC, "/deviceManagement/assignmentFilters", "displayName eq 'Corporate'", "")
	if r.status != http.StatusForbidden || r.errorCode(t) != "Forbidden" || !strings.Contains(string(r.body), graphsim.PermissionRead) {
		t.Errorf("filters without Intune's permission: %d %s", r.status, r.body)
	}
}

// TestNameLookupFaults: name lookups are reads like any other: injected
// read faults hit them and they count in Reads.
func TestNameLookupFaults(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Faults: graphsim.Faults{P503Read: 1}})
	s.AddGroup(groupN(1), "Pilot")
	tok := appToken(t, s)
	r := lookup(t, s, tok, "/groups", "displayName eq 'Pilot'", "")
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "ServiceUnavailable" {
		t.Fatalf("lookup with P503Read 1: %d %s", r.status, r.body)
	}
	if st := s.Stats(); st.Reads != 1 || st.InjectedRead503 != 1 || st.NameLookups.Groups != 1 {
		t.Errorf("stats: reads %d, injected %d, lookups %+v", st.Reads, st.InjectedRead503, st.NameLookups)
	}
}

// TestTenantFileNames: a tenant file names configurations and lists
// groups and filters, for the default tenant and others, and sets
// noGroupRead; a bad value is an error naming its key, and nothing of a
// bad file is applied.
func TestTenantFileNames(t *testing.T) {
	t.Parallel()
	write := tempWriter(t)
	s := newServer(t, graphsim.Config{})
	good := write("names.json", `{
	  "configurations": ["`+cfgA+`"],
	  "configurationNames": {"`+strings.ToUpper(cfgA)+`": "Win11 – BitLocker", "`+cfgB+`": "Named only"},
	  "groups": [{"id": "`+groupN(1)+`", "displayName": "Pilot"}, {"id": "`+groupN(2)+`", "displayName": "pilot"}],
	  "filters": [{"id": "`+groupN(3)+`", "displayName": "Corporate"}],
	  "tenants": [{"id": "`+tenantB+`", "noGroupRead": true,
	               "groups": [{"id": "`+groupN(4)+`", "displayName": "Fabrikam pilot"}],
	               "configurationNames": {"`+cfgA+`": "Fabrikam baseline"}}]}`)
	ids, err := s.LoadTenantFile(good)
	if err != nil || !slices.Equal(ids, []string{cfgA}) {
		t.Fatalf("LoadTenantFile: %v, %v", ids, err)
	}
	if got := s.Configurations(); !slices.Equal(got, []string{cfgA, cfgB}) {
		t.Errorf("configurations %v: naming one registers it after those listed", got)
	}
	tok, tokB := appToken(t, s), mustTokenFor(t, s, tenantB)
	for _, tc := range []struct {
		tok, coll, name string
		want            []string
	}{
		{tok, "/deviceManagement/deviceConfigurations", "win11 – bitlocker", []string{cfgA}},
		{tok, "/deviceManagement/deviceConfigurations", "Named only", []string{cfgB}},
		{tok, "/groups", "PILOT", []string{groupN(1), groupN(2)}},
		{tok, "/groups", "Fabrikam pilot", nil},
		{tok, "/deviceManagement/assignmentFilters", "Corporate", []string{groupN(3)}},
		{tokB, "/deviceManagement/deviceConfigurations", "Fabrikam baseline", []string{cfgA}},
		{tokB, "/deviceManagement/deviceConfigurations", "Win11 – BitLocker", nil},
	} {
		if ids, _ := idsOf(t, lookup(t, s, tc.tok, tc.coll, "displayName eq '"+tc.name+"'", ""), tc.tok); !slices.Equal(ids, tc.want) {
			t.Errorf("%s %q: %v, want %v", tc.coll, tc.name, ids, tc.want)
		}
	}
	if r := lookup(t, s, tokB, "/groups", "displayName eq 'Fabrikam pilot'", ""); r.status != http.StatusForbidden {
		t.Errorf("B's noGroupRead: %d", r.status)
	}

	if _, err := s.LoadTenantFile(write("partial.json", `{"groups": [{"id": "`+groupN(9)+`", "displayName": "Partial"}], "filters": [{"id": "x"}]}`)); err == nil {
		t.Fatal("a bad filter: nil error")
	}
	if ids, _ := idsOf(t, lookup(t, s, tok, "/groups", "displayName eq 'Partial'", ""), tok); len(ids) != 0 {
		t.Errorf("a bad file's groups were applied: %v", ids)
	}
	for _, bad := range []struct{ body, mention string }{
		{`{"configurationNames": {"nope": "x"}}`, `configurationNames: configuration id "nope" is not a GUID`},
		{`{"configurationNames": {"` + cfgA + `": ""}}`, `configurationNames["` + cfgA + `"]: the display name is empty`},
		{`{"configurationNames": {"` + cfgB + `": "a", "` + strings.ToUpper(cfgB) + `": "b"}}`, "are the same configuration"},
		{`{"configurationNames": ["x"]}`, "configurationNames"},
		{`{"groups": [{"id": "g1", "displayName": "x"}]}`, `groups[0].id "g1" is not a GUID`},
		{`{"groups": [{"id": "` + groupN(1) + `"}]}`, "groups[0]: displayName is empty"},
		{`{"groups": [{"id": "` + groupN(1) + `", "displayName": "a"}, {"id": "` + groupN(1) + `", "displayName": "b"}]}`, "groups[1]: id " + groupN(1) + " listed twice"},
		{`{"groups": [{"id": "` + groupN(1) + `", "name": "a"}]}`, `unknown field "name"`},
		{`{"filters": [{"id": "", "displayName": "x"}]}`, `filters[0].id "" is not a GUID`},
		{`{"tenants": [{"id": "` + tenantC + `", "filters": [{"id": "` + groupN(1) + `", "displayName": ""}]}]}`, "tenants[0]: filters[0]: displayName is empty"},
		{`{"tenants": [{"id": "` + tenantC + `", "noGroupRead": "yes"}]}`, "noGroupRead"},
	} {
		before := len(s.TenantIDs())
		_, err := s.LoadTenantFile(write("bad.json", bad.body))
		if err == nil || !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("%s: LoadTenantFile = %v, want an error mentioning %s", bad.body, err, bad.mention)
		}
		if len(s.TenantIDs()) != before {
			t.Errorf("%s: a bad file added a tenant", bad.body)
		}
	}
}

// TestGroupsByID: groups?$filter=id in ('…', …) answers the groups among
// the ids (any case), paged; 16 ids is Graph's 400, as is the filter on
// another collection.
func TestGroupsByID(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{PageSize: 2})
	tok := appToken(t, s)
	var quoted []string
	for i := range 15 {
		if i%3 == 0 {
			s.AddGroup(strings.ToUpper(groupN(i)), fmt.Sprintf("SG-%d", i))
		}
		quoted = append(quoted, "'"+groupN(i)+"'")
	}
	s.AddGroup(groupN(99), "not asked for")
	ids, pages := idsOf(t, lookup(t, s, tok, "/groups", "id in ("+strings.Join(quoted, ", ")+")", "$select=id"), tok)
	if want := []string{groupN(0), groupN(3), groupN(6), groupN(9), groupN(12)}; !slices.Equal(ids, want) || pages != 3 {
		t.Errorf("ids %v in %d pages, want %v in 3", ids, pages, want)
	}
	r := lookup(t, s, tok, "/groups", "id in ("+strings.Join(append(quoted, "'"+groupN(15)+"'"), ",")+")", "")
	if r.status != http.StatusBadRequest || r.errorCode(t) != "Request_UnsupportedQuery" {
		t.Errorf("16 ids: %d %s, want 400 Request_UnsupportedQuery", r.status, r.body)
	}
	if r := lookup(t, s, tok, "/deviceManagement/assignmentFilters", "id in ('"+groupN(0)+"')", ""); r.status != http.StatusBadRequest {
		t.Errorf("id in on filters: %d %s, want 400", r.status, r.body)
	}
}

package graphsim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

type assignmentJSON struct {
	Context   string          `json:"@odata.context"`
	ODataType string          `json:"@odata.type"`
	ID        string          `json:"id"`
	Source    *string         `json:"source"`
	SourceID  *string         `json:"sourceId"`
	Intent    *string         `json:"intent"`
	Target    json.RawMessage `json:"target"`
}

type listJSON struct {
	Context  string           `json:"@odata.context"`
	NextLink string           `json:"@odata.nextLink"`
	Value    []assignmentJSON `json:"value"`
}

// listAll follows @odata.nextLink and returns the ids and the page count.
func listAll(t *testing.T, first, token string) ([]string, int) {
	t.Helper()
	var ids []string
	pages := 0
	for u := first; u != ""; pages++ {
		r := call(t, http.MethodGet, u, token, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", u, r.status, r.body)
		}
		var l listJSON
		r.decode(t, &l)
		for _, a := range l.Value {
			ids = append(ids, a.ID)
		}
		if l.NextLink != "" && !strings.HasPrefix(l.NextLink, first[:strings.Index(first, "/assignments")]) {
			t.Fatalf("nextLink %q is not an absolute link below %q", l.NextLink, first)
		}
		if l.NextLink != "" && !strings.Contains(l.NextLink, "$skiptoken=") {
			t.Fatalf("nextLink %q has no $skiptoken", l.NextLink)
		}
		u = l.NextLink
	}
	return ids, pages
}

func TestAssignmentsCRUDOnEveryPath(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{PageSize: 2})
	s.AddConfiguration(strings.ToUpper(cfgA))
	tok := appToken(t, s)
	for _, p := range assign.Paths {
		t.Run("path="+string(p), func(t *testing.T) {
			t.Parallel()
			coll := s.GraphBaseURL() + p.AssignmentsPath(cfgA)
			var created []string
			for i := range 5 {
				r := call(t, http.MethodPost, coll, tok, groupBody(groupN(i)))
				if r.status != http.StatusCreated {
					t.Fatalf("POST: got %d %s, want 201", r.status, r.body)
				}
				var a assignmentJSON
				r.decode(t, &a)
				if _, err := assign.ParseGUID("id", a.ID); err != nil {
					t.Fatalf("id %q: %v", a.ID, err)
				}
				if a.Source == nil || *a.Source != "direct" || a.SourceID == nil || *a.SourceID != cfgA || a.Intent == nil || *a.Intent != "apply" {
					t.Fatalf("created %s: want source direct, sourceId %s, intent apply", r.body, cfgA)
				}
				if a.ODataType != "#microsoft.graph.deviceConfigurationAssignment" {
					t.Fatalf("@odata.type = %q", a.ODataType)
				}
				var tg assign.Target
				if err := json.Unmarshal(a.Target, &tg); err != nil || tg != (assign.Target{Type: assign.TargetGroup, GroupID: groupN(i)}) {
					t.Fatalf("target %s decodes to %+v, %v", a.Target, tg, err)
				}
				if !strings.Contains(string(a.Target), `"deviceAndAppManagementAssignmentFilterType":"none"`) {
					t.Fatalf("target %s: want filter type none as Graph writes it", a.Target)
				}
				if r.header.Get("request-id") == "" || r.header.Get("client-request-id") == "" {
					t.Fatalf("headers %v lack request-id/client-request-id", r.header)
				}
				created = append(created, a.ID)
			}

			ids, pages := listAll(t, coll, tok)
			if pages != 3 || strings.Join(ids, ",") != strings.Join(created, ",") {
				t.Fatalf("listing: got %d pages %v, want 3 pages %v", pages, ids, created)
			}
			if ids, pages := listAll(t, coll+"?$top=1", tok); pages != 5 || len(ids) != 5 {
				t.Fatalf("$top=1: got %d pages %d ids, want 5 and 5", pages, len(ids))
			}

			item := coll + "/" + created[1]
			// Assignment ids match case-insensitively, as GUIDs do in Graph.
			if r := call(t, http.MethodGet, coll+"/"+strings.ToUpper(created[1]), tok, nil); r.status != http.StatusOK {
				t.Fatalf("GET item: %d %s", r.status, r.body)
			}
			if r := call(t, http.MethodDelete, item, tok, nil); r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("DELETE: got %d %q, want 204 and no body", r.status, r.body)
			}
			for _, m := range []string{http.MethodGet, http.MethodDelete} {
				if r := call(t, m, item, tok, nil); r.status != http.StatusNotFound || r.errorCode(t) != "ResourceNotFound" {
					t.Fatalf("%s deleted item: got %d %s, want 404 ResourceNotFound", m, r.status, r.body)
				}
			}
			if got := s.Assignments(cfgA, p); len(got) != 4 {
				t.Fatalf("Assignments after delete: %d, want 4", len(got))
			}
		})
	}
}

func TestGraphShapesAndHeaders(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)

	// v1.0 omits the beta-only source/sourceId/intent.
	r := call(t, http.MethodPost, s.URL()+"/v1.0"+assign.Path("").AssignmentsPath(cfgA), tok, groupBody(groupN(1)))
	var a assignmentJSON
	r.decode(t, &a)
	if r.status != http.StatusCreated || a.Source != nil || a.Intent != nil {
		t.Fatalf("v1.0 create: got %d %s, want 201 without source/intent", r.status, r.body)
	}

	// client-request-id is echoed.
	req, _ := http.NewRequest(http.MethodGet, s.GraphBaseURL()+assign.Path("").AssignmentsPath(cfgA), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("client-request-id", "my-correlation")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("client-request-id"); got != "my-correlation" {
		t.Fatalf("client-request-id = %q, want echoed", got)
	}

	// A filter and a Configuration Manager collection round-trip.
	filter := "f1f1f1f1-0000-4000-8000-000000000001"
	body := map[string]any{"@odata.type": "#microsoft.graph.deviceConfigurationAssignment", "target": map[string]any{
		"@odata.type": "#microsoft.graph.configurationManagerCollectionAssignmentTarget", "collectionId": "sms00001",
		"deviceAndAppManagementAssignmentFilterId": filter, "deviceAndAppManagementAssignmentFilterType": "exclude",
	}}
	r = call(t, http.MethodPost, s.GraphBaseURL()+assign.Path("rootCertificate").AssignmentsPath(cfgA), tok, body)
	r.decode(t, &a)
	var tg assign.Target
	if err := json.Unmarshal(a.Target, &tg); err != nil {
		t.Fatal(err)
	}
	want := assign.Target{Type: assign.TargetConfigMgrCollection, CollectionID: "SMS00001", FilterID: filter, FilterType: assign.FilterExclude}
	if r.status != http.StatusCreated || tg != want {
		t.Fatalf("collection create: got %d %+v, want 201 %+v", r.status, tg, want)
	}

	// The configuration itself can be read.
	if r := call(t, http.MethodGet, s.GraphBaseURL()+"/deviceManagement/deviceConfigurations/"+cfgA, tok, nil); r.status != http.StatusOK {
		t.Fatalf("GET configuration: %d %s", r.status, r.body)
	}
}

func TestGraphErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
	target := func(tgt map[string]any) map[string]any {
		return map[string]any{"@odata.type": "#microsoft.graph.deviceConfigurationAssignment", "target": tgt}
	}
	tests := []struct {
		name   string
		method string
		url    string
		body   any
		status int
		code   string
	}{
		{"unknown configuration POST", "POST", s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgB), groupBody(groupN(1)), 404, "ResourceNotFound"},
		{"unknown configuration GET", "GET", s.GraphBaseURL() + assign.Path("identityCertificate").AssignmentsPath(cfgB), nil, 404, "ResourceNotFound"},
		{"unknown configuration itself", "GET", s.GraphBaseURL() + "/deviceManagement/deviceConfigurations/" + cfgB, nil, 404, "ResourceNotFound"},
		{"unknown assignment", "GET", coll + "/" + groupN(9), nil, 404, "ResourceNotFound"},
		{"unknown path segment", "POST", s.GraphBaseURL() + "/deviceManagement/deviceConfigurations/" + cfgA + "/leafCertificate/assignments", groupBody(groupN(1)), 400, "BadRequest"},
		{"other resource", "GET", s.GraphBaseURL() + "/users", nil, 400, "BadRequest"},
		{"assign with another family's body key", "POST", s.GraphBaseURL() + "/deviceManagement/deviceConfigurations/" + cfgA + "/assign", map[string]any{"mobileAppAssignments": []any{}}, 400, "BadRequest"},
		{"PATCH", "PATCH", coll, groupBody(groupN(1)), 405, "BadRequest"},
		{"malformed JSON", "POST", coll, `{"target":`, 400, "BadRequest"},
		{"id on create", "POST", coll, map[string]any{"id": groupN(1), "target": groupBody(groupN(1))["target"]}, 400, "BadRequest"},
		{"no target", "POST", coll, map[string]any{"@odata.type": "#microsoft.graph.deviceConfigurationAssignment"}, 400, "BadRequest"},
		{"target without @odata.type", "POST", coll, target(map[string]any{"groupId": groupN(1)}), 400, "BadRequest"},
		{"unknown target type", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.userAssignmentTarget", "groupId": groupN(1)}), 400, "BadRequest"},
		{"group without groupId", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.groupAssignmentTarget"}), 400, "BadRequest"},
		{"groupId not a GUID", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "sales"}), 400, "BadRequest"},
		{"groupId on all devices", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget", "groupId": groupN(1)}), 400, "BadRequest"},
		{"filter id without type", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget", "deviceAndAppManagementAssignmentFilterId": groupN(2)}), 400, "BadRequest"},
		{"unknown property", "POST", coll, map[string]any{"target": groupBody(groupN(1))["target"], "priority": 1}, 400, "BadRequest"},
		{"unknown target property", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupID": groupN(1)}), 400, "BadRequest"},
		{"bad $top", "GET", coll + "?$top=0", nil, 400, "BadRequest"},
		{"bad $skiptoken", "GET", coll + "?$skiptoken=zzz", nil, 400, "BadRequest"},
		{"all licensed users with filter", "POST", coll, target(map[string]any{"@odata.type": "#microsoft.graph.allLicensedUsersAssignmentTarget", "deviceAndAppManagementAssignmentFilterId": groupN(2), "deviceAndAppManagementAssignmentFilterType": "include"}), 201, ""},
		{"body without @odata.type", "POST", coll, map[string]any{"target": map[string]any{"@odata.type": "microsoft.graph.exclusionGroupAssignmentTarget", "groupId": groupN(3)}}, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := call(t, tt.method, tt.url, tok, tt.body)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.code != "" {
				if got := r.errorCode(t); got != tt.code {
					t.Fatalf("error code = %q, want %q", got, tt.code)
				}
			}
		})
	}
}

var claimsRE = regexp.MustCompile(`claims="([^"]+)"`)

func TestGraphAuthentication(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{TokenLifetime: 100 * time.Millisecond})
	s.AddConfiguration(cfgA)
	expired := appToken(t, s)
	time.Sleep(150 * time.Millisecond)
	coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
	tests := []struct {
		name, token, wantMsg string
	}{
		{"no token", "", "empty"},
		{"unknown token", "eyJ0eXAiOiJKV1QifQ.e30.sig", "validation failure"},
		{"expired token", expired, "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := call(t, http.MethodPost, coll, tt.token, groupBody(groupN(1)))
			if r.status != http.StatusUnauthorized || r.errorCode(t) != "InvalidAuthenticationToken" || !strings.Contains(string(r.body), tt.wantMsg) {
				t.Fatalf("got %d %s, want 401 InvalidAuthenticationToken (%s)", r.status, r.body, tt.wantMsg)
			}
			if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") || strings.Contains(h, "insufficient_claims") {
				t.Fatalf("WWW-Authenticate = %q, want a plain Bearer challenge", h)
			}
		})
	}
	t.Run("nothing applied", func(t *testing.T) {
		t.Parallel()
		time.Sleep(50 * time.Millisecond)
		if n := len(s.Ledger()); n != 0 {
			t.Fatalf("ledger has %d entries after unauthenticated writes", n)
		}
	})
}

// challengeClaims extracts and decodes the claims of an insufficient_claims
// challenge.
func challengeClaims(t *testing.T, r result) string {
	t.Helper()
	h := r.header.Get("WWW-Authenticate")
	if r.status != http.StatusUnauthorized || !strings.Contains(h, `error="insufficient_claims"`) {
		t.Fatalf("got %d, WWW-Authenticate %q; want 401 with an insufficient_claims challenge", r.status, h)
	}
	m := claimsRE.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("WWW-Authenticate %q has no claims", h)
	}
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatalf("claims %q: %v", m[1], err)
	}
	var c struct {
		AccessToken struct {
			Nbf struct {
				Essential bool   `json:"essential"`
				Value     string `json:"value"`
			} `json:"nbf"`
		} `json:"access_token"`
	}
	if err := json.Unmarshal(b, &c); err != nil || !c.AccessToken.Nbf.Essential || c.AccessToken.Nbf.Value == "" {
		t.Fatalf("claims %s: want access_token.nbf essential with a value (%v)", b, err)
	}
	return string(b)
}

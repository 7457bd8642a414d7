package graphsim_test

import (
	"net/http"
	"testing"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

// TestObjectsByID: a group, an assignment filter and a device
// configuration are read by id with their displayName (and $select
// applied), an unknown id is a 404, a group read the app may not make is
// a 403, and each read, and /organization's, is counted apart.
func TestObjectsByID(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{TenantName: "Contoso Ltd"})
	s.AddGroup(groupN(1), "Pilot devices")
	s.AddFilter(groupN(30), "Corporate devices")
	s.AddConfiguration(cfgA)
	s.NameConfiguration(cfgA, "Win11 baseline")
	tok := appToken(t, s)

	for _, c := range []struct {
		path, want string
	}{
		{"/groups/" + groupN(1) + "?$select=id,displayName", "Pilot devices"},
		{"/deviceManagement/assignmentFilters/" + groupN(30) + "?$select=id,displayName", "Corporate devices"},
		{"/deviceManagement/deviceConfigurations/" + cfgA + "?$select=id,displayName", "Win11 baseline"},
	} {
		r := call(t, http.MethodGet, s.GraphBaseURL()+c.path, tok, nil)
		var o struct {
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
			Mail        *bool  `json:"mailEnabled"`
		}
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", c.path, r.status, r.body)
		}
		r.decode(t, &o)
		if o.DisplayName != c.want || o.ID == "" || o.Mail != nil {
			t.Errorf("GET %s: %+v, want %q with only the selected properties", c.path, o, c.want)
		}
	}
	for _, path := range []string{"/groups/" + groupN(2), "/deviceManagement/assignmentFilters/" + groupN(31)} {
		if r := call(t, http.MethodGet, s.GraphBaseURL()+path, tok, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.status)
		}
	}
	var org struct {
		Value []struct {
			DisplayName string `json:"displayName"`
		} `json:"value"`
	}
	r := call(t, http.MethodGet, s.GraphBaseURL()+"/organization?$select=id,displayName", tok, nil)
	r.decode(t, &org)
	if r.status != http.StatusOK || len(org.Value) != 1 || org.Value[0].DisplayName != "Contoso Ltd" {
		t.Errorf("GET /organization: %d %s", r.status, r.body)
	}
	s.DefaultTenant().SetNoGroupRead(true)
	if r := call(t, http.MethodGet, s.GraphBaseURL()+"/groups/"+groupN(1), tok, nil); r.status != http.StatusForbidden {
		t.Errorf("GET a group without Group.Read.All: %d, want 403", r.status)
	}
	if got, want := s.Stats().ObjectReads, (graphsim.ObjectCounts{Configurations: 1, Groups: 3, Filters: 2, Organization: 1}); got != want {
		t.Errorf("ObjectReads = %+v, want %+v", got, want)
	}
}

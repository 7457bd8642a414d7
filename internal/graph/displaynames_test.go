package graph

import (
	"context"
	"net/http"
	"testing"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

// TestDisplayName reads the display names of a configuration, a group, a
// filter and the tenant from the simulator over HTTPS; an id Graph does
// not know is its 404, a read the app may not make its 403, each counted
// as OpResolve, and wait is called before each request.
func TestDisplayName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim, c := simClient(t, graphsim.Config{TenantName: "Contoso Ltd"}, "")
	sim.AddConfiguration(guid(1))
	sim.NameConfiguration(guid(1), "Win11 – BitLocker")
	sim.AddGroup(guid(2), "SG Pilot")
	sim.AddFilter(guid(3), "Corporate devices")
	waits := 0
	wait := func(context.Context) error { waits++; return nil }

	for _, tc := range []struct {
		kind   NameKind
		id     string
		want   string
		status int
	}{
		{NameConfiguration, guid(1), "Win11 – BitLocker", http.StatusOK},
		{NameGroup, guid(2), "SG Pilot", http.StatusOK},
		{NameFilter, guid(3), "Corporate devices", http.StatusOK},
		{NameGroup, guid(9), "", http.StatusNotFound},
		{NameConfiguration, guid(9), "", http.StatusNotFound},
	} {
		name, resp := c.DisplayName(ctx, tc.kind, tc.id, wait)
		if name != tc.want || resp.StatusCode != tc.status || resp.Op != OpResolve || resp.RequestID == "" {
			t.Errorf("%s %s: %q, %d (%s), want %q, %d", tc.kind, tc.id, name, resp.StatusCode, resp.Op, tc.want, tc.status)
		}
	}
	if name, resp := c.TenantName(ctx, wait); name != "Contoso Ltd" || resp.StatusCode != http.StatusOK {
		t.Errorf("tenant name %q, %d", name, resp.StatusCode)
	}
	sim.DefaultTenant().SetNoGroupRead(true)
	if name, resp := c.DisplayName(ctx, NameGroup, guid(2), wait); name != "" || Classify(resp).Action != Fail || resp.StatusCode != http.StatusForbidden {
		t.Errorf("group without Group.Read.All: %q, %d, want a 403 that fails", name, resp.StatusCode)
	}
	if waits != 7 {
		t.Errorf("wait called %d times, want once a request (7)", waits)
	}
}

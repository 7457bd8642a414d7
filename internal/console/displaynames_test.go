package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestBatchPageDisplayNames: the batch page labels the ids its rows gave
// with Graph's display names, and has a Tenant column, with the tenants'
// names, only for a batch of more than one tenant.
func TestBatchPageDisplayNames(t *testing.T) {
	t.Parallel()
	const other = "2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d"
	b := setup(t, 1, nil)
	b.h.Sim.NameConfiguration(testenv.Config(0), "Win11 baseline")
	b.h.Sim.AddGroup(testenv.Group(0), "SG Pilot")
	a, err := b.h.Sim.AddTenant(graphsim.TenantConfig{ID: other, Name: "Fabrikam"})
	if err != nil {
		t.Fatal(err)
	}
	a.AddConfiguration(testenv.Config(0))
	head := "configuration_id,target_type,group_id,tenant_id\n"
	one := b.h.Enqueue(t, "one.csv", head+testenv.Config(0)+",group,"+testenv.Group(0)+",\n")
	two := b.h.Enqueue(t, "two.csv", head+testenv.Config(0)+",group,"+testenv.Group(5000)+",\n"+
		testenv.Config(0)+",group,"+testenv.Group(0)+","+other+"\n")
	b.h.WaitFinal(t, one, 30*time.Second)
	b.h.WaitFinal(t, two, 30*time.Second)

	const q = "&#34;"
	for _, tc := range []struct {
		batch      string
		tenants    bool
		want, nope []string
	}{
		{one, false, []string{q + "Win11 baseline" + q + "=" + testenv.Config(0), "group:" + q + "SG Pilot" + q + "=" + testenv.Group(0)},
			[]string{`<th scope="col">Tenant</th>`}},
		{two, true, []string{`<th scope="col">Tenant</th>`, q + "Fabrikam" + q + "=" + other,
			q + "Win11 baseline" + q + "=" + testenv.Config(0), "group:" + testenv.Group(5000) + "<"}, nil},
	} {
		code, body := b.get(t, "/console/batches/"+tc.batch)
		if code != http.StatusOK {
			t.Fatalf("batch page = %d: %.300s", code, body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("batch page (%v tenants) lacks %q", tc.tenants, w)
			}
		}
		for _, w := range tc.nope {
			if strings.Contains(body, w) {
				t.Errorf("batch page (one tenant) has %q", w)
			}
		}
	}
}

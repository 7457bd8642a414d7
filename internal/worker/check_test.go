package worker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// TestCheck is `worker check` against the simulator's tenants: one that is
// ready, one whose token lacks the permission, and one that refuses the app.
func TestCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const (
		noPerm  = "a1000000-0000-4000-8000-000000000001"
		refuses = "a1000000-0000-4000-8000-000000000002"
	)
	h := testenv.New(t, graphsim.Config{TenantName: "Contoso", Tenants: []graphsim.TenantConfig{
		{ID: noPerm, Name: "Fabrikam", NoPermission: true},
		{ID: refuses, Name: "Tailspin", Refuse: graphsim.RefuseConsent},
	}})
	h.Sim.AddConfiguration(testenv.Config(0))
	_, gcfg, db := settings(t, h, h.Env(nil))

	p, err := worker.Check(ctx, db, gcfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if !p.OK() || p.TenantName != "Contoso" || !strings.EqualFold(p.TenantID, h.Sim.TenantID()) ||
		p.AppID != graphsim.DefaultClientID || !slices.Equal(p.Permissions, []string{graphsim.PermissionReadWrite, graphsim.PermissionGroupRead}) {
		t.Errorf("default tenant: %+v (read %+v), want ready, named Contoso, with the permission", p, p.Read)
	}

	p, err = worker.Check(ctx, db, gcfg, noPerm)
	if err != nil {
		t.Fatal(err)
	}
	if p.OK() || p.Granted || p.TenantName != "Fabrikam" || p.Read.StatusCode != 403 {
		t.Errorf("tenant without the permission: %+v (read %d), want not granted and a 403 read", p, p.Read.StatusCode)
	}

	_, err = worker.Check(ctx, db, gcfg, refuses)
	if !errors.Is(err, graph.ErrSignInRefused) || !strings.Contains(err.Error(), "AADSTS700016") {
		t.Errorf("refusing tenant: err = %v, want a refusal naming AADSTS700016", err)
	}
	if _, err := worker.Check(ctx, db, gcfg, "not-a-guid"); err == nil || !strings.Contains(err.Error(), "--tenant") {
		t.Errorf("bad --tenant: err = %v", err)
	}
}

// TestTenantSettings: BULKASSIGN_TENANTS gives a tenant its own write rate
// and its own app registration; other tenants keep the fleet's.
func TestTenantSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const (
		slow   = "b2000000-0000-4000-8000-000000000001"
		ownApp = "b2000000-0000-4000-8000-000000000002"
		plain  = "b2000000-0000-4000-8000-000000000003"
		appID  = "a2000000-0000-4000-8000-0000000000aa"
	)
	h := testenv.New(t, graphsim.Config{
		Clients: []graphsim.Client{{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret}, {ID: appID, Secret: "own-secret"}},
		Tenants: []graphsim.TenantConfig{{ID: slow}, {ID: ownApp}, {ID: plain}},
	})
	file := testenv.WriteFile(t, "tenants.json", `{"tenants":[
		{"id":"`+slow+`","name":"Slow","writeRate":2},
		{"id":"`+ownApp+`","name":"Own app","clientId":"`+appID+`","clientSecretVar":"OWN_SECRET"}]}`)
	wcfg, gcfg, db := settings(t, h, h.Env(map[string]string{"BULKASSIGN_TENANTS": file, "OWN_SECRET": "own-secret", "GRAPH_WRITE_RATE": "20"}))
	tokens, err := auth.NewTokenSource(ctx, gcfg, db)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := worker.NewTenants(db.Pool(), gcfg, wcfg, tokens)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]float64{slow: 2, ownApp: 20, plain: 20, "": 20} {
		tn, err := tenants.Tenant(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := tn.Writes.Config().Rate; got != want {
			t.Errorf("tenant %q: write rate %v, want %v", id, got, want)
		}
	}
	tn, err := tenants.Tenant(ctx, ownApp)
	if err != nil {
		t.Fatal(err)
	}
	h.Sim.Tenant(ownApp).AddConfiguration(testenv.Config(0))
	if _, resp := tn.Graph.CreateAssignment(ctx, testenv.Config(0), "", assign.Target{Type: assign.TargetAllDevices}, ""); resp.StatusCode != 201 {
		t.Fatalf("own app's create: %+v", resp)
	}
	if l := h.Sim.Tenant(ownApp).Ledger(); len(l) != 1 || l[0].ClientID != appID {
		t.Errorf("tenant with its own app: ledger %+v, want one create by %s", l, appID)
	}
}

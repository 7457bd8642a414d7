package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
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
	gcfg, err := config.LoadGraph(h.Env(nil), true)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.ConnectMigrated(ctx, h.DB.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	p, err := worker.Check(ctx, db, gcfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if !p.OK() || p.TenantName != "Contoso" || !strings.EqualFold(p.TenantID, h.Sim.TenantID()) ||
		p.AppID != graphsim.DefaultClientID || len(p.Permissions) != 1 || p.Permissions[0] != graphsim.PermissionReadWrite {
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

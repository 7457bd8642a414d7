package worker

import (
	"context"
	"net/http"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Preflight is what `worker check` found for one tenant: who the worker is
// there, what its token allows, and whether a read goes through.
type Preflight struct {
	TenantID   string
	TenantName string
	AppID      string
	SignIn     string
	// Permissions are the token's roles (app) or scopes (delegated).
	Permissions []string
	// Granted: the token carries DeviceManagementConfiguration.ReadWrite.All.
	Granted bool
	// Read is the answer to one read of the tenant's device configurations.
	Read *graph.Response
}

// OK reports whether the tenant is ready for the workers.
func (p *Preflight) OK() bool {
	return p.Granted && p.Read != nil && p.Read.Err == nil && p.Read.StatusCode == http.StatusOK
}

// Check signs in to tenant ("" is AZURE_TENANT_ID) as the settings say,
// reads the token's permissions and the tenant's name, and does one read.
// A sign-in that fails is the returned error.
func Check(ctx context.Context, db *store.DB, gcfg config.Graph, tenant string) (*Preflight, error) {
	if tenant != "" {
		id, err := assign.ParseGUID("--tenant", tenant)
		if err != nil {
			return nil, err
		}
		tenant = id
	}
	tokens, err := auth.NewTokenSource(ctx, gcfg, db)
	if err != nil {
		return nil, err
	}
	if tenant != "" && !strings.EqualFold(tenant, gcfg.TenantID) {
		if d, ok := tokens.(*auth.Delegated); ok {
			tokens = d.ForTenant(tenant) // the partner admin's sign-in, for a customer tenant
		} else {
			gcfg.TenantID = tenant
			if tokens, err = auth.NewTokenSource(ctx, gcfg, db); err != nil {
				return nil, err
			}
		}
		gcfg.TenantID = tenant
	}
	tok, err := tokens.Token(ctx, graph.TokenOptions{})
	if err != nil {
		return nil, err
	}
	p := &Preflight{TenantID: gcfg.TenantID, AppID: gcfg.ClientID, SignIn: gcfg.SignIn}
	if c, err := auth.ReadClaims(tok); err == nil {
		p.Permissions = c.Permissions()
		p.Granted = c.Grants(auth.DelegatedPermission)
		if c.TenantID != "" {
			p.TenantID = c.TenantID
		}
	}
	gc, err := NewGraphClient(gcfg, tokens, nil)
	if err != nil {
		return nil, err
	}
	if _, name, resp := gc.Organization(ctx); resp.Err == nil && resp.StatusCode == http.StatusOK {
		p.TenantName = name
	}
	p.Read = gc.ProbeConfigurations(ctx)
	return p, nil
}

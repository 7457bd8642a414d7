package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
)

// Tenant is what the rows of one Entra tenant work with: a Graph client
// signed in to that tenant, and the fleet's limits for it (Intune counts
// its limits per app and tenant).
type Tenant struct {
	// ID is the tenant's id; "" is the default tenant (AZURE_TENANT_ID).
	ID     string
	Graph  *graph.Client
	Writes *ratelimit.Limiter
	Reads  *ratelimit.Limiter
}

// Tenants hands out the tenants other than the default one (the worker
// runtime builds them on first use).
type Tenants interface {
	Tenant(ctx context.Context, id string) (*Tenant, error)
}

// NotAllowedError is why a row's tenant may not be worked: the allowlist
// (config.TenantAllowlist, Deps.Allowlist) does not list it. The row ends
// failed with assign.CodeTenantNotAllowed (notAllowed).
type NotAllowedError struct{ Msg string }

func (e *NotAllowedError) Error() string { return e.Msg }

// notAllowed is the final verdict of a row whose tenant err (from
// d.tenant) refuses, or nil for any other error.
func notAllowed(err error) *verdict {
	var na *NotAllowedError
	if !errors.As(err, &na) {
		return nil
	}
	return &verdict{Final: true, ErrorCode: assign.CodeTenantNotAllowed, ErrorMessage: na.Msg}
}

// tenant is the Tenant a row of tenant id works with; a *NotAllowedError
// when the allowlist does not list the tenant (a row enqueued before it
// was taken off).
func (d *Deps) tenant(ctx context.Context, id string) (*Tenant, error) {
	if msg := d.Allowlist.Refuses(id, d.DefaultTenant); msg != "" {
		return nil, &NotAllowedError{Msg: msg}
	}
	if id = TenantKey(id, d.DefaultTenant); id == "" {
		return &Tenant{Graph: d.Graph, Writes: d.Writes, Reads: d.Reads}, nil
	}
	if d.Tenants == nil {
		return nil, fmt.Errorf("rows of tenant %s, but this worker serves only its default tenant", id)
	}
	return d.Tenants.Tenant(ctx, id)
}

// TenantKey is how a tenant is named in the fleet's shared state (claims,
// limits): "" for the default tenant, else its id in lower case.
func TenantKey(id, defaultTenant string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	if id == strings.ToLower(strings.TrimSpace(defaultTenant)) {
		return ""
	}
	return id
}

// Tenant is the Tenant a row of tenant id works with ("" or the default
// tenant's id: the default tenant): what the dry run reads through in a
// worker process.
func (d *Deps) Tenant(ctx context.Context, id string) (*Tenant, error) { return d.tenant(ctx, id) }

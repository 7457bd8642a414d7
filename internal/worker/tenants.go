package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
)

// tenants serves the rows of tenants other than the default one. One
// multi-tenant app registration (the same AZURE_CLIENT_ID and credential,
// consented in each customer tenant) signs in to each tenant's authority,
// or a delegated sign-in renews silently for each tenant the person may
// manage; each tenant gets its own tokens and its own fleet limits,
// GRAPH_WRITE_RATE and GRAPH_READ_RATE each, as Intune counts them per app
// and tenant. They are built on first use and kept while the tenant's
// queue is served.
type tenants struct {
	pool    *pgxpool.Pool
	gcfg    config.Graph
	wcfg    config.Worker
	observe func(tenant string) func(*graph.Response)
	// signedIn is the default tenant's token source: a delegated sign-in
	// serves other tenants through it.
	signedIn graph.TokenSource
	logger   *slog.Logger
	// def, when set, is AZURE_TENANT_ID's tenant (the workers keep theirs
	// in jobs.Deps).
	def *jobs.Tenant

	mu   sync.Mutex
	byID map[string]*jobs.Tenant
}

// NewTenants serves every tenant, AZURE_TENANT_ID's included, with the
// settings' sign-in (signedIn is AZURE_TENANT_ID's token source) and the
// fleet's limits per tenant: what the dry run reads through.
func NewTenants(pool *pgxpool.Pool, gcfg config.Graph, wcfg config.Worker, signedIn graph.TokenSource) (jobs.Tenants, error) {
	gc, err := NewGraphClient(gcfg, signedIn, nil)
	if err != nil {
		return nil, err
	}
	return &tenants{pool: pool, gcfg: gcfg, wcfg: wcfg, signedIn: signedIn, observe: func(string) func(*graph.Response) { return nil },
		def: &jobs.Tenant{Graph: gc, Writes: newWriteLimiter(pool, wcfg, gcfg.TenantID, ""), Reads: newReadLimiter(pool, wcfg, gcfg.TenantID, "")}}, nil
}

// Tenant implements jobs.Tenants.
func (ts *tenants) Tenant(ctx context.Context, id string) (*jobs.Tenant, error) {
	if id = jobs.TenantKey(id, ts.gcfg.TenantID); id == "" && ts.def != nil {
		return ts.def, nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.byID[id]; ok {
		return t, nil
	}
	var tokens graph.TokenSource
	own, hasOwn := ts.wcfg.Tenants[id]
	switch d, delegated := ts.signedIn.(*auth.Delegated); {
	case hasOwn && own.ClientID != "":
		// The tenant's own app registration (BULKASSIGN_TENANTS).
		cfg := auth.AppConfigFor(ts.gcfg, id)
		cfg.ClientID, cfg.Secret, cfg.CertificatePath, cfg.CertificatePassword = own.ClientID, own.Secret, own.CertificatePath, own.CertificatePassword
		app, err := auth.NewApp(cfg)
		if err != nil {
			return nil, config.Unusable(fmt.Errorf("%s: tenant %s: %w", config.TenantsVar, id, err))
		}
		tokens = app
	case delegated:
		// A partner admin's sign-in, renewed silently for the customer
		// tenant (GDAP).
		tokens = d.ForTenant(id)
	default:
		app, err := auth.NewApp(auth.AppConfigFor(ts.gcfg, id))
		if err != nil {
			return nil, err
		}
		tokens = app
	}
	gc, err := NewGraphClient(ts.gcfg, tokens, ts.observe(id))
	if err != nil {
		return nil, err
	}
	if ts.logger != nil {
		// Off the lock: a tenant slow to sign in holds no other back.
		go func() {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ts.gcfg.Timeout)
			defer cancel()
			warnIfUngranted(wctx, tokens, id, ts.logger)
		}()
	}
	t := &jobs.Tenant{ID: id, Graph: gc,
		Writes: newWriteLimiter(ts.pool, ts.wcfg, id, id),
		Reads:  newReadLimiter(ts.pool, ts.wcfg, id, id)}
	if ts.logger != nil {
		ts.logger.Info("serving a tenant", "tenant", id, "name", own.Name, "own_app", own.ClientID != "",
			"write_rate", t.Writes.Config().Rate, "read_rate", t.Reads.Config().Rate)
	}
	if ts.byID == nil {
		ts.byID = map[string]*jobs.Tenant{}
	}
	ts.byID[id] = t
	return t, nil
}

// forget drops what the process keeps for tenant id (its sign-in and
// Graph client; its limits live in the database): its queue was retired
// (serveTenantQueues). Its next row builds them afresh.
func (ts *tenants) forget(id string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.byID, jobs.TenantKey(id, ts.gcfg.TenantID))
}

// limitName names a tenant's limit row in rate_limits: the default tenant
// ("") keeps the names it always had.
func limitName(kind, tenant string) string {
	if tenant == "" {
		return kind
	}
	return kind + ":" + tenant
}

// newWriteLimiter is the fleet's Graph write limit for tenant id, named by
// its key ("" for AZURE_TENANT_ID); BULKASSIGN_TENANTS may set its rate.
func newWriteLimiter(pool *pgxpool.Pool, wcfg config.Worker, id, key string) *ratelimit.Limiter {
	write, _ := wcfg.Tenants.Rates(id, wcfg)
	return ratelimit.New(pool, ratelimit.Config{Name: limitName("graph_write", key), Rate: write})
}

// newReadLimiter is the fleet's Graph read limit for tenant id. Every
// process that reads (workers, dry runs) shares the one bucket in the
// database, so all must configure it alike.
func newReadLimiter(pool *pgxpool.Pool, wcfg config.Worker, id, key string) *ratelimit.Limiter {
	_, read := wcfg.Tenants.Rates(id, wcfg)
	return ratelimit.New(pool, ratelimit.Config{Name: limitName("graph_read", key), Rate: read, Burst: max(1, read/10)})
}

package graphsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Refusal is how the identity platform refuses the application in a tenant.
type Refusal string

const (
	// RefuseNone: the tenant accepts every registered application.
	RefuseNone Refusal = ""
	// RefuseConsent: the application was never consented to in the tenant
	// (no service principal): the token endpoint answers 400
	// unauthorized_client AADSTS700016 "Application with identifier '...'
	// was not found in the directory '...'".
	RefuseConsent Refusal = "consent"
	// RefuseNotFound: the tenant does not exist (a mistyped id, a deleted
	// tenant): every identity endpoint of the tenant answers 400
	// invalid_tenant AADSTS90002 "Tenant '...' not found".
	RefuseNotFound Refusal = "notfound"
	// RefuseDisabled: the application's service principal is disabled in
	// the tenant: 400 unauthorized_client AADSTS7000112 "Application
	// '...'(...) is disabled."
	RefuseDisabled Refusal = "disabled"
)

func (r Refusal) validate() error {
	switch r {
	case RefuseNone, RefuseConsent, RefuseNotFound, RefuseDisabled:
		return nil
	}
	return fmt.Errorf("graphsim: Refuse %q is not one of \"\", %q, %q, %q", string(r), RefuseConsent, RefuseNotFound, RefuseDisabled)
}

// TenantConfig describes a tenant besides the default one (Config.TenantID).
// Every registered Client is a multi-tenant application: it is accepted in
// every tenant that does not refuse it, with the same id and credentials, as
// after admin consent in each customer tenant.
type TenantConfig struct {
	// ID is the directory (tenant) id, a GUID.
	ID string
	// Name is the organization's display name (GET /organization); default
	// "graphsim tenant " and the first 8 characters of ID.
	Name string
	// WriteLimit throttles this tenant's Graph writes, with the semantics
	// of Config.WriteLimit; each tenant has its own window.
	WriteLimit Limit
	// Refuse makes the identity platform refuse the application in this
	// tenant; see Refusal.
	Refuse Refusal
	// TokenFailures answers the first TokenFailures token requests for this
	// tenant 503 temporarily_unavailable (AADSTS90033), before anything else
	// is checked: a transient outage a client is expected to retry.
	TokenFailures int
	// NoPermission issues app-only tokens without the
	// DeviceManagementConfiguration.ReadWrite.All application permission
	// (no roles claim), as when the app was consented to without it: Graph
	// answers 403 Forbidden to device configuration requests. Delegated
	// tokens are not affected.
	NoPermission bool
	// NoGroupRead answers every read of groups 403
	// Authorization_RequestDenied, as Graph does when the app was not
	// granted Group.Read.All: rows that name groups cannot be resolved.
	// Device configurations and assignment filters are not affected.
	NoGroupRead bool
}

// Permission names carried in tokens.
const (
	PermissionReadWrite = "DeviceManagementConfiguration.ReadWrite.All"
	PermissionRead      = "DeviceManagementConfiguration.Read.All"
	// PermissionGroupRead lets a token read groups (name lookups); app-only
	// tokens carry it unless the tenant denies group reads.
	PermissionGroupRead = "Group.Read.All"
)

// tenantState is one tenant's data; every field is guarded by Server.mu.
type tenantState struct {
	id, name     string
	refuse       Refusal
	tokenFails   int
	noPermission bool
	noGroupRead  bool
	limit        Limit
	lim          limiter
	configs      map[string]*configuration
	groups       directory  // Entra groups (names.go)
	filters      directory  // assignment filters
	fam          familyData // policies of the other families, their /assign ledger (families.go)
	ledger       []LedgerEntry
	stats        Stats
	rejections   map[string]rejection // by target group or collection id
	principals   map[string]string    // client id -> service principal object id
}

func newTenantState(id, name string, l Limit, start time.Time) *tenantState {
	if name == "" {
		name = "graphsim tenant " + id[:min(8, len(id))]
	}
	ts := &tenantState{
		id: id, name: name, limit: l, lim: newLimiter(l, start),
		configs:    map[string]*configuration{},
		rejections: map[string]rejection{},
		principals: map[string]string{},
	}
	ts.stats.Methods = map[string]StatusCounts{}
	return ts
}

// principalLocked is the object id of the client's service principal in
// the tenant (the oid and sub of its app-only tokens).
func (ts *tenantState) principalLocked(clientID string) string {
	oid := ts.principals[clientID]
	if oid == "" {
		oid = newGUID()
		ts.principals[clientID] = oid
	}
	return oid
}

func (ts *tenantState) configLocked(id string, create bool) *configuration {
	key := assign.CanonicalGUID(id)
	c := ts.configs[key]
	if c == nil && create {
		c = &configuration{id: key, seq: len(ts.configs), lists: map[assign.Path][]*Assignment{}}
		ts.configs[key] = c
	}
	return c
}

func (ts *tenantState) duplicatesLocked() int {
	n := 0
	for _, c := range ts.configs {
		for _, list := range c.lists {
			seen := make(map[string]bool, len(list))
			for _, a := range list {
				k := a.Target.Key()
				if seen[k] {
					n++
				}
				seen[k] = true
			}
		}
	}
	return n
}

func (ts *tenantState) statsLocked() Stats {
	st := ts.stats
	st.Methods = make(map[string]StatusCounts, len(ts.stats.Methods))
	for k, v := range ts.stats.Methods {
		st.Methods[k] = v
	}
	st.Duplicates = ts.duplicatesLocked()
	return st
}

// validateTenant checks a TenantConfig and returns its canonical id.
func validateTenant(tc TenantConfig) (string, error) {
	id, err := assign.ParseGUID("tenant id", tc.ID)
	if err != nil {
		return "", fmt.Errorf("graphsim: %w", err)
	}
	if err := tc.WriteLimit.validate(); err != nil {
		return "", fmt.Errorf("%w (tenant %s)", err, id)
	}
	if err := tc.Refuse.validate(); err != nil {
		return "", err
	}
	if tc.TokenFailures < 0 {
		return "", fmt.Errorf("graphsim: tenant %s: TokenFailures is negative", id)
	}
	return id, nil
}

// addTenantLocked registers a validated tenant.
func (s *Server) addTenantLocked(id string, tc TenantConfig) (*tenantState, error) {
	if _, dup := s.tenants[id]; dup {
		return nil, fmt.Errorf("graphsim: tenant %s configured twice", id)
	}
	ts := newTenantState(id, tc.Name, tc.WriteLimit, s.start)
	ts.refuse, ts.tokenFails, ts.noPermission, ts.noGroupRead = tc.Refuse, tc.TokenFailures, tc.NoPermission, tc.NoGroupRead
	s.tenants[id] = ts
	s.tenantOrder = append(s.tenantOrder, ts)
	return ts, nil
}

// AddTenant registers another tenant while the server runs (Config.Tenants
// registers them at start) and returns its handle.
func (s *Server) AddTenant(tc TenantConfig) (*Tenant, error) {
	id, err := validateTenant(tc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, err := s.addTenantLocked(id, tc)
	if err != nil {
		return nil, err
	}
	return &Tenant{s: s, t: ts}, nil
}

// Tenant returns the handle of a tenant (the default one or one of
// Config.Tenants, any case), or nil if the simulator has no such tenant.
func (s *Server) Tenant(id string) *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tenants[strings.ToLower(strings.TrimSpace(strings.Trim(id, "{}")))]
	if ts == nil {
		return nil
	}
	return &Tenant{s: s, t: ts}
}

// DefaultTenant returns the handle of the default tenant (Config.TenantID),
// the one the Server's own data methods address.
func (s *Server) DefaultTenant() *Tenant { return &Tenant{s: s, t: s.home} }

// TenantIDs lists every tenant id: the default tenant first, then the
// others in the order they were configured.
func (s *Server) TenantIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.tenantOrder))
	for i, ts := range s.tenantOrder {
		out[i] = ts.id
	}
	return out
}

// lookupTenant resolves the tenant segment of an identity platform path:
// a tenant id, or "common" / "organizations" (the default tenant, home of
// the simulated user). It returns nil for an unknown tenant.
func (s *Server) lookupTenant(seg string) *tenantState {
	seg = strings.ToLower(seg)
	if seg == "common" || seg == "organizations" {
		return s.home
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenants[seg]
}

// Tenant is a handle on one simulated tenant's data: its configurations,
// assignments, ledger, write limit, target rejections and statistics. Graph
// requests are served from the tenant of their access token. Its methods
// are safe for concurrent use.
type Tenant struct {
	s *Server
	t *tenantState
}

// ID is the tenant id (lower case).
func (t *Tenant) ID() string { return t.t.id }

// Name is the organization display name.
func (t *Tenant) Name() string {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.t.name
}

// Authority is AuthorityHost()+"/"+ID(): where this tenant's tokens are
// acquired.
func (t *Tenant) Authority() string { return t.s.url + "/" + t.t.id }

// AddConfiguration registers device configurations (GUIDs, any case) in
// the tenant; Graph answers 404 for any other configuration id.
func (t *Tenant) AddConfiguration(ids ...string) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	for _, id := range ids {
		t.t.configLocked(id, true)
	}
}

// PolicyCollections are the kinds of Intune policy other than device
// configurations that tenant files and AddPolicy register, by their
// collection under deviceManagement: a GET of one of their ids answers
// 200. bulkassign assigns none of them yet; the simulator serves their
// assignments, and those of every family (families.go).
var PolicyCollections = []string{"configurationPolicies", "deviceCompliancePolicies", "groupPolicyConfigurations"}

// AddPolicy registers policies (GUIDs, any case) of collection, one of
// PolicyCollections, in the tenant.
func (t *Tenant) AddPolicy(collection string, ids ...string) error {
	if !slices.Contains(PolicyCollections, collection) {
		return fmt.Errorf("graphsim: %q is not a policy collection (%s)", collection, strings.Join(PolicyCollections, ", "))
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	for _, id := range ids {
		t.t.fam.policyLocked(collection, id, true)
	}
	return nil
}

// Configurations lists the tenant's configuration ids in the order they
// were added.
func (t *Tenant) Configurations() []string {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	out := make([]string, len(t.t.configs))
	for id, c := range t.t.configs {
		out[c.seq] = id
	}
	return out
}

// Preassign adds a live assignment as if it had existed before the test
// (registering the configuration if needed) and returns its id. It does not
// write the ledger.
func (t *Tenant) Preassign(cfgID string, p assign.Path, tg assign.Target) string {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	c := t.t.configLocked(cfgID, true)
	a := &Assignment{ID: newGUID(), Target: tg, Source: "direct", SourceID: c.id, Intent: "apply", Created: time.Now().UTC()}
	c.lists[p] = append(c.lists[p], a)
	return a.ID
}

// Assignments returns a copy of the live assignments of one path of a
// configuration, in creation order.
func (t *Tenant) Assignments(cfgID string, p assign.Path) []Assignment {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	c := t.t.configLocked(cfgID, false)
	if c == nil {
		return nil
	}
	out := make([]Assignment, len(c.lists[p]))
	for i, a := range c.lists[p] {
		out[i] = *a
	}
	return out
}

// Unassign removes an assignment as an admin would in the portal: no
// request, no write limit, not counted in the statistics. It reports
// whether the assignment existed.
func (t *Tenant) Unassign(cfgID string, p assign.Path, id string) bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	c := t.t.configLocked(cfgID, false)
	if c == nil {
		return false
	}
	list := c.lists[p]
	for i, a := range list {
		if a.ID == id {
			c.lists[p] = append(list[:i:i], list[i+1:]...)
			return true
		}
	}
	return false
}

// Ledger returns every create applied through the API in this tenant, in
// order, including those answered 504 or by a connection reset.
func (t *Tenant) Ledger() []LedgerEntry {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return append([]LedgerEntry(nil), t.t.ledger...)
}

// Duplicates counts live assignments beyond the first with the same
// configuration, path and target (assign.Target.Key).
func (t *Tenant) Duplicates() int {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.t.duplicatesLocked()
}

// Stats returns a snapshot of the tenant's counters: token requests made
// to its authority, and Graph requests made with its tokens (a Graph
// request without a token the simulator knows counts in the default
// tenant).
func (t *Tenant) Stats() Stats {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return t.t.statsLocked()
}

// SetWriteLimit replaces the tenant's write limit and resets its state:
// fixed windows stay aligned to the server start with nothing used in the
// current one, a bucket starts full.
func (t *Tenant) SetWriteLimit(l Limit) error {
	if err := l.validate(); err != nil {
		return err
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.limit = l
	t.t.lim = newLimiter(l, t.s.start)
	return nil
}

// RejectTarget makes every create in this tenant whose target names id (a
// group or collection id) fail with status and Graph error code, without
// applying it: a group Intune does not accept (400), a target this app may
// not assign (403). Status must be 4xx.
func (t *Tenant) RejectTarget(id string, status int, code, message string) {
	if status < 400 || status > 499 {
		panic("graphsim: RejectTarget status must be 4xx")
	}
	if message == "" {
		message = http.StatusText(status)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.rejections[strings.ToLower(id)] = rejection{status, code, message}
}

// SetRefuse changes how the identity platform treats the application in
// this tenant from now on (tokens already issued stay valid).
func (t *Tenant) SetRefuse(r Refusal) error {
	if err := r.validate(); err != nil {
		return err
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.refuse = r
	return nil
}

// SetTokenFailures answers the next n token requests for this tenant 503
// (see TenantConfig.TokenFailures).
func (t *Tenant) SetTokenFailures(n int) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.tokenFails = max(n, 0)
}

// sortedConfigs lists the tenant's configurations in the order they were
// added; Server.mu is held.
func (ts *tenantState) sortedConfigs() []*configuration {
	out := make([]*configuration, len(ts.configs))
	for _, c := range ts.configs {
		out[c.seq] = c
	}
	return out
}

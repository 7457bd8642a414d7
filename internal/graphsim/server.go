// Package graphsim is an in-process simulator of the two Microsoft services
// bulkassign talks to: the Microsoft identity platform (the token endpoints
// MSAL for Go calls) and the Microsoft Graph device configuration assignment
// endpoints. It is a test double, served over real HTTPS on loopback, never
// a production service: its /_sim endpoints are unauthenticated and its
// credentials are fake.
//
// A Server listens on 127.0.0.1 (random port by default) and serves:
//
//	identity platform, authority = AuthorityHost()+"/"+tenant (tenant may also be "common" or "organizations")
//	  GET  /{tenant}/v2.0/.well-known/openid-configuration
//	  GET  /{tenant}/discovery/v2.0/keys                  (JWKS for id_tokens)
//	  POST /{tenant}/oauth2/v2.0/token                     (client_credentials, device_code, refresh_token)
//	  POST /{tenant}/oauth2/v2.0/devicecode                (device authorization)
//	  GET  /{tenant}/oauth2/v2.0/authorize                 (400: interactive sign-in is not simulated)
//	  GET  /devicelogin                                    (verification_uri; explains how to approve)
//	Graph, under /beta and /v1.0 (GraphBaseURL() is URL()+"/beta")
//	  GET         /organization[/{tenant id}]                (the token's tenant)
//	  GET         /groups                                    ($filter=displayName eq '...', $select, $top; names.go)
//	  GET         /groups/{id}                               ($select; objects.go)
//	  GET         /deviceManagement/assignmentFilters        (the same)
//	  GET         /deviceManagement/assignmentFilters/{id}   ($select; objects.go)
//	  GET         /deviceManagement/deviceConfigurations     (the same)
//	  GET         /deviceManagement/deviceConfigurations/{id}
//	  GET, POST   every policy family's {collection}/{id}, .../assignments[/{id}], .../assign (families.go)
//	  GET, POST   /deviceManagement/deviceConfigurations/{id}[/{path}]/assignments
//	  GET, DELETE /deviceManagement/deviceConfigurations/{id}[/{path}]/assignments/{assignmentId}
//	  where {path} is one of assign.Paths (matched case-insensitively)
//	inspection, for tests in other processes (no authentication)
//	  GET  /_sim/stats  /_sim/ledger  /_sim/configurations  /_sim/assignments?configurationId=&path=  (each with &tenant=)
//	  GET  /_sim/tenants
//	  POST /_sim/approve?user_code=   /_sim/revoke
//
// Tenants: besides the default tenant (Config.TenantID) the simulator can
// serve others (Config.Tenants, AddTenant). As in Entra ID and Graph, the
// tenant is chosen by the token, not the Graph URL: a token acquired at
// AuthorityHost()+"/"+tenant is tied to that tenant (its tid claim), and
// every Graph request is served from its tenant's configurations,
// assignments, write limit, ledger and statistics (Server.Tenant). Every
// registered Client is accepted in every tenant that does not refuse it
// (TenantConfig.Refuse). Delegated flows sign in the simulated user, whose
// home is the default tenant; its refresh tokens are redeemable at any
// tenant (as a partner's are with GDAP).
//
// Access tokens are gs1.<claims>.<random>: the claims (tid, appid, oid,
// roles or scp, exp, ...; see accessTokenValueLocked) are base64url JSON in
// the position of a JWT payload. The simulator validates a token by
// looking it up, never by its claims.
//
// Writes (POST and DELETE) can be throttled (see Limit) and POSTs can be
// failed on purpose (see Faults), including failures after the assignment was
// created; the Ledger records every create so tests can count duplicates.
//
// TLS: a CA is generated once per process and signs a leaf for 127.0.0.1,
// ::1 and localhost. Clients trust it through SSL_CERT_FILE (see UseCA), or
// explicitly (CertPool, NewHTTPClient). The server speaks HTTP/1.1 only, so
// that a connection reset can be injected by closing the TCP connection.
//
// The simulator never logs access tokens, refresh tokens, device codes,
// secrets or assertions: logging (Config.Logger) records method, path,
// status and request-id only.
package graphsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Defaults used when Config leaves a field zero.
const (
	DefaultTenantID      = "8b6f2d4e-3c1a-4f7b-9e2d-5a6c7b8d9e0f"
	DefaultClientID      = "0f3c9a7e-2b4d-4c6e-8a1f-3d5e7b9c1a2e"
	DefaultClientSecret  = "graphsim~not-a-real-secret"
	DefaultPageSize      = 100
	DefaultTokenLifetime = time.Hour
)

// Config configures a Server. The zero value is usable: default tenant, one
// default client (DefaultClientID / DefaultClientSecret, device code allowed),
// page size 100, no throttling, no faults, one-hour tokens.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:0". The certificate
	// covers only 127.0.0.1, ::1 and localhost.
	Addr string
	// TenantID is the directory (tenant) id; default DefaultTenantID. It is
	// the default tenant: the one the Server's data methods (AddConfiguration,
	// Ledger, Stats, ...) address, and the home tenant of the simulated user
	// of delegated flows.
	TenantID string
	// TenantName is the default tenant's organization display name (GET
	// /organization); default "graphsim tenant" and the first 8 characters
	// of the id.
	TenantName string
	// Tenants are further tenants, each with its own configurations,
	// assignments, ledger, write limit and statistics; a Graph request is
	// served from the tenant its access token was issued for. See
	// TenantConfig and Server.Tenant.
	Tenants []TenantConfig
	// Clients are the registered applications; default one Client with
	// DefaultClientID, DefaultClientSecret and Delegated.
	Clients []Client
	// PageSize is the largest page of a list (assignments, device
	// configurations, groups, assignment filters); default 100.
	PageSize int
	// Seed seeds the random choices of faults and of omitted Retry-After
	// headers. The sequence is deterministic for a sequence of requests; the
	// order of concurrent requests is not.
	Seed int64
	// Faults are injected failures; see Faults.
	Faults Faults
	// WriteLimit throttles POST and DELETE on Graph in the default tenant,
	// tenant-wide; the zero value is unlimited. Other tenants have their own
	// (TenantConfig.WriteLimit).
	WriteLimit Limit
	// TokenLifetime is the access token lifetime (expires_in); default 1h.
	// MSAL does not cache tokens that expire within 5 minutes, so a short
	// lifetime makes every MSAL call reach the token endpoint.
	TokenLifetime time.Duration
	// RefreshTokenLifetime is the refresh token lifetime; default 24h.
	RefreshTokenLifetime time.Duration
	// RevokeAfter, when > 0, revokes every access token this long after it
	// was issued, as continuous access evaluation would: Graph then answers
	// 401 with an insufficient_claims challenge.
	RevokeAfter time.Duration
	// DeviceCodeLifetime is how long a device code can be redeemed; default 15m.
	DeviceCodeLifetime time.Duration
	// AutoApproveAfter, when > 0, approves every device code this long after
	// it was issued (otherwise call ApproveDeviceCode or POST /_sim/approve).
	AutoApproveAfter time.Duration
	// Logger receives one record per request (method, path, status,
	// request-id, duration). Nil discards.
	Logger *slog.Logger
}

// Client is a registered application.
type Client struct {
	// ID is the application (client) id, a GUID.
	ID string
	// Secret, if set, is accepted as client_secret.
	Secret string
	// Certificate, if set, verifies client assertions (JWTs signed with its
	// key, PS256 or RS256 for RSA keys, ES256 for ECDSA keys, identified by
	// x5t#S256, x5t or kid = SHA-1 thumbprint in hex).
	Certificate *x509.Certificate
	// Delegated allows public-client flows (device code, refresh token
	// without client credentials), i.e. "allow public client flows".
	Delegated bool
	// Name is the application's display name (in AADSTS7000112 messages);
	// default "graphsim app".
	Name string
}

// Faults are failures injected on purpose. Probabilities are in [0,1]; the
// three POST probabilities are exclusive and must sum to at most 1.
type Faults struct {
	// P503 is the probability that a write (a POST or a DELETE of an
	// assignment) is answered 503 ServiceUnavailable without being
	// applied; half of these carry "Retry-After: 1".
	P503 float64
	// PAppliedThen504 is the probability that a write applies (creates or
	// deletes the assignment) and is then answered 504 GatewayTimeout.
	PAppliedThen504 float64
	// PAppliedThenReset is the probability that a write applies and then
	// the TCP connection is reset without any response.
	PAppliedThenReset float64
	// P503Read is the probability that a GET is answered 503 (half with
	// "Retry-After: 1").
	P503Read float64
	// Latency delays every Graph request before it is processed; a request
	// cancelled during the delay is not processed (and not applied).
	Latency time.Duration
}

func (f Faults) validate() error {
	for name, p := range map[string]float64{"P503": f.P503, "PAppliedThen504": f.PAppliedThen504, "PAppliedThenReset": f.PAppliedThenReset, "P503Read": f.P503Read} {
		if p < 0 || p > 1 || p != p {
			return fmt.Errorf("graphsim: Faults.%s = %v is not in [0,1]", name, p)
		}
	}
	if f.P503+f.PAppliedThen504+f.PAppliedThenReset > 1+1e-9 {
		return errors.New("graphsim: Faults.P503 + PAppliedThen504 + PAppliedThenReset exceeds 1")
	}
	if f.Latency < 0 {
		return errors.New("graphsim: Faults.Latency is negative")
	}
	return nil
}

// Assignment is one live deviceConfigurationAssignment.
type Assignment struct {
	ID       string        `json:"id"`
	Target   assign.Target `json:"target"`
	Source   string        `json:"source"`
	SourceID string        `json:"sourceId"`
	Intent   string        `json:"intent"`
	Created  time.Time     `json:"createdDateTime"`
}

// Outcome is what the caller of an applied create was told.
type Outcome string

const (
	OutcomeCreated          Outcome = "created"            // answered 201
	OutcomeAppliedThen504   Outcome = "applied_then_504"   // created, answered 504
	OutcomeAppliedThenReset Outcome = "applied_then_reset" // created, connection reset
)

// LedgerEntry records one create that was applied through the API.
// Preassign does not write the ledger.
type LedgerEntry struct {
	Seq             int           `json:"seq"`
	ID              string        `json:"id"`
	ConfigurationID string        `json:"configurationId"`
	Path            assign.Path   `json:"path"`
	Target          assign.Target `json:"target"`
	Time            time.Time     `json:"time"`
	ClientID        string        `json:"clientId"` // application that called
	RequestID       string        `json:"requestId"`
	ClientRequestID string        `json:"clientRequestId"`
	Outcome         Outcome       `json:"outcome"`
	Answered        bool          `json:"answered"` // the caller was sent 201 with the object
}

// StatusCounts counts Graph responses of one method by class. 429 is
// counted apart from 4xx; NoResponse counts injected connection resets and
// requests abandoned by the client during Latency.
type StatusCounts struct {
	S2xx       int64 `json:"2xx"`
	S4xx       int64 `json:"4xx"`
	S429       int64 `json:"429"`
	S5xx       int64 `json:"5xx"`
	NoResponse int64 `json:"noResponse"`
}

// Stats are one tenant's counters since New (see Tenant.Stats).
type Stats struct {
	// Identity platform.
	TokenRequests        int64 `json:"tokenRequests"`        // POSTs to the token endpoint
	TokensIssued         int64 `json:"tokensIssued"`         // access tokens issued
	TokenErrors          int64 `json:"tokenErrors"`          // error answers, authorization_pending included
	TokenClaimsRequests  int64 `json:"tokenClaimsRequests"`  // token requests carrying a claims parameter
	TokenUnavailable     int64 `json:"tokenUnavailable"`     // token requests answered 503 (TokenFailures)
	DeviceCodes          int64 `json:"deviceCodes"`          // device codes handed out
	AuthorizationPending int64 `json:"authorizationPending"` // authorization_pending answers

	// Graph.
	Reads            int64                   `json:"reads"`  // GETs
	Writes           int64                   `json:"writes"` // POSTs and DELETEs
	Methods          map[string]StatusCounts `json:"methods"`
	Throttled        int64                   `json:"throttled"`         // 429s
	RetryAfterSent   int64                   `json:"retryAfterSent"`    // 429s with Retry-After
	RetryAfterOmit   int64                   `json:"retryAfterOmitted"` // 429s without Retry-After
	Unauthorized     int64                   `json:"unauthorized"`      // 401s
	ClaimsChallenges int64                   `json:"claimsChallenges"`  // 401s with an insufficient_claims challenge
	Forbidden        int64                   `json:"forbidden"`         // 403s for a token without the permission
	Injected503      int64                   `json:"injected503"`       // POSTs answered 503 by Faults
	InjectedRead503  int64                   `json:"injectedRead503"`   // GETs answered 503 by Faults
	AppliedThen504   int64                   `json:"appliedThen504"`
	AppliedThenReset int64                   `json:"appliedThenReset"`
	Created          int64                   `json:"created"` // assignments created through POST
	Deleted          int64                   `json:"deleted"` // assignments deleted through DELETE
	Duplicates       int                     `json:"duplicates"`
	NameLookups      LookupCounts            `json:"nameLookups"` // GETs with $filter, by collection
	ObjectReads      ObjectCounts            `json:"objectReads"` // GETs of one object by id, and of the organization
}

// LookupCounts counts the GETs carrying $filter (bulkassign's name
// lookups: displayName eq '…') of each collection a row's names are
// resolved in, one per request (a page followed through @odata.nextLink
// is a request), counted once the token is accepted, whatever the answer
// (403, 400 and injected 503s included). They are also in Reads.
type LookupCounts struct {
	Configurations int64 `json:"configurations"` // deviceManagement/deviceConfigurations
	Groups         int64 `json:"groups"`         // groups
	Filters        int64 `json:"filters"`        // deviceManagement/assignmentFilters
}

type configuration struct {
	id    string
	seq   int
	name  string // displayName; "" is the default (displayName)
	lists map[assign.Path][]*Assignment
}

// displayName is the configuration's name: the one given
// (Tenant.NameConfiguration, a tenant file's configurationNames), else
// "Configuration " and the first 8 characters of its id, so that every
// configuration has a name a row can give and no two defaults collide
// in practice.
func (c *configuration) displayName() string {
	if c.name != "" {
		return c.name
	}
	return "Configuration " + c.id[:min(8, len(c.id))]
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	url      string
	tenant   string
	start    time.Time
	pageSize int
	tokenTTL time.Duration
	rtTTL    time.Duration
	dcTTL    time.Duration
	autoAppr time.Duration
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	done     chan struct{}
	idKey    *ecdsa.PrivateKey
	idKid    string
	userOID  string

	home *tenantState // the default tenant; set once by New

	mu          sync.Mutex
	rng         *mrand.Rand
	faults      Faults
	revokeAfter time.Duration
	clients     map[string]Client
	tenants     map[string]*tenantState // by lower-case id
	tenantOrder []*tenantState          // default first
	access      map[string]*accessToken
	refresh     map[string]*refreshToken
	devices     map[string]*deviceCode // by device_code
	userCodes   map[string]*deviceCode // by user_code
	oidc        oidcState              // the authorization code flow (oidc.go)
	closeOnce   sync.Once
}

// New validates cfg, starts listening and serving, and returns the Server.
// Call Close when done.
func New(cfg Config) (*Server, error) {
	if err := cfg.Faults.validate(); err != nil {
		return nil, err
	}
	if err := cfg.WriteLimit.validate(); err != nil {
		return nil, err
	}
	if cfg.TenantID == "" {
		cfg.TenantID = DefaultTenantID
	}
	if strings.ContainsAny(cfg.TenantID, "/?#% ") {
		return nil, fmt.Errorf("graphsim: tenant id %q is not a path segment", cfg.TenantID)
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.RefreshTokenLifetime <= 0 {
		cfg.RefreshTokenLifetime = 24 * time.Hour
	}
	if cfg.DeviceCodeLifetime <= 0 {
		cfg.DeviceCodeLifetime = 15 * time.Minute
	}
	if len(cfg.Clients) == 0 {
		cfg.Clients = []Client{{ID: DefaultClientID, Secret: DefaultClientSecret, Delegated: true}}
	}
	clients := make(map[string]Client, len(cfg.Clients))
	for _, c := range cfg.Clients {
		id, err := assign.ParseGUID("client id", c.ID)
		if err != nil {
			return nil, fmt.Errorf("graphsim: %w", err)
		}
		if _, dup := clients[id]; dup {
			return nil, fmt.Errorf("graphsim: client %s registered twice", id)
		}
		if c.Secret == "" && c.Certificate == nil && !c.Delegated {
			return nil, fmt.Errorf("graphsim: client %s has no secret, no certificate and no delegated flows", id)
		}
		c.ID = id
		if c.Name == "" {
			c.Name = "graphsim app"
		}
		clients[id] = c
	}
	extra := make([]string, len(cfg.Tenants))
	for i, tc := range cfg.Tenants {
		id, err := validateTenant(tc)
		if err != nil {
			return nil, err
		}
		if id == strings.ToLower(cfg.TenantID) {
			return nil, fmt.Errorf("graphsim: tenant %s is the default tenant (Config.TenantID)", id)
		}
		extra[i] = id
	}
	p, err := loadPKI()
	if err != nil {
		return nil, err
	}
	idKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("graphsim: listen: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		url:         baseURL(tcp.Addr()),
		tenant:      strings.ToLower(cfg.TenantID),
		start:       time.Now(),
		pageSize:    cfg.PageSize,
		tokenTTL:    cfg.TokenLifetime,
		rtTTL:       cfg.RefreshTokenLifetime,
		dcTTL:       cfg.DeviceCodeLifetime,
		autoAppr:    cfg.AutoApproveAfter,
		log:         logger,
		done:        make(chan struct{}),
		idKey:       idKey,
		idKid:       randomHex(8),
		userOID:     newGUID(),
		rng:         mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		faults:      cfg.Faults,
		revokeAfter: cfg.RevokeAfter,
		clients:     clients,
		tenants:     map[string]*tenantState{},
		access:      map[string]*accessToken{},
		refresh:     map[string]*refreshToken{},
		devices:     map[string]*deviceCode{},
		userCodes:   map[string]*deviceCode{},
	}
	s.home, _ = s.addTenantLocked(s.tenant, TenantConfig{Name: cfg.TenantName, WriteLimit: cfg.WriteLimit})
	for i, tc := range cfg.Tenants {
		if _, err := s.addTenantLocked(extra[i], tc); err != nil {
			_ = tcp.Close()
			return nil, err
		}
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Protocols:         protocols,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s.ln = tls.NewListener(tcp, &tls.Config{
		Certificates: []tls.Certificate{p.leaf},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s, nil
}

func baseURL(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "https://" + a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			ip = net.IPv6loopback
		} else {
			ip = net.IPv4(127, 0, 0, 1)
		}
	}
	return "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// URL is the server's origin, https://127.0.0.1:PORT. It is also the Graph
// resource: the token scope is URL()+"/.default".
func (s *Server) URL() string { return s.url }

// GraphBaseURL is the Graph root to configure clients with: URL()+"/beta".
func (s *Server) GraphBaseURL() string { return s.url + "/beta" }

// AuthorityHost is the identity platform host (AZURE_AUTHORITY_HOST); the
// authority is AuthorityHost()+"/"+TenantID(). MSAL must be created with
// WithInstanceDiscovery(false).
func (s *Server) AuthorityHost() string { return s.url }

// Authority is AuthorityHost()+"/"+TenantID().
func (s *Server) Authority() string { return s.url + "/" + s.tenant }

// TenantID is the simulated tenant (lower case).
func (s *Server) TenantID() string { return s.tenant }

// Scope is the client credentials scope for the simulated Graph,
// URL()+"/.default".
func (s *Server) Scope() string { return s.url + "/.default" }

// Close stops the server and closes every connection.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		_ = s.srv.Close()
		<-s.done
	})
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	return nil
}

// SetWriteLimit replaces the default tenant's write limit; see
// Tenant.SetWriteLimit.
func (s *Server) SetWriteLimit(l Limit) error { return s.DefaultTenant().SetWriteLimit(l) }

// SetRevokeAfter changes Config.RevokeAfter; it applies to every token,
// including those already issued.
func (s *Server) SetRevokeAfter(d time.Duration) {
	s.mu.Lock()
	s.revokeAfter = d
	s.mu.Unlock()
}

// AddConfiguration registers device configurations (GUIDs, any case) in
// the default tenant; see Tenant.AddConfiguration.
func (s *Server) AddConfiguration(ids ...string) { s.DefaultTenant().AddConfiguration(ids...) }

// AddPolicy registers policies of a kind other than device configurations
// (collection, one of PolicyCollections) in the default tenant.
func (s *Server) AddPolicy(collection string, ids ...string) error {
	return s.DefaultTenant().AddPolicy(collection, ids...)
}

// Configurations lists the default tenant's configuration ids in the order
// they were added.
func (s *Server) Configurations() []string { return s.DefaultTenant().Configurations() }

// Preassign adds a live assignment to the default tenant as if it had
// existed before the test; see Tenant.Preassign.
func (s *Server) Preassign(cfgID string, p assign.Path, t assign.Target) string {
	return s.DefaultTenant().Preassign(cfgID, p, t)
}

// Assignments returns a copy of the live assignments of one path of a
// configuration of the default tenant, in creation order.
func (s *Server) Assignments(cfgID string, p assign.Path) []Assignment {
	return s.DefaultTenant().Assignments(cfgID, p)
}

// Ledger returns every create applied through the API in the default
// tenant, in order, including those answered 504 or by a connection reset.
func (s *Server) Ledger() []LedgerEntry { return s.DefaultTenant().Ledger() }

// Duplicates counts the default tenant's live assignments beyond the first
// with the same configuration, path and target (assign.Target.Key).
func (s *Server) Duplicates() int { return s.DefaultTenant().Duplicates() }

// Stats returns a snapshot of the default tenant's counters; see
// Tenant.Stats.
func (s *Server) Stats() Stats { return s.DefaultTenant().Stats() }

// serveHTTP dispatches by path prefix: Graph, inspection, identity.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	p := r.URL.Path
	switch {
	case p == "/beta" || p == "/v1.0" || strings.HasPrefix(p, "/beta/") || strings.HasPrefix(p, "/v1.0/"):
		s.serveGraph(rec, r)
	case strings.HasPrefix(p, "/_sim/"):
		s.serveSim(rec, r)
	case p == "/devicelogin":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rec.WriteHeader(http.StatusOK)
		fmt.Fprintf(rec, "graphsim device login (simulator).\nApprove a code with: POST %s/_sim/approve?user_code=CODE\n", s.url)
	default:
		s.serveIdentity(rec, r)
	}
	// Paths never carry secrets here; queries may carry a user code only.
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "graphsim request",
		slog.String("method", r.Method), slog.String("path", p),
		slog.Int("status", rec.status), slog.String("request-id", rec.Header().Get("request-id")),
		slog.Duration("duration", time.Since(start)))
}

// recorder remembers the status for logging; Unwrap keeps Hijack reachable
// through http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func newGUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

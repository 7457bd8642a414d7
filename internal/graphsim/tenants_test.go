package graphsim_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

const (
	tenantB       = "bbbbbbbb-0000-4000-8000-00000000000b"
	tenantC       = "cccccccc-0000-4000-8000-00000000000c"
	tenantConsent = "c0000000-0000-4000-8000-0000000c0175"
	tenantGone    = "90000000-0000-4000-8000-000000090002"
	tenantOff     = "d0000000-0000-4000-8000-000000000112"
)

// tokenFor posts a client-credentials request for the default client to
// tenant's token endpoint.
func tokenFor(t *testing.T, s *graphsim.Server, tenant string) (int, tokenResponse) {
	t.Helper()
	return postForm(t, s.AuthorityHost()+"/"+tenant+"/oauth2/v2.0/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {graphsim.DefaultClientID},
		"client_secret": {graphsim.DefaultClientSecret},
		"scope":         {s.Scope()},
	})
}

func mustTokenFor(t *testing.T, s *graphsim.Server, tenant string) string {
	t.Helper()
	code, tr := tokenFor(t, s, tenant)
	if code != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token for %s: got %d %s %s, want 200", tenant, code, tr.Error, tr.ErrorDesc)
	}
	return tr.AccessToken
}

type accessClaims struct {
	Tid   string   `json:"tid"`
	AppID string   `json:"appid"`
	AppAC string   `json:"appidacr"`
	Idtyp string   `json:"idtyp"`
	Oid   string   `json:"oid"`
	Roles []string `json:"roles"`
	Scp   string   `json:"scp"`
	Aud   string   `json:"aud"`
	Exp   int64    `json:"exp"`
	Ver   string   `json:"ver"`
}

// claimsOf reads an access token's claims the way code reads a real Entra
// token's without verifying it: the second dot-separated segment.
func claimsOf(t *testing.T, tok string) accessClaims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != "gs1" {
		t.Fatalf("token %.10q... is not gs1.<claims>.<sig>", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("claims segment: %v", err)
	}
	var c accessClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("claims %s: %v", b, err)
	}
	return c
}

type orgJSON struct {
	ID              string `json:"id"`
	DisplayName     string `json:"displayName"`
	VerifiedDomains []struct {
		Name      string `json:"name"`
		IsDefault bool   `json:"isDefault"`
	} `json:"verifiedDomains"`
}

func organizationOf(t *testing.T, s *graphsim.Server, tok string) orgJSON {
	t.Helper()
	r := call(t, http.MethodGet, s.GraphBaseURL()+"/organization", tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /organization: %d %s", r.status, r.body)
	}
	var out struct {
		Context string    `json:"@odata.context"`
		Value   []orgJSON `json:"value"`
	}
	r.decode(t, &out)
	if len(out.Value) != 1 || !strings.HasSuffix(out.Context, "/$metadata#organization") {
		t.Fatalf("GET /organization = %s, want one organization", r.body)
	}
	return out.Value[0]
}

func TestTenantsHaveSeparateData(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{
		TenantName: "Contoso",
		Tenants:    []graphsim.TenantConfig{{ID: strings.ToUpper(tenantB), Name: "Fabrikam"}, {ID: tenantC}},
	})
	if got := s.TenantIDs(); !slices.Equal(got, []string{s.TenantID(), tenantB, tenantC}) {
		t.Fatalf("TenantIDs = %v", got)
	}
	a, b := s.DefaultTenant(), s.Tenant("{"+strings.ToUpper(tenantB)+"}")
	if b == nil || b.ID() != tenantB || b.Name() != "Fabrikam" || a.ID() != s.TenantID() || s.Tenant(tenantConsent) != nil {
		t.Fatalf("Tenant lookups: default %v, B %v", a, b)
	}
	if c := s.Tenant(tenantC); c.Name() != "graphsim tenant cccccccc" || c.Authority() != s.AuthorityHost()+"/"+tenantC {
		t.Fatalf("tenant C: name %q authority %q", c.Name(), c.Authority())
	}
	s.AddConfiguration(cfgA) // the default tenant
	b.AddConfiguration(cfgB)
	preB := b.Preassign(cfgB, "", assign.Target{Type: assign.TargetAllDevices})

	tokA, tokB := appToken(t, s), mustTokenFor(t, s, strings.ToUpper(tenantB))
	ca, cb := claimsOf(t, tokA), claimsOf(t, tokB)
	if ca.Tid != s.TenantID() || cb.Tid != tenantB {
		t.Fatalf("tid: A %q, B %q", ca.Tid, cb.Tid)
	}
	for _, c := range []accessClaims{ca, cb} {
		if c.AppID != graphsim.DefaultClientID || c.AppAC != "1" || c.Idtyp != "app" || !slices.Equal(c.Roles, []string{graphsim.PermissionReadWrite, graphsim.PermissionGroupRead}) ||
			c.Scp != "" || c.Aud != s.URL() || c.Ver != "1.0" || c.Oid == "" || time.Until(time.Unix(c.Exp, 0)) < 50*time.Minute {
			t.Fatalf("app token claims %+v", c)
		}
	}
	if ca.Oid == cb.Oid {
		t.Fatalf("one service principal object id %s in two tenants", ca.Oid)
	}

	// /organization names the token's tenant.
	if o := organizationOf(t, s, tokA); o.ID != s.TenantID() || o.DisplayName != "Contoso" || len(o.VerifiedDomains) != 1 || o.VerifiedDomains[0].Name != "contoso.onmicrosoft.com" {
		t.Fatalf("organization with A's token: %+v", o)
	}
	if o := organizationOf(t, s, tokB); o.ID != tenantB || o.DisplayName != "Fabrikam" {
		t.Fatalf("organization with B's token: %+v", o)
	}
	if r := call(t, http.MethodGet, s.URL()+"/v1.0/organization/"+tenantB, tokB, nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"displayName":"Fabrikam"`) {
		t.Fatalf("GET /organization/{B} with B's token: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodGet, s.GraphBaseURL()+"/organization/"+s.TenantID(), tokB, nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /organization/{A} with B's token: %d, want 404", r.status)
	}
	if r := call(t, http.MethodGet, s.GraphBaseURL()+"/organization", "", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("GET /organization without a token: %d, want 401", r.status)
	}

	// B's token does not see A's configuration, and A's does not see B's.
	cfgURL := func(id string) string { return s.GraphBaseURL() + "/deviceManagement/deviceConfigurations/" + id }
	for _, tt := range []struct {
		name, tok, cfg string
	}{{"B reads A", tokB, cfgA}, {"A reads B", tokA, cfgB}} {
		for _, u := range []string{cfgURL(tt.cfg), cfgURL(tt.cfg) + "/assignments", cfgURL(tt.cfg) + "/assignments/" + preB} {
			if r := call(t, http.MethodGet, u, tt.tok, nil); r.status != http.StatusNotFound || r.errorCode(t) != "ResourceNotFound" {
				t.Fatalf("%s: GET %s = %d %s, want 404", tt.name, u, r.status, r.body)
			}
		}
	}
	if r := call(t, http.MethodPost, cfgURL(cfgA)+"/assignments", tokB, groupBody(groupN(1))); r.status != http.StatusNotFound {
		t.Fatalf("B creates in A's configuration: %d, want 404", r.status)
	}
	if r := call(t, http.MethodDelete, cfgURL(cfgB)+"/assignments/"+preB, tokA, nil); r.status != http.StatusNotFound {
		t.Fatalf("A deletes B's assignment: %d, want 404", r.status)
	}
	// Each sees its own.
	if ids, _ := listAll(t, cfgURL(cfgB)+"/assignments", tokB); !slices.Equal(ids, []string{preB}) {
		t.Fatalf("B lists its configuration: %v, want [%s]", ids, preB)
	}
	if r := call(t, http.MethodGet, cfgURL(cfgA), tokA, nil); r.status != http.StatusOK {
		t.Fatalf("A reads its configuration: %d", r.status)
	}

	// Creates land in the token's tenant only.
	r := call(t, http.MethodPost, cfgURL(cfgB)+"/assignments", tokB, groupBody(groupN(2)))
	if r.status != http.StatusCreated {
		t.Fatalf("B creates: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodPost, cfgURL(cfgB)+"/assignments", tokB, groupBody(groupN(2))); r.status != http.StatusCreated {
		t.Fatalf("B creates a duplicate: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodPost, cfgURL(cfgA)+"/assignments", tokA, groupBody(groupN(3))); r.status != http.StatusCreated {
		t.Fatalf("A creates: %d %s", r.status, r.body)
	}
	ledA, ledB := s.Ledger(), b.Ledger()
	if len(ledA) != 1 || ledA[0].ConfigurationID != cfgA || ledA[0].Seq != 1 || len(ledB) != 2 || ledB[0].ConfigurationID != cfgB || ledB[1].Seq != 2 {
		t.Fatalf("ledgers: A %+v, B %+v", ledA, ledB)
	}
	if len(s.Tenant(tenantC).Ledger()) != 0 || len(s.Assignments(cfgB, "")) != 0 || len(b.Assignments(cfgB, "")) != 3 || len(b.Assignments(cfgA, "")) != 0 {
		t.Fatalf("assignments leaked between tenants")
	}
	if s.Duplicates() != 0 || b.Duplicates() != 1 {
		t.Fatalf("duplicates: A %d, B %d; want 0, 1", s.Duplicates(), b.Duplicates())
	}
	if !slices.Equal(s.Configurations(), []string{cfgA}) || !slices.Equal(b.Configurations(), []string{cfgB}) {
		t.Fatalf("configurations: A %v, B %v", s.Configurations(), b.Configurations())
	}

	// Stats are per tenant.
	sa, sb, sc := s.Stats(), b.Stats(), s.Tenant(tenantC).Stats()
	if sa.TokensIssued != 1 || sb.TokensIssued != 1 || sa.TokenRequests != 1 || sb.TokenRequests != 1 || sc.TokenRequests != 0 {
		t.Fatalf("token stats: A %+v, B %+v", sa, sb)
	}
	if sa.Created != 1 || sb.Created != 2 || sb.Duplicates != 1 || sa.Duplicates != 0 || sc.Reads+sc.Writes != 0 {
		t.Fatalf("create stats: A %+v, B %+v, C %+v", sa, sb, sc)
	}
	if sa.Writes != 2 || sa.Methods["DELETE"].S4xx != 1 || sb.Writes != 3 || sb.Methods["POST"].S4xx != 1 || sb.Methods["POST"].S2xx != 2 {
		t.Fatalf("write stats: A %+v, B %+v", sa, sb)
	}
	if sa.Unauthorized != 1 || sb.Unauthorized != 0 {
		t.Fatalf("a request without a token counts in the default tenant: A %d, B %d", sa.Unauthorized, sb.Unauthorized)
	}

	// Unassign and RejectTarget address one tenant.
	b.RejectTarget(groupN(9), http.StatusBadRequest, "BadRequest", "no such group in B")
	if r := call(t, http.MethodPost, cfgURL(cfgA)+"/assignments", tokA, groupBody(groupN(9))); r.status != http.StatusCreated {
		t.Fatalf("A creates for a group B rejects: %d", r.status)
	}
	if r := call(t, http.MethodPost, cfgURL(cfgB)+"/assignments", tokB, groupBody(groupN(9))); r.status != http.StatusBadRequest {
		t.Fatalf("B creates for a group it rejects: %d", r.status)
	}
	if s.Unassign(cfgB, "", preB) || !b.Unassign(cfgB, "", preB) {
		t.Fatalf("Unassign crossed tenants")
	}

	// The inspection endpoints take tenant=.
	get := func(path string, v any) int {
		r := call(t, http.MethodGet, s.URL()+path, "", nil)
		if r.status == http.StatusOK && v != nil {
			r.decode(t, v)
		}
		return r.status
	}
	var led []graphsim.LedgerEntry
	if get("/_sim/ledger?tenant="+strings.ToUpper(tenantB), &led) != 200 || len(led) != 2 {
		t.Fatalf("/_sim/ledger?tenant=B = %+v", led)
	}
	if get("/_sim/ledger", &led) != 200 || len(led) != 2 || led[1].Target.GroupID != groupN(9) {
		t.Fatalf("/_sim/ledger = %+v", led)
	}
	var st graphsim.Stats
	if get("/_sim/stats?tenant="+tenantB, &st) != 200 || st.Created != 2 {
		t.Fatalf("/_sim/stats?tenant=B = %+v", st)
	}
	var cfgs []string
	if get("/_sim/configurations?tenant="+tenantB, &cfgs) != 200 || !slices.Equal(cfgs, []string{cfgB}) {
		t.Fatalf("/_sim/configurations?tenant=B = %v", cfgs)
	}
	var as []graphsim.Assignment
	if get("/_sim/assignments?tenant="+tenantB+"&configurationId="+cfgB, &as) != 200 || len(as) != 2 {
		t.Fatalf("/_sim/assignments?tenant=B = %+v", as)
	}
	var tenants []struct {
		ID, Name, Refuse string
		Default          bool
	}
	if get("/_sim/tenants", &tenants) != 200 || len(tenants) != 3 || !tenants[0].Default || tenants[1].ID != tenantB || tenants[1].Name != "Fabrikam" || tenants[1].Default {
		t.Fatalf("/_sim/tenants = %+v", tenants)
	}
	if code := get("/_sim/stats?tenant="+tenantConsent, nil); code != http.StatusNotFound {
		t.Fatalf("/_sim/stats for an unknown tenant: %d, want 404", code)
	}
}

func TestTenantWriteWindowsAreIndependent(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{
		WriteLimit: graphsim.Limit{N: 3, Window: time.Minute},
		Tenants:    []graphsim.TenantConfig{{ID: tenantB, WriteLimit: graphsim.Limit{N: 2, Window: time.Minute}}, {ID: tenantC}},
	})
	for _, id := range s.TenantIDs() {
		s.Tenant(id).AddConfiguration(cfgA) // the same configuration id in each tenant
	}
	tokA, tokB, tokC := appToken(t, s), mustTokenFor(t, s, tenantB), mustTokenFor(t, s, tenantC)
	statuses := func(tok string, n int) string {
		var out []int
		for _, r := range postN(t, s, tok, n) {
			out = append(out, r.status)
		}
		return fmt.Sprint(out)
	}
	if got := statuses(tokA, 4); got != "[201 201 201 429]" {
		t.Fatalf("A at its limit of 3: %s", got)
	}
	if got := statuses(tokB, 3); got != "[201 201 429]" {
		t.Fatalf("B with A throttled, limit 2: %s", got)
	}
	if got := statuses(tokC, 6); got != "[201 201 201 201 201 201]" {
		t.Fatalf("C (unlimited) with A and B throttled: %s", got)
	}
	if err := s.Tenant(tenantB).SetWriteLimit(graphsim.Limit{}); err != nil {
		t.Fatal(err)
	}
	if got := statuses(tokB, 1); got != "[201]" {
		t.Fatalf("B after lifting its limit: %s", got)
	}
	if got := statuses(tokA, 1); got != "[429]" {
		t.Fatalf("A after B's limit was lifted: %s", got)
	}
	sa, sb, sc := s.Stats(), s.Tenant(tenantB).Stats(), s.Tenant(tenantC).Stats()
	if sa.Throttled != 2 || sa.Created != 3 || sb.Throttled != 1 || sb.Created != 3 || sc.Throttled != 0 || sc.Created != 6 {
		t.Fatalf("stats: A %+v, B %+v, C %+v", sa, sb, sc)
	}
	if len(s.Ledger()) != 3 || len(s.Tenant(tenantB).Ledger()) != 3 || len(s.Tenant(tenantC).Ledger()) != 6 {
		t.Fatalf("ledgers: %d, %d, %d", len(s.Ledger()), len(s.Tenant(tenantB).Ledger()), len(s.Tenant(tenantC).Ledger()))
	}
}

// aadBody is the identity platform's error body.
type aadBody struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	Codes         []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	ErrorURI      string `json:"error_uri"`
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// wantAAD checks an identity platform error answer in full.
func wantAAD(t *testing.T, r result, status int, oauthErr string, code int, mentions ...string) {
	t.Helper()
	var b aadBody
	r.decode(t, &b)
	prefix := fmt.Sprintf("AADSTS%d: ", code)
	if r.status != status || b.Error != oauthErr || !slices.Equal(b.Codes, []int{code}) || !strings.HasPrefix(b.Description, prefix) {
		t.Fatalf("got %d %s, want %d %s %s", r.status, r.body, status, oauthErr, prefix)
	}
	if !guidRE.MatchString(b.TraceID) || !guidRE.MatchString(b.CorrelationID) || b.Timestamp == "" ||
		!strings.Contains(b.Description, "Trace ID: "+b.TraceID) || r.header.Get("x-ms-request-id") != b.TraceID {
		t.Fatalf("error body lacks trace id, correlation id or timestamp: %s", r.body)
	}
	if _, err := time.Parse("2006-01-02 15:04:05Z", b.Timestamp); err != nil {
		t.Fatalf("timestamp %q: %v", b.Timestamp, err)
	}
	for _, m := range mentions {
		if !strings.Contains(b.Description, m) {
			t.Fatalf("error_description %q does not mention %q", b.Description, m)
		}
	}
}

func postToken(t *testing.T, s *graphsim.Server, tenant string, form url.Values) result {
	t.Helper()
	return postFormResult(t, s.AuthorityHost()+"/"+tenant+"/oauth2/v2.0/token", form)
}

// postFormResult posts a form and returns the raw answer.
func postFormResult(t *testing.T, u string, form url.Values) result {
	t.Helper()
	resp, err := client.PostForm(u, form)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func TestTenantRefusesTheApp(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{
		Clients: []graphsim.Client{{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Delegated: true, Name: "bulkassign"}},
		Tenants: []graphsim.TenantConfig{
			{ID: tenantConsent, Refuse: graphsim.RefuseConsent},
			{ID: tenantGone, Refuse: graphsim.RefuseNotFound},
			{ID: tenantOff, Refuse: "disabled"},
		},
	})
	form := func(secret string) url.Values {
		return url.Values{
			"grant_type": {"client_credentials"}, "client_id": {graphsim.DefaultClientID},
			"client_secret": {secret}, "scope": {s.Scope()},
		}
	}
	for _, tt := range []struct {
		tenant   string
		oauthErr string
		code     int
		mentions []string
	}{
		{tenantConsent, "unauthorized_client", 700016, []string{"Application with identifier '" + graphsim.DefaultClientID + "' was not found in the directory '" + tenantConsent + "'"}},
		{tenantGone, "invalid_tenant", 90002, []string{"Tenant '" + tenantGone + "' not found"}},
		{tenantOff, "unauthorized_client", 7000112, []string{"Application '" + graphsim.DefaultClientID + "'(bulkassign) is disabled."}},
	} {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			// The refusal comes before the credential is checked.
			for _, secret := range []string{graphsim.DefaultClientSecret, "not-the-secret"} {
				wantAAD(t, postToken(t, s, tt.tenant, form(secret)), http.StatusBadRequest, tt.oauthErr, tt.code, tt.mentions...)
			}
			// MSAL, as the product calls it, surfaces the same error.
			cred, _ := confidential.NewCredFromSecret(graphsim.DefaultClientSecret)
			app, err := confidential.New(s.AuthorityHost()+"/"+tt.tenant, graphsim.DefaultClientID, cred, confidential.WithInstanceDiscovery(false))
			if err != nil {
				t.Fatal(err)
			}
			_, err = app.AcquireTokenByCredential(context.Background(), []string{s.Scope()})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("AADSTS%d", tt.code)) {
				t.Fatalf("MSAL: %v, want AADSTS%d", err, tt.code)
			}
			// Delegated flows are refused alike.
			dc := postFormResult(t, s.AuthorityHost()+"/"+tt.tenant+"/oauth2/v2.0/devicecode", url.Values{
				"client_id": {graphsim.DefaultClientID}, "scope": {s.URL() + "/.default"},
			})
			wantAAD(t, dc, http.StatusBadRequest, tt.oauthErr, tt.code)
			st := s.Tenant(tt.tenant).Stats()
			if st.TokensIssued != 0 || st.TokenErrors != st.TokenRequests || st.TokenRequests < 2 {
				t.Fatalf("stats %+v: want every token request refused", st)
			}
		})
	}
	// A tenant that does not exist has no discovery document either.
	wantAAD(t, call(t, http.MethodGet, s.AuthorityHost()+"/"+tenantGone+"/v2.0/.well-known/openid-configuration", "", nil), http.StatusBadRequest, "invalid_tenant", 90002)
	// Consent granted later: tokens are issued from then on.
	if err := s.Tenant(tenantConsent).SetRefuse(graphsim.RefuseNone); err != nil {
		t.Fatal(err)
	}
	if tok := mustTokenFor(t, s, tenantConsent); claimsOf(t, tok).Tid != tenantConsent {
		t.Fatalf("token after consent is not for the tenant")
	}
	if err := s.Tenant(tenantConsent).SetRefuse("maybe"); err == nil {
		t.Fatalf("SetRefuse(maybe): nil error")
	}
	// The default tenant is unaffected.
	appToken(t, s)
}

func TestTenantTransientTokenFailures(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: tenantB, TokenFailures: 2}}})
	for i := range 2 {
		code, tr := tokenFor(t, s, tenantB)
		if code != http.StatusServiceUnavailable || tr.Error != "temporarily_unavailable" || !slices.Equal(tr.ErrorCodes, []int{90033}) || !strings.HasPrefix(tr.ErrorDesc, "AADSTS90033: ") {
			t.Fatalf("token request %d: got %d %s %v %q, want 503 temporarily_unavailable AADSTS90033", i, code, tr.Error, tr.ErrorCodes, tr.ErrorDesc)
		}
	}
	appToken(t, s) // other tenants are not affected
	if tok := mustTokenFor(t, s, tenantB); claimsOf(t, tok).Tid != tenantB {
		t.Fatalf("third token is not for B")
	}
	if st := s.Tenant(tenantB).Stats(); st.TokenRequests != 3 || st.TokenUnavailable != 2 || st.TokenErrors != 2 || st.TokensIssued != 1 {
		t.Fatalf("B stats %+v", st)
	}
	// A client that retries gets its token: MSAL through a retry loop.
	s.Tenant(tenantB).SetTokenFailures(1)
	cred, _ := confidential.NewCredFromSecret(graphsim.DefaultClientSecret)
	app, err := confidential.New(s.Tenant(tenantB).Authority(), graphsim.DefaultClientID, cred, confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for range 3 {
		res, err := app.AcquireTokenByCredential(context.Background(), []string{s.Scope()})
		if err == nil {
			if claimsOf(t, res.AccessToken).Tid != tenantB {
				t.Fatalf("MSAL token not for B")
			}
			break
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "AADSTS90033") {
		t.Fatalf("MSAL errors %v, want one AADSTS90033 then a token", errs)
	}
}

func TestTenantWithoutPermission(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: tenantB, Name: "No consent to Intune", NoPermission: true}}})
	b := s.Tenant(tenantB)
	b.AddConfiguration(cfgA)
	tok := mustTokenFor(t, s, tenantB)
	if c := claimsOf(t, tok); c.Tid != tenantB || len(c.Roles) != 0 || c.Idtyp != "app" {
		t.Fatalf("claims %+v: want B's tid and no roles", c)
	}
	coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
	for _, r := range []result{
		call(t, http.MethodPost, coll, tok, groupBody(groupN(1))),
		call(t, http.MethodGet, coll, tok, nil),
	} {
		if r.status != http.StatusForbidden || r.errorCode(t) != "Forbidden" || !strings.Contains(string(r.body), graphsim.PermissionReadWrite) {
			t.Fatalf("got %d %s, want 403 Forbidden naming %s", r.status, r.body, graphsim.PermissionReadWrite)
		}
	}
	if o := organizationOf(t, s, tok); o.ID != tenantB || o.DisplayName != "No consent to Intune" {
		t.Fatalf("organization %+v", o)
	}
	if st := b.Stats(); st.Forbidden != 2 || st.Created != 0 || len(b.Ledger()) != 0 || st.Methods["POST"].S4xx != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTenantCertificateSignIn(t *testing.T) {
	t.Parallel()
	reg, _ := getCerts(t)
	const appID = "e0000000-0000-4000-8000-00000000000e"
	s := newServer(t, graphsim.Config{
		Clients: []graphsim.Client{{ID: appID, Certificate: reg.cert}},
		Tenants: []graphsim.TenantConfig{{ID: tenantB}},
	})
	s.Tenant(tenantB).AddConfiguration(cfgA)
	cred, err := confidential.NewCredFromCert([]*x509.Certificate{reg.cert}, reg.key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{tenantB, s.TenantID()} {
		app, err := confidential.New(s.AuthorityHost()+"/"+tenant, appID, cred, confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		res, err := app.AcquireTokenByCredential(context.Background(), []string{s.Scope()})
		if err != nil {
			t.Fatalf("certificate sign-in to %s: %v", tenant, err)
		}
		if c := claimsOf(t, res.AccessToken); c.Tid != tenant || c.AppID != appID || c.AppAC != "2" {
			t.Fatalf("claims %+v, want tid %s", c, tenant)
		}
		want := http.StatusOK
		if tenant != tenantB {
			want = http.StatusNotFound // the configuration is B's
		}
		if r := graphGET(t, s, res.AccessToken); r.status != want {
			t.Fatalf("Graph with %s's token: %d, want %d", tenant, r.status, want)
		}
	}
}

func TestRefreshTokenRedeemedForAnotherTenant(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{
		AutoApproveAfter: time.Millisecond,
		Tenants:          []graphsim.TenantConfig{{ID: tenantB, Name: "Customer"}, {ID: tenantConsent, Refuse: graphsim.RefuseConsent}},
	})
	s.Tenant(tenantB).AddConfiguration(cfgA)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pca := newPublic(t, s, graphsim.DefaultClientID)
	scopes := []string{s.URL() + "/DeviceManagementConfiguration.ReadWrite.All"}
	dc, err := pca.AcquireTokenByDeviceCode(ctx, scopes)
	if err != nil {
		t.Fatal(err)
	}
	home, err := dc.AuthenticationResult(ctx)
	if err != nil {
		t.Fatalf("device code sign-in: %v", err)
	}
	if c := claimsOf(t, home.AccessToken); c.Tid != s.TenantID() || c.Idtyp != "user" || c.Scp != graphsim.PermissionReadWrite || len(c.Roles) != 0 {
		t.Fatalf("delegated claims %+v", c)
	}
	// The partner's account acquires a token for the customer tenant by
	// naming it: MSAL redeems the refresh token at the customer's authority.
	cust, err := pca.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(home.Account), public.WithTenantID(tenantB))
	if err != nil {
		t.Fatalf("AcquireTokenSilent for tenant B: %v", err)
	}
	if c := claimsOf(t, cust.AccessToken); c.Tid != tenantB || c.Idtyp != "user" {
		t.Fatalf("customer token claims %+v", c)
	}
	if r := graphGET(t, s, cust.AccessToken); r.status != http.StatusOK {
		t.Fatalf("Graph with the customer token: %d %s", r.status, r.body)
	}
	if o := organizationOf(t, s, cust.AccessToken); o.DisplayName != "Customer" {
		t.Fatalf("organization %+v", o)
	}
	if st := s.Tenant(tenantB).Stats(); st.TokensIssued != 1 || st.Reads != 2 {
		t.Fatalf("B stats %+v", st)
	}
	// A tenant that refuses the app refuses the refresh token too.
	_, err = pca.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(home.Account), public.WithTenantID(tenantConsent))
	wantAADError(t, err, http.StatusBadRequest, "unauthorized_client", "AADSTS700016")

	// A device code is redeemed where it was requested.
	dcB := postFormResult(t, s.AuthorityHost()+"/"+tenantB+"/oauth2/v2.0/devicecode", url.Values{
		"client_id": {graphsim.DefaultClientID}, "scope": {strings.Join(scopes, " ")},
	})
	var code struct {
		DeviceCode string `json:"device_code"`
	}
	dcB.decode(t, &code)
	time.Sleep(5 * time.Millisecond)
	redeem := url.Values{"grant_type": {"device_code"}, "client_id": {graphsim.DefaultClientID}, "device_code": {code.DeviceCode}}
	wantAAD(t, postToken(t, s, s.TenantID(), redeem), http.StatusBadRequest, "invalid_grant", 70000, tenantB)
	if r := postToken(t, s, tenantB, redeem); r.status != http.StatusOK {
		t.Fatalf("device code redeemed at its tenant: %d %s", r.status, r.body)
	}
}

func TestTenantConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		tenants []graphsim.TenantConfig
		want    string
	}{
		{"not a GUID", []graphsim.TenantConfig{{ID: "fabrikam"}}, "not a GUID"},
		{"twice", []graphsim.TenantConfig{{ID: tenantB}, {ID: strings.ToUpper(tenantB)}}, "twice"},
		{"the default tenant", []graphsim.TenantConfig{{ID: graphsim.DefaultTenantID}}, "default tenant"},
		{"bad refusal", []graphsim.TenantConfig{{ID: tenantB, Refuse: "sometimes"}}, "Refuse"},
		{"negative failures", []graphsim.TenantConfig{{ID: tenantB, TokenFailures: -1}}, "TokenFailures"},
		{"bad limit", []graphsim.TenantConfig{{ID: tenantB, WriteLimit: graphsim.Limit{N: 1}}}, "Window"},
	} {
		if s, err := graphsim.New(graphsim.Config{Tenants: tt.tenants}); err == nil || !strings.Contains(err.Error(), tt.want) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("%s: New = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	s := newServer(t, graphsim.Config{})
	b, err := s.AddTenant(graphsim.TenantConfig{ID: tenantB, Name: "Later"})
	if err != nil || b.ID() != tenantB {
		t.Fatalf("AddTenant: %v, %v", b, err)
	}
	if _, err := s.AddTenant(graphsim.TenantConfig{ID: tenantB}); err == nil {
		t.Fatalf("AddTenant twice: nil error")
	}
	if tok := mustTokenFor(t, s, tenantB); claimsOf(t, tok).Tid != tenantB {
		t.Fatalf("token for a tenant added at run time")
	}
}

func TestTenantFile(t *testing.T) {
	t.Parallel()
	write := tempWriter(t)
	old := write("old.json", `{"configurations":["`+cfgA+`"],"existing":[{"configurationId":"`+cfgA+`","path":"","target":{"@odata.type":"#microsoft.graph.allDevicesAssignmentTarget"}}]}`)
	s := newServer(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: tenantC, Name: "Configured"}}})
	ids, err := s.LoadTenantFile(old)
	if err != nil || !slices.Equal(ids, []string{cfgA}) || len(s.Assignments(cfgA, "")) != 1 || len(s.TenantIDs()) != 2 {
		t.Fatalf("old format: %v, %v", ids, err)
	}

	multi := write("multi.json", `{
	  "name": "Partner",
	  "configurations": ["`+cfgB+`"],
	  "tenants": [
	    {"id": "`+strings.ToUpper(tenantB)+`", "name": "Fabrikam", "writeLimit": "1/1m", "tokenFailures": 1,
	     "configurations": ["`+cfgA+`"],
	     "existing": [{"configurationId": "`+cfgA+`", "path": "", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "`+groupN(1)+`"}}]},
	    {"id": "`+tenantConsent+`", "refuse": "consent"},
	    {"id": "`+tenantC+`", "noPermission": true, "configurations": ["`+cfgB+`"]}
	  ]}`)
	if ids, err = s.LoadTenantFile(multi); err != nil || !slices.Equal(ids, []string{cfgB}) {
		t.Fatalf("LoadTenantFile: %v, %v", ids, err)
	}
	if got := s.TenantIDs(); !slices.Equal(got, []string{s.TenantID(), tenantC, tenantB, tenantConsent}) {
		t.Fatalf("TenantIDs = %v", got)
	}
	b, c := s.Tenant(tenantB), s.Tenant(tenantC)
	if s.DefaultTenant().Name() != "Partner" || b.Name() != "Fabrikam" || c.Name() != "Configured" {
		t.Fatalf("names %q %q %q", s.DefaultTenant().Name(), b.Name(), c.Name())
	}
	if !slices.Equal(b.Configurations(), []string{cfgA}) || len(b.Assignments(cfgA, "")) != 1 || !slices.Equal(c.Configurations(), []string{cfgB}) {
		t.Fatalf("data: B %v %v, C %v", b.Configurations(), b.Assignments(cfgA, ""), c.Configurations())
	}
	if code, _ := tokenFor(t, s, tenantB); code != http.StatusServiceUnavailable {
		t.Fatalf("B's first token: %d, want 503 (tokenFailures 1)", code)
	}
	tokB := mustTokenFor(t, s, tenantB)
	if fmt.Sprint(postN(t, s, tokB, 2)[1].status) != "429" {
		t.Fatalf("B's writeLimit 1/1m not applied")
	}
	if code, tr := tokenFor(t, s, tenantConsent); code != http.StatusBadRequest || !slices.Equal(tr.ErrorCodes, []int{700016}) {
		t.Fatalf("consent-refusing tenant: %d %v", code, tr.ErrorCodes)
	}
	if r := call(t, http.MethodGet, s.GraphBaseURL()+assign.Path("").AssignmentsPath(cfgB), mustTokenFor(t, s, tenantC), nil); r.status != http.StatusForbidden {
		t.Fatalf("C noPermission: %d, want 403", r.status)
	}

	for name, body := range map[string]string{
		"bad tenant id": `{"tenants":[{"id":"nope"}]}`,
		"bad refuse":    `{"tenants":[{"id":"` + tenantB + `","refuse":"always"}]}`,
		"bad limit":     `{"tenants":[{"id":"` + tenantB + `","writeLimit":"lots"}]}`,
		"twice":         `{"tenants":[{"id":"` + tenantCID + `"},{"id":"` + tenantCID + `"}]}`,
		"unknown key":   `{"tenants":[{"id":"` + tenantCID + `","colour":"blue"}]}`,
		"bad existing":  `{"configurations":["` + cfgA + `"],"tenants":[{"id":"` + tenantCID + `","existing":[{"configurationId":"x"}]}]}`,
	} {
		before := len(s.TenantIDs())
		cfgsBefore := len(s.Configurations())
		if _, err := s.LoadTenantFile(write("bad.json", body)); err == nil {
			t.Fatalf("%s: LoadTenantFile = nil error", name)
		}
		if len(s.TenantIDs()) != before || len(s.Configurations()) != cfgsBefore {
			t.Fatalf("%s: a bad file was partly applied", name)
		}
	}
}

const tenantCID = "ccccdddd-0000-4000-8000-00000000000d"

// TestPolicies: policies of kinds bulkassign does not assign, seeded from
// a tenant file or added, answer a GET by id in their own collection and
// tenant only.
func TestPolicies(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "tenant.json")
	body := `{"configurations": ["` + cfgA + `"],
	  "configurationPolicies": ["` + strings.ToUpper(cfgB) + `"],
	  "tenants": [{"id": "` + tenantB + `", "groupPolicyConfigurations": ["` + cfgA + `"]}]}`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, graphsim.Config{})
	if _, err := s.LoadTenantFile(p); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPolicy("deviceCompliancePolicies", groupN(7)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPolicy("mobileApps", groupN(8)); err == nil {
		t.Fatal("AddPolicy of an unknown collection: nil error")
	}
	tok, tokB := appToken(t, s), mustTokenFor(t, s, tenantB)
	for _, tc := range []struct {
		token, collection, id string
		want                  int
	}{
		{tok, "configurationPolicies", cfgB, http.StatusOK},
		{tok, "deviceCompliancePolicies", groupN(7), http.StatusOK},
		{tok, "groupPolicyConfigurations", cfgA, http.StatusNotFound}, // tenant B's
		{tokB, "groupPolicyConfigurations", cfgA, http.StatusOK},
		{tok, "deviceCompliancePolicies", cfgB, http.StatusNotFound}, // another kind's
		{tok, "configurationPolicies", cfgA, http.StatusNotFound},    // a device configuration
		{tok, "configurationPolicies", cfgB + "/settings", http.StatusBadRequest},
	} {
		r := call(t, http.MethodGet, s.GraphBaseURL()+"/deviceManagement/"+tc.collection+"/"+tc.id+"?$select=id", tc.token, nil)
		if r.status != tc.want {
			t.Errorf("GET %s/%s = %d, want %d: %s", tc.collection, tc.id, r.status, tc.want, r.body)
		}
		if r.status == http.StatusOK {
			var got struct{ ID string }
			if r.decode(t, &got); got.ID != tc.id {
				t.Errorf("GET %s/%s: id %q", tc.collection, tc.id, got.ID)
			}
		}
	}
	// A device configuration's own GET does not see them.
	if r := call(t, http.MethodGet, s.GraphBaseURL()+"/deviceManagement/deviceConfigurations/"+cfgB, tok, nil); r.status != http.StatusNotFound {
		t.Errorf("GET deviceConfigurations/%s = %d, want 404", cfgB, r.status)
	}
}

// tempWriter writes files into a fresh temporary directory: write(name,
// body) returns the file's path.
func tempWriter(t *testing.T) func(name, body string) string {
	dir := t.TempDir()
	return func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

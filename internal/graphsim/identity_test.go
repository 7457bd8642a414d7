package graphsim_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

type testCert struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

func makeCert(cn string) (testCert, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return testCert{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return testCert{}, err
	}
	cert, err := x509.ParseCertificate(der)
	return testCert{cert, key}, err
}

// Two RSA certificates, generated once: the registered one and a stranger.
var certs = sync.OnceValues(func() ([2]testCert, error) {
	a, err := makeCert("bulkassign test app")
	if err != nil {
		return [2]testCert{}, err
	}
	b, err := makeCert("unregistered")
	return [2]testCert{a, b}, err
})

func getCerts(t *testing.T) (registered, stranger testCert) {
	t.Helper()
	c, err := certs()
	if err != nil {
		t.Fatalf("generate certificates: %v", err)
	}
	return c[0], c[1]
}

// graphGET checks that a token is accepted by Graph.
func graphGET(t *testing.T, s *graphsim.Server, token string) result {
	t.Helper()
	return call(t, http.MethodGet, s.GraphBaseURL()+"/deviceManagement/deviceConfigurations/"+cfgA+"/assignments", token, nil)
}

// wantAADError checks an MSAL error carries the platform's error and code.
func wantAADError(t *testing.T, err error, status int, oauthErr, aadsts string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %s", oauthErr, aadsts)
	}
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) {
		t.Fatalf("got %v (%T), want an msal CallErr", err, err)
	}
	if ce.Resp.StatusCode != status {
		t.Fatalf("status = %d, want %d (%v)", ce.Resp.StatusCode, status, err)
	}
	if !strings.Contains(err.Error(), `"error":"`+oauthErr+`"`) || !strings.Contains(err.Error(), aadsts) {
		t.Fatalf("error = %v, want %s and %s", err, oauthErr, aadsts)
	}
}

func TestOpenIDConfiguration(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	tests := []struct {
		tenant string
		want   int
	}{
		{s.TenantID(), http.StatusOK},
		{strings.ToUpper(s.TenantID()), http.StatusOK},
		{"organizations", http.StatusOK},
		{"11111111-0000-4000-8000-000000000000", http.StatusBadRequest},
	}
	for _, tt := range tests {
		r := call(t, http.MethodGet, s.AuthorityHost()+"/"+tt.tenant+"/v2.0/.well-known/openid-configuration", "", nil)
		if r.status != tt.want {
			t.Fatalf("tenant %s: status = %d, want %d: %s", tt.tenant, r.status, tt.want, r.body)
		}
		if tt.want != http.StatusOK {
			continue
		}
		var doc map[string]any
		r.decode(t, &doc)
		for k, want := range map[string]string{
			"issuer":                        s.Authority() + "/v2.0",
			"token_endpoint":                s.Authority() + "/oauth2/v2.0/token",
			"authorization_endpoint":        s.Authority() + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint": s.Authority() + "/oauth2/v2.0/devicecode",
			"jwks_uri":                      s.Authority() + "/discovery/v2.0/keys",
		} {
			if doc[k] != want {
				t.Fatalf("%s = %v, want %s", k, doc[k], want)
			}
		}
	}
	keys := call(t, http.MethodGet, s.Authority()+"/discovery/v2.0/keys", "", nil)
	if keys.status != http.StatusOK || !strings.Contains(string(keys.body), `"kty":"EC"`) {
		t.Fatalf("jwks: got %d %s", keys.status, keys.body)
	}
}

func TestConfidentialClientSecret(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	tests := []struct {
		name   string
		secret string
		scope  string
		ok     bool
	}{
		{"right secret, simulator scope", graphsim.DefaultClientSecret, s.Scope(), true},
		{"right secret, public graph scope", graphsim.DefaultClientSecret, "https://graph.microsoft.com/.default", true},
		{"wrong secret", "not-the-secret", s.Scope(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cred, err := confidential.NewCredFromSecret(tt.secret)
			if err != nil {
				t.Fatal(err)
			}
			app, err := confidential.New(s.Authority(), graphsim.DefaultClientID, cred, confidential.WithInstanceDiscovery(false))
			if err != nil {
				t.Fatalf("confidential.New: %v", err)
			}
			res, err := app.AcquireTokenByCredential(context.Background(), []string{tt.scope})
			if !tt.ok {
				wantAADError(t, err, http.StatusUnauthorized, "invalid_client", "AADSTS7000215")
				return
			}
			if err != nil {
				t.Fatalf("AcquireTokenByCredential: %v", err)
			}
			if d := time.Until(res.ExpiresOn); d < 50*time.Minute || d > time.Hour+time.Minute {
				t.Fatalf("ExpiresOn in %v, want about 1h", d)
			}
			if r := graphGET(t, s, res.AccessToken); r.status != http.StatusNotFound || r.errorCode(t) != "ResourceNotFound" {
				t.Fatalf("Graph with the token: got %d %s, want 404 ResourceNotFound (authenticated)", r.status, r.body)
			}
		})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWT builds a client assertion by hand, for the cases MSAL never sends.
func signJWT(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	d := sha256.Sum256([]byte(in))
	var sig []byte
	var err error
	switch header["alg"] {
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	default:
		sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64(sig)
}

func TestConfidentialClientCertificate(t *testing.T) {
	t.Parallel()
	reg, stranger := getCerts(t)
	const appID = "c0ffee00-1111-4222-8333-444444444444"
	s := newServer(t, graphsim.Config{Clients: []graphsim.Client{{ID: appID, Certificate: reg.cert}}})

	s256 := sha256.Sum256(reg.cert.Raw)
	s1 := sha1.Sum(reg.cert.Raw)
	now := time.Now()
	claims := func(mut func(map[string]any)) map[string]any {
		c := map[string]any{
			"aud": s.Authority() + "/oauth2/v2.0/token", "iss": appID, "sub": appID,
			"jti": "x", "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		if mut != nil {
			mut(c)
		}
		return c
	}
	ps256 := map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(s256[:])}
	rs256 := map[string]any{"alg": "RS256", "typ": "JWT", "x5t": base64.RawURLEncoding.EncodeToString(s1[:])}

	tests := []struct {
		name   string
		cred   func() (confidential.Credential, error)
		aadsts string // "" = success
	}{
		{"MSAL with the registered certificate", func() (confidential.Credential, error) {
			return confidential.NewCredFromCert([]*x509.Certificate{reg.cert}, reg.key)
		}, ""},
		{"MSAL with an unregistered certificate", func() (confidential.Credential, error) {
			return confidential.NewCredFromCert([]*x509.Certificate{stranger.cert}, stranger.key)
		}, "AADSTS700027"},
		{"RS256 with x5t", assertion(t, reg.key, rs256, claims(nil)), ""},
		{"signed by another key", assertion(t, stranger.key, ps256, claims(nil)), "AADSTS700027"},
		{"wrong audience", assertion(t, reg.key, ps256, claims(func(c map[string]any) { c["aud"] = "https://login.microsoftonline.com/x/oauth2/v2.0/token" })), "AADSTS700212"},
		{"expired", assertion(t, reg.key, ps256, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), "AADSTS700024"},
		{"iss is not the client", assertion(t, reg.key, ps256, claims(func(c map[string]any) { c["iss"] = "someone-else" })), "AADSTS700021"},
		{"no key id", assertion(t, reg.key, map[string]any{"alg": "PS256", "typ": "JWT"}, claims(nil)), "AADSTS700027"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cred, err := tt.cred()
			if err != nil {
				t.Fatal(err)
			}
			app, err := confidential.New(s.Authority(), appID, cred, confidential.WithInstanceDiscovery(false))
			if err != nil {
				t.Fatal(err)
			}
			res, err := app.AcquireTokenByCredential(context.Background(), []string{s.Scope()})
			if tt.aadsts != "" {
				wantAADError(t, err, http.StatusUnauthorized, "invalid_client", tt.aadsts)
				return
			}
			if err != nil {
				t.Fatalf("AcquireTokenByCredential: %v", err)
			}
			if r := graphGET(t, s, res.AccessToken); r.status == http.StatusUnauthorized {
				t.Fatalf("Graph refused the token: %s", r.body)
			}
		})
	}
}

func assertion(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) func() (confidential.Credential, error) {
	a := signJWT(t, key, header, claims)
	return func() (confidential.Credential, error) {
		return confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
			return a, nil
		}), nil
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Clients: []graphsim.Client{
		{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Delegated: true},
		{ID: "a0000000-0000-4000-8000-00000000000a", Secret: "s"},
	}})
	base := func(mut func(url.Values)) url.Values {
		v := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {graphsim.DefaultClientID},
			"client_secret": {graphsim.DefaultClientSecret}, "scope": {s.Scope() + " openid profile offline_access"},
		}
		mut(v)
		return v
	}
	tests := []struct {
		name     string
		tenant   string
		form     url.Values
		status   int
		oauthErr string
		code     int
	}{
		{"ok with MSAL's extra scopes", "", base(func(url.Values) {}), 200, "", 0},
		{"ok with claims", "", base(func(v url.Values) { v.Set("claims", `{"access_token":{"nbf":{"essential":true,"value":"1"}}}`) }), 200, "", 0},
		{"unknown tenant", "22222222-0000-4000-8000-000000000000", base(func(url.Values) {}), 400, "invalid_tenant", 90002},
		{"unknown client", "", base(func(v url.Values) { v.Set("client_id", "b0000000-0000-4000-8000-00000000000b") }), 400, "unauthorized_client", 700016},
		{"no credential", "", base(func(v url.Values) { v.Del("client_secret") }), 401, "invalid_client", 7000218},
		{"wrong secret", "", base(func(v url.Values) { v.Set("client_secret", "x") }), 401, "invalid_client", 7000215},
		{"scope without .default", "", base(func(v url.Values) { v.Set("scope", s.URL()+"/DeviceManagementConfiguration.ReadWrite.All") }), 400, "invalid_scope", 1002012},
		{"foreign resource", "", base(func(v url.Values) { v.Set("scope", "https://management.azure.com/.default") }), 400, "invalid_resource", 500011},
		{"no scope", "", base(func(v url.Values) { v.Del("scope") }), 400, "invalid_request", 900144},
		{"claims not JSON", "", base(func(v url.Values) { v.Set("claims", "eyJhIjoxfQ==") }), 400, "invalid_request", 90100},
		{"unsupported grant", "", base(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type", 70003},
		{"unknown device code", "", base(func(v url.Values) { v.Set("grant_type", "device_code"); v.Set("device_code", "nope") }), 400, "invalid_grant", 70000},
		{"unknown refresh token", "", base(func(v url.Values) { v.Set("grant_type", "refresh_token"); v.Set("refresh_token", "nope") }), 400, "invalid_grant", 9002313},
		{"confidential-only app without secret on refresh", "", base(func(v url.Values) {
			v.Set("grant_type", "refresh_token")
			v.Set("client_id", "a0000000-0000-4000-8000-00000000000a")
			v.Del("client_secret")
		}), 401, "invalid_client", 7000218},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tenant := tt.tenant
			if tenant == "" {
				tenant = s.TenantID()
			}
			status, tr := postForm(t, s.AuthorityHost()+"/"+tenant+"/oauth2/v2.0/token", tt.form)
			if status != tt.status || tr.Error != tt.oauthErr {
				t.Fatalf("got %d %q (%s), want %d %q", status, tr.Error, tr.ErrorDesc, tt.status, tt.oauthErr)
			}
			if tt.code != 0 && (len(tr.ErrorCodes) != 1 || tr.ErrorCodes[0] != tt.code || !strings.HasPrefix(tr.ErrorDesc, "AADSTS")) {
				t.Fatalf("error_codes = %v, description %q; want [%d]", tr.ErrorCodes, tr.ErrorDesc, tt.code)
			}
			if tt.status == 200 && (tr.AccessToken == "" || tr.TokenType != "Bearer" || tr.ExpiresIn < 3500 || tr.RefreshToken != "") {
				t.Fatalf("token answer %+v, want a Bearer app token without refresh token", tr)
			}
		})
	}
}

func newPublic(t *testing.T, s *graphsim.Server, clientID string) public.Client {
	t.Helper()
	pca, err := public.New(clientID, public.WithAuthority(s.Authority()), public.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatalf("public.New: %v", err)
	}
	return pca
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeviceCodeFlowAndRefresh(t *testing.T) {
	t.Parallel()
	// Access tokens shorter than MSAL's 5-minute margin are never served
	// from its cache, so AcquireTokenSilent must redeem the refresh token.
	s := newServer(t, graphsim.Config{TokenLifetime: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pca := newPublic(t, s, graphsim.DefaultClientID)
	scopes := []string{s.URL() + "/DeviceManagementConfiguration.ReadWrite.All"}

	dc, err := pca.AcquireTokenByDeviceCode(ctx, scopes)
	if err != nil {
		t.Fatalf("AcquireTokenByDeviceCode: %v", err)
	}
	if dc.Result.UserCode == "" || !strings.Contains(dc.Result.Message, dc.Result.UserCode) || dc.Result.VerificationURL != s.URL()+"/devicelogin" {
		t.Fatalf("device code result %+v lacks user code or verification URL", dc.Result)
	}
	type out struct {
		res public.AuthResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := dc.AuthenticationResult(ctx)
		done <- out{res, err}
	}()
	waitFor(t, "an authorization_pending answer", func() bool { return s.Stats().AuthorizationPending >= 1 })
	if err := s.ApproveDeviceCode(strings.ToLower(dc.Result.UserCode)); err != nil {
		t.Fatalf("ApproveDeviceCode: %v", err)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("AuthenticationResult: %v", o.err)
	}
	if o.res.Account.HomeAccountID == "" || o.res.Account.PreferredUsername == "" {
		t.Fatalf("account %+v: want home account id and username from id_token/client_info", o.res.Account)
	}
	if r := graphGET(t, s, o.res.AccessToken); r.status == http.StatusUnauthorized {
		t.Fatalf("Graph refused the delegated token: %s", r.body)
	}
	if err := s.ApproveDeviceCode(dc.Result.UserCode); err == nil {
		t.Fatalf("approving a redeemed code: got nil error")
	}

	accts, err := pca.Accounts(ctx)
	if err != nil || len(accts) != 1 {
		t.Fatalf("Accounts = %v, %v; want one account", accts, err)
	}
	issued := s.Stats().TokensIssued
	silent, err := pca.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(accts[0]))
	if err != nil {
		t.Fatalf("AcquireTokenSilent: %v", err)
	}
	if silent.AccessToken == o.res.AccessToken || s.Stats().TokensIssued != issued+1 {
		t.Fatalf("AcquireTokenSilent did not redeem the refresh token (issued %d -> %d)", issued, s.Stats().TokensIssued)
	}
	if r := graphGET(t, s, silent.AccessToken); r.status == http.StatusUnauthorized {
		t.Fatalf("Graph refused the refreshed token: %s", r.body)
	}

	s.RevokeRefreshTokens()
	_, err = pca.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(accts[0]))
	wantAADError(t, err, http.StatusBadRequest, "invalid_grant", "AADSTS50173")
}

func TestDeviceCodeEdgeCases(t *testing.T) {
	t.Parallel()
	const confOnly = "d0000000-0000-4000-8000-00000000000d"
	s := newServer(t, graphsim.Config{
		TokenLifetime:        time.Minute,
		RefreshTokenLifetime: 300 * time.Millisecond,
		AutoApproveAfter:     time.Millisecond,
		Clients: []graphsim.Client{
			{ID: graphsim.DefaultClientID, Delegated: true},
			{ID: confOnly, Secret: "s"},
		},
	})
	scopes := []string{s.Scope()}

	t.Run("app without public client flows", func(t *testing.T) {
		t.Parallel()
		_, err := newPublic(t, s, confOnly).AcquireTokenByDeviceCode(t.Context(), scopes)
		wantAADError(t, err, http.StatusUnauthorized, "invalid_client", "AADSTS7000218")
	})
	t.Run("auto-approve, then expired refresh token", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		pca := newPublic(t, s, graphsim.DefaultClientID)
		dc, err := pca.AcquireTokenByDeviceCode(ctx, scopes)
		if err != nil {
			t.Fatal(err)
		}
		res, err := dc.AuthenticationResult(ctx)
		if err != nil {
			t.Fatalf("auto-approved AuthenticationResult: %v", err)
		}
		time.Sleep(350 * time.Millisecond)
		_, err = pca.AcquireTokenSilent(ctx, scopes, public.WithSilentAccount(res.Account))
		wantAADError(t, err, http.StatusBadRequest, "invalid_grant", "AADSTS70043")
	})
	t.Run("redeeming twice", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"client_id": {graphsim.DefaultClientID}, "scope": {s.Scope()}}
		resp, err := client.PostForm(s.Authority()+"/oauth2/v2.0/devicecode", form)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			DeviceCode string `json:"device_code"`
			Interval   int    `json:"interval"`
			ExpiresIn  int    `json:"expires_in"`
		}
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil || d.DeviceCode == "" || d.Interval != 1 || d.ExpiresIn != 900 {
			t.Fatalf("devicecode answer %+v, %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
		redeem := url.Values{"grant_type": {"device_code"}, "device_code": {d.DeviceCode}, "client_id": {graphsim.DefaultClientID}, "scope": {s.Scope()}}
		if st, tr := postForm(t, s.Authority()+"/oauth2/v2.0/token", redeem); st != 200 || tr.RefreshToken == "" {
			t.Fatalf("first redemption: %d %s", st, tr.ErrorDesc)
		}
		if st, tr := postForm(t, s.Authority()+"/oauth2/v2.0/token", redeem); st != 400 || tr.Error != "invalid_grant" {
			t.Fatalf("second redemption: got %d %s, want 400 invalid_grant", st, tr.Error)
		}
	})
}

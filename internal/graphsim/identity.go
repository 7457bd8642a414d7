package graphsim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1" // #nosec: x5t is defined as a SHA-1 thumbprint
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// accessToken is an issued access token (the map key is the token).
type accessToken struct {
	clientID  string
	tenant    *tenantState // the tenant it was issued for (tid)
	delegated bool
	roles     []string // app-only tokens: application permissions
	issued    time.Time
	expires   time.Time
	revokedAt time.Time // zero unless RevokeAll
}

// refreshToken is a delegated grant of the simulated user. Like a real
// multi-tenant refresh token it can be redeemed at any tenant's token
// endpoint that accepts the application (a partner admin acquiring tokens
// for customer tenants, GDAP).
type refreshToken struct {
	clientID string
	scope    string
	issued   time.Time
	expires  time.Time
	revoked  time.Time
}

type deviceCode struct {
	clientID string
	tenant   *tenantState // where the code was requested, and must be redeemed
	userCode string
	scope    string
	issued   time.Time
	expires  time.Time
	approved bool
	redeemed bool
}

// aadError is an error answer of the identity platform.
type aadError struct {
	status int
	code   string // OAuth error, e.g. invalid_client
	num    int    // AADSTS number
	desc   string // without the AADSTS prefix
}

func invalidClient(num int, desc string) *aadError {
	return &aadError{http.StatusUnauthorized, "invalid_client", num, desc}
}

func badRequest(code string, num int, desc string) *aadError {
	return &aadError{http.StatusBadRequest, code, num, desc}
}

const (
	grantClientCredentials = "client_credentials"
	grantDeviceCode        = "device_code"
	grantDeviceCodeURN     = "urn:ietf:params:oauth:grant-type:device_code"
	grantRefreshToken      = "refresh_token"
	assertionTypeJWT       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	graphPublicOrigin      = "https://graph.microsoft.com"
	clockSkew              = 5 * time.Minute
)

// serveIdentity serves the identity platform paths below /{tenant}/.
func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	traceID := newGUID()
	w.Header().Set("x-ms-request-id", traceID)
	if crid := r.Header.Get("client-request-id"); crid != "" {
		w.Header().Set("client-request-id", crid)
	}
	if len(segs) < 2 {
		s.writeAAD(w, r, traceID, badRequest("invalid_request", 900561, "The endpoint only serves /{tenant}/oauth2/v2.0/... and /{tenant}/v2.0/.well-known/openid-configuration (graphsim)."))
		return
	}
	ts := s.lookupTenant(segs[0])
	rest := strings.Join(segs[1:], "/")
	// A tenant that refuses as "not found" answers like an unknown one;
	// its token endpoint still counts the requests (serveToken).
	if ts == nil || (rest != "oauth2/v2.0/token" && s.refusal(ts) == RefuseNotFound) {
		s.writeAAD(w, r, traceID, tenantNotFound(segs[0]))
		return
	}
	switch rest {
	case "v2.0/.well-known/openid-configuration":
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.writeJSON(w, http.StatusOK, s.openIDConfiguration(ts))
	case "discovery/v2.0/keys":
		pub := s.idKey.PublicKey
		pt, _ := pub.ECDH()
		raw := pt.Bytes() // 0x04 || X || Y
		s.writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
			"kty": "EC", "use": "sig", "crv": "P-256", "kid": s.idKid, "alg": "ES256",
			"x": base64.RawURLEncoding.EncodeToString(raw[1:33]),
			"y": base64.RawURLEncoding.EncodeToString(raw[33:65]),
		}}})
	case "oauth2/v2.0/token":
		s.serveToken(w, r, traceID, segs[0], ts)
	case "oauth2/v2.0/devicecode":
		s.serveDeviceCode(w, r, traceID, ts)
	case "oauth2/v2.0/authorize":
		s.serveAuthorize(w, r, traceID, ts)
	case "oauth2/authorize":
		s.writeAAD(w, r, traceID, badRequest("invalid_request", 900144, "graphsim serves the v2.0 authorize endpoint only."))
	default:
		s.writeAAD(w, r, traceID, badRequest("invalid_request", 900561, fmt.Sprintf("graphsim does not serve /%s.", rest)))
	}
}

func tenantNotFound(seg string) *aadError {
	return badRequest("invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", seg))
}

// refusal returns how the tenant refuses applications now.
func (s *Server) refusal(ts *tenantState) Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ts.refuse
}

// refusedError is the answer of a tenant that refuses application c, or
// nil.
func refusedError(r Refusal, c Client, ts *tenantState) *aadError {
	switch r {
	case RefuseConsent:
		return appNotInDirectory(c.ID, ts.id)
	case RefuseDisabled:
		return badRequest("unauthorized_client", 7000112, fmt.Sprintf("Application '%s'(%s) is disabled.", c.ID, c.Name))
	case RefuseNotFound:
		return tenantNotFound(ts.id)
	}
	return nil
}

func appNotInDirectory(clientID, tenant string) *aadError {
	return badRequest("unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant))
}

func (s *Server) issuer(ts *tenantState) string { return s.url + "/" + ts.id + "/v2.0" }
func (s *Server) tokenEndpoint(ts *tenantState) string {
	return s.url + "/" + ts.id + "/oauth2/v2.0/token"
}

func (s *Server) openIDConfiguration(ts *tenantState) map[string]any {
	base := s.url + "/" + ts.id
	return map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                s.issuer(ts),
		"request_uri_parameter_supported":       false,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "preferred_username", "ver"},
		"tenant_region_scope":                   "WW",
		"cloud_instance_name":                   "graphsim.invalid",
		"cloud_graph_host_name":                 strings.TrimPrefix(s.url, "https://"),
		"msgraph_host":                          strings.TrimPrefix(s.url, "https://"),
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeAAD writes an error the way the identity platform does.
func (s *Server) writeAAD(w http.ResponseWriter, r *http.Request, traceID string, e *aadError) {
	now := time.Now().UTC()
	corr := r.Header.Get("client-request-id")
	if corr == "" {
		corr = newGUID()
	}
	ts := now.Format("2006-01-02 15:04:05Z")
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", e.num, e.desc, traceID, corr, ts)
	s.writeJSON(w, e.status, map[string]any{
		"error":             e.code,
		"error_description": desc,
		"error_codes":       []int{e.num},
		"timestamp":         ts,
		"trace_id":          traceID,
		"correlation_id":    corr,
		"error_uri":         s.url + "/error?code=" + strconv.Itoa(e.num),
	})
}

func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, traceID string, ts *tenantState, e *aadError) {
	s.mu.Lock()
	ts.stats.TokenErrors++
	switch e.code {
	case "authorization_pending":
		ts.stats.AuthorizationPending++
	case "temporarily_unavailable":
		ts.stats.TokenUnavailable++
	}
	s.mu.Unlock()
	s.writeAAD(w, r, traceID, e)
}

// readForm parses an application/x-www-form-urlencoded POST body.
func readForm(w http.ResponseWriter, r *http.Request) (map[string]string, *aadError) {
	if r.Method != http.MethodPost {
		return nil, badRequest("invalid_request", 900561, "The endpoint only accepts POST requests.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("invalid_request", 900144, "The request body must be application/x-www-form-urlencoded: "+err.Error())
	}
	f := make(map[string]string, len(r.PostForm))
	for k, v := range r.PostForm {
		if len(v) > 0 {
			f[k] = v[0]
		}
	}
	return f, nil
}

func (s *Server) lookupClient(form map[string]string, ts *tenantState) (Client, *aadError) {
	id := form["client_id"]
	if id == "" {
		if sub := assertionSubject(form["client_assertion"]); sub != "" {
			id = sub
		}
	}
	if id == "" {
		return Client{}, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	s.mu.Lock()
	c, ok := s.clients[strings.ToLower(strings.TrimSpace(id))]
	s.mu.Unlock()
	if !ok {
		return Client{}, appNotInDirectory(id, ts.id)
	}
	return c, nil
}

// authenticateClient checks client_secret or client_assertion if present;
// required says whether one of them must be present. audiences are the
// token endpoints an assertion may name.
func (s *Server) authenticateClient(form map[string]string, c Client, required bool, audiences []string) *aadError {
	if sec, ok := form["client_secret"]; ok {
		if c.Secret == "" || subtle.ConstantTimeCompare([]byte(sec), []byte(c.Secret)) != 1 {
			return invalidClient(7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", c.ID))
		}
		return nil
	}
	if a, ok := form["client_assertion"]; ok {
		if t := form["client_assertion_type"]; t != assertionTypeJWT {
			return badRequest("invalid_request", 700012, fmt.Sprintf("client_assertion_type '%s' is not supported; use '%s'.", t, assertionTypeJWT))
		}
		return s.verifyAssertion(a, c, form["client_id"], audiences)
	}
	if required {
		return invalidClient(7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	return nil
}

type jwtHeader struct {
	Alg     string   `json:"alg"`
	Typ     string   `json:"typ"`
	X5t     string   `json:"x5t"`
	X5tS256 string   `json:"x5t#S256"`
	Kid     string   `json:"kid"`
	X5c     []string `json:"x5c"`
}

type jwtClaims struct {
	Aud audience    `json:"aud"`
	Iss string      `json:"iss"`
	Sub string      `json:"sub"`
	Exp json.Number `json:"exp"`
	Nbf json.Number `json:"nbf"`
	Jti string      `json:"jti"`
}

// audience is a JWT aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// decodeSegment decodes base64url (tolerating padding and, as some clients
// send, standard base64).
func decodeSegment(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func assertionSubject(a string) string {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		return ""
	}
	var c jwtClaims
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Sub
}

// verifyAssertion checks a client assertion as the platform does: the key
// named by the header must be the client's registered certificate, the
// signature must verify, iss and sub must be the client id, aud the token
// endpoint, and exp/nbf must hold (5 minutes of skew).
func (s *Server) verifyAssertion(a string, c Client, clientIDParam string, audiences []string) *aadError {
	malformed := func(why string) *aadError {
		return invalidClient(50027, "JWT token is invalid or malformed: "+why)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return malformed("a client assertion has three dot-separated parts.")
	}
	var h jwtHeader
	var cl jwtClaims
	hb, err := decodeSegment(parts[0])
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return malformed("the header is not base64url JSON.")
	}
	pb, err := decodeSegment(parts[1])
	if err != nil {
		return malformed("the payload is not base64url.")
	}
	dec := json.NewDecoder(strings.NewReader(string(pb)))
	dec.UseNumber()
	if dec.Decode(&cl) != nil {
		return malformed("the payload is not JSON claims.")
	}
	sig, err := decodeSegment(parts[2])
	if err != nil {
		return malformed("the signature is not base64url.")
	}
	cert := c.Certificate
	sha1Sum := [20]byte{}
	if cert != nil {
		sha1Sum = sha1.Sum(cert.Raw) // #nosec: thumbprint only
	}
	presented := ""
	matched := false
	switch {
	case h.X5tS256 != "":
		presented = h.X5tS256
		if got, err := decodeThumb(h.X5tS256); err == nil && cert != nil {
			want := sha256.Sum256(cert.Raw)
			matched = subtle.ConstantTimeCompare(got, want[:]) == 1
		}
	case h.X5t != "":
		presented = h.X5t
		if got, err := decodeThumb(h.X5t); err == nil && cert != nil {
			matched = subtle.ConstantTimeCompare(got, sha1Sum[:]) == 1
		}
	case h.Kid != "":
		presented = h.Kid
		matched = cert != nil && strings.EqualFold(h.Kid, hex.EncodeToString(sha1Sum[:]))
	default:
		return invalidClient(700027, "Client assertion contains an invalid signature. [Reason - The key was not found., The assertion header names no key: send x5t#S256, x5t or kid.]")
	}
	if !matched {
		return invalidClient(700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", presented, c.ID))
	}
	signed := []byte(parts[0] + "." + parts[1])
	digest := sha256.Sum256(signed)
	var sigErr error
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		switch h.Alg {
		case "PS256":
			sigErr = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		case "RS256":
			sigErr = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
		default:
			return invalidClient(5002738, fmt.Sprintf("Invalid JWT token. '%s' is not a supported signature algorithm for an RSA key. Supported signing algorithms are: 'PS256, RS256'.", h.Alg))
		}
	case *ecdsa.PublicKey:
		if h.Alg != "ES256" || len(sig) != 64 {
			return invalidClient(5002738, fmt.Sprintf("Invalid JWT token. '%s' is not a supported signature algorithm for an EC key. Supported signing algorithms are: 'ES256'.", h.Alg))
		}
		rr, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, digest[:], rr, ss) {
			sigErr = errors.New("bad signature")
		}
	default:
		return invalidClient(700027, "Client assertion contains an invalid signature. [Reason - The registered key type is not supported.]")
	}
	if sigErr != nil {
		return invalidClient(700027, "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]")
	}
	if cl.Iss != cl.Sub || !strings.EqualFold(cl.Sub, c.ID) || (clientIDParam != "" && !strings.EqualFold(clientIDParam, cl.Sub)) {
		return invalidClient(700021, fmt.Sprintf("Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . (iss '%s', sub '%s', client '%s')", cl.Iss, cl.Sub, c.ID))
	}
	audOK := false
	for _, aud := range cl.Aud {
		aud = strings.TrimSuffix(strings.ToLower(aud), "/")
		for _, want := range audiences {
			if aud == strings.ToLower(want) {
				audOK = true
			}
		}
	}
	if !audOK {
		return invalidClient(700212, fmt.Sprintf("The client assertion audience %q is not the token endpoint '%s'.", []string(cl.Aud), audiences[0]))
	}
	now := time.Now()
	exp, errExp := cl.Exp.Int64()
	if errExp != nil {
		return malformed("the exp claim is missing or not a number.")
	}
	nbf := int64(0)
	if cl.Nbf != "" {
		if nbf, err = cl.Nbf.Int64(); err != nil {
			return malformed("the nbf claim is not a number.")
		}
	}
	if now.Add(-clockSkew).After(time.Unix(exp, 0)) || (nbf != 0 && now.Add(clockSkew).Before(time.Unix(nbf, 0))) {
		return invalidClient(700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.", now.UTC().Format(time.RFC3339), time.Unix(nbf, 0).UTC().Format(time.RFC3339), time.Unix(exp, 0).UTC().Format(time.RFC3339)))
	}
	return nil
}

func decodeThumb(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return hex.DecodeString(s)
}

// splitScopes returns the resource scopes of a space-separated scope
// parameter, without the OpenID Connect ones MSAL always adds.
func splitScopes(scope string) []string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		switch strings.ToLower(sc) {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		out = append(out, sc)
	}
	return out
}

// graphResource reports whether a resource scope belongs to Graph (the
// simulator's origin or the public Graph origin), and returns the part
// after the resource.
func (s *Server) graphResource(sc string) (perm string, ok bool) {
	l := strings.ToLower(sc)
	for _, origin := range []string{strings.ToLower(s.url), graphPublicOrigin, "00000003-0000-0000-c000-000000000000"} {
		if strings.HasPrefix(l, origin+"/") {
			return strings.TrimLeft(sc[len(origin):], "/"), true
		}
	}
	if !strings.Contains(sc, "/") && !strings.Contains(sc, ":") {
		return sc, true // short form, e.g. DeviceManagementConfiguration.ReadWrite.All
	}
	return "", false
}

func (s *Server) checkAppScope(scope string, ts *tenantState) *aadError {
	scopes := splitScopes(scope)
	if len(scopes) == 0 {
		return badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
	}
	if len(scopes) > 1 || !strings.HasSuffix(scopes[0], "/.default") {
		return badRequest("invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", strings.Join(scopes, " ")))
	}
	if perm, ok := s.graphResource(scopes[0]); !ok || perm != ".default" || !strings.Contains(scopes[0], "/") {
		return badRequest("invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", strings.TrimSuffix(scopes[0], "/.default"), ts.id))
	}
	return nil
}

func (s *Server) checkDelegatedScope(scope string, ts *tenantState) (string, *aadError) {
	scopes := splitScopes(scope)
	if len(scopes) == 0 {
		return "", badRequest("invalid_scope", 70011, "The provided request must include a 'scope' input parameter for a resource (graphsim serves only Graph).")
	}
	for _, sc := range scopes {
		if _, ok := s.graphResource(sc); !ok {
			return "", badRequest("invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s.", sc, ts.id))
		}
	}
	return strings.Join(scopes, " "), nil
}

func checkClaims(form map[string]string) *aadError {
	c, ok := form["claims"]
	if !ok {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(c), &v); err != nil {
		return badRequest("invalid_request", 90100, "The claims parameter is not a JSON object (send it decoded, not base64).")
	}
	return nil
}

// serveToken serves POST /{tenant}/oauth2/v2.0/token for tenant ts (seg is
// the tenant as the path spelled it).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, traceID, seg string, ts *tenantState) {
	s.mu.Lock()
	ts.stats.TokenRequests++
	unavailable := ts.tokenFails > 0
	if unavailable {
		ts.tokenFails--
	}
	refuse := ts.refuse
	s.mu.Unlock()
	fail := func(e *aadError) { s.tokenError(w, r, traceID, ts, e) }
	if unavailable {
		fail(&aadError{http.StatusServiceUnavailable, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."})
		return
	}
	if refuse == RefuseNotFound {
		fail(tenantNotFound(seg))
		return
	}
	form, e := readForm(w, r)
	if e == nil {
		e = checkClaims(form)
	}
	if e != nil {
		fail(e)
		return
	}
	if _, ok := form["claims"]; ok {
		s.mu.Lock()
		ts.stats.TokenClaimsRequests++
		s.mu.Unlock()
	}
	c, e := s.lookupClient(form, ts)
	if e == nil {
		e = refusedError(refuse, c, ts)
	}
	if e != nil {
		fail(e)
		return
	}
	// An assertion names the token endpoint it was made for: the tenant as
	// the client spelled it, or its id.
	audiences := []string{
		s.tokenEndpoint(ts),
		s.url + "/" + strings.ToLower(seg) + "/oauth2/v2.0/token",
		s.url + "/" + ts.id + "/oauth2/token",
		s.issuer(ts),
	}
	now := time.Now()
	switch gt := form["grant_type"]; gt {
	case grantClientCredentials:
		if e := s.authenticateClient(form, c, true, audiences); e != nil {
			fail(e)
			return
		}
		if e := s.checkAppScope(form["scope"], ts); e != nil {
			fail(e)
			return
		}
		_, cert := form["client_assertion"]
		s.writeJSON(w, http.StatusOK, s.issue(now, c, ts, false, "", cert))
	case grantDeviceCode, grantDeviceCodeURN:
		if e := s.authenticateClient(form, c, !c.Delegated, audiences); e != nil {
			fail(e)
			return
		}
		resp, e := s.redeemDeviceCode(now, c, ts, form["device_code"])
		if e != nil {
			fail(e)
			return
		}
		s.writeJSON(w, http.StatusOK, resp)
	case grantRefreshToken:
		if e := s.authenticateClient(form, c, !c.Delegated, audiences); e != nil {
			fail(e)
			return
		}
		resp, e := s.redeemRefreshToken(now, c, ts, form["refresh_token"], form["scope"])
		if e != nil {
			fail(e)
			return
		}
		s.writeJSON(w, http.StatusOK, resp)
	case grantAuthorizationCode:
		if e := s.authenticateClient(form, c, !c.Delegated, audiences); e != nil {
			fail(e)
			return
		}
		resp, e := s.redeemAuthCode(now, c, ts, form)
		if e != nil {
			fail(e)
			return
		}
		s.writeJSON(w, http.StatusOK, resp)
	case "":
		fail(badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."))
	default:
		fail(badRequest("unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'. graphsim supports client_credentials, authorization_code, device_code and refresh_token.", gt)))
	}
}

func (s *Server) redeemDeviceCode(now time.Time, c Client, ts *tenantState, code string) (map[string]any, *aadError) {
	s.mu.Lock()
	dc := s.devices[code]
	var e *aadError
	switch {
	case code == "":
		e = badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'device_code'.")
	case dc == nil:
		e = badRequest("invalid_grant", 70000, "Provided grant is invalid or malformed: unknown device_code.")
	case dc.clientID != c.ID:
		e = badRequest("invalid_grant", 70000, "Provided grant is invalid or malformed: the device_code was issued to another application.")
	case dc.tenant != ts:
		e = badRequest("invalid_grant", 70000, fmt.Sprintf("Provided grant is invalid or malformed: the device_code was issued for tenant '%s'.", dc.tenant.id))
	case dc.redeemed:
		e = badRequest("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	case !now.Before(dc.expires):
		e = badRequest("expired_token", 70019, "Verification code expired.")
	case !dc.approved && !(s.autoAppr > 0 && !now.Before(dc.issued.Add(s.autoAppr))):
		e = badRequest("authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
	}
	if e != nil {
		s.mu.Unlock()
		return nil, e
	}
	dc.redeemed = true
	scope := dc.scope
	s.mu.Unlock()
	return s.issue(now, c, ts, true, scope, false), nil
}

func (s *Server) redeemRefreshToken(now time.Time, c Client, ts *tenantState, rt, scope string) (map[string]any, *aadError) {
	s.mu.Lock()
	t := s.refresh[rt]
	var e *aadError
	switch {
	case rt == "":
		e = badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'.")
	case t == nil:
		e = badRequest("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	case t.clientID != c.ID:
		e = badRequest("invalid_grant", 70000, "Provided grant is invalid or malformed: the refresh token was issued to another application.")
	case !t.revoked.IsZero():
		e = badRequest("invalid_grant", 50173, fmt.Sprintf("The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", t.issued.UTC().Format(time.RFC3339), t.revoked.UTC().Format(time.RFC3339)))
	case !now.Before(t.expires):
		e = badRequest("invalid_grant", 70043, fmt.Sprintf("The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on %s and the maximum allowed lifetime for this request is %d.", t.issued.UTC().Format(time.RFC3339), int(s.rtTTL.Seconds())))
	}
	var granted string
	if e == nil {
		granted = t.scope
	}
	s.mu.Unlock()
	if e != nil {
		return nil, e
	}
	if strings.TrimSpace(scope) != "" && len(splitScopes(scope)) > 0 {
		var se *aadError
		if granted, se = s.checkDelegatedScope(scope, ts); se != nil {
			return nil, se
		}
	}
	return s.issue(now, c, ts, true, granted, false), nil
}

// issue creates an access token for tenant ts (and for delegated flows a
// refresh token, an id_token and client_info) and returns the token
// response body. cert says the client authenticated with a certificate.
func (s *Server) issue(now time.Time, c Client, ts *tenantState, delegated bool, scope string, cert bool) map[string]any {
	secs := int(s.tokenTTL / time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &accessToken{clientID: c.ID, tenant: ts, delegated: delegated, issued: now, expires: now.Add(s.tokenTTL)}
	if !delegated && !ts.noPermission {
		t.roles = []string{PermissionReadWrite}
	}
	if !delegated && !ts.noPermission && !ts.noGroupRead {
		// As after admin consent to Group.Read.All, which a tenant that
		// denies group reads (TenantConfig.NoGroupRead) never gave.
		t.roles = append(t.roles, PermissionGroupRead)
	}
	at := s.accessTokenValueLocked(t, c, scope, cert)
	resp := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   at,
	}
	ts.stats.TokensIssued++
	s.access[at] = t
	if !delegated {
		return resp
	}
	rt := "gsr1." + base64.RawURLEncoding.EncodeToString(randomBytes(48))
	s.refresh[rt] = &refreshToken{clientID: c.ID, scope: scope, issued: now, expires: now.Add(s.rtTTL)}
	resp["scope"] = scope + " openid profile offline_access"
	resp["refresh_token"] = rt
	resp["id_token"] = s.idToken(now, c.ID, ts)
	ci, _ := json.Marshal(map[string]string{"uid": s.userOID, "utid": s.tenant})
	resp["client_info"] = base64.RawURLEncoding.EncodeToString(ci)
	return resp
}

// accessTokenValueLocked builds an access token value:
//
//	gs1.<base64url(JSON claims)>.<base64url(32 random bytes)>
//
// The claims sit where a JWT carries its payload (the second dot-separated
// segment), so code that reads the claims of a real Entra access token
// without verifying it reads these too. The simulator never trusts them: a
// token is valid only if it is in its table. Claims follow v1.0 Graph
// tokens: aud, iss, iat, nbf, exp, appid, appidacr, idtyp, oid, sub, tid,
// ver, uti, plus roles (app-only, when permitted) or scp, name, upn
// (delegated).
func (s *Server) accessTokenValueLocked(t *accessToken, c Client, scope string, cert bool) string {
	claims := map[string]any{
		"aud":   s.url,
		"iss":   s.url + "/" + t.tenant.id + "/",
		"iat":   t.issued.Unix(),
		"nbf":   t.issued.Unix(),
		"exp":   t.expires.Unix(),
		"appid": c.ID,
		"tid":   t.tenant.id,
		"ver":   "1.0",
		"uti":   base64.RawURLEncoding.EncodeToString(randomBytes(16)),
	}
	if t.delegated {
		claims["appidacr"] = "0"
		claims["idtyp"] = "user"
		claims["oid"], claims["sub"] = s.userOID, s.userOID
		claims["name"] = "Graphsim Operator"
		claims["upn"] = "operator@graphsim.invalid"
		claims["scp"] = delegatedSCP(s, scope)
	} else {
		claims["appidacr"] = "1" // client secret
		if cert {
			claims["appidacr"] = "2"
		}
		claims["idtyp"] = "app"
		oid := t.tenant.principalLocked(c.ID)
		claims["oid"], claims["sub"] = oid, oid
		if len(t.roles) > 0 {
			claims["roles"] = t.roles
		}
	}
	p, _ := json.Marshal(claims)
	return "gs1." + base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

// delegatedSCP is the scp claim for a granted scope: the Graph permission
// names, ".default" standing for the permission the app was consented to.
func delegatedSCP(s *Server, scope string) string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		perm, ok := s.graphResource(sc)
		if !ok {
			continue
		}
		if perm == ".default" {
			perm = PermissionReadWrite
		}
		out = append(out, perm)
	}
	return strings.Join(out, " ")
}

// idToken signs an id_token (ES256, key published at the jwks_uri) for the
// simulated user, signed in to tenant ts.
func (s *Server) idToken(now time.Time, clientID string, ts *tenantState) string {
	return s.signIDToken(map[string]any{
		"aud": clientID, "iss": s.issuer(ts), "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(), "name": "Graphsim Operator", "oid": s.userOID,
		"preferred_username": "operator@graphsim.invalid", "sub": s.userOID, "tid": ts.id,
		"ver": "2.0",
	})
}

var userCodeAlphabet = []byte("BCDFGHJKLMNPQRSTVWXZ23456789")

func (s *Server) serveDeviceCode(w http.ResponseWriter, r *http.Request, traceID string, ts *tenantState) {
	form, e := readForm(w, r)
	if e != nil {
		s.writeAAD(w, r, traceID, e)
		return
	}
	c, e := s.lookupClient(form, ts)
	if e == nil {
		e = refusedError(s.refusal(ts), c, ts)
	}
	if e != nil {
		s.writeAAD(w, r, traceID, e)
		return
	}
	if !c.Delegated {
		s.writeAAD(w, r, traceID, invalidClient(7000218, fmt.Sprintf("The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (Application '%s' does not allow public client flows.)", c.ID)))
		return
	}
	scope, e := s.checkDelegatedScope(form["scope"], ts)
	if e != nil {
		s.writeAAD(w, r, traceID, e)
		return
	}
	now := time.Now()
	uc := make([]byte, 9)
	for i, b := range randomBytes(len(uc)) {
		uc[i] = userCodeAlphabet[int(b)%len(userCodeAlphabet)]
	}
	dc := &deviceCode{
		clientID: c.ID, tenant: ts, userCode: string(uc), scope: scope,
		issued: now, expires: now.Add(s.dcTTL),
	}
	code := "gsd1." + base64.RawURLEncoding.EncodeToString(randomBytes(48))
	s.mu.Lock()
	s.devices[code] = dc
	s.userCodes[dc.userCode] = dc
	ts.stats.DeviceCodes++
	s.mu.Unlock()
	verify := s.url + "/devicelogin"
	s.writeJSON(w, http.StatusOK, map[string]any{
		"user_code":        dc.userCode,
		"device_code":      code,
		"verification_uri": verify,
		"expires_in":       int(s.dcTTL / time.Second),
		"interval":         1,
		"message":          fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, dc.userCode),
	})
}

// ApproveDeviceCode signs the simulated user in for a pending device code,
// as the user entering userCode at the verification page would.
func (s *Server) ApproveDeviceCode(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc := s.userCodes[strings.ToUpper(strings.TrimSpace(userCode))]
	switch {
	case dc == nil:
		return fmt.Errorf("graphsim: unknown user code %q", userCode)
	case !time.Now().Before(dc.expires):
		return fmt.Errorf("graphsim: user code %q expired", userCode)
	case dc.redeemed:
		return fmt.Errorf("graphsim: user code %q already redeemed", userCode)
	}
	dc.approved = true
	return nil
}

// RevokeAll revokes every access token issued so far, as a continuous
// access evaluation event would: Graph answers 401 with an
// insufficient_claims challenge; a token issued afterwards works. Refresh
// tokens stay valid (see RevokeRefreshTokens).
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, t := range s.access {
		if t.revokedAt.IsZero() {
			t.revokedAt = now
		}
	}
}

// RevokeRefreshTokens revokes every refresh token issued so far (as a
// password reset would): redeeming one answers invalid_grant AADSTS50173.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, t := range s.refresh {
		if t.revoked.IsZero() {
			t.revoked = now
		}
	}
}

// tokenState is the result of checking a bearer token.
type tokenState int

const (
	tokenOK tokenState = iota
	tokenMissing
	tokenUnknown
	tokenExpired
	tokenRevoked
)

// bearer is what checkBearer learned about a request's token.
type bearer struct {
	state     tokenState
	clientID  string
	tenant    *tenantState // the token's tenant; the default one if unknown
	app       bool         // an app-only token
	roles     []string
	revokedAt time.Time // tokenRevoked: when
}

func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// tokenTenant returns the tenant a request's token was issued for, the
// default tenant if the token is missing or unknown.
func (s *Server) tokenTenant(h string) *tenantState {
	tok, ok := bearerToken(h)
	if !ok {
		return s.home
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.access[tok]; t != nil {
		return t.tenant
	}
	return s.home
}

// checkBearer validates an Authorization header at now.
func (s *Server) checkBearer(h string, now time.Time) bearer {
	tok, ok := bearerToken(h)
	if !ok {
		return bearer{state: tokenMissing, tenant: s.home}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.access[tok]
	if t == nil {
		return bearer{state: tokenUnknown, tenant: s.home}
	}
	b := bearer{state: tokenOK, clientID: t.clientID, tenant: t.tenant, app: !t.delegated, roles: t.roles}
	switch {
	case !now.Before(t.expires):
		b.state = tokenExpired
	case !t.revokedAt.IsZero():
		b.state, b.revokedAt = tokenRevoked, t.revokedAt
	case s.revokeAfter > 0 && !now.Before(t.issued.Add(s.revokeAfter)):
		b.state, b.revokedAt = tokenRevoked, t.issued.Add(s.revokeAfter)
	}
	return b
}

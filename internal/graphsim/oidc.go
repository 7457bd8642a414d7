package graphsim

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The authorization code flow with PKCE (OpenID Connect sign-in of a
// person to a web app): /authorize answers at once for the simulated user
// (SetSignInUser), as if they had signed in and consented, by redirecting
// to the redirect_uri with a code; the token endpoint redeems the code
// (grant_type=authorization_code) once, checking the client's credential,
// the redirect_uri and the PKCE verifier, and returns an id_token signed
// with the key at jwks_uri, carrying the nonce, the user's UPN, groups and
// app roles.

const grantAuthorizationCode = "authorization_code"

// authCodeTTL is how long a code may be redeemed (Entra: 10 minutes).
const authCodeTTL = 10 * time.Minute

// SignInUser is the person the authorize endpoint signs in.
type SignInUser struct {
	UPN    string   // preferred_username; default operator@graphsim.invalid
	Name   string   // default Graphsim Operator
	Groups []string // object ids in the groups claim
	Roles  []string // app role values in the roles claim
	// Refuse, when set, makes /authorize redirect back with this OAuth
	// error (e.g. access_denied) instead of a code.
	Refuse string
}

type oidcState struct {
	user  *SignInUser
	codes map[string]*authCode
}

type authCode struct {
	clientID, redirectURI, challenge, nonce, scope string
	tenant                                         *tenantState
	user                                           SignInUser
	expires                                        time.Time
}

// SetSignInUser sets who /authorize signs in from now on.
func (s *Server) SetSignInUser(u SignInUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oidc.user = &u
}

func (s *Server) signInUserLocked() SignInUser {
	u := SignInUser{}
	if s.oidc.user != nil {
		u = *s.oidc.user
	}
	if u.UPN == "" {
		u.UPN = "operator@graphsim.invalid"
	}
	if u.Name == "" {
		u.Name = "Graphsim Operator"
	}
	return u
}

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request, traceID string, ts *tenantState) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	fail := func(e *aadError) { s.writeAAD(w, r, traceID, e) }
	s.mu.Lock()
	c, known := s.clients[strings.ToLower(strings.TrimSpace(q.Get("client_id")))]
	s.mu.Unlock()
	if !known {
		fail(appNotInDirectory(q.Get("client_id"), ts.id))
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() || (redirect.Scheme != "https" && !strings.HasPrefix(redirect.Host, "127.0.0.1") && !strings.HasPrefix(redirect.Host, "localhost")) {
		fail(badRequest("invalid_request", 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", q.Get("redirect_uri"), c.ID)))
		return
	}
	switch {
	case q.Get("response_type") != "code":
		fail(badRequest("unsupported_response_type", 700054, "response_type 'code' is the only one graphsim serves."))
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail(badRequest("invalid_request", 501491, "Invalid size of Code_Challenge parameter or code_challenge_method not S256 (graphsim requires PKCE with S256)."))
		return
	case !strings.Contains(" "+q.Get("scope")+" ", " openid "):
		fail(badRequest("invalid_request", 900144, "The scope must include 'openid' for sign-in (graphsim)."))
		return
	}
	s.mu.Lock()
	u := s.signInUserLocked()
	code := "gsc1." + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	if s.oidc.codes == nil {
		s.oidc.codes = map[string]*authCode{}
	}
	if u.Refuse == "" {
		s.oidc.codes[code] = &authCode{clientID: c.ID, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
			nonce: q.Get("nonce"), scope: q.Get("scope"), tenant: ts, user: u, expires: time.Now().Add(authCodeTTL)}
	}
	s.mu.Unlock()
	back := redirect.Query()
	if u.Refuse != "" {
		back.Set("error", u.Refuse)
		back.Set("error_description", "AADSTS50105: The signed in user is not assigned to a role for the application (graphsim).")
	} else {
		back.Set("code", code)
	}
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// redeemAuthCode redeems a code once: same client, same redirect_uri, and
// a code_verifier whose S256 is the challenge.
func (s *Server) redeemAuthCode(now time.Time, c Client, ts *tenantState, form map[string]string) (map[string]any, *aadError) {
	s.mu.Lock()
	ac, ok := s.oidc.codes[form["code"]]
	delete(s.oidc.codes, form["code"])
	s.mu.Unlock()
	invalid := func(desc string) *aadError { return badRequest("invalid_grant", 70000, desc) }
	switch {
	case !ok || now.After(ac.expires) || ac.tenant != ts:
		return nil, invalid("The provided authorization code is invalid or has expired.")
	case ac.clientID != c.ID:
		return nil, invalid("The authorization code was issued to another client.")
	case form["redirect_uri"] != ac.redirectURI:
		return nil, invalid("The redirect_uri does not match the one the authorization code was issued for.")
	}
	sum := sha256.Sum256([]byte(form["code_verifier"]))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(ac.challenge)) != 1 {
		return nil, badRequest("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
	}
	resp := s.issue(now, c, ts, true, "", false)
	s.mu.Lock()
	resp["id_token"] = s.signIDToken(map[string]any{
		"aud": c.ID, "iss": s.issuer(ts), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"name": ac.user.Name, "oid": s.userOID, "sub": s.userOID, "tid": ts.id, "ver": "2.0",
		"preferred_username": ac.user.UPN, "nonce": ac.nonce, "groups": nonNil(ac.user.Groups), "roles": nonNil(ac.user.Roles),
	})
	s.mu.Unlock()
	return resp, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// signIDToken signs claims as an ES256 JWT with the key at jwks_uri.
func (s *Server) signIDToken(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "ES256", "kid": s.idKid})
	p, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	d := sha256.Sum256([]byte(signing))
	r, ss, err := ecdsa.Sign(rand.Reader, s.idKey, d[:])
	if err != nil {
		return signing + "."
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// SetTenantDomain makes domain (e.g. contoso.onmicrosoft.com) another name
// of the tenant id at the identity platform paths, as a verified domain
// is in Entra: /{domain}/v2.0/.well-known/openid-configuration is the
// tenant's discovery document (its issuer names the tenant's id), and
// tokens acquired at /{domain}/ are the tenant's. Setting a domain again
// moves it to another tenant.
func (s *Server) SetTenantDomain(domain, tenantID string) error {
	d := strings.ToLower(strings.TrimSpace(domain))
	if d == "" || !strings.Contains(d, ".") || strings.ContainsAny(d, "/?#@ ") {
		return fmt.Errorf("graphsim: %q is not a domain name", domain)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tenants[strings.ToLower(strings.TrimSpace(tenantID))]
	if ts == nil {
		return fmt.Errorf("graphsim: no tenant %s", tenantID)
	}
	s.tenants[d] = ts
	return nil
}

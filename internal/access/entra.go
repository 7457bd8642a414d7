package access

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
)

// entra is the OpenID Connect sign-in through the app registration.
type entra struct {
	authority string // authority host + "/" + AZURE_TENANT_ID
	// tenantID is the tenant's GUID (AZURE_TENANT_ID's, or its domain's
	// as resolved at start); issuer is the issuer of its id_tokens. Both
	// are pinned: a token of any other tenant is refused.
	tenantID, issuer string
	clientID         string
	secret           string
	group            string
	role             string
	http             *http.Client

	mu      sync.Mutex
	keys    map[string]any // kid → public key
	keysAt  time.Time
	issuers map[string]bool
}

// flow is what the sign-in cookie holds between /auth/login and the
// callback: the state, nonce and PKCE verifier, and where to go after.
type flow struct {
	State, Nonce, Verifier, Next string
	Exp                          int64
}

const flowTTL = 10 * time.Minute

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// nextPrefixes are where a sign-in may return to: the pages behind the
// sign-in (Protect sends people from each to /auth/login).
var nextPrefixes = []string{"/console/", "/riverui/"}

// safeNext reports whether next may be where a sign-in returns: a path on
// this host under one of nextPrefixes, with no scheme, no host and no
// control character (a browser drops tabs and newlines from a Location,
// so "/\t/evil.example" would become "//evil.example", another site), and
// whose dot segments do not lead out of the prefix.
func safeNext(next string) bool {
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.Contains(next, "\\") {
		return false
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	p, err := url.PathUnescape(u.EscapedPath())
	if err != nil || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return false
	}
	clean := path.Clean(p)
	for _, prefix := range nextPrefixes {
		if strings.HasPrefix(next, prefix) && (clean+"/" == prefix || strings.HasPrefix(clean, prefix)) {
			return true
		}
	}
	return false
}

// Routes serves /auth/login, /auth/callback and /auth/logout on mux.
func (g *Guard) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/login", g.login)
	mux.HandleFunc("GET /auth/callback", g.callback)
	mux.HandleFunc("POST /auth/logout", g.logout)
}

func (g *Guard) redirectURI() string { return g.base + "/auth/callback" }

func (g *Guard) login(w http.ResponseWriter, r *http.Request) {
	if g.entra == nil {
		http.Redirect(w, r, "/console/", http.StatusFound)
		return
	}
	next := r.URL.Query().Get("next")
	if !safeNext(next) {
		next = "/console/"
	}
	f := flow{State: newID(), Nonce: newID(), Verifier: newID() + newID(), Next: next, Exp: time.Now().Add(flowTTL).Unix()}
	http.SetCookie(w, g.cookie(g.flowCookie, g.seal(flowCookie, f), flowTTL))
	sum := sha256.Sum256([]byte(f.Verifier))
	q := url.Values{
		"client_id":             {g.entra.clientID},
		"response_type":         {"code"},
		"redirect_uri":          {g.redirectURI()},
		"response_mode":         {"query"},
		"scope":                 {"openid profile email"},
		"state":                 {f.State},
		"nonce":                 {f.Nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	http.Redirect(w, r, g.entra.authority+"/oauth2/v2.0/authorize?"+q.Encode(), http.StatusFound)
}

var refusedPage = template.Must(template.New("refused").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in refused · bulkassign</title></head>
<body><main><h1>Sign-in refused</h1><p role="alert">{{.}}</p><p><a href="/auth/login">Sign in again</a></p></main></body></html>`))

func (g *Guard) refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = refusedPage.Execute(w, msg)
}

func (g *Guard) callback(w http.ResponseWriter, r *http.Request) {
	if g.entra == nil {
		http.NotFound(w, r)
		return
	}
	var f flow
	c, err := r.Cookie(g.flowCookie)
	if err != nil || !g.open(flowCookie, c.Value, &f) || time.Now().Unix() > f.Exp {
		g.refuse(w, http.StatusBadRequest, "The sign-in took too long or did not start here: sign in again.")
		return
	}
	http.SetCookie(w, g.cookie(g.flowCookie, "", -1))
	q := r.URL.Query()
	if q.Get("state") == "" || q.Get("state") != f.State {
		g.refuse(w, http.StatusBadRequest, "The sign-in's state does not match: sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		g.logger.Warn("console sign-in refused by Entra", "error", e, "description", q.Get("error_description"))
		g.refuse(w, http.StatusForbidden, "Microsoft Entra ID refused the sign-in: "+e+": "+q.Get("error_description"))
		return
	}
	user, err := g.entra.redeem(r, q.Get("code"), g.redirectURI(), f)
	if err != nil {
		g.logger.Warn("console sign-in failed", "error", err)
		g.refuse(w, http.StatusForbidden, err.Error())
		return
	}
	g.logger.Info("console sign-in", "user", user)
	g.writeSession(w, &session{ID: newID(), User: user, Exp: time.Now().Add(sessionTTL).Unix()})
	http.Redirect(w, r, f.Next, http.StatusFound)
}

func (g *Guard) logout(w http.ResponseWriter, r *http.Request) {
	if s := g.readSession(r); s != nil && !sameToken(r.PostFormValue("csrf"), g.csrfFor(s.ID)) {
		http.Error(w, "sign-out refused: no valid CSRF token (reload the page and try again)", http.StatusForbidden)
		return
	}
	http.SetCookie(w, g.cookie(g.sessionCookie, "", -1))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out · bulkassign</title></head><body><main><h1>Signed out</h1><p><a href="/console/">Open the console</a></p></main></body></html>`)
}

func sameToken(a, b string) bool {
	return a != "" && hmac.Equal([]byte(a), []byte(b))
}

// redeem trades the code for tokens (the app's secret and the PKCE
// verifier), checks the id_token (signature by the tenant's keys, issuer,
// audience, lifetime, nonce) and who may enter; it returns the UPN.
func (e *entra) redeem(r *http.Request, code, redirectURI string, f flow) (string, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {e.clientID},
		"client_secret": {e.secret},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {f.Verifier},
		"scope":         {"openid profile email"},
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, e.authority+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("the sign-in could not reach Microsoft Entra ID: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
		Codes   []int  `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK || tr.IDToken == "" {
		// Only the error and its AADSTS numbers: never the body, which
		// could carry tokens.
		return "", fmt.Errorf("Microsoft Entra ID did not redeem the sign-in (HTTP %d %s, AADSTS %v)", resp.StatusCode, tr.Error, tr.Codes)
	}
	var claims struct {
		jwt.RegisteredClaims
		Nonce  string   `json:"nonce"`
		TID    string   `json:"tid"`
		UPN    string   `json:"preferred_username"`
		UPN2   string   `json:"upn"`
		Groups []string `json:"groups"`
		Roles  []string `json:"roles"`
	}
	_, err = jwt.ParseWithClaims(tr.IDToken, &claims, e.keyFor(r), jwt.WithValidMethods([]string{"RS256", "ES256"}),
		jwt.WithAudience(e.clientID), jwt.WithExpirationRequired(), jwt.WithLeeway(2*time.Minute))
	if err != nil {
		return "", fmt.Errorf("the sign-in's id_token is not valid: %w", err)
	}
	if claims.Issuer != e.issuer {
		return "", fmt.Errorf("the sign-in's id_token is from issuer %q, want %q", claims.Issuer, e.issuer)
	}
	if !strings.EqualFold(claims.TID, e.tenantID) {
		return "", fmt.Errorf("the sign-in is of tenant %s, not of AZURE_TENANT_ID (%s)", claims.TID, e.tenantID)
	}
	if claims.Nonce == "" || claims.Nonce != f.Nonce {
		return "", errors.New("the sign-in's nonce does not match: sign in again")
	}
	user := cmp.Or(claims.UPN, claims.UPN2)
	if user == "" {
		user = claims.Subject
	}
	inGroup := e.group != "" && slices.ContainsFunc(claims.Groups, func(g string) bool { return strings.EqualFold(g, e.group) })
	hasRole := e.role != "" && slices.Contains(claims.Roles, e.role)
	if !inGroup && !hasRole {
		return "", fmt.Errorf("%s is signed in but may not use this console: it takes membership of the group CONSOLE_ENTRA_GROUP or the app role CONSOLE_ENTRA_ROLE", user)
	}
	return user, nil
}

// resolveTenant is the GUID of tenant (AZURE_TENANT_ID: a GUID, or a
// domain of the tenant such as contoso.onmicrosoft.com). A domain is
// resolved once, at start, from the tenant's OpenID discovery document at
// the authority host, whose issuer is host/{GUID}/v2.0: the console's
// sign-in then takes the id_tokens of that tenant only, and not of
// whichever tenant a token names in its own tid.
func resolveTenant(hc *http.Client, host, tenant string) (string, error) {
	if id, err := assign.ParseGUID("AZURE_TENANT_ID", tenant); err == nil {
		return id, nil
	}
	fail := func(format string, a ...any) error {
		return &config.Error{Var: "AZURE_TENANT_ID", Msg: fmt.Sprintf("%q: the console's Entra sign-in cannot learn the tenant's id: ", tenant) + fmt.Sprintf(format, a...) + " (or set AZURE_TENANT_ID to the tenant's GUID)"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	doc := host + "/" + url.PathEscape(tenant) + "/v2.0/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, doc, nil)
	if err != nil {
		return "", fail("%v", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fail("%s: %v", doc, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fail("%s answered HTTP %d", doc, resp.StatusCode)
	}
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return "", fail("%s is not a discovery document: %v", doc, err)
	}
	mid, ok := strings.CutPrefix(d.Issuer, host+"/")
	if ok {
		mid, ok = strings.CutSuffix(mid, "/v2.0")
	}
	id, err := assign.ParseGUID("issuer", mid)
	if !ok || err != nil {
		return "", fail("the issuer %q of %s is not %s/{tenant GUID}/v2.0", d.Issuer, doc, host)
	}
	return id, nil
}

// keyFor finds the id_token's signing key among the tenant's published
// keys, reading them again (at most once a minute) when the kid is new.
func (e *entra) keyFor(r *http.Request) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		e.mu.Lock()
		defer e.mu.Unlock()
		if k, ok := e.keys[kid]; ok {
			return k, nil
		}
		if time.Since(e.keysAt) < time.Minute && e.keys != nil {
			return nil, fmt.Errorf("no signing key %q", kid)
		}
		keys, err := e.fetchKeys(r)
		if err != nil {
			return nil, err
		}
		e.keys, e.keysAt = keys, time.Now()
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no signing key %q", kid)
	}
}

func (e *entra) fetchKeys(r *http.Request) (map[string]any, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, e.authority+"/discovery/v2.0/keys", nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot read the tenant's signing keys: %w", err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid, Kty, Crv, X, Y, N, E string
		} `json:"keys"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot read the tenant's signing keys: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("cannot read the tenant's signing keys: %w", err)
	}
	out := map[string]any{}
	b64 := func(s string) *big.Int {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		return new(big.Int).SetBytes(b)
	}
	for _, k := range set.Keys {
		switch {
		case k.Kty == "RSA" && k.N != "" && k.E != "":
			out[k.Kid] = &rsa.PublicKey{N: b64(k.N), E: int(b64(k.E).Int64())}
		case k.Kty == "EC" && k.Crv == "P-256":
			out[k.Kid] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: b64(k.X), Y: b64(k.Y)}
		}
	}
	return out, nil
}

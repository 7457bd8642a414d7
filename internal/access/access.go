// Package access decides who may use the worker's web pages (the console
// and River UI): nobody signs in on a loopback address, basic auth, or
// Microsoft Entra ID sign-in (OpenID Connect, authorization code with
// PKCE) limited to a group or an app role. It keeps a signed session
// cookie per browser, gives each session a CSRF token, and refuses
// cross-site requests that change state.
package access

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
)

// Config configures a Guard.
type Config struct {
	Console config.Console
	// Addr is WORKER_HTTP_ADDR, for CheckExposure and the default URL.
	Addr string
	// User and Password are basic auth's (WORKER_HTTP_USER, ..._PASSWORD).
	User, Password string
	// Entra sign-in: where the authority is, the tenant and the app
	// registration (AZURE_*); the secret redeems the code.
	AuthorityHost, TenantID, ClientID, ClientSecret string
	// HTTPClient talks to the authority; nil takes a 30 s default.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// CheckExposure refuses an address other machines can reach when nobody
// has to sign in: the console and River UI enqueue, cancel, revert and
// delete. It refuses, too, basic auth over plain HTTP off loopback, where
// the password and the session cookie would cross the network in clear,
// unless CONSOLE_ALLOW_PLAIN_HTTP says so. Its error is one line naming the
// settings.
func CheckExposure(addr string, c config.Console) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &config.Error{Var: "WORKER_HTTP_ADDR", Msg: fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:8080), nor off", addr)}
	}
	if c.SignIn == config.WebSignInNone && !graph.IsLoopback(host) {
		return &config.Error{Var: "WORKER_HTTP_ADDR", Msg: fmt.Sprintf(
			"%q is not a loopback address and nobody would sign in to the console and River UI there: set CONSOLE_SIGNIN=entra (with CONSOLE_ENTRA_GROUP or CONSOLE_ENTRA_ROLE), or WORKER_HTTP_USER and WORKER_HTTP_PASSWORD, or listen on 127.0.0.1", addr)}
	}
	if where := plainBasic(addr, c); where != "" && !c.AllowPlainHTTP {
		return &config.Error{Var: "CONSOLE_URL", Msg: fmt.Sprintf(
			"basic auth (WORKER_HTTP_USER, WORKER_HTTP_PASSWORD) at %s would send the password and the session cookie over plain HTTP off this machine: serve the console over https (CONSOLE_URL=https://…, or CONSOLE_SECURE_COOKIES=true when TLS ends at a proxy in front), listen on 127.0.0.1, or set CONSOLE_ALLOW_PLAIN_HTTP=true to accept it", where)}
	}
	return nil
}

// plainBasic is where browsers would send basic auth over plain HTTP off
// loopback (the listen address or CONSOLE_URL), or "".
func plainBasic(addr string, c config.Console) string {
	if c.SignIn != config.WebSignInBasic || c.SecureCookies {
		return ""
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && !graph.IsLoopback(host) {
		return "WORKER_HTTP_ADDR " + addr
	}
	if u, err := url.Parse(c.URL); err == nil && u.Hostname() != "" && !graph.IsLoopback(u.Hostname()) {
		return "CONSOLE_URL " + c.URL
	}
	return ""
}

// Guard signs people in and out and guards handlers.
type Guard struct {
	cfg    Config
	key    []byte // signs cookies; new each process
	base   string // the public URL, no trailing slash
	entra  *entra
	hosts  *Hosts
	logger *slog.Logger
	local  string // the user of an unsigned-in loopback console
	// The cookies' names: __Host- prefixed when they are Secure.
	sessionCookie, flowCookie string
}

// New checks cfg and builds a Guard.
func New(cfg Config) (*Guard, error) {
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, &config.Error{Var: "WORKER_HTTP_USER", Msg: "WORKER_HTTP_USER and WORKER_HTTP_PASSWORD must be set together"}
	}
	if err := CheckExposure(cfg.Addr, cfg.Console); err != nil {
		return nil, err
	}
	g := &Guard{cfg: cfg, key: make([]byte, 32), logger: cfg.Logger, sessionCookie: sessionCookie, flowCookie: flowCookie}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Console.SecureCookies {
		g.sessionCookie, g.flowCookie = hostPrefix+sessionCookie, hostPrefix+flowCookie
	}
	g.hosts = NewHosts(cfg.Addr, cfg.Console, g.logger)
	if where := plainBasic(cfg.Addr, cfg.Console); where != "" {
		g.logger.Warn("PLAIN HTTP: basic auth at "+where+" sends WORKER_HTTP_PASSWORD and the session cookie in clear to anyone on the network path (CONSOLE_ALLOW_PLAIN_HTTP=true); serve the console over https instead",
			"addr", cfg.Addr, "console_url", cfg.Console.URL)
	}
	if _, err := rand.Read(g.key); err != nil {
		return nil, err
	}
	g.base = cfg.Console.URL
	if g.base == "" {
		g.base = "http://" + cfg.Addr
	}
	host, _ := os.Hostname()
	g.local = "console@" + cmp.Or(host, "localhost")
	if cfg.Console.SignIn == config.WebSignInEntra {
		hc := cfg.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 30 * time.Second}
		}
		host := strings.TrimSuffix(cfg.AuthorityHost, "/")
		tenant, err := resolveTenant(hc, host, cfg.TenantID)
		if err != nil {
			return nil, err
		}
		g.entra = &entra{authority: host + "/" + cfg.TenantID, tenantID: tenant, issuer: host + "/" + tenant + "/v2.0",
			clientID: cfg.ClientID, secret: cfg.ClientSecret, group: cfg.Console.EntraGroup, role: cfg.Console.EntraRole, http: hc}
		if tenant != strings.ToLower(cfg.TenantID) {
			g.logger.Info("console sign-in pinned to the tenant of AZURE_TENANT_ID", "domain", cfg.TenantID, "tenant", tenant)
		}
	}
	return g, nil
}

// SetBase sets the public URL once the listener's port is known (an Addr
// with port 0), unless CONSOLE_URL set it.
func (g *Guard) SetBase(addr string) {
	if g.cfg.Console.URL == "" {
		g.base = "http://" + addr
	}
}

// Wrap is everything the worker's listener serves, next, behind the Host
// rule (Hosts, with the listen address and CONSOLE_URL), with the headers
// of SetHeaders on every answer. The paths in anyHost answer any Host.
func (g *Guard) Wrap(next http.Handler, anyHost ...string) http.Handler {
	return g.hosts.Wrap(next, anyHost...)
}

// session is what the session cookie holds.
type session struct {
	ID   string `json:"i"`
	User string `json:"u,omitempty"`
	Exp  int64  `json:"e"`
}

// The cookies' names. With Secure cookies (an https CONSOLE_URL, or
// CONSOLE_SECURE_COOKIES=true) they take the __Host- prefix, which makes
// browsers keep them only when they are Secure, for path / and for this
// host alone (no Domain), so that no sibling subdomain or plain-HTTP page
// can plant or overwrite them. Over plain HTTP (a loopback console) they
// cannot be Secure, and browsers refuse __Host- cookies that are not, so
// they keep their plain names there.
const (
	sessionCookie = "bulkassign_session"
	flowCookie    = "bulkassign_signin"
	hostPrefix    = "__Host-"
	sessionTTL    = 12 * time.Hour
)

type ctxKey struct{}

// User is who makes the request, as the guard found: the Entra user's UPN,
// the basic-auth user, or console@host on an unsigned-in loopback console.
func User(r *http.Request) string {
	if ri := info(r); ri != nil {
		return ri.s.User
	}
	return ""
}

// SignIn is how the request's user signed in: config.WebSignInNone,
// WebSignInBasic or WebSignInEntra ("" outside Protect).
func SignIn(r *http.Request) string {
	if ri := info(r); ri != nil {
		return ri.g.cfg.Console.SignIn
	}
	return ""
}

// reqInfo is what Protect puts in a request's context.
type reqInfo struct {
	s *session
	g *Guard
}

func info(r *http.Request) *reqInfo {
	ri, _ := r.Context().Value(ctxKey{}).(*reqInfo)
	return ri
}

// CSRFToken is the token state-changing requests of this session carry
// (form field "csrf" or header X-CSRF-Token); "" outside Protect.
func CSRFToken(r *http.Request) string {
	if ri := info(r); ri != nil {
		return ri.g.csrfFor(ri.s.ID)
	}
	return ""
}

func (g *Guard) csrfFor(sid string) string {
	return base64.RawURLEncoding.EncodeToString(g.mac("csrf:" + sid))
}

// CheckCSRF reports whether r carries its session's CSRF token: in the
// X-CSRF-Token header, else in the form (field csrf).
func CheckCSRF(r *http.Request) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return ValidCSRF(r, got)
}

// ValidCSRF reports whether token is r's session's CSRF token (a
// multipart upload carries it in its URL, so that the check does not read
// the file first).
func ValidCSRF(r *http.Request, token string) bool {
	want := CSRFToken(r)
	return want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1
}

func (g *Guard) mac(s string) []byte {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// seal signs v into a cookie value; open checks and reads one.
func (g *Guard) seal(name string, v any) string {
	b, _ := json.Marshal(v)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + base64.RawURLEncoding.EncodeToString(g.mac(name+":"+p))
}

func (g *Guard) open(name, value string, v any) bool {
	p, sig, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, g.mac(name+":"+p)) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	return err == nil && json.Unmarshal(b, v) == nil
}

func (g *Guard) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: g.cfg.Console.SecureCookies,
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	return c
}

func (g *Guard) readSession(r *http.Request) *session {
	c, err := r.Cookie(g.sessionCookie)
	if err != nil {
		return nil
	}
	var s session
	if !g.open(sessionCookie, c.Value, &s) || s.ID == "" || time.Now().Unix() > s.Exp {
		return nil
	}
	return &s
}

func (g *Guard) writeSession(w http.ResponseWriter, s *session) {
	http.SetCookie(w, g.cookie(g.sessionCookie, g.seal(sessionCookie, s), sessionTTL))
}

func newID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Protect admits signed-in requests to next (the user and the CSRF token
// in their context) and refuses cross-site requests that change state
// (http.CrossOriginProtection: Sec-Fetch-Site, else Origin against Host).
// HTML requests of a person not signed in to Entra are sent to sign in.
func (g *Guard) Protect(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := g.readSession(r)
		switch g.cfg.Console.SignIn {
		case config.WebSignInBasic:
			if !g.basicOK(r) {
				w.Header().Set("WWW-Authenticate", `Basic realm="bulkassign worker", charset="UTF-8"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			u, _, _ := r.BasicAuth()
			if s == nil || s.User != u {
				s = &session{ID: newID(), User: u, Exp: time.Now().Add(sessionTTL).Unix()}
				g.writeSession(w, s)
			}
		case config.WebSignInEntra:
			if s == nil || s.User == "" {
				if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
					http.Redirect(w, r, "/auth/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusFound)
					return
				}
				http.Error(w, "sign in first: open /auth/login", http.StatusUnauthorized)
				return
			}
		default:
			if s == nil {
				s = &session{ID: newID(), User: g.local, Exp: time.Now().Add(sessionTTL).Unix()}
				g.writeSession(w, s)
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &reqInfo{s: s, g: g})))
	}))
}

// basicOK compares digests in constant time, user and password both
// always, so neither a wrong user nor a wrong length shows in the timing.
func (g *Guard) basicOK(r *http.Request) bool {
	u, p, _ := r.BasicAuth()
	wantUser, wantPassword := sha256.Sum256([]byte(g.cfg.User)), sha256.Sum256([]byte(g.cfg.Password))
	gotUser, gotPassword := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	okUser := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
	okPassword := subtle.ConstantTimeCompare(gotPassword[:], wantPassword[:])
	return okUser&okPassword == 1
}

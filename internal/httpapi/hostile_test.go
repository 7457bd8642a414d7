package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/console"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// The tests here are a hostile web page's, list's or user's: a page
// that rebinds its own name to the worker's loopback address, a sign-in
// link that would send the browser elsewhere, a page that frames River
// UI, a scrape by anyone, a token of another tenant.

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func send(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var (
	csrfRE  = regexp.MustCompile(`name="csrf" value="([^"]+)"|data-csrf="([^"]+)"`)
	tokenRE = regexp.MustCompile(`name="token" value="([0-9a-f]+)"`)
)

// uploadRequest is the console's upload form posting content.
func uploadRequest(t *testing.T, base, csrf, content string) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "rows.csv")
	io.WriteString(fw, content)
	mw.Close()
	req, err := http.NewRequest(http.MethodPost, base+"/console/upload?csrf="+url.QueryEscape(csrf), &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", base)
	return req
}

// checkFraming fails unless the answer forbids framing by other sites.
func checkFraming(t *testing.T, what string, h http.Header) {
	t.Helper()
	if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Frame-Options %q, Content-Security-Policy %q, X-Content-Type-Options %q; want DENY, frame-ancestors 'none', nosniff",
			what, h.Get("X-Frame-Options"), h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"))
	}
}

// TestDNSRebinding is the attack on a loopback console without sign-in: a
// page at rebind.attacker.example:PORT, whose name now resolves to
// 127.0.0.1, is the console's same origin to the browser (Origin and
// Sec-Fetch-Site agree), with the session cookie of the person's own tab
// even. Only the Host header still says whose page it is: every route but
// the probes answers it 421, logs it, and nothing is enqueued, while the
// same requests under the worker's own name go through.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0))
	var logBuf testenv.LogBuffer
	rt, _ := h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "200", "WORKER_CONCURRENCY": "4"},
		Logger: slog.New(slog.NewJSONHandler(&logBuf, nil)), Prepare: console.Attach})
	base := testenv.Serving(t, rt)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	evil := "rebind.attacker.example:" + port

	// The person's own tab: a session, its CSRF token, and the review of
	// 40 rows with its enqueue token.
	jar, _ := cookiejar.New(nil)
	own := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: noRedirect.CheckRedirect}
	req, _ := http.NewRequest(http.MethodGet, base+"/console/", nil)
	req.Header.Set("Accept", "text/html")
	resp, body := send(t, own, req)
	m := csrfRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("/console/ = %d without a CSRF token: %.300s", resp.StatusCode, body)
	}
	csrf := m[1] + m[2]
	checkFraming(t, "/console/", resp.Header)
	resp, body = send(t, own, uploadRequest(t, base, csrf, testenv.GroupCSV(40, 1)))
	tm := tokenRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || tm == nil {
		t.Fatalf("upload = %d without an enqueue token: %.300s", resp.StatusCode, body)
	}
	u, _ := url.Parse(base)
	var cookie string
	for _, c := range jar.Cookies(u) {
		cookie += c.Name + "=" + c.Value + "; "
	}
	enqueueForm := url.Values{"csrf": {csrf}, "token": {tm[1]}}.Encode()

	// The hostile page, with the same session cookie and tokens.
	rebind := func(method, path, contentType string, body io.Reader) *http.Request {
		req, _ := http.NewRequest(method, base+path, body)
		req.Host = evil
		req.Header.Set("Origin", "http://"+evil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Cookie", cookie)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return req
	}
	up := uploadRequest(t, base, csrf, testenv.GroupCSV(40, 1))
	for _, req := range []*http.Request{
		rebind(http.MethodGet, "/console/", "", nil),
		rebind(http.MethodPost, "/console/upload?csrf="+url.QueryEscape(csrf), up.Header.Get("Content-Type"), up.Body),
		rebind(http.MethodPost, "/console/enqueue", "application/x-www-form-urlencoded", strings.NewReader(enqueueForm)),
		rebind(http.MethodGet, "/riverui/", "", nil),
		rebind(http.MethodGet, "/riverui/api/jobs?limit=10", "", nil),
		rebind(http.MethodGet, "/auth/login", "", nil),
		rebind(http.MethodGet, "/metrics", "", nil),
		rebind(http.MethodGet, "/", "", nil),
	} {
		resp, body := send(t, noRedirect, req)
		what := req.Method + " " + req.URL.Path + " as " + evil
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s = %d, want 421: %.200s", what, resp.StatusCode, body)
		}
		checkFraming(t, what, resp.Header)
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s set a cookie", what)
		}
	}
	var n int
	if err := h.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM batches`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("batches after the rebinding requests = %d (%v), want 0", n, err)
	}
	// The probes answer any Host (orchestrators' health checks use theirs);
	// they carry no secret and change nothing.
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := send(t, noRedirect, rebind(http.MethodGet, path, "", nil)); resp.StatusCode != http.StatusOK {
			t.Errorf("%s as %s = %d %q, want 200", path, evil, resp.StatusCode, body)
		}
	}
	// The refusal is logged, with the Host.
	if log := logBuf.String(); !strings.Contains(log, `"level":"WARN"`) || !strings.Contains(log, "request refused") || !strings.Contains(log, `"host":"`+evil+`"`) {
		t.Errorf("no WARN line refusing Host %s in the log:\n%.2000s", evil, log)
	}

	// The same enqueue under the worker's own name goes through: the
	// tokens were good, only the Host was not.
	req, _ = http.NewRequest(http.MethodPost, base+"/console/enqueue", strings.NewReader(enqueueForm))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, body = send(t, own, req)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/batches/") {
		t.Fatalf("own enqueue = %d %s, want 303 to the batch: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if err := h.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM batches`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("batches after the own enqueue = %d (%v), want 1", n, err)
	}
	h.WaitFinal(t, strings.TrimPrefix(resp.Header.Get("Location"), "/console/batches/"), time.Minute)

	// Every route carries the framing headers: River UI and its assets,
	// the sign-in pages, the index, the probes and the metrics.
	for _, path := range []string{"/riverui/", "/auth/login", "/auth/callback", "/", "/healthz", "/metrics", "/nope"} {
		resp, _ := send(t, noRedirect, mustGet(t, base+path))
		checkFraming(t, path, resp.Header)
	}
	// A cookie over plain HTTP on loopback cannot be Secure, so it keeps
	// its plain name (browsers refuse __Host- cookies that are not).
	for _, c := range jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "__Host-") {
			t.Errorf("cookie %s on a plain-HTTP console", c.Name)
		}
	}
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	return req
}

// echoConsole stands for the console: it shows who is signed in and the
// session's CSRF token.
func echoConsole() (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s csrf=%s", access.User(r), access.CSRFToken(r))
	}), nil
}

func startServer(t *testing.T, cfg httpapi.Config) *httpapi.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Console == nil {
		cfg.Console = echoConsole
	}
	srv, err := httpapi.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

// TestSecureCookiesTakeHostPrefix: with an https CONSOLE_URL the session
// cookie is __Host-bulkassign_session, Secure, for path / and no Domain,
// and a cookie planted under the old name (by a sibling subdomain, say)
// is not a session. The sign-in's flow cookie is __Host- too.
func TestSecureCookiesTakeHostPrefix(t *testing.T) {
	t.Parallel()
	const publicURL = "https://bulkassign.contoso.example"
	cc := config.Console{SignIn: config.WebSignInNone, URL: publicURL, SecureCookies: true}
	srv := startServer(t, httpapi.Config{Access: access.Config{Console: cc}})
	base := "http://" + srv.Addr()
	// TLS would end at a proxy: the worker sees the public name as Host.
	open := func(cookie string) (*http.Response, string) {
		req := mustGet(t, base+"/console/")
		req.Host = "bulkassign.contoso.example"
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		return send(t, noRedirect, req)
	}
	resp, first := open("")
	cs := resp.Cookies()
	if resp.StatusCode != http.StatusOK || len(cs) != 1 {
		t.Fatalf("/console/ = %d with %d cookies, want 200 and one", resp.StatusCode, len(cs))
	}
	c := cs[0]
	if c.Name != "__Host-bulkassign_session" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %s (Secure %v, HttpOnly %v, Path %q, Domain %q, SameSite %v), want __Host-bulkassign_session; Secure; HttpOnly; Path=/; no Domain; SameSite=Lax",
			c.Name, c.Secure, c.HttpOnly, c.Path, c.Domain, c.SameSite)
	}
	if resp, again := open(c.Name + "=" + c.Value); resp.StatusCode != http.StatusOK || again != first || len(resp.Cookies()) != 0 {
		t.Errorf("with its cookie: %d %q (%d new cookies), want the same session %q", resp.StatusCode, again, len(resp.Cookies()), first)
	}
	if _, planted := open("bulkassign_session=" + c.Value); planted == first {
		t.Errorf("a cookie under the unprefixed name is taken as the session")
	}

	// Entra sign-in: the flow cookie between /auth/login and the callback.
	sim, err := graphsim.New(graphsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	ec := cc
	ec.SignIn, ec.EntraGroup = config.WebSignInEntra, testenv.Group(1)
	esrv := startServer(t, httpapi.Config{Access: access.Config{Console: ec, AuthorityHost: sim.AuthorityHost(), TenantID: sim.TenantID(),
		ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret}})
	req := mustGet(t, "http://"+esrv.Addr()+"/auth/login")
	req.Host = "bulkassign.contoso.example"
	resp, _ = send(t, noRedirect, req)
	if cs := resp.Cookies(); resp.StatusCode != http.StatusFound || len(cs) != 1 || cs[0].Name != "__Host-bulkassign_signin" || !cs[0].Secure || cs[0].Path != "/" {
		names := []string{}
		for _, c := range cs {
			names = append(names, fmt.Sprintf("%s (Secure %v, Path %q)", c.Name, c.Secure, c.Path))
		}
		t.Errorf("/auth/login = %d, cookies %v; want a redirect with a Secure __Host-bulkassign_signin cookie", resp.StatusCode, names)
	}
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, url.QueryEscape(publicURL+"/auth/callback")) {
		t.Errorf("/auth/login sends to %s, want the redirect URI under CONSOLE_URL", loc)
	}
}

// signIn runs an Entra sign-in with a browser's cookie jar and returns
// the callback's answer: /auth/login?<query> → the simulator's authorize →
// /auth/callback.
func signIn(t *testing.T, base, query string) (*http.Client, *http.Response, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: noRedirect.CheckRedirect}
	resp, body := send(t, c, mustGet(t, base+"/auth/login?"+query))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("/auth/login?%s = %d: %.300s", query, resp.StatusCode, body)
	}
	resp, body = send(t, c, mustGet(t, resp.Header.Get("Location")))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), base+"/auth/callback?") {
		t.Fatalf("authorize = %d %s, want a redirect to the callback: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = send(t, c, mustGet(t, resp.Header.Get("Location")))
	return c, resp, body
}

// TestEntraSignInReturnsOnlyHere: the sign-in returns to a page of the
// console or River UI, never elsewhere, whatever next says.
func TestEntraSignInReturnsOnlyHere(t *testing.T) {
	t.Parallel()
	sim, err := graphsim.New(graphsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	group := testenv.Group(3)
	sim.SetSignInUser(graphsim.SignInUser{UPN: "ada@contoso.example", Groups: []string{group}})
	srv := startServer(t, httpapi.Config{Access: access.Config{Console: config.Console{SignIn: config.WebSignInEntra, EntraGroup: group},
		AuthorityHost: sim.AuthorityHost(), TenantID: sim.TenantID(), ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret}})
	base := "http://" + srv.Addr()
	for _, c := range []struct{ query, want string }{
		{"next=/%09/evil.example/phish", "/console/"}, // the report's: Location "/\t/evil.example/phish"
		{"next=/%0a/evil.example", "/console/"},
		{"next=//evil.example/console/", "/console/"},
		{"next=/%5Cevil.example", "/console/"},
		{"next=https://evil.example/console/", "/console/"},
		{"next=/auth/logout", "/console/"},
		{"next=/console/../%09/evil.example", "/console/"},
		{"next=" + url.QueryEscape("/console/batches/0a1b?view=rows"), "/console/batches/0a1b?view=rows"},
		{"next=/riverui/jobs", "/riverui/jobs"},
		{"", "/console/"},
	} {
		client, resp, body := signIn(t, base, c.query)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != c.want {
			t.Errorf("sign-in with %q returns to %q (%d), want %q: %.200s", c.query, resp.Header.Get("Location"), resp.StatusCode, c.want, body)
			continue
		}
		checkFraming(t, "/auth/callback", resp.Header)
		if c.query == "" {
			if resp, body := send(t, client, mustGet(t, base+"/console/")); resp.StatusCode != http.StatusOK || !strings.Contains(body, "user=ada@contoso.example") {
				t.Errorf("/console/ after sign-in = %d %q, want ada", resp.StatusCode, body)
			}
		}
	}
}

// TestEntraSignInPinsTheTenant: with AZURE_TENANT_ID given as a domain,
// the console resolves it to its tenant's GUID at start (the tenant's
// OpenID discovery document) and takes that tenant's id_tokens only. When
// the domain later leads to another tenant, that tenant's users are
// refused although their tokens are signed, for this app and carry an
// issuer matching their own tid.
func TestEntraSignInPinsTheTenant(t *testing.T) {
	t.Parallel()
	const domain = "contoso.onmicrosoft.com"
	sim, err := graphsim.New(graphsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	if err := sim.SetTenantDomain(domain, sim.TenantID()); err != nil {
		t.Fatal(err)
	}
	group := testenv.Group(3)
	sim.SetSignInUser(graphsim.SignInUser{UPN: "ada@contoso.example", Groups: []string{group}})
	var logBuf testenv.LogBuffer
	ac := access.Config{Console: config.Console{SignIn: config.WebSignInEntra, EntraGroup: group},
		AuthorityHost: sim.AuthorityHost(), TenantID: domain, ClientID: graphsim.DefaultClientID, ClientSecret: graphsim.DefaultClientSecret}
	srv := startServer(t, httpapi.Config{Access: ac, Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	base := "http://" + srv.Addr()
	if log := logBuf.String(); !strings.Contains(log, "pinned") || !strings.Contains(log, sim.TenantID()) {
		t.Errorf("the start does not log the tenant the domain resolved to:\n%s", log)
	}

	client, resp, body := signIn(t, base, "")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-in of the domain's tenant = %d, want it through: %.300s", resp.StatusCode, body)
	}
	if resp, body := send(t, client, mustGet(t, base+"/console/")); resp.StatusCode != http.StatusOK || !strings.Contains(body, "user=ada@contoso.example") {
		t.Fatalf("/console/ after sign-in = %d %q, want ada", resp.StatusCode, body)
	}

	const other = "f0000000-0000-4000-8000-00000000000f"
	if _, err := sim.AddTenant(graphsim.TenantConfig{ID: other, Name: "Fabrikam"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetTenantDomain(domain, other); err != nil {
		t.Fatal(err)
	}
	_, resp, body = signIn(t, base, "")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, sim.TenantID()) {
		t.Fatalf("sign-in of another tenant through the domain = %d, want 403 naming the pinned tenant: %.400s", resp.StatusCode, body)
	}

	// A domain the authority does not know stops the start, naming the
	// setting.
	ac.TenantID = "unknown.onmicrosoft.com"
	_, err = httpapi.Start(httpapi.Config{Addr: "127.0.0.1:0", Access: ac, Console: echoConsole})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "AZURE_TENANT_ID" || !strings.Contains(err.Error(), "unknown.onmicrosoft.com") {
		t.Fatalf("start with an unknown domain: %v, want an AZURE_TENANT_ID error naming it", err)
	}
}

// TestPlainHTTPBasicAuth: basic auth off loopback over plain HTTP starts
// only with CONSOLE_ALLOW_PLAIN_HTTP, and then says so at WARN. Listening
// on all interfaces, the worker answers to the address a connection
// reached (a probe or scraper at the pod's IP) but not to another name.
func TestPlainHTTPBasicAuth(t *testing.T) {
	t.Parallel()
	const user, password = "ops", "pw"
	cc := config.Console{SignIn: config.WebSignInBasic}
	_, err := httpapi.Start(httpapi.Config{Addr: "0.0.0.0:0", User: user, Password: password, Access: access.Config{Console: cc}, Console: echoConsole})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "CONSOLE_URL" || !strings.Contains(err.Error(), "CONSOLE_ALLOW_PLAIN_HTTP") {
		t.Fatalf("basic auth on 0.0.0.0 over plain HTTP: %v, want a CONSOLE_URL error naming CONSOLE_ALLOW_PLAIN_HTTP", err)
	}

	cc.AllowPlainHTTP = true
	var logBuf testenv.LogBuffer
	srv := startServer(t, httpapi.Config{Addr: "0.0.0.0:0", User: user, Password: password, Access: access.Config{Console: cc},
		Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	if log := logBuf.String(); !strings.Contains(log, `"level":"WARN"`) || !strings.Contains(log, "PLAIN HTTP") {
		t.Errorf("no loud WARN at start with CONSOLE_ALLOW_PLAIN_HTTP:\n%s", log)
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	ip := nonLoopbackIP()
	if ip == "" {
		t.Log("no non-loopback IPv4 address on this machine: the local-address rule is checked by access.TestHostsAllowed only")
		return
	}
	at := "http://" + net.JoinHostPort(ip, port)
	req := mustGet(t, at+"/console/")
	req.SetBasicAuth(user, password)
	if resp, body := send(t, noRedirect, req); resp.StatusCode != http.StatusOK || !strings.Contains(body, "user=ops") {
		t.Errorf("/console/ at %s = %d %q, want it served", at, resp.StatusCode, body)
	}
	req = mustGet(t, at+"/console/")
	req.SetBasicAuth(user, password)
	req.Host = "rebind.attacker.example:" + port
	if resp, _ := send(t, noRedirect, req); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("/console/ at %s as rebind.attacker.example = %d, want 421", at, resp.StatusCode)
	}
}

func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestMetricsAddr: WORKER_METRICS_ADDR serves /metrics alone, without
// sign-in, for a scraper; WORKER_HTTP_ADDR then serves none. The Host rule
// holds there too.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	rt, _ := h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"WORKER_METRICS_ADDR": "127.0.0.1:0",
		"WORKER_HTTP_USER": "ops", "WORKER_HTTP_PASSWORD": "pw"}})
	base := testenv.Serving(t, rt)
	if rt.MetricsAddr() == "" {
		t.Fatal("no metrics listener")
	}
	mbase := "http://" + rt.MetricsAddr()
	if m := scrape(t, mbase, "", ""); !has(m, "bulkassign_rows_total") || !has(m, "go_goroutines") {
		t.Errorf("the metrics address serves %d series without bulkassign_rows_total or go_goroutines", len(m))
	}
	if code, _, _ := get(t, base+"/metrics", "ops", "pw"); code != http.StatusNotFound {
		t.Errorf("/metrics on WORKER_HTTP_ADDR = %d, want 404 (served on WORKER_METRICS_ADDR)", code)
	}
	for _, path := range []string{"/console/", "/riverui/", "/healthz"} {
		if code, _, _ := get(t, mbase+path, "ops", "pw"); code != http.StatusNotFound {
			t.Errorf("%s on WORKER_METRICS_ADDR = %d, want 404", path, code)
		}
	}
	req := mustGet(t, mbase+"/metrics")
	req.Host = "rebind.attacker.example"
	if resp, _ := send(t, noRedirect, req); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("/metrics on WORKER_METRICS_ADDR as rebind.attacker.example = %d, want 421", resp.StatusCode)
	}
}

func has(series map[string]float64, name string) bool {
	for s := range series {
		if s == name || strings.HasPrefix(s, name+"{") {
			return true
		}
	}
	return false
}

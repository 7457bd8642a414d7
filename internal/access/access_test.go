package access

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/config"
)

// TestSafeNext: where a sign-in may return. The HTTP tests of
// internal/httpapi run the whole sign-in with some of these; this is the
// rule's table.
func TestSafeNext(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		next string
		ok   bool
	}{
		{"/console/", true},
		{"/console/batches/0a1b?x=1#top", true},
		{"/riverui/jobs?state=running", true},
		{"/console/%2e%2e/", false}, // cleans to /
		{"/console/../auth/logout", false},
		{"/console/./batches", true},
		{"", false},
		{"/", false},
		{"/auth/login", false},
		{"/%09/evil.example/phish", false},
		{"/\t/evil.example/phish", false},
		{"/console/\t/x", false},
		{"/console/%09", false},
		{"/console/\n", false},
		{"//evil.example/console/", false},
		{"/\\evil.example/console/", false},
		{"/console/\\..\\..\\evil", false},
		{"https://evil.example/console/", false},
		{"javascript:alert(1)//console/", false},
		{"console/", false},
		{"/consolex/", false},
		{"/console", false},
	} {
		if got := safeNext(c.next); got != c.ok {
			t.Errorf("safeNext(%q) = %v, want %v", c.next, got, c.ok)
		}
	}
}

// TestHostsAllowed: the Host rule's table, the connection's local address
// included (which only a real listener on a non-loopback address shows
// end to end).
func TestHostsAllowed(t *testing.T) {
	t.Parallel()
	local := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8080}
	for _, c := range []struct {
		addr, consoleURL, host string
		local                  net.Addr
		ok                     bool
	}{
		{"127.0.0.1:8080", "", "127.0.0.1:8080", nil, true},
		{"127.0.0.1:8080", "", "localhost:8080", nil, true},
		{"127.0.0.1:8080", "", "LOCALHOST.:8080", nil, true},
		{"127.0.0.1:8080", "", "[::1]:8080", nil, true},
		{"127.0.0.1:8080", "", "localhost", nil, true},
		{"127.0.0.1:8080", "", "rebind.attacker.example:8080", nil, false},
		{"127.0.0.1:8080", "", "127.0.0.1.attacker.example", nil, false},
		{"127.0.0.1:8080", "", "", nil, false},
		{"127.0.0.1:8080", "https://bulkassign.contoso.com", "bulkassign.contoso.com", nil, true},
		{"127.0.0.1:8080", "https://bulkassign.contoso.com:8443", "Bulkassign.Contoso.com:8443", nil, true},
		{"127.0.0.1:8080", "https://bulkassign.contoso.com", "contoso.com", nil, false},
		{"worker.internal:8080", "", "worker.internal:8080", nil, true},
		{"10.1.2.3:8080", "", "10.1.2.3:8080", nil, true},
		// Listening on all interfaces: the address the connection reached
		// is the worker's own (a probe or scraper at the pod's IP).
		{"0.0.0.0:8080", "", "10.1.2.3:8080", local, true},
		{"0.0.0.0:8080", "", "10.1.2.4:8080", local, false},
		{"0.0.0.0:8080", "", "0.0.0.0:8080", local, false},
		{":8080", "", "rebind.attacker.example:8080", local, false},
	} {
		h := NewHosts(c.addr, config.Console{URL: c.consoleURL}, nil)
		r := httptest.NewRequest(http.MethodGet, "/console/", nil)
		r.Host = c.host
		if c.local != nil {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, c.local))
		}
		if got := h.Allowed(r); got != c.ok {
			t.Errorf("listening on %s, CONSOLE_URL %q: Host %q allowed = %v, want %v", c.addr, c.consoleURL, c.host, got, c.ok)
		}
	}
}

// TestCheckExposurePlainBasic: basic auth over plain HTTP off loopback is
// refused with one line naming the settings, unless https is configured
// or CONSOLE_ALLOW_PLAIN_HTTP accepts it.
func TestCheckExposurePlainBasic(t *testing.T) {
	t.Parallel()
	basic := config.Console{SignIn: config.WebSignInBasic}
	withURL := func(c config.Console, u string, secure bool) config.Console {
		c.URL, c.SecureCookies = u, secure
		return c
	}
	allowed := basic
	allowed.AllowPlainHTTP = true
	for _, c := range []struct {
		addr string
		c    config.Console
		ok   bool
	}{
		{"127.0.0.1:8080", basic, true},
		{"0.0.0.0:8080", basic, false},
		{"10.1.2.3:8080", basic, false},
		{"127.0.0.1:8080", withURL(basic, "http://worker.corp.example", false), false},
		{"127.0.0.1:8080", withURL(basic, "http://localhost:8080", false), true},
		{"0.0.0.0:8080", withURL(basic, "https://worker.corp.example", true), true},
		{"0.0.0.0:8080", withURL(basic, "http://worker.corp.example", true), true}, // CONSOLE_SECURE_COOKIES: TLS at a proxy
		{"0.0.0.0:8080", allowed, true},
		{"0.0.0.0:8080", config.Console{SignIn: config.WebSignInEntra}, true},
	} {
		err := CheckExposure(c.addr, c.c)
		var ce *config.Error
		switch {
		case c.ok && err != nil:
			t.Errorf("%s %+v: %v, want allowed", c.addr, c.c, err)
		case !c.ok && (!errors.As(err, &ce) || ce.Var != "CONSOLE_URL"):
			t.Errorf("%s %+v: %v, want a CONSOLE_URL error", c.addr, c.c, err)
		case !c.ok:
			for _, name := range []string{"WORKER_HTTP_PASSWORD", "CONSOLE_ALLOW_PLAIN_HTTP", "https"} {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("%s: %q does not name %s", c.addr, err, name)
				}
			}
		}
	}
}

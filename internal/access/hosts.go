package access

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
)

// Hosts is the rule of which Host a listener answers, against DNS
// rebinding: a hostile page whose own name the attacker points at
// 127.0.0.1 reaches the worker as its same origin, Origin and Sec-Fetch-Site
// included, and only the Host header still names the attacker. So a
// request is answered only when its Host (the port aside) is
//   - 127.0.0.1, ::1 or localhost;
//   - the host of CONSOLE_URL;
//   - the host of the listen address, unless it is the unspecified
//     address (0.0.0.0, ::, none);
//   - the IP address the request's connection reached (a Kubernetes probe
//     or a scraper at the pod's IP, a person at the machine's address when
//     the worker listens on 0.0.0.0): a page cannot put a name of its own
//     there.
//
// Any other Host is answered 421 Misdirected Request and logged.
type Hosts struct {
	names  map[string]bool
	logger *slog.Logger

	mu         sync.Mutex
	loggedAt   time.Time
	suppressed int
}

// refusalLogEvery bounds the refusal log to a line a second: a hostile page
// can send requests in a loop.
const refusalLogEvery = time.Second

// NewHosts is the rule for a listener on addr (host:port) with the
// console's settings c.
func NewHosts(addr string, c config.Console, logger *slog.Logger) *Hosts {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Hosts{names: map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true}, logger: logger}
	if u, err := url.Parse(c.URL); err == nil && u.Hostname() != "" {
		h.names[hostName(u.Host)] = true
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			h.names[hostName(host)] = true
		}
	}
	return h
}

// hostName is the host of a Host header or URL host, without port or
// brackets, in lower case and without a final dot.
func hostName(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// Allowed reports whether r's Host is one the listener serves.
func (h *Hosts) Allowed(r *http.Request) bool {
	name := hostName(r.Host)
	if name == "" {
		return false
	}
	if h.names[name] {
		return true
	}
	ip := net.ParseIP(name)
	if ip == nil {
		return false
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := local.(*net.TCPAddr); ok && ta.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// Wrap serves next for requests whose Host the rule allows, and for any
// Host at the paths in anyHost; every answer, a refusal included, carries
// SetHeaders' headers.
func (h *Hosts) Wrap(next http.Handler, anyHost ...string) http.Handler {
	open := map[string]bool{}
	for _, p := range anyHost {
		open[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetHeaders(w.Header())
		if !open[r.URL.Path] && !h.Allowed(r) {
			h.logRefusal(r)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusMisdirectedRequest)
			_, _ = w.Write([]byte("misdirected request: this worker does not answer to that host name; open it at 127.0.0.1 or localhost, or at the address set in CONSOLE_URL\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Hosts) logRefusal(r *http.Request) {
	h.mu.Lock()
	now := time.Now()
	if now.Sub(h.loggedAt) < refusalLogEvery {
		h.suppressed++
		h.mu.Unlock()
		return
	}
	n := h.suppressed
	h.loggedAt, h.suppressed = now, 0
	h.mu.Unlock()
	// The Host is the client's: quoted, and cut short.
	host := r.Host
	if len(host) > 100 {
		host = host[:100] + "…"
	}
	h.logger.Warn("request refused: its Host is not a name this worker serves (DNS rebinding?); set CONSOLE_URL if the worker is reached by that name",
		"host", host, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "refused_unlogged", n)
}

// SetHeaders sets the headers every answer of the worker carries: no
// framing by other sites (X-Frame-Options and CSP frame-ancestors, against
// clickjacking of River UI and the sign-in pages), no content sniffing, and
// no Referer to other sites. A handler may replace the
// Content-Security-Policy with a fuller one that keeps frame-ancestors
// 'none' (the console does).
func SetHeaders(h http.Header) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

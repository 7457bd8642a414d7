package auth

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// DefaultTimeout bounds each call to the identity platform when the caller
// gives no timeout.
const DefaultTimeout = 30 * time.Second

// NewHTTPClient is the client MSAL talks to the authority through: every
// call is bounded by timeout, and only https leaves the process (plain http
// only to loopback, for tests), redirects included. Every client shares one
// connection pool: a fleet signs in to each of its tenants at the same
// authority host, and a pool per tenant would cost each tenant's first
// token its own TLS handshake (and keep only 2 idle connections a host).
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{Timeout: timeout, Transport: httpsOnly{authTransport()}}
}

// authTransport is the process's one transport to the identity platform.
// Client.Timeout bounds each call, headers included.
var authTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.MaxIdleConnsPerHost = 16
	return t
})

// httpsOnly refuses requests that would leave the machine unencrypted: the
// authority's metadata names the token endpoint, and a redirect could name
// anything.
type httpsOnly struct{ next http.RoundTripper }

func (h httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !(r.URL.Scheme == "http" && graph.IsLoopback(r.URL.Hostname())) {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("refusing %s://%s: sign-in traffic must use https", r.URL.Scheme, r.URL.Host)
	}
	return h.next.RoundTrip(r)
}

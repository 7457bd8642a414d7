package auth

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// DefaultTimeout bounds each call to the identity platform when the caller
// gives no timeout.
const DefaultTimeout = 30 * time.Second

// NewHTTPClient is the client MSAL talks to the authority through: every
// call is bounded by timeout, and only https leaves the process (plain http
// only to loopback, for tests), redirects included.
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = timeout
	return &http.Client{Timeout: timeout, Transport: httpsOnly{t}}
}

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

package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTPClientIsHTTPSOnlyExceptLoopback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := NewHTTPClient(5 * time.Second)
	if c.Timeout != 5*time.Second {
		t.Fatalf("Timeout = %s, want 5s", c.Timeout)
	}
	resp, err := c.Get(srv.URL) // http on 127.0.0.1
	if err != nil {
		t.Fatalf("plain http to loopback: %v, want allowed", err)
	}
	resp.Body.Close()
	// 192.0.2.0/24 is reserved for documentation: refused before any dial.
	for _, u := range []string{"http://192.0.2.1/token", "ftp://192.0.2.1/"} {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s succeeded, want it refused", u)
		}
		if !strings.Contains(err.Error(), "must use https") {
			t.Fatalf("GET %s: %v, want a refusal saying https is required", u, err)
		}
	}
}

func TestHTTPClientTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	resp, err := NewHTTPClient(200 * time.Millisecond).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers was answered")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("gave up after %s, want about the 200ms timeout", d)
	}
}

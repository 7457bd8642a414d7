package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func start(t *testing.T, cfg httpapi.Config) *httpapi.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := httpapi.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// TestSlowClientsCutOff: a client that opens a request and stalls, in its
// headers or in a body it announced, loses the connection once the
// server's read limits pass, and does not hold it open.
func TestSlowClientsCutOff(t *testing.T) {
	t.Parallel()
	const readHeader, read = 300 * time.Millisecond, 600 * time.Millisecond
	srv := start(t, httpapi.Config{Limits: httpapi.Limits{ReadHeaderTimeout: readHeader, ReadTimeout: read}})

	for _, c := range []struct {
		name, request string
		limit         time.Duration
	}{
		{"BodyNeverSent", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", read},
		{"BodyNeverSentToHandler", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", read},
		{"HeadersNeverEnd", "GET /healthz HTTP/1.1\r\nHost: x\r\n", readHeader},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			began := time.Now()
			if _, err := io.WriteString(conn, c.request); err != nil {
				t.Fatal(err)
			}
			// The bound: the limit, plus slack for a loaded machine; far
			// below the 30 s and more the defaults allow.
			bound := c.limit + 5*time.Second
			_ = conn.SetReadDeadline(time.Now().Add(bound))
			_, err = io.Copy(io.Discard, conn) // whatever the server answers, until it closes
			took := time.Since(began)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("the server still holds the connection after %s (limit %s)", took, c.limit)
				}
				t.Fatalf("reading: %v", err)
			}
			if took < c.limit-50*time.Millisecond {
				t.Fatalf("closed after %s, before the %s limit: not the limit at work", took, c.limit)
			}
		})
	}
}

// TestLimitsDefaults: a request within the defaults is served, and a
// header block past MaxHeaderBytes is refused.
func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	if d := httpapi.DefaultLimits; d.ReadHeaderTimeout <= 0 || d.ReadTimeout <= 0 || d.WriteTimeout <= 0 || d.IdleTimeout <= 0 || d.MaxHeaderBytes <= 0 {
		t.Fatalf("DefaultLimits leaves a limit off: %+v", d)
	}
	srv := start(t, httpapi.Config{})
	base := "http://" + srv.Addr()
	if code, body, _ := get(t, base+"/healthz", "", ""); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 2*httpapi.DefaultLimits.MaxHeaderBytes))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("headers of %d bytes: %d, want 431", 2*httpapi.DefaultLimits.MaxHeaderBytes, resp.StatusCode)
	}
}

// TestReadyzHidesConnectError: with the database unreachable, /readyz
// answers 503 "database unreachable" without pgx's error (it names the
// user, database and host); the log has the real error.
func TestReadyzHidesConnectError(t *testing.T) {
	t.Parallel()
	const user, database, host, port = "readyz_secret_user", "readyz_secret_db", "127.0.0.1", "1"
	pool, err := pgxpool.New(context.Background(), "postgres://"+user+"@"+host+":"+port+"/"+database+"?connect_timeout=1&sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var log testenv.LogBuffer
	srv := start(t, httpapi.Config{Pool: pool, Logger: slog.New(slog.NewTextHandler(&log, nil))})

	code, body, _ := get(t, "http://"+srv.Addr()+"/readyz", "", "")
	if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "not ready: database unreachable" {
		t.Fatalf("/readyz = %d %q, want 503 and database unreachable", code, body)
	}
	for _, secret := range []string{user, database, host + ":" + port, "dial", "connect"} {
		if strings.Contains(body, secret) {
			t.Errorf("/readyz tells the client %q: %q", secret, body)
		}
	}
	if l := log.String(); !strings.Contains(l, "not ready") || !strings.Contains(l, user) {
		t.Errorf("the log lacks the real error: %q", l)
	}
}

// Package httpapi is the worker's HTTP side: liveness and readiness probes,
// Prometheus metrics, and River UI behind basic auth.
//
//	GET /healthz     200 while the process serves
//	GET /readyz      200 when the database answers and its migrations are current, else 503
//	GET /metrics     Prometheus text format
//	    /riverui/    River UI (basic auth when a user and password are set)
//
// Only River UI is protected: probes and scrapes carry no secrets and must
// work without credentials.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Config configures the server.
type Config struct {
	Addr string // host:port; port 0 picks a free one
	// User and Password, when both set, protect River UI with basic auth.
	User, Password string
	Pool           *pgxpool.Pool
	// River is the worker's client; River UI browses its database.
	River *river.Client[pgx.Tx]
	// Metrics, when set, is served at /metrics (metrics.Metrics.Handler).
	Metrics http.Handler
	Logger  *slog.Logger
}

// Server is a running HTTP server.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	stopUI context.CancelFunc
	served chan error
}

// CheckExposure refuses to put River UI (which can cancel, retry and delete
// jobs) on an address other machines can reach without a password. Its
// errors are settings errors naming the variables.
func CheckExposure(addr, user, password string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return &config.Error{Var: "WORKER_HTTP_ADDR", Msg: fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:8080), nor off", addr)}
	}
	if (user == "") != (password == "") {
		return &config.Error{Var: "WORKER_HTTP_USER", Msg: "WORKER_HTTP_USER and WORKER_HTTP_PASSWORD must be set together"}
	}
	if user == "" && !graph.IsLoopback(host) {
		return &config.Error{Var: "WORKER_HTTP_ADDR", Msg: fmt.Sprintf(
			"%q is not a loopback address: set WORKER_HTTP_USER and WORKER_HTTP_PASSWORD to protect River UI there, or listen on 127.0.0.1", addr)}
	}
	return nil
}

// Start listens on cfg.Addr and serves until Shutdown.
func Start(cfg Config) (*Server, error) {
	if err := CheckExposure(cfg.Addr, cfg.User, cfg.Password); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "bulkassign worker: /healthz /readyz /metrics /riverui/")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(r.Context(), cfg.Pool); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}

	uiCtx, stopUI := context.WithCancel(context.Background())
	if cfg.River != nil {
		ui, err := riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(cfg.River, nil),
			Logger:    logger.With("component", "riverui"),
			Prefix:    "/riverui",
		})
		if err != nil {
			stopUI()
			return nil, fmt.Errorf("error creating River UI: %w", err)
		}
		if err := ui.Start(uiCtx); err != nil {
			stopUI()
			return nil, fmt.Errorf("error starting River UI: %w", err)
		}
		var h http.Handler = ui
		if cfg.User != "" {
			h = basicAuth(cfg.User, cfg.Password, h)
		}
		mux.Handle("/riverui/", h)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		stopUI()
		return nil, fmt.Errorf("WORKER_HTTP_ADDR: cannot listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{
		ln:     ln,
		srv:    &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)},
		stopUI: stopUI,
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on (with the port chosen when
// Config.Addr asked for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting, lets requests in progress finish until ctx
// ends, and stops River UI's background work.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.stopUI()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ready reports why the worker cannot work rows, if it cannot.
func ready(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	ok, err := store.MigrationsCurrent(ctx, pool)
	if err != nil {
		return fmt.Errorf("cannot read migrations: %w", err)
	}
	if !ok {
		return errors.New("database migrations are not current: run `worker migrate`")
	}
	return nil
}

// basicAuth compares digests in constant time, user and password both
// always, so neither a wrong user nor a wrong length shows in the timing.
func basicAuth(user, password string, next http.Handler) http.Handler {
	wantUser, wantPassword := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		gotUser, gotPassword := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		okUser := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		okPassword := subtle.ConstantTimeCompare(gotPassword[:], wantPassword[:])
		if okUser&okPassword != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="bulkassign worker", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

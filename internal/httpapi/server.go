// Package httpapi is the worker's HTTP side: liveness and readiness probes,
// Prometheus metrics, the console, and River UI.
//
//	GET /healthz     200 while the process serves
//	GET /readyz      200 when the database answers and its migrations are current, else 503
//	GET /metrics     Prometheus text format (here unless WORKER_METRICS_ADDR serves it)
//	    /console/    the web console (internal/console)
//	    /riverui/    River UI
//	    /auth/       Entra ID sign-in and sign-out (internal/access)
//
// The console, River UI and /metrics are behind the same sign-in
// (internal/access: none on loopback, basic auth, or Entra ID) and refuse
// cross-site requests that change state. Every route answers only to the
// Host names the worker serves (access.Hosts: 421 otherwise, against DNS
// rebinding) and carries the same framing headers, except the probes:
// they carry no secrets, change nothing, and are asked for by
// orchestrators under whatever Host they use (a load balancer's health
// check by the target's address), so they answer any Host and need no
// credentials. StartMetrics serves /metrics alone on an address of its own
// for a scraper, without sign-in but behind the same Host rule.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/config"
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
	// Metrics, when set, is served at /metrics behind the sign-in
	// (metrics.Metrics.Handler); leave it nil when StartMetrics serves it.
	Metrics http.Handler
	Logger  *slog.Logger
	// Limits bound what one client can hold of the server; zero fields
	// take DefaultLimits'.
	Limits Limits
	// Access is who may use the console and River UI; its Addr, User and
	// Password are taken from the fields above.
	Access access.Config
	// Console, when set, builds the console's handler (mounted at
	// /console/ behind the sign-in).
	Console func() (http.Handler, error)
}

// Limits are the server's timeouts and header size limit.
type Limits struct {
	// ReadHeaderTimeout: time to send a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout: time to send a whole request, headers and body. A
	// request that announces a body and never sends it is cut off here.
	ReadTimeout time.Duration
	// WriteTimeout: from the end of the request's headers to the end of
	// its response. It bounds the slowest handler: a River UI page on a
	// large river_job table, or a scrape.
	WriteTimeout time.Duration
	// IdleTimeout: how long a kept-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration
	// MaxHeaderBytes: the most a request's headers may take.
	MaxHeaderBytes int
}

// DefaultLimits are generous for what the server answers and short for a
// client that holds a connection open:
//   - 10 s for headers and 30 s for a whole request: bodies here are River
//     UI's job actions (a few job IDs as JSON), sent at once;
//   - 60 s to answer: the queue-depth query of a scrape is capped at 2 s and
//     Prometheus gives up after its scrape_timeout (10 s by default); River
//     UI answers with ordinary queries, no streaming or long polling, but a
//     job list or count over a large river_job table can take seconds;
//   - 2 min idle between kept-alive requests (a scrape interval fits);
//   - 64 KiB of headers: basic auth and a browser's usual headers fit many
//     times over (Go's default is 1 MiB).
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      60 * time.Second,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    64 << 10,
}

func (l Limits) orDefaults() Limits {
	d := DefaultLimits
	if l.ReadHeaderTimeout > 0 {
		d.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		d.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	return d
}

// Server is a running HTTP server.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	stopUI context.CancelFunc
	served chan error
}

// CheckExposure refuses to put the console and River UI (which enqueue,
// cancel, retry, revert and delete) on an address other machines can reach
// without a password: basic auth with user and password. Its errors are
// settings errors naming the variables.
func CheckExposure(addr, user, password string) error {
	c := config.Console{SignIn: config.WebSignInNone}
	if user != "" {
		c.SignIn = config.WebSignInBasic
	}
	return CheckSettings(config.Worker{HTTPAddr: addr, HTTPUser: user, HTTPPassword: password, Console: c})
}

// CheckSettings is CheckExposure for the worker's settings, with any
// sign-in they configure (CONSOLE_SIGNIN).
func CheckSettings(w config.Worker) error {
	if _, _, err := net.SplitHostPort(w.HTTPAddr); err != nil {
		return &config.Error{Var: "WORKER_HTTP_ADDR", Msg: fmt.Sprintf("%q is not host:port (e.g. 127.0.0.1:8080), nor off", w.HTTPAddr)}
	}
	if (w.HTTPUser == "") != (w.HTTPPassword == "") {
		return &config.Error{Var: "WORKER_HTTP_USER", Msg: "WORKER_HTTP_USER and WORKER_HTTP_PASSWORD must be set together"}
	}
	return access.CheckExposure(w.HTTPAddr, w.Console)
}

// Start listens on cfg.Addr and serves until Shutdown.
func Start(cfg Config) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ac := cfg.Access
	ac.Addr, ac.User, ac.Password = cfg.Addr, cfg.User, cfg.Password
	if ac.Console.SignIn == "" {
		ac.Console.SignIn = config.WebSignInNone
		if cfg.User != "" {
			ac.Console.SignIn = config.WebSignInBasic
		}
	}
	if ac.Logger == nil {
		ac.Logger = logger.With("component", "access")
	}
	guard, err := access.New(ac)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Console != nil && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, "/console/", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "bulkassign worker: /healthz /readyz /metrics /console/ /riverui/")
	})
	guard.Routes(mux)
	if cfg.Console != nil {
		h, err := cfg.Console()
		if err != nil {
			return nil, err
		}
		mux.Handle("/console/", guard.Protect(h))
		mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(r.Context(), cfg.Pool); err != nil {
			// The client gets the public reason only: pgx's errors name
			// the database user, database and host.
			logger.Warn("not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", publicReason(err))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", guard.Protect(cfg.Metrics))
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
		mux.Handle("/riverui/", guard.Protect(ui))
	}

	s, err := serve("WORKER_HTTP_ADDR", cfg.Addr, guard.Wrap(mux, "/healthz", "/readyz"), cfg.Limits, logger)
	if err != nil {
		stopUI()
		return nil, err
	}
	s.stopUI = stopUI
	guard.SetBase(s.Addr())
	return s, nil
}

// MetricsConfig configures StartMetrics.
type MetricsConfig struct {
	Addr    string       // WORKER_METRICS_ADDR; port 0 picks a free one
	Metrics http.Handler // metrics.Metrics.Handler
	// Console is the console's settings, for the Host rule (CONSOLE_URL).
	Console config.Console
	Logger  *slog.Logger
	Limits  Limits
}

// StartMetrics serves /metrics alone on cfg.Addr, without sign-in (a
// scraper's address, WORKER_METRICS_ADDR), behind the Host rule of the
// worker's other routes.
func StartMetrics(cfg MetricsConfig) (*Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", cfg.Metrics)
	return serve("WORKER_METRICS_ADDR", cfg.Addr, access.NewHosts(cfg.Addr, cfg.Console, logger).Wrap(mux), cfg.Limits, logger)
}

// serve listens on addr (the setting's, named in its error) and serves h.
func serve(setting, addr string, h http.Handler, limits Limits, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot listen on %s: %w", setting, addr, err)
	}
	lim := limits.orDefaults()
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout:       lim.ReadTimeout,
			WriteTimeout:      lim.WriteTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		stopUI: func() {},
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

// notReady is a reason the worker cannot work rows: public is what a
// probe is told, err (for the log) may name the database's user and host.
type notReady struct {
	public string
	err    error
}

func (e *notReady) Error() string {
	if e.err == nil {
		return e.public
	}
	return e.public + ": " + e.err.Error()
}

func (e *notReady) Unwrap() error { return e.err }

// publicReason is what a probe may be told of err.
func publicReason(err error) string {
	if nr, ok := errors.AsType[*notReady](err); ok {
		return nr.public
	}
	return "internal error"
}

// ready reports why the worker cannot work rows, if it cannot.
func ready(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		return &notReady{"database unreachable", err}
	}
	ok, err := store.MigrationsCurrent(ctx, pool)
	if err != nil {
		return &notReady{"cannot read migrations", err}
	}
	if !ok {
		return &notReady{"database migrations are not current: run `worker migrate`", nil}
	}
	return nil
}

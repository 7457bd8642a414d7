// Package console is the web console the worker serves at /console/: upload
// a list, review what it would do (the dry run), enqueue it once, follow its
// batch, filter and download its results, retry, cancel and revert, and
// keep schedules. It calls the packages that own the work (intake through
// dryrun, batchop, export, stall, store); it parses and decides nothing of
// its own. Sign-in, CSRF tokens and the cross-site guard are
// internal/access's, in front of it.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/dryrun"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/worker"
)

//go:embed web
var webFS embed.FS

// Config configures the console.
type Config struct {
	DB *store.DB
	// Clients are the tenants the review's dry run reads through.
	Clients dryrun.Clients
	// DefaultTenant is AZURE_TENANT_ID: rows that name no tenant go there.
	DefaultTenant string
	Logger        *slog.Logger
	// Settings are the upload spool's and the schedule list's bounds
	// (CONSOLE_*, BULKASSIGN_SCHEDULE_MAX); a zero field is its default
	// (config.Defaults).
	Settings config.Console
}

// Console is the console's handler.
type Console struct {
	cfg   Config
	tmpl  *template.Template
	mux   *http.ServeMux
	spool *spool
}

// Attach makes rt serve the console at /console/, reading and writing
// through rt's pool and reading Graph through rt's tenants; the worker
// closes it (its upload spool removed) when it stops.
func Attach(rt *worker.Runtime) {
	var mu sync.Mutex
	var built []*Console
	rt.Console = func() (http.Handler, error) {
		c, err := New(Config{DB: store.Wrap(rt.Pool), Clients: func(tenant string) (*jobs.Tenant, error) {
			return rt.Deps.Tenant(context.Background(), tenant)
		}, DefaultTenant: rt.Deps.DefaultTenant, Logger: rt.Logger.With("component", "console"), Settings: rt.Settings().Console})
		if err == nil {
			mu.Lock()
			built = append(built, c)
			mu.Unlock()
		}
		return c, err
	}
	rt.CloseConsole = func() error {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		for _, c := range built {
			errs = append(errs, c.Close())
		}
		built = nil
		return errors.Join(errs...)
	}
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d, st := config.Defaults.Console, &cfg.Settings
	for _, f := range []struct{ v, def *int64 }{{&st.MaxUpload, &d.MaxUpload}, {&st.SpoolUserBytes, &d.SpoolUserBytes},
		{&st.SpoolBytes, &d.SpoolBytes}, {&st.ScheduleMax, &d.ScheduleMax}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if st.SpoolUserFiles <= 0 {
		st.SpoolUserFiles = d.SpoolUserFiles
	}
	if st.ReviewTTL <= 0 {
		st.ReviewTTL = d.ReviewTTL
	}
	t, err := template.New("").Funcs(funcs).ParseFS(webFS, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	sp, err := newSpool(cfg.Settings)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, tmpl: t, mux: http.NewServeMux(), spool: sp}
	static, _ := fs.Sub(webFS, "web")
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console/{$}", c.home)
	c.mux.HandleFunc("GET /console/batches.json", c.batchesJSON)
	c.mux.HandleFunc("POST /console/upload", c.uploadList)
	c.mux.HandleFunc("POST /console/enqueue", c.enqueue)
	c.mux.HandleFunc("GET /console/batches/{id}", c.batchPage)
	c.mux.HandleFunc("GET /console/batches/{id}/status.json", c.statusJSON)
	c.mux.HandleFunc("GET /console/batches/{id}/export/{format}", c.download)
	c.mux.HandleFunc("GET /console/batches/{id}/confirm/{op}", c.confirm)
	c.mux.HandleFunc("POST /console/batches/{id}/{op}", c.operate)
	c.mux.HandleFunc("GET /console/schedules", c.schedules)
	c.mux.HandleFunc("POST /console/schedules/preview", c.schedulePreview)
	c.mux.HandleFunc("POST /console/schedules", c.scheduleSave)
	c.mux.HandleFunc("POST /console/schedules/{name}/remove", c.scheduleRemove)
	return c, nil
}

// Close removes the upload spool with every upload waiting in it; the
// worker calls it once its HTTP server has stopped.
func (c *Console) Close() error { return c.spool.Close() }

// ServeHTTP refuses a state-changing request without its session's CSRF
// token, then serves.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			// The token comes first in the console's upload forms; read
			// only up to it here, the file streams in the handler.
			if !access.ValidCSRF(r, r.URL.Query().Get("csrf")) {
				c.forbidden(w, r)
				return
			}
		} else if !access.CheckCSRF(r) {
			c.forbidden(w, r)
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) forbidden(w http.ResponseWriter, r *http.Request) {
	c.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this console (no valid CSRF token): reload the page and try again.")
}

// page is what every template gets.
type page struct {
	Title string
	User  string
	CSRF  string
	// SignedIn is whether the user signed in (a sign-out button).
	SignedIn bool
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	p := page{Title: title, User: access.User(r), CSRF: access.CSRFToken(r), SignedIn: access.SignIn(r) == "entra", Data: data}
	if err := c.tmpl.ExecuteTemplate(w, name, p); err != nil {
		c.cfg.Logger.Error("console: rendering a page failed", "page", name, "error", err)
	}
}

// fail renders an error page; msg is for the person and names what to do.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error.html", "Error", msg)
}

// internal logs err and tells the person something went wrong, without
// the error's text (it may name the database's host or user).
func (c *Console) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	c.cfg.Logger.Error("console: "+what, "error", err)
	c.fail(w, r, http.StatusInternalServerError, "Something went wrong while "+what+"; the worker's log says what.")
}

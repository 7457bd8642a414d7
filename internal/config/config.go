// Package config reads bulkassign's settings from the environment. Every
// error names the variable, so the commands can print it as one line and
// exit 2.
package config

import (
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// Cloud is a Microsoft cloud: its Graph root and authority host go together.
type Cloud struct {
	Name          string
	GraphRoot     string // without version
	AuthorityHost string
}

// Clouds are the national clouds GRAPH_CLOUD selects.
var Clouds = map[string]Cloud{
	"global":   {"global", "https://graph.microsoft.com", "https://login.microsoftonline.com"},
	"usgov":    {"usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"},
	"usgovdod": {"usgovdod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"},
	"china":    {"china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"},
}

// Env looks a variable up; os.LookupEnv in production, a map in tests.
type Env func(string) (string, bool)

// MapEnv adapts a map.
func MapEnv(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Error is a bad setting.
type Error struct {
	Var, Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

// Database is what every command needs.
type Database struct {
	URL string
}

// LoadDatabase reads DATABASE_URL.
func LoadDatabase(env Env) (Database, error) {
	v, _ := env("DATABASE_URL")
	if strings.TrimSpace(v) == "" {
		return Database{}, &Error{"DATABASE_URL", "is not set (e.g. postgres://postgres@127.0.0.1:5432/bulkassign)"}
	}
	return Database{URL: v}, nil
}

// Sign-in methods AZURE_SIGNIN selects.
const (
	// SignInApp signs in as the app registration (secret or certificate).
	SignInApp = "app"
	// SignInDelegated uses the user sign-in `worker login` stored.
	SignInDelegated = "delegated"
)

// TokenCacheKeyVar is the variable holding the key that seals the stored
// delegated sign-in.
const TokenCacheKeyVar = "BULKASSIGN_TOKEN_CACHE_KEY"

// Graph is what talking to Graph needs.
type Graph struct {
	Cloud               Cloud
	BaseURL             string // Graph root with version
	AuthorityHost       string
	SignIn              string // SignInApp or SignInDelegated
	TenantID            string
	ClientID            string
	ClientSecret        string
	CertificatePath     string
	CertificatePassword string
	// TokenCacheKey seals the stored delegated sign-in; set by LoadGraph
	// for delegated sign-in and by LoadDelegated.
	TokenCacheKey []byte
	Timeout       time.Duration
	// MaxListBytes bounds the bytes of all the pages of one Graph list
	// read (GRAPH_MAX_LIST_BYTES, default graph.DefaultMaxListBytes).
	MaxListBytes int64
}

// MinMaxListBytes is the smallest GRAPH_MAX_LIST_BYTES: a few hundred
// assignments' worth.
const MinMaxListBytes = 64 << 10

// Origin is the scheme and host of BaseURL: Graph's resource identifier.
func (g Graph) Origin() string {
	u, err := graph.CheckURL("GRAPH_BASE_URL", g.BaseURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Scope is the token scope for BaseURL's origin.
func (g Graph) Scope() string {
	if o := g.Origin(); o != "" {
		return o + "/.default"
	}
	return ""
}

// LoadGraph reads the Graph and sign-in settings. needCredential is false
// for commands that only need to know where Graph is.
func LoadGraph(env Env, needCredential bool) (Graph, error) {
	var g Graph
	cloudName := get(env, "GRAPH_CLOUD", "global")
	cloud, ok := Clouds[strings.ToLower(cloudName)]
	if !ok {
		return g, &Error{"GRAPH_CLOUD", fmt.Sprintf("%q is not one of global, usgov, usgovdod, china", cloudName)}
	}
	g.Cloud = cloud
	g.BaseURL = strings.TrimSuffix(get(env, "GRAPH_BASE_URL", cloud.GraphRoot+"/beta"), "/")
	if _, err := graph.CheckURL("GRAPH_BASE_URL", g.BaseURL); err != nil {
		return g, &Error{"GRAPH_BASE_URL", strings.TrimPrefix(err.Error(), "GRAPH_BASE_URL ")}
	}
	g.AuthorityHost = strings.TrimSuffix(get(env, "AZURE_AUTHORITY_HOST", cloud.AuthorityHost), "/")
	if u, err := graph.CheckURL("AZURE_AUTHORITY_HOST", g.AuthorityHost); err != nil {
		return g, &Error{"AZURE_AUTHORITY_HOST", strings.TrimPrefix(err.Error(), "AZURE_AUTHORITY_HOST ")}
	} else if u.Scheme != "https" {
		// MSAL insists on https authorities, loopback included.
		return g, &Error{"AZURE_AUTHORITY_HOST", fmt.Sprintf("%q must use https", g.AuthorityHost)}
	}
	var err error
	if g.Timeout, err = duration(env, "GRAPH_TIMEOUT", graph.DefaultTimeout); err != nil {
		return g, err
	}
	n, err := integer(env, "GRAPH_MAX_LIST_BYTES", graph.DefaultMaxListBytes)
	if err != nil {
		return g, err
	}
	if n < MinMaxListBytes {
		return g, &Error{"GRAPH_MAX_LIST_BYTES", fmt.Sprintf("%d is below %d bytes (the bytes of all the pages of one list read; default %d)",
			n, MinMaxListBytes, graph.DefaultMaxListBytes)}
	}
	g.MaxListBytes = int64(n)
	g.SignIn = strings.ToLower(get(env, "AZURE_SIGNIN", SignInApp))
	if g.SignIn != SignInApp && g.SignIn != SignInDelegated {
		return g, &Error{"AZURE_SIGNIN", fmt.Sprintf("%q is not one of app, delegated", g.SignIn)}
	}
	g.TenantID = get(env, "AZURE_TENANT_ID", "")
	g.ClientID = get(env, "AZURE_CLIENT_ID", "")
	g.ClientSecret = get(env, "AZURE_CLIENT_SECRET", "")
	g.CertificatePath = get(env, "AZURE_CLIENT_CERTIFICATE_PATH", "")
	g.CertificatePassword = get(env, "AZURE_CLIENT_CERTIFICATE_PASSWORD", "")
	if !needCredential {
		return g, nil
	}
	if err := g.checkApp(); err != nil {
		return g, err
	}
	if g.SignIn == SignInDelegated {
		g.TokenCacheKey, err = TokenCacheKey(env)
		return g, err
	}
	if g.ClientSecret == "" && g.CertificatePath == "" {
		return g, &Error{"AZURE_CLIENT_SECRET", "neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set (or set AZURE_SIGNIN=delegated to use `worker login`)"}
	}
	return g, nil
}

// checkApp checks the tenant and the app registration's id.
func (g Graph) checkApp() error {
	if g.TenantID == "" {
		return &Error{"AZURE_TENANT_ID", "is not set (the directory (tenant) id of the app registration)"}
	}
	if strings.ContainsAny(g.TenantID, "/?#@ ") {
		return &Error{"AZURE_TENANT_ID", fmt.Sprintf("%q is not a tenant id or domain", g.TenantID)}
	}
	if g.ClientID == "" {
		return &Error{"AZURE_CLIENT_ID", "is not set (the application (client) id of the app registration)"}
	}
	return nil
}

// LoadDelegated reads what `worker login` and `worker logout` need: where
// to sign in, the tenant and app, and (with needKey) the key that seals
// the stored sign-in. AZURE_SIGNIN does not matter to them.
func LoadDelegated(env Env, needKey bool) (Graph, error) {
	g, err := LoadGraph(env, false)
	if err != nil {
		return g, err
	}
	if err := g.checkApp(); err != nil {
		return g, err
	}
	if needKey {
		g.TokenCacheKey, err = TokenCacheKey(env)
	}
	return g, err
}

// TokenCacheKey reads BULKASSIGN_TOKEN_CACHE_KEY: 32 random bytes in
// base64 (standard or URL alphabet, padded or not). Its value never
// appears in an error.
func TokenCacheKey(env Env) ([]byte, error) {
	v := get(env, TokenCacheKeyVar, "")
	if v == "" {
		return nil, &Error{TokenCacheKeyVar, "is not set: the stored sign-in is kept encrypted with it (make one with: openssl rand -base64 32)"}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil {
			if len(k) != 32 {
				return nil, &Error{TokenCacheKeyVar, fmt.Sprintf("decodes to %d bytes, want 32 (make one with: openssl rand -base64 32)", len(k))}
			}
			return k, nil
		}
	}
	return nil, &Error{TokenCacheKeyVar, "is not base64 (make one with: openssl rand -base64 32)"}
}

// Defaults are the worker's tuning when the environment says nothing; the
// workers (jobs.Settings) and River's client fall back to the same values.
var Defaults = Worker{
	WriteRate:   5,
	ReadRate:    50,
	Concurrency: 20,
	// TenantConcurrency: a tenant at 5 writes/s keeps 5 × Graph's latency
	// requests in flight (10 at 2 s an answer): 20 keeps it at its limit
	// with answers up to 4 s, as the default tenant's 20 does. Each
	// tenant has its own queue, so its waiting rows hold only its own
	// slots; and River fetches a busy queue's free slots at most 10 times a
	// second, so more slots make fuller fetches (bench 5a: Postgres CPU a
	// row about 180 µs at 10, 150 µs at 20).
	TenantConcurrency: 20,
	Patience:          6 * time.Hour,
	MaxErrors:         8,
	JobTimeout:        45 * time.Second,
	// Rows beyond the pool wait for a connection (no row holds one while
	// it waits on Graph or a limit), so the pool need not grow with
	// WORKER_CONCURRENCY.
	DatabaseMaxConns: 10,
	// MetricsTenantLabels: each tenant label is a set of series (rows by
	// status, requests by operation and code); 100 tenants keep a scrape
	// to a few thousand series.
	MetricsTenantLabels: 100,
	// The console's spool: a million-row CSV fits in an upload several
	// times; a person may keep a few reviews open, and the spool as a
	// whole a few people's. A schedule's list is read whole at each run.
	Console: Console{
		MaxUpload:      1 << 30,
		SpoolUserBytes: 2 << 30,
		SpoolUserFiles: 5,
		SpoolBytes:     8 << 30,
		ReviewTTL:      2 * time.Hour,
		ScheduleMax:    128 << 20,
	},
	// TenantQueueIdle: a tenant queue costs a worker a fetch loop (about
	// one transaction a second) and a few goroutines while it is served;
	// one idle for 5 minutes is retired, and served again within
	// TenantQueuePoll of its next rows.
	TenantQueueIdle: 5 * time.Minute,
}

// Bounds of DATABASE_MAX_CONNS: at least River's LISTEN connection and one
// for everything else; at most what any Postgres would admit.
const (
	MinDatabaseMaxConns = 2
	maxDatabaseMaxConns = 10000
)

// RescueMargin is how far WORKER_RESCUE_AFTER's default lies beyond the job
// timeout. River's rescuer compares the leader's clock with the database's,
// so a leader whose clock runs fast rescues early: the margin absorbs that,
// and a run's hold on its row (jobs.RunMargin) keeps an early rescue from
// posting beside a live run anyway.
const RescueMargin = 60 * time.Second

// RescueAfter is WORKER_RESCUE_AFTER's default for a job timeout.
func RescueAfter(jobTimeout time.Duration) time.Duration { return jobTimeout + RescueMargin }

// CheckRescueAfter is the rule that keeps a rescue from overlapping a live
// run: River may rescue a job only after its run's timeout has passed.
func CheckRescueAfter(rescueAfter, jobTimeout time.Duration) error {
	if rescueAfter <= jobTimeout {
		return fmt.Errorf("%s must exceed WORKER_JOB_TIMEOUT (%s)", rescueAfter, jobTimeout)
	}
	return nil
}

// Worker holds the worker's tuning.
type Worker struct {
	WriteRate   float64
	ReadRate    float64
	Concurrency int
	// TenantConcurrency is how many rows of each tenant other than the
	// default one a process works at once (WORKER_TENANT_CONCURRENCY): every
	// tenant has its own queue.
	TenantConcurrency int
	Patience          time.Duration
	MaxErrors         int
	JobTimeout        time.Duration
	RescueAfter       time.Duration
	// DatabaseMaxConns bounds the worker process's connections to
	// Postgres, River's included (DATABASE_MAX_CONNS).
	DatabaseMaxConns int
	// Tenants are the per-tenant settings of BULKASSIGN_TENANTS.
	Tenants Tenants
	// Allowlist is which tenants may have rows (BULKASSIGN_TENANTS with
	// "onlyListed": true); the zero value allows every tenant.
	Allowlist TenantAllowlist
	// TenantQueueIdle is how long a tenant's queue (other than the
	// default tenant's) may hold no work before a worker stops serving
	// it (WORKER_TENANT_QUEUE_IDLE); it is served again when rows come.
	TenantQueueIdle time.Duration
	// Retention is BULKASSIGN_RETENTION: the leader prunes finished
	// batches enqueued longer ago than this once a day; 0 is off.
	Retention time.Duration
	// HTTPAddr is where the worker serves probes, metrics and River UI;
	// "" (WORKER_HTTP_ADDR=off) serves nothing.
	HTTPAddr string
	// MetricsAddr (WORKER_METRICS_ADDR) is where /metrics is served
	// without sign-in, for a scraper; "" serves it on HTTPAddr, behind the
	// console's sign-in.
	MetricsAddr string
	// MetricsTenantLabels is how many tenants get their own tenant label in
	// the metrics (WORKER_METRICS_TENANT_LABELS): the first this process
	// sees; the rest share tenant="other".
	MetricsTenantLabels int
	// HTTPUser and HTTPPassword protect River UI with basic auth.
	HTTPUser     string
	HTTPPassword string
	// Console is who may open the console and River UI (CONSOLE_*).
	Console Console
}

// LoadWorker reads the worker's tuning settings.
func LoadWorker(env Env) (Worker, error) {
	var w Worker
	var err error
	if w.WriteRate, err = float(env, "GRAPH_WRITE_RATE", Defaults.WriteRate); err != nil {
		return w, err
	}
	if w.ReadRate, err = float(env, "GRAPH_READ_RATE", Defaults.ReadRate); err != nil {
		return w, err
	}
	if w.Concurrency, err = integer(env, "WORKER_CONCURRENCY", Defaults.Concurrency); err != nil {
		return w, err
	}
	if w.TenantConcurrency, err = integer(env, "WORKER_TENANT_CONCURRENCY", Defaults.TenantConcurrency); err != nil {
		return w, err
	}
	if w.Patience, err = duration(env, "GRAPH_PATIENCE", Defaults.Patience); err != nil {
		return w, err
	}
	if w.MaxErrors, err = integer(env, "GRAPH_MAX_ERRORS", Defaults.MaxErrors); err != nil {
		return w, err
	}
	if w.JobTimeout, err = duration(env, "WORKER_JOB_TIMEOUT", Defaults.JobTimeout); err != nil {
		return w, err
	}
	if w.RescueAfter, err = duration(env, "WORKER_RESCUE_AFTER", RescueAfter(w.JobTimeout)); err != nil {
		return w, err
	}
	if err := CheckRescueAfter(w.RescueAfter, w.JobTimeout); err != nil {
		return w, &Error{"WORKER_RESCUE_AFTER", err.Error()}
	}
	if w.DatabaseMaxConns, err = integer(env, "DATABASE_MAX_CONNS", Defaults.DatabaseMaxConns); err != nil {
		return w, err
	}
	if w.DatabaseMaxConns < MinDatabaseMaxConns || w.DatabaseMaxConns > maxDatabaseMaxConns {
		return w, &Error{"DATABASE_MAX_CONNS", fmt.Sprintf("%q is out of range: want %d to %d (connections to Postgres per worker process, River's LISTEN connection included)",
			get(env, "DATABASE_MAX_CONNS", ""), MinDatabaseMaxConns, maxDatabaseMaxConns)}
	}
	w.HTTPAddr = get(env, "WORKER_HTTP_ADDR", "127.0.0.1:8080")
	if strings.EqualFold(w.HTTPAddr, "off") {
		w.HTTPAddr = ""
	}
	w.MetricsAddr = get(env, "WORKER_METRICS_ADDR", "")
	if w.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(w.MetricsAddr)
		if err != nil {
			return w, &Error{"WORKER_METRICS_ADDR", fmt.Sprintf("%q is not host:port (e.g. 0.0.0.0:9090)", w.MetricsAddr)}
		}
		if w.MetricsAddr == w.HTTPAddr && port != "0" { // port 0: a free port each
			return w, &Error{"WORKER_METRICS_ADDR", fmt.Sprintf("%q is WORKER_HTTP_ADDR too: give the metrics an address of their own, or leave WORKER_METRICS_ADDR unset to serve /metrics there behind the sign-in", w.MetricsAddr)}
		}
	}
	if w.MetricsTenantLabels, err = integer(env, "WORKER_METRICS_TENANT_LABELS", Defaults.MetricsTenantLabels); err != nil {
		return w, err
	}
	w.HTTPUser = get(env, "WORKER_HTTP_USER", "")
	w.HTTPPassword = get(env, "WORKER_HTTP_PASSWORD", "")
	if w.Console, err = loadConsole(env, w.HTTPUser != ""); err != nil {
		return w, err
	}
	tf, err := LoadTenantFile(env)
	if err != nil {
		return w, err
	}
	w.Tenants, w.Allowlist = tf.Tenants, tf.Allowlist
	if w.TenantQueueIdle, err = duration(env, "WORKER_TENANT_QUEUE_IDLE", Defaults.TenantQueueIdle); err != nil {
		return w, err
	}
	if w.Retention, err = retention(env); err != nil {
		return w, err
	}
	return w, nil
}

// RetentionVar is the setting that turns the fleet's daily prune on.
const RetentionVar = "BULKASSIGN_RETENTION"

// MinRetention is the shortest BULKASSIGN_RETENTION: a fleet setting that
// prunes whatever just finished is more likely a slip than a wish
// (`enqueue prune --older-than 0s` does that on purpose).
const MinRetention = time.Hour

func retention(env Env) (time.Duration, error) {
	v := get(env, RetentionVar, "off")
	if strings.EqualFold(v, "off") {
		return 0, nil
	}
	d, err := ParseAge(v)
	if err != nil {
		return 0, &Error{RetentionVar, err.Error() + "; or off (the default)"}
	}
	if d < MinRetention {
		return 0, &Error{RetentionVar, fmt.Sprintf("%q is shorter than an hour: give an age such as 90d, or off", v)}
	}
	return d, nil
}

// ParseAge reads an age: a Go duration (12h, 90m, 0s) that may start with
// a number of days (90d, 1d12h). It is how retention is written, in
// BULKASSIGN_RETENTION and in enqueue prune --older-than.
func ParseAge(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("%q is not an age (e.g. 90d, 12h, 0s)", v)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || (days > 0 && strings.HasPrefix(s, "+")) {
			return 0, fmt.Errorf("%q is not an age (e.g. 90d, 12h, 0s)", v)
		}
		rest = d
	} else if days == 0 && !strings.Contains(v, "d") {
		return 0, fmt.Errorf("%q is not an age (e.g. 90d, 12h, 0s)", v)
	}
	return time.Duration(days)*24*time.Hour + rest, nil
}

func get(env Env, k, def string) string {
	if v, ok := env(k); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// Bounds of a rate setting: 0 turns the limit off; otherwise at least one
// request in about 17 minutes (a slower rate overflows the waits computed
// from it) and at most 10,000 a second.
const (
	minRate = 0.001
	maxRate = 10000
)

// float reads a rate in requests per second. NaN and the infinities are
// refused with the rest: the rate feeds the fleet's shared token bucket,
// which one NaN would poison for every worker.
func float(env Env, k string, def float64) (float64, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, &Error{k, fmt.Sprintf("%q is not a number of requests per second (0 turns the limit off)", v)}
	}
	if f != 0 && (f < minRate || f > maxRate) {
		return 0, &Error{k, fmt.Sprintf("%q is out of range: want 0 (no limit) or %g to %g requests per second", v, float64(minRate), float64(maxRate))}
	}
	return f, nil
}

func integer(env Env, k string, def int) (int, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, &Error{k, fmt.Sprintf("%q is not a positive whole number", v)}
	}
	return n, nil
}

func duration(env Env, k string, def time.Duration) (time.Duration, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &Error{k, fmt.Sprintf("%q is not a positive duration (e.g. 30s, 5m, 6h)", v)}
	}
	return d, nil
}

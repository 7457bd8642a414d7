// Package testenv assembles the real parts for tests and benchmarks: a
// fresh Postgres schema, the Graph simulator over HTTPS, and worker runtimes
// wired exactly as the worker command wires them. Nothing here is a mock.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// Main is for TestMain: it makes every TLS client of the process trust the
// simulator (through SSL_CERT_FILE, as in production) and runs the tests.
func Main(m *testing.M) { os.Exit(graphsim.RunWithCA(m)) }

// Connections: go test runs two packages at once against one Postgres
// (max_connections 100), each with parallel tests that start workers. A
// test worker sizes its pool as the worker command does (worker.PoolSize:
// DATABASE_MAX_CONNS, default 10, River's LISTEN connection included),
// whatever its WORKER_CONCURRENCY.
//
// harnessConns serves the test's own queries (enqueue, polling).
const harnessConns = 4

// Harness is one test's database and tenant.
type Harness struct {
	DB  *testdb.DB
	Sim *graphsim.Server
}

// New starts a simulator with cfg and creates a fresh schema.
func New(t testing.TB, cfg graphsim.Config) *Harness {
	t.Helper()
	return NewOn(t, testdb.URL(), cfg)
}

// NewOn is New on the Postgres server at url (a test's own server).
func NewOn(t testing.TB, url string, cfg graphsim.Config) *Harness {
	t.Helper()
	sim, err := graphsim.New(cfg)
	if err != nil {
		t.Fatalf("graphsim.New: %v", err)
	}
	t.Cleanup(sim.Close)
	return &Harness{DB: testdb.NewOn(t, url, harnessConns), Sim: sim}
}

// Vars are the settings a worker or enqueue process would get from its
// environment to work against this harness.
func (h *Harness) Vars() map[string]string {
	return map[string]string{
		"DATABASE_URL":         h.DB.URL,
		"GRAPH_BASE_URL":       h.Sim.GraphBaseURL(),
		"AZURE_AUTHORITY_HOST": h.Sim.AuthorityHost(),
		"AZURE_TENANT_ID":      h.Sim.TenantID(),
		"AZURE_CLIENT_ID":      graphsim.DefaultClientID,
		"AZURE_CLIENT_SECRET":  graphsim.DefaultClientSecret,
		"SSL_CERT_FILE":        os.Getenv("SSL_CERT_FILE"),
		// A free port each: parallel workers must not all claim 8080.
		"WORKER_HTTP_ADDR": "127.0.0.1:0",
	}
}

// Env returns Vars with extra applied (an empty value removes a variable).
func (h *Harness) Env(extra map[string]string) config.Env {
	vars := h.Vars()
	for k, v := range extra {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	return config.MapEnv(vars)
}

// Enqueue writes content (named name; the extension picks the format) as a
// batch and returns its id. Rows that name no tenant go to the simulator's.
func (h *Harness) Enqueue(t testing.TB, name, content string) string {
	t.Helper()
	ctx := context.Background()
	rc, err := jobs.NewInsertClient(h.DB.Pool)
	if err != nil {
		t.Fatal(err)
	}
	f, err := intake.DetectFormat(name, "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := jobs.Enqueue(ctx, h.DB.Pool, rc, []jobs.Input{{Name: name, Reader: strings.NewReader(content), Format: f,
		DefaultTenant: h.Sim.TenantID()}})
	if err != nil {
		t.Fatalf("enqueue %s: %v", name, err)
	}
	return out[0].Batch.ID
}

// WorkerOptions tune one in-process worker ("process": own pool, own
// limiter handles, own River client).
type WorkerOptions struct {
	Extra  map[string]string // environment overrides, e.g. GRAPH_WRITE_RATE
	Logger *slog.Logger
	// Settings override the worker's job settings where non-zero.
	Settings jobs.Settings
	// Schedule tunes the schedule tick (interval, clock); zero keeps the
	// defaults, and the default tenant is the worker's AZURE_TENANT_ID.
	Schedule jobs.ScheduleConfig
	// Prepare, when set, sees the runtime before it runs (e.g.
	// console.Attach, as the worker command does).
	Prepare func(*worker.Runtime)
}

// StartWorker starts a worker runtime and returns a stop function (also
// registered as cleanup) and the runtime.
func (h *Harness) StartWorker(t testing.TB, o WorkerOptions) (*worker.Runtime, func()) {
	t.Helper()
	env := h.Env(o.Extra)
	wcfg, err := config.LoadWorker(env)
	if err != nil {
		t.Fatal(err)
	}
	gcfg, err := config.LoadGraph(env, true)
	if err != nil {
		t.Fatal(err)
	}
	// The application name lets a test find (and cut) this worker's connections.
	pool, err := store.Open(context.Background(), h.DB.URL+"&application_name="+h.WorkerAppName(), "", worker.PoolSize(wcfg))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewApp(auth.AppConfig{AuthorityHost: gcfg.AuthorityHost, TenantID: gcfg.TenantID,
		ClientID: gcfg.ClientID, Secret: gcfg.ClientSecret, Scope: gcfg.Scope()})
	if err != nil {
		t.Fatal(err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rt, err := worker.New(pool, tokens, gcfg, wcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	s := &rt.Deps.Settings
	if o.Settings.MaxWait > 0 {
		s.MaxWait = o.Settings.MaxWait
	}
	if o.Settings.RetryBase > 0 {
		s.RetryBase = o.Settings.RetryBase
	}
	if o.Settings.RetryMax > 0 {
		s.RetryMax = o.Settings.RetryMax
	}
	if o.Settings.Patience > 0 {
		s.Patience = o.Settings.Patience
	}
	if o.Prepare != nil {
		o.Prepare(rt)
	}
	rt.Schedule = o.Schedule
	if rt.Schedule.DefaultTenant == "" {
		rt.Schedule.DefaultTenant = gcfg.TenantID // as the worker command wires it
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
		pool.Close()
	})
	t.Cleanup(stop)
	return rt, stop
}

// WorkerAppName is the Postgres application_name of this harness's workers.
func (h *Harness) WorkerAppName() string { return "w_" + h.DB.Schema }

// WaitFinal polls until every row of the batch is final or the timeout
// passes, and returns the counts.
func (h *Harness) WaitFinal(t testing.TB, batchID string, timeout time.Duration) store.StatusCounts {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counts, err := store.CountByStatus(context.Background(), h.DB.Pool, batchID)
		if err != nil {
			t.Fatal(err)
		}
		if counts.Final() == counts.Total() && counts.Total() > 0 {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s not final after %s: %v", batchID, timeout, counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Serving waits for a worker runtime to be up and returns the base URL of
// its HTTP server.
func Serving(t testing.TB, rt *worker.Runtime) string {
	t.Helper()
	select {
	case <-rt.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("worker not ready after 30s")
	}
	if rt.HTTPAddr() == "" {
		t.Fatal("worker serves no HTTP")
	}
	return "http://" + rt.HTTPAddr()
}

// WaitJobsDone waits until none of the batch's River jobs is waiting or
// running: a run returns once its row's outcome has committed, and River
// completes the jobs moments later, in batches.
func (h *Harness) WaitJobsDone(t testing.TB, batchID string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job
			WHERE args @> jsonb_build_object('batch', $1::text) AND finalized_at IS NULL`, batchID).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s: %d River jobs not finished after %s", batchID, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Export reads the batch's rows, every column of the assignment_results
// view, in input order.
func (h *Harness) Export(t testing.TB, batchID string) []store.ExportRow {
	t.Helper()
	var out []store.ExportRow
	err := store.ExportResults(context.Background(), h.DB.Pool, batchID, nil, func(r *store.ExportRow) error {
		out = append(out, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Results reads the batch's rows from the assignment_results view.
func (h *Harness) Results(t testing.TB, batchID string) []store.Result {
	t.Helper()
	rows := h.Export(t, batchID)
	out := make([]store.Result, len(rows))
	for i := range rows {
		out[i] = rows[i].Result
	}
	return out
}

// TenantState is every assignment on the own paths of configurations
// Config(0)..Config(configs-1): assignment id → configuration and target.
func (h *Harness) TenantState(configs int) map[string]string {
	out := map[string]string{}
	for i := range configs {
		for _, a := range h.Sim.Assignments(Config(i), "") {
			out[a.ID] = Config(i) + " " + a.Target.Key()
		}
	}
	return out
}

// WriteFile writes content to a file named name in a fresh temporary
// directory and returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Config returns the n-th synthetic configuration id.
func Config(n int) string { return fmt.Sprintf("c0000000-0000-4000-8000-%012d", n) }

// Group returns the n-th synthetic group id.
func Group(n int) string { return fmt.Sprintf("90000000-0000-4000-8000-%012d", n) }

// GroupCSV builds a CSV of rows group-assigning groups to configurations:
// row i assigns Group(i) to Config(i % configs).
func GroupCSV(rows, configs int) string {
	var b strings.Builder
	b.WriteString("configuration_id,target_type,group_id\n")
	for i := range rows {
		b.WriteString(Config(i % configs))
		b.WriteString(",group,")
		b.WriteString(Group(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// AppCertificate is a self-signed certificate and its RSA key, as an admin
// uploads to an app registration (register Cert in graphsim.Client).
type AppCertificate struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// NewAppCertificate makes a certificate named cn with a fresh 2048-bit key.
func NewAppCertificate(t testing.TB, cn string) AppCertificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return AppCertificate{Cert: cert, Key: key}
}

// WritePEM writes the certificate and its unencrypted PKCS#8 key to one
// file (as AZURE_CLIENT_CERTIFICATE_PATH expects) and returns its path.
func (c AppCertificate) WritePEM(t testing.TB) string {
	t.Helper()
	k, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})...)
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// WritePFX writes a PKCS#12 file protected by password with AES-256 and
// PBKDF2 (what current Windows and OpenSSL export), or with the legacy
// 3DES/SHA-1 scheme when legacy is set, and returns its path.
func (c AppCertificate) WritePFX(t testing.TB, password string, legacy bool) string {
	t.Helper()
	enc := pkcs12.Modern2023
	if legacy {
		enc = pkcs12.LegacyDES
	}
	data, err := enc.Encode(c.Key, c.Cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.pfx")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// NewTokenCacheKey returns a fresh BULKASSIGN_TOKEN_CACHE_KEY value.
func NewTokenCacheKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// Command graphsim runs the Microsoft Graph + identity platform simulator
// (package internal/graphsim) as a process, for end-to-end tests of the
// bulkassign worker and enqueue commands. It is a test double: never point
// it at anything but loopback, and never trust its CA outside tests.
//
// On start it prints shell-sourceable lines to stdout:
//
//	GRAPH_BASE_URL=https://127.0.0.1:PORT/beta
//	AZURE_AUTHORITY_HOST=https://127.0.0.1:PORT
//	AZURE_TENANT_ID=...
//	AZURE_CLIENT_ID=...
//	AZURE_CLIENT_SECRET=...   (only when the simulator chose the secret)
//	SSL_CERT_FILE=/path/to/ca.pem
//	GRAPHSIM_URL=https://127.0.0.1:PORT   (inspection: $GRAPHSIM_URL/_sim/stats, /_sim/ledger, ...)
//	GRAPHSIM_TENANTS=id,id,...            (only when the tenant file lists further tenants)
//
// Further tenants come from the tenant file's "tenants" list: the same
// application gets tokens for each at $AZURE_AUTHORITY_HOST/<tenant id>,
// and Graph serves each token from its own tenant's data
// ($GRAPHSIM_URL/_sim/ledger?tenant=<id>, /_sim/tenants).
//
// and serves until SIGINT or SIGTERM. Run "graphsim -h" for the flags.
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "graphsim:", err)
		os.Exit(1)
	}
}

// run starts the simulator as configured by args, prints the environment
// for clients to stdout and serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr        = fs.String("addr", "127.0.0.1:0", "listen address (the certificate covers 127.0.0.1, ::1 and localhost)")
		caOut       = fs.String("ca-out", "", "write the simulator CA (PEM) to this file; default a temporary file removed on exit")
		tenant      = fs.String("tenant", graphsim.DefaultTenantID, "default tenant id")
		tenantName  = fs.String("tenant-name", "", "default tenant display name (GET /organization)")
		clientID    = fs.String("client-id", graphsim.DefaultClientID, "application (client) id to register")
		secret      = fs.String("client-secret", "", "client secret to accept (default: a simulator secret, printed as AZURE_CLIENT_SECRET, unless -client-cert is given)")
		certFile    = fs.String("client-cert", "", "PEM file whose first CERTIFICATE verifies client assertions")
		delegated   = fs.Bool("delegated", true, "allow public client flows (device code) for the application")
		cfgFile     = fs.String("configurations", "", "file of device configuration ids, one GUID a line (# comments allowed)")
		tenantFile  = fs.String("tenant-file", "", `JSON file describing the tenants: {"configurations":[ids], "existing":[{"configurationId","path","target":{graph target}}], "configurationNames":{id:name}, "groups":[{"id","displayName"}], "filters":[{"id","displayName"}], "tenants":[{"id","name","writeLimit","refuse","tokenFailures","noPermission","noGroupRead","configurations","existing","groups",...}]} (see graphsim.Server.LoadTenantFile)`)
		cfgCount    = fs.Int("configurations-count", 0, "generate this many device configuration ids (from -seed; list them at /_sim/configurations)")
		writeLimit  = fs.String("write-limit", "", `write throttling: "N/WINDOW" fixed window (e.g. 100/20s), "bucket:RATE/PER[,BURST]" token bucket (e.g. bucket:10/s), empty = none`)
		noRA        = fs.Float64("no-retry-after", 0, "fraction (0..1) of 429s sent without Retry-After")
		countRej    = fs.Bool("count-rejected", false, "rejected writes consume quota too")
		pageSize    = fs.Int("page-size", graphsim.DefaultPageSize, "largest page of a list (assignments, configurations, groups, filters)")
		f503        = fs.Float64("fault-503", 0, "probability that a POST is answered 503 (not applied)")
		f504        = fs.Float64("fault-504", 0, "probability that a POST is applied, then answered 504")
		fReset      = fs.Float64("fault-reset", 0, "probability that a POST is applied, then the connection is reset")
		f503Read    = fs.Float64("fault-503-read", 0, "probability that a GET is answered 503")
		latency     = fs.Duration("latency", 0, "delay before each Graph request is processed")
		revokeAfter = fs.Duration("revoke-after", 0, "revoke every access token this long after issue (claims challenge)")
		tokenLife   = fs.Duration("token-lifetime", graphsim.DefaultTokenLifetime, "access token lifetime")
		autoApprove = fs.Duration("auto-approve", 0, "approve device codes this long after issue (0: only via POST /_sim/approve)")
		seed        = fs.Int64("seed", 1, "seed for faults, omitted Retry-After and generated configuration ids")
		verbose     = fs.Bool("v", false, "log every request (method, path, status; never tokens) to stderr")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	limit, err := parseLimit(*writeLimit)
	if err != nil {
		return err
	}
	limit.NoRetryAfter, limit.CountRejected = *noRA, *countRej

	cl := graphsim.Client{ID: *clientID, Secret: *secret, Delegated: *delegated}
	printSecret := false
	if *certFile != "" {
		if cl.Certificate, err = readCert(*certFile); err != nil {
			return err
		}
	} else if cl.Secret == "" {
		cl.Secret, printSecret = graphsim.DefaultClientSecret, true
	}

	var cfgIDs []string
	if *cfgFile != "" {
		if cfgIDs, err = readConfigurations(*cfgFile); err != nil {
			return err
		}
	}
	if *cfgCount < 0 {
		return errors.New("-configurations-count is negative")
	}
	rng := mrand.New(mrand.NewPCG(uint64(*seed), 0x5eed))
	for range *cfgCount {
		cfgIDs = append(cfgIDs, seededGUID(rng))
	}

	cfg := graphsim.Config{
		Addr:          *addr,
		TenantID:      *tenant,
		TenantName:    *tenantName,
		Clients:       []graphsim.Client{cl},
		PageSize:      *pageSize,
		Seed:          *seed,
		WriteLimit:    limit,
		TokenLifetime: *tokenLife,
		RevokeAfter:   *revokeAfter,
		Faults: graphsim.Faults{
			P503: *f503, PAppliedThen504: *f504, PAppliedThenReset: *fReset,
			P503Read: *f503Read, Latency: *latency,
		},
		AutoApproveAfter: *autoApprove,
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	srv, err := graphsim.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.AddConfiguration(cfgIDs...)
	if *tenantFile != "" {
		n, err := srv.LoadTenantFile(*tenantFile)
		if err != nil {
			return err
		}
		cfgIDs = append(cfgIDs, n...)
	}

	caPath := *caOut
	if caPath == "" {
		f, err := os.CreateTemp("", "graphsim-ca-*.pem")
		if err != nil {
			return err
		}
		caPath = f.Name()
		_ = f.Close()
		defer os.Remove(caPath)
	}
	if err := graphsim.WriteCAFile(caPath); err != nil {
		return err
	}

	env := [][2]string{
		{"GRAPH_BASE_URL", srv.GraphBaseURL()},
		{"AZURE_AUTHORITY_HOST", srv.AuthorityHost()},
		{"AZURE_TENANT_ID", srv.TenantID()},
		{"AZURE_CLIENT_ID", strings.ToLower(cl.ID)},
	}
	if printSecret {
		env = append(env, [2]string{"AZURE_CLIENT_SECRET", cl.Secret})
	}
	env = append(env, [2]string{"SSL_CERT_FILE", caPath}, [2]string{"GRAPHSIM_URL", srv.URL()})
	if tenants := srv.TenantIDs(); len(tenants) > 1 {
		env = append(env, [2]string{"GRAPHSIM_TENANTS", strings.Join(tenants[1:], ",")})
	}
	var b strings.Builder
	for _, kv := range env {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], shellQuote(kv[1]))
	}
	fmt.Fprintf(&b, "# graphsim ready: %d configurations; inspect $GRAPHSIM_URL/_sim/stats; stop with SIGINT/SIGTERM\n", len(cfgIDs))
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// parseLimit reads -write-limit; see graphsim.ParseLimit.
func parseLimit(s string) (graphsim.Limit, error) {
	l, err := graphsim.ParseLimit(s)
	if err != nil {
		return l, fmt.Errorf("-write-limit: %w", err)
	}
	return l, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no CERTIFICATE block", path)
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

func readConfigurations(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		v := strings.TrimSpace(sc.Text())
		if v == "" || strings.HasPrefix(v, "#") {
			continue
		}
		id, err := assign.ParseGUID("configuration id", v)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		ids = append(ids, id)
	}
	return ids, sc.Err()
}

func seededGUID(r *mrand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]*$`)

// shellQuote quotes v for POSIX shells when it needs quoting.
func shellQuote(v string) string {
	if shellSafe.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

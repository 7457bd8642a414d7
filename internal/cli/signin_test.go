package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// The sign-in tests run the real commands in-process (cli.Worker,
// cli.Enqueue) against the simulator and a fresh schema, and read what
// they print the way an operator would.

// certClientID is the app registration that signs in with a certificate.
const certClientID = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// command is one run of worker or enqueue.
type command struct {
	name           string
	stdout, stderr *testenv.LogBuffer
	cancel         context.CancelFunc
	exit           chan int
}

// bundle is one test's tenant, database and settings, and everything its
// commands printed.
type bundle struct {
	h        *testenv.Harness
	vars     map[string]string
	mu       sync.Mutex
	commands []*command
	// extra holds values that must not leak but that the simulator does not
	// know (a wrong secret, a password, the cache key).
	extra []string
}

func setup(t *testing.T, cfg graphsim.Config) *bundle {
	t.Helper()
	if cfg.Clients == nil {
		cfg.Clients = []graphsim.Client{{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Delegated: true}}
	}
	h := testenv.New(t, cfg)
	vars := h.Vars()
	// A small, quick worker: no write limit to speak of. Few jobs at once:
	// the worker command sizes its pool by them (plus 10), and a test here
	// may run four workers while another package's tests run too.
	vars["GRAPH_WRITE_RATE"], vars["GRAPH_READ_RATE"], vars["WORKER_CONCURRENCY"] = "200", "500", "3"
	b := &bundle{h: h, vars: vars, extra: []string{graphsim.DefaultClientSecret}}
	t.Cleanup(func() { b.checkNothingLeaked(t) })
	return b
}

// set changes the bundle's settings (an empty value removes a variable).
func (b *bundle) set(kv ...string) {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(b.vars, kv[i])
		} else {
			b.vars[kv[i]] = kv[i+1]
		}
	}
}

// env is the bundle's settings with overrides.
func (b *bundle) env(kv ...string) config.Env {
	m := make(map[string]string, len(b.vars))
	for k, v := range b.vars {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return config.MapEnv(m)
}

// useDelegated switches the settings to delegated sign-in with a new key.
func (b *bundle) useDelegated() string {
	key := testenv.NewTokenCacheKey()
	b.extra = append(b.extra, key)
	b.set("AZURE_SIGNIN", "delegated", config.TokenCacheKeyVar, key, "AZURE_CLIENT_SECRET", "")
	return key
}

// start runs a command in the background until stop.
func (b *bundle) start(name string, main func(context.Context, *cli.Env, []string) int, env config.Env, args ...string) *command {
	ctx, cancel := context.WithCancel(context.Background())
	c := &command{name: name + " " + strings.Join(args, " "), stdout: &testenv.LogBuffer{}, stderr: &testenv.LogBuffer{}, cancel: cancel, exit: make(chan int, 1)}
	b.mu.Lock()
	b.commands = append(b.commands, c)
	b.mu.Unlock()
	go func() {
		c.exit <- main(ctx, &cli.Env{Getenv: env, Stdin: strings.NewReader(""), Stdout: c.stdout, Stderr: c.stderr}, args)
	}()
	return c
}

// wait waits for the command to exit by itself.
func (c *command) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case code := <-c.exit:
		c.cancel()
		return code
	case <-time.After(timeout):
		c.cancel()
		t.Fatalf("%s still running after %s; stderr:\n%s", c.name, timeout, c.stderr)
		return -1
	}
}

// stop ends a long-running command as SIGTERM would, and returns its code.
func (c *command) stop(t *testing.T) int {
	t.Helper()
	c.cancel()
	return c.wait(t, 90*time.Second)
}

// run runs a command to its end.
func (b *bundle) run(t *testing.T, name string, main func(context.Context, *cli.Env, []string) int, env config.Env, args ...string) (int, *command) {
	t.Helper()
	c := b.start(name, main, env, args...)
	return c.wait(t, 60*time.Second), c
}

var userCode = regexp.MustCompile(`enter the code (\S+)`)

// login runs `worker login` and approves the code it prints, as the person
// at the browser would.
func (b *bundle) login(t *testing.T) {
	t.Helper()
	c := b.start("worker", cli.Worker, b.env(), "login")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := userCode.FindStringSubmatch(c.stderr.String()); m != nil {
			if err := b.h.Sim.ApproveDeviceCode(m[1]); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker login printed no code; stderr:\n%s", c.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := c.wait(t, 30*time.Second); code != cli.ExitOK {
		t.Fatalf("worker login exited %d; stderr:\n%s", code, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "signed in as operator@graphsim.invalid") {
		t.Fatalf("worker login stdout = %q, want who signed in", c.stdout)
	}
}

// enqueue writes rows as a CSV file, enqueues it with the enqueue command
// and returns the batch id it printed. Row i assigns group first+i to one
// of configs configurations, so batches with different first never overlap.
func (b *bundle) enqueue(t *testing.T, first, rows, configs int) string {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("configuration_id,target_type,group_id\n")
	for i := range rows {
		b.h.Sim.AddConfiguration(testenv.Config(i % configs))
		fmt.Fprintf(&csv, "%s,group,%s\n", testenv.Config(i%configs), testenv.Group(first+i))
	}
	path := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, c := b.run(t, "enqueue", cli.Enqueue, b.env(), path)
	lines := strings.Fields(c.stdout.String())
	if code != cli.ExitOK || len(lines) == 0 {
		t.Fatalf("enqueue exited %d, stdout %q; stderr:\n%s", code, c.stdout, c.stderr)
	}
	return lines[len(lines)-1]
}

// checkNothingLeaked fails the test if leaks finds anything.
func (b *bundle) checkNothingLeaked(t *testing.T) {
	t.Helper()
	found, scanned := b.leaks(t)
	for _, f := range found {
		t.Error(f)
	}
	t.Logf("leak scan: %d outputs and rows checked against %d secret values", scanned, len(b.h.Sim.IssuedSecrets())+len(b.extra))
}

// leaks scans everything the commands printed and every row of the tables
// for the access tokens, refresh tokens and device codes the simulator
// issued and for the secrets of the test, and the token cache for anything
// but ciphertext. It returns what it found (never the values themselves).
func (b *bundle) leaks(t *testing.T) (found []string, scanned int) {
	t.Helper()
	secrets := append(b.h.Sim.IssuedSecrets(), b.extra...)
	var texts, names []string
	b.mu.Lock()
	for _, c := range b.commands {
		texts = append(texts, c.stdout.String(), c.stderr.String())
		names = append(names, c.name+" stdout", c.name+" stderr")
	}
	b.mu.Unlock()
	ctx := context.Background()
	for _, table := range []string{"batches", "items", "assignment_lists", "token_caches"} {
		rows, err := store.RowsAsText(ctx, b.h.DB.Pool, table)
		if err != nil {
			t.Errorf("reading %s: %v", table, err)
			continue
		}
		for i, r := range rows {
			texts = append(texts, r)
			names = append(names, fmt.Sprintf("%s row %d", table, i+1))
			if table == "token_caches" {
				for _, word := range []string{"RefreshToken", "AccessToken", "IdToken", "operator@", "secret"} {
					if strings.Contains(r, word) {
						found = append(found, fmt.Sprintf("token_caches row %d holds plaintext %q", i+1, word))
					}
				}
			}
		}
	}
	for i, text := range texts {
		for _, s := range secrets {
			if len(s) >= 8 && strings.Contains(text, s) {
				found = append(found, fmt.Sprintf("%s contains a secret or token (%.6s...)", names[i], s))
			}
		}
		// Nor may anything shaped like a simulator token (another
		// process's, say).
		for _, prefix := range []string{"gs1.", "gsr1.", "gsd1."} {
			if strings.Contains(text, prefix) {
				found = append(found, fmt.Sprintf("%s contains something shaped like a simulator token (%s...)", names[i], prefix))
			}
		}
	}
	return found, len(texts)
}

// oneLine checks that a command that refused to start said so in exactly
// one line on stderr, and nothing on stdout.
func oneLine(t *testing.T, c *command, want string) {
	t.Helper()
	errText := c.stderr.String()
	if c.stdout.String() != "" || strings.Count(errText, "\n") != 1 || !strings.HasPrefix(errText, "worker: ") || !strings.Contains(errText, want) {
		t.Fatalf("stdout %q, stderr %q; want one line `worker: ...%s...` on stderr", c.stdout, errText, want)
	}
	t.Logf("%s", strings.TrimSpace(errText))
}

func TestSignInMethodsCreateAssignments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		clientID string
		prepare  func(t *testing.T, b *bundle, cert testenv.AppCertificate)
	}{
		{"client secret", graphsim.DefaultClientID, func(t *testing.T, b *bundle, _ testenv.AppCertificate) {}},
		{"PEM certificate", certClientID, func(t *testing.T, b *bundle, cert testenv.AppCertificate) {
			b.set("AZURE_CLIENT_ID", certClientID, "AZURE_CLIENT_SECRET", "", "AZURE_CLIENT_CERTIFICATE_PATH", cert.WritePEM(t))
		}},
		{"PFX certificate", certClientID, func(t *testing.T, b *bundle, cert testenv.AppCertificate) {
			const password = "correct horse battery"
			b.extra = append(b.extra, password)
			b.set("AZURE_CLIENT_ID", certClientID, "AZURE_CLIENT_SECRET", "",
				"AZURE_CLIENT_CERTIFICATE_PATH", cert.WritePFX(t, password, false), "AZURE_CLIENT_CERTIFICATE_PASSWORD", password)
		}},
		{"delegated device code", graphsim.DefaultClientID, func(t *testing.T, b *bundle, _ testenv.AppCertificate) {
			b.useDelegated()
			b.login(t)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert := testenv.NewAppCertificate(t, tt.name)
			b := setup(t, graphsim.Config{Clients: []graphsim.Client{
				{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Delegated: true},
				{ID: certClientID, Certificate: cert.Cert},
			}})
			tt.prepare(t, b, cert)
			batch := b.enqueue(t, 0, 20, 2)
			w := b.start("worker", cli.Worker, b.env(), "-v")
			counts := b.h.WaitFinal(t, batch, 60*time.Second)
			if code := w.stop(t); code != cli.ExitOK {
				t.Fatalf("worker exited %d; stderr:\n%s", code, w.stderr)
			}
			if counts[assign.StatusCreated] != 20 {
				t.Fatalf("counts = %v, want 20 created", counts)
			}
			ledger := b.h.Sim.Ledger()
			if len(ledger) != 20 {
				t.Fatalf("simulator created %d assignments, want 20", len(ledger))
			}
			for _, e := range ledger {
				if e.ClientID != tt.clientID {
					t.Fatalf("assignment %s created by app %s, want %s", e.ID, e.ClientID, tt.clientID)
				}
			}
			if code, c := b.run(t, "enqueue", cli.Enqueue, b.env(), "status", batch); code != cli.ExitOK {
				t.Fatalf("enqueue status exited %d: %s", code, c.stderr)
			}
		})
	}
}

func TestWorkerRefusesToStartWithOneLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sim     graphsim.Config
		prepare func(t *testing.T, b *bundle)
		code    int
		want    string
	}{
		{
			name: "wrong secret",
			prepare: func(t *testing.T, b *bundle) {
				b.extra = append(b.extra, "wrong~secret-value")
				b.set("AZURE_CLIENT_SECRET", "wrong~secret-value")
			},
			code: cli.ExitFailed,
			want: "as app " + graphsim.DefaultClientID + " in tenant " + graphsim.DefaultTenantID + ": sign-in failed: AADSTS7000215: Invalid client secret provided",
		},
		{
			name: "certificate the tenant does not know",
			sim: graphsim.Config{Clients: []graphsim.Client{
				{ID: certClientID, Certificate: testenv.NewAppCertificate(t, "registered").Cert},
			}},
			prepare: func(t *testing.T, b *bundle) {
				b.set("AZURE_CLIENT_ID", certClientID, "AZURE_CLIENT_SECRET", "",
					"AZURE_CLIENT_CERTIFICATE_PATH", testenv.NewAppCertificate(t, "stranger").WritePEM(t))
			},
			code: cli.ExitFailed,
			want: "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application",
		},
		{
			name: "PFX with the wrong password",
			prepare: func(t *testing.T, b *bundle) {
				b.extra = append(b.extra, "the-real-password", "a-wrong-password")
				b.set("AZURE_CLIENT_SECRET", "", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "a-wrong-password",
					"AZURE_CLIENT_CERTIFICATE_PATH", testenv.NewAppCertificate(t, "app").WritePFX(t, "the-real-password", false))
			},
			code: cli.ExitSetting,
			want: "AZURE_CLIENT_CERTIFICATE_PASSWORD: the password does not open the PKCS#12 file",
		},
		{
			name:    "no credential",
			prepare: func(t *testing.T, b *bundle) { b.set("AZURE_CLIENT_SECRET", "") },
			code:    cli.ExitSetting,
			want:    "AZURE_CLIENT_SECRET: neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set",
		},
		{
			name:    "delegated, nobody signed in",
			prepare: func(t *testing.T, b *bundle) { b.useDelegated() },
			code:    cli.ExitFailed,
			want:    "no delegated sign-in is stored for app " + graphsim.DefaultClientID + " in tenant " + graphsim.DefaultTenantID + ": run `worker login`",
		},
		{
			name: "delegated without a key",
			prepare: func(t *testing.T, b *bundle) {
				b.useDelegated()
				b.set(config.TokenCacheKeyVar, "")
			},
			code: cli.ExitSetting,
			want: config.TokenCacheKeyVar + ": is not set",
		},
		{
			name: "delegated with another key",
			prepare: func(t *testing.T, b *bundle) {
				b.useDelegated()
				b.login(t)
				b.useDelegated()
			},
			code: cli.ExitSetting,
			want: config.TokenCacheKeyVar + " is not the key the stored sign-in was sealed with",
		},
		{
			name: "delegated, signed out",
			prepare: func(t *testing.T, b *bundle) {
				b.useDelegated()
				b.login(t)
				code, c := b.run(t, "worker", cli.Worker, b.env(), "logout")
				if code != cli.ExitOK || !strings.Contains(c.stdout.String(), "signed out") {
					t.Fatalf("worker logout exited %d, stdout %q, stderr %q", code, c.stdout, c.stderr)
				}
			},
			code: cli.ExitFailed,
			want: "no delegated sign-in is stored",
		},
		{
			name: "delegated, refresh token expired",
			sim:  graphsim.Config{TokenLifetime: 4 * time.Minute, RefreshTokenLifetime: time.Second},
			prepare: func(t *testing.T, b *bundle) {
				b.useDelegated()
				b.login(t)
				time.Sleep(1500 * time.Millisecond)
			},
			code: cli.ExitFailed,
			want: "sign in again: the stored sign-in has expired or was revoked (run `worker login`): AADSTS70043",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.sim)
			tt.prepare(t, b)
			batch := b.enqueue(t, 0, 5, 1)
			code, c := b.run(t, "worker", cli.Worker, b.env())
			if code != tt.code {
				t.Fatalf("worker exited %d, want %d; stderr:\n%s", code, tt.code, c.stderr)
			}
			oneLine(t, c, tt.want)
			// It stopped before touching a row or Graph.
			if counts, err := store.CountByStatus(context.Background(), b.h.DB.Pool, batch); err != nil || counts[assign.StatusQueued] != 5 {
				t.Fatalf("rows after the refused start: %v, %v; want all 5 still queued", counts, err)
			}
			if st := b.h.Sim.Stats(); st.Reads+st.Writes != 0 {
				t.Fatalf("Graph saw %d reads and %d writes, want none", st.Reads, st.Writes)
			}
		})
	}
}

func TestDelegatedSignInSurvivesRestartAndServesTwoWorkers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// TokenLifetime under MSAL's five-minute margin makes every Graph
		// call renew through the refresh token, under the fleet's lock.
		lifetime time.Duration
	}{
		{"hour-long tokens", time.Hour},
		{"every call renews", 4 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Latency keeps both workers busy at once.
			b := setup(t, graphsim.Config{TokenLifetime: tt.lifetime, Faults: graphsim.Faults{Latency: 30 * time.Millisecond}})
			b.useDelegated()
			b.login(t)

			first := b.start("worker", cli.Worker, b.env())
			batch1 := b.enqueue(t, 0, 10, 1)
			if c := b.h.WaitFinal(t, batch1, 60*time.Second); c[assign.StatusCreated] != 10 {
				t.Fatalf("first worker: %v, want 10 created", c)
			}
			if code := first.stop(t); code != cli.ExitOK {
				t.Fatalf("first worker exited %d: %s", code, first.stderr)
			}

			// Restart as two processes.
			second := b.start("worker", cli.Worker, b.env())
			third := b.start("worker", cli.Worker, b.env())
			batch2 := b.enqueue(t, 100, 60, 3)
			if c := b.h.WaitFinal(t, batch2, 60*time.Second); c[assign.StatusCreated] != 60 {
				t.Fatalf("two workers: %v, want 60 created", c)
			}
			for i, w := range []*command{second, third} {
				if code := w.stop(t); code != cli.ExitOK {
					t.Fatalf("worker %d exited %d: %s", i+2, code, w.stderr)
				}
				if n := strings.Count(w.stderr.String(), `"msg":"row done"`); n == 0 {
					t.Fatalf("worker %d finished no row; stderr:\n%s", i+2, w.stderr)
				}
			}
			st := b.h.Sim.Stats()
			if st.DeviceCodes != 1 {
				t.Fatalf("%d device codes, want the one login", st.DeviceCodes)
			}
			if tt.lifetime == time.Hour && st.TokensIssued != 1 {
				t.Fatalf("%d tokens issued, want 1: the restarted workers should use the stored token silently", st.TokensIssued)
			}
			if tt.lifetime < 5*time.Minute && st.TokensIssued < 3 {
				t.Fatalf("%d tokens issued, want renewals by every worker", st.TokensIssued)
			}
			if d := b.h.Sim.Duplicates(); d != 0 {
				t.Fatalf("%d duplicate assignments", d)
			}
		})
	}
}

func TestRevokedSignInEndsRowsWithoutRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{TokenLifetime: 4 * time.Minute})
	b.useDelegated()
	b.login(t)
	w := b.start("worker", cli.Worker, b.env(), "-v")
	// The worker started on a good sign-in; then the user's sessions are
	// revoked (a password reset, an admin's "revoke sessions").
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.stderr.String(), "worker started") {
		if time.Now().After(deadline) {
			t.Fatalf("worker did not start; stderr:\n%s", w.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.h.Sim.RevokeRefreshTokens()
	batch := b.enqueue(t, 0, 8, 2)
	if c := b.h.WaitFinal(t, batch, 60*time.Second); c[assign.StatusFailed] != 8 {
		t.Fatalf("counts = %v, want all 8 failed", c)
	}
	for _, r := range b.h.Results(t, batch) {
		// The message keeps the platform's reason (AADSTS50173: the grant
		// was revoked), which tells the operator why a person is needed.
		if r.ErrorCode != "SignInAgain" || !strings.Contains(r.ErrorMessage, "sign in again") ||
			!strings.Contains(r.ErrorMessage, "AADSTS50173") || r.Attempts != 0 {
			t.Fatalf("line %d: error_code %q, message %q after %d create attempts; want SignInAgain with the AADSTS code, before any create",
				r.Line, r.ErrorCode, r.ErrorMessage, r.Attempts)
		}
	}
	// No retry was spent: every row ended on its first run, error count 0.
	items, err := store.RowsAsText(context.Background(), b.h.DB.Pool, "items")
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		var row struct {
			Line   int    `json:"line"`
			Errors int    `json:"errors"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(it), &row); err != nil {
			t.Fatal(err)
		}
		if row.Errors != 0 || row.Status != string(assign.StatusFailed) {
			t.Fatalf("line %d: status %s with %d errors counted, want failed with none", row.Line, row.Status, row.Errors)
		}
	}
	if st := b.h.Sim.Stats(); st.Reads+st.Writes != 0 {
		t.Fatalf("Graph saw %d reads and %d writes without a token, want none", st.Reads, st.Writes)
	}

	// Signing in again heals the running worker: it reads the new sign-in
	// at its next renewal, no restart needed.
	b.login(t)
	batch2 := b.enqueue(t, 100, 8, 2)
	if c := b.h.WaitFinal(t, batch2, 60*time.Second); c[assign.StatusCreated] != 8 {
		t.Fatalf("after signing in again: %v, want 8 created", c)
	}
	if code := w.stop(t); code != cli.ExitOK {
		t.Fatalf("worker exited %d", code)
	}
}

// TestNoTokenOrSecretLeaks runs worker and enqueue through their failure
// paths and a verbose delegated run, and proves the scan that every test
// here ends with would notice a leak.
func TestNoTokenOrSecretLeaks(t *testing.T) {
	t.Parallel()
	b := setup(t, graphsim.Config{TokenLifetime: 4 * time.Minute})
	// A wrong secret stops the worker.
	b.extra = append(b.extra, "wrong~secret-value")
	if code, _ := b.run(t, "worker", cli.Worker, b.env("AZURE_CLIENT_SECRET", "wrong~secret-value"), "-v"); code == cli.ExitOK {
		t.Fatal("worker started with a wrong secret")
	}
	// An invalid file stops enqueue.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("configuration_id,target_type,group_id\nnot-a-guid,group,x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.run(t, "enqueue", cli.Enqueue, b.env(), bad); code != cli.ExitFailed {
		t.Fatalf("enqueue of an invalid file exited %d, want %d", code, cli.ExitFailed)
	}
	// A delegated worker logging every Graph call renews its token on
	// every call (short tokens), then loses its sign-in.
	b.useDelegated()
	b.login(t)
	w := b.start("worker", cli.Worker, b.env(), "-v")
	batch := b.enqueue(t, 0, 6, 2)
	if c := b.h.WaitFinal(t, batch, 60*time.Second); c[assign.StatusCreated] != 6 {
		t.Fatalf("counts = %v, want 6 created", c)
	}
	b.h.Sim.RevokeRefreshTokens()
	batch = b.enqueue(t, 100, 4, 2)
	if c := b.h.WaitFinal(t, batch, 60*time.Second); c[assign.StatusFailed] != 4 {
		t.Fatalf("counts = %v, want 4 failed", c)
	}
	if code := w.stop(t); code != cli.ExitOK {
		t.Fatalf("worker exited %d", code)
	}
	if st := b.h.Sim.Stats(); st.TokensIssued < 6 {
		t.Fatalf("%d tokens issued, want one per Graph call at least", st.TokensIssued)
	}
	if found, _ := b.leaks(t); len(found) > 0 {
		t.Fatalf("leaks: %q", found)
	}

	// The scan itself: a token in any output is found.
	secrets := b.h.Sim.IssuedSecrets()
	planted := &command{name: "planted", stdout: &testenv.LogBuffer{}, stderr: &testenv.LogBuffer{}}
	fmt.Fprintf(planted.stderr, `{"level":"DEBUG","msg":"graph create","authorization":"Bearer %s"}`, secrets[0])
	b.mu.Lock()
	b.commands = append(b.commands, planted)
	b.mu.Unlock()
	found, _ := b.leaks(t)
	b.mu.Lock()
	b.commands = b.commands[:len(b.commands)-1]
	b.mu.Unlock()
	if len(found) == 0 {
		t.Fatal("a planted token went unnoticed by the leak scan")
	}
}

func TestLoginAndLogoutCommands(t *testing.T) {
	t.Parallel()
	t.Run("login and logout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{})
		b.useDelegated()
		b.set("AZURE_SIGNIN", "") // login works whatever AZURE_SIGNIN says
		b.login(t)
		if !strings.Contains(b.commands[len(b.commands)-1].stderr.String(), "note: workers use it only with AZURE_SIGNIN=delegated") {
			t.Fatalf("login with AZURE_SIGNIN unset gave no note; stderr:\n%s", b.commands[len(b.commands)-1].stderr)
		}
		for i, want := range []string{"signed out: the stored sign-in of app " + graphsim.DefaultClientID, "no sign-in was stored"} {
			code, c := b.run(t, "worker", cli.Worker, b.env(), "logout")
			if code != cli.ExitOK || !strings.Contains(c.stdout.String(), want) {
				t.Fatalf("logout #%d exited %d, stdout %q, stderr %q; want %q", i+1, code, c.stdout, c.stderr, want)
			}
		}
	})
	tests := []struct {
		name string
		sim  graphsim.Config
		env  []string
		args []string
		code int
		want string
	}{
		{name: "login without a key refuses to store the sign-in unencrypted", env: []string{config.TokenCacheKeyVar, ""},
			args: []string{"login"}, code: cli.ExitSetting, want: config.TokenCacheKeyVar + ": is not set"},
		{name: "login with a key of the wrong size", env: []string{config.TokenCacheKeyVar, "c2hvcnQ="},
			args: []string{"login"}, code: cli.ExitSetting, want: config.TokenCacheKeyVar + ": decodes to 5 bytes, want 32"},
		{name: "login to an app that allows no public client flows", sim: graphsim.Config{Clients: []graphsim.Client{{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret}}},
			args: []string{"login"}, code: cli.ExitFailed, want: "sign-in failed: AADSTS7000218"},
		{name: "login takes no arguments", args: []string{"login", "extra"}, code: cli.ExitSetting, want: "worker: login takes no arguments"},
		{name: "logout without a tenant", env: []string{"AZURE_TENANT_ID", ""}, args: []string{"logout"}, code: cli.ExitSetting, want: "AZURE_TENANT_ID: is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.sim)
			b.useDelegated()
			code, c := b.run(t, "worker", cli.Worker, b.env(tt.env...), tt.args...)
			if code != tt.code {
				t.Fatalf("exited %d, want %d; stderr:\n%s", code, tt.code, c.stderr)
			}
			oneLine(t, c, tt.want)
			if rows, err := store.RowsAsText(context.Background(), b.h.DB.Pool, "token_caches"); err != nil || len(rows) != 0 {
				t.Fatalf("token_caches holds %d rows (%v), want none", len(rows), err)
			}
		})
	}
}

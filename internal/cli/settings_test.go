package cli_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// runBoth runs `worker check` and the worker itself on env and returns
// their exit codes and stderr. The worker gets a deadline: one that
// accepted the settings would otherwise run on.
func runBoth(t *testing.T, env config.Env) (checkCode int, checkErr string, startCode int, startErr string) {
	t.Helper()
	run := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var out, errb testenv.LogBuffer
		code := cli.Worker(ctx, &cli.Env{Getenv: env, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
		return code, errb.String()
	}
	checkCode, checkErr = run("check")
	startCode, startErr = run()
	return
}

// TestCheckRefusesWhatTheWorkerRefuses: the three settings, each
// of which `worker check` once passed with "ok" everywhere while the
// worker exited 2.
func TestCheckRefusesWhatTheWorkerRefuses(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0))
	for _, tt := range []struct{ name, value, want string }{
		{"GRAPH_WRITE_RATE", "fast", `worker: GRAPH_WRITE_RATE: "fast" is not a number of requests per second`},
		{"WORKER_TENANT_CONCURRENCY", "-3", `worker: WORKER_TENANT_CONCURRENCY: "-3" is not a positive whole number`},
		{"DATABASE_MAX_CONNS", "1", `worker: DATABASE_MAX_CONNS: "1" is out of range`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkCode, checkErr, startCode, startErr := runBoth(t, h.Env(map[string]string{tt.name: tt.value}))
			if checkCode != cli.ExitSetting || !strings.HasPrefix(checkErr, tt.want) {
				t.Errorf("worker check with %s=%s: exit %d, stderr %q; want exit 2 and %q", tt.name, tt.value, checkCode, checkErr, tt.want)
			}
			if startCode != cli.ExitSetting || startErr != checkErr {
				t.Errorf("worker with %s=%s: exit %d, stderr %q; want exit 2 and check's %q", tt.name, tt.value, startCode, startErr, checkErr)
			}
		})
	}
}

// TestCheckAndWorkerRefuseEverySettingAlike walks every setting the
// worker's loaders read, gives each an invalid value, and asserts that
// `worker check` and the worker's start both exit 2 with the same line,
// naming the variable. A setting added to the loaders without a row here
// fails the test.
func TestCheckAndWorkerRefuseEverySettingAlike(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	type row struct {
		extra   map[string]string // the invalid value and what it needs to be read
		wantVar string            // the variable the line names
	}
	one := func(k, v string) row { return row{map[string]string{k: v}, k} }
	rows := map[string]row{
		"GRAPH_WRITE_RATE":             one("GRAPH_WRITE_RATE", "fast"),
		"GRAPH_READ_RATE":              one("GRAPH_READ_RATE", "-1"),
		"WORKER_CONCURRENCY":           one("WORKER_CONCURRENCY", "0"),
		"WORKER_TENANT_CONCURRENCY":    one("WORKER_TENANT_CONCURRENCY", "-3"),
		"GRAPH_PATIENCE":               one("GRAPH_PATIENCE", "forever"),
		"GRAPH_MAX_ERRORS":             one("GRAPH_MAX_ERRORS", "many"),
		"WORKER_JOB_TIMEOUT":           one("WORKER_JOB_TIMEOUT", "0s"),
		"WORKER_RESCUE_AFTER":          one("WORKER_RESCUE_AFTER", "10s"),
		"DATABASE_MAX_CONNS":           one("DATABASE_MAX_CONNS", "1"),
		"WORKER_HTTP_ADDR":             one("WORKER_HTTP_ADDR", "8080"),
		"WORKER_HTTP_USER":             one("WORKER_HTTP_USER", "admin"),
		"WORKER_HTTP_PASSWORD":         {map[string]string{"WORKER_HTTP_PASSWORD": "pw", "CONSOLE_SIGNIN": "none"}, "WORKER_HTTP_USER"},
		"CONSOLE_SIGNIN":               one("CONSOLE_SIGNIN", "sideways"),
		"CONSOLE_URL":                  one("CONSOLE_URL", "ftp://console.example"),
		"CONSOLE_SECURE_COOKIES":       one("CONSOLE_SECURE_COOKIES", "maybe"),
		"CONSOLE_ENTRA_GROUP":          {map[string]string{"CONSOLE_SIGNIN": "entra"}, "CONSOLE_ENTRA_GROUP"},
		config.TenantsVar:              one(config.TenantsVar, "/nonexistent/tenants.json"),
		config.RetentionVar:            one(config.RetentionVar, "5m"),
		"GRAPH_CLOUD":                  one("GRAPH_CLOUD", "mars"),
		"GRAPH_BASE_URL":               one("GRAPH_BASE_URL", "ftp://graph.example/beta"),
		"AZURE_AUTHORITY_HOST":         one("AZURE_AUTHORITY_HOST", "http://login.example"),
		"GRAPH_TIMEOUT":                one("GRAPH_TIMEOUT", "soon"),
		"AZURE_SIGNIN":                 one("AZURE_SIGNIN", "magic"),
		"AZURE_TENANT_ID":              one("AZURE_TENANT_ID", "contoso/evil"),
		"AZURE_CLIENT_ID":              {map[string]string{"AZURE_CLIENT_ID": ""}, "AZURE_CLIENT_ID"},
		"AZURE_CLIENT_SECRET":          {map[string]string{"AZURE_CLIENT_SECRET": ""}, "AZURE_CLIENT_SECRET"},
		config.TokenCacheKeyVar:        {map[string]string{"AZURE_SIGNIN": "delegated", config.TokenCacheKeyVar: "c2hvcnQ="}, config.TokenCacheKeyVar},
		"CONSOLE_ALLOW_PLAIN_HTTP":     one("CONSOLE_ALLOW_PLAIN_HTTP", "perhaps"),
		"WORKER_METRICS_ADDR":          one("WORKER_METRICS_ADDR", "9090"),
		"WORKER_METRICS_TENANT_LABELS": one("WORKER_METRICS_TENANT_LABELS", "0"),
		"CONSOLE_MAX_UPLOAD":           one("CONSOLE_MAX_UPLOAD", "1.5GiB"),
		"CONSOLE_SPOOL_USER_MAX":       one("CONSOLE_SPOOL_USER_MAX", "lots"),
		"CONSOLE_SPOOL_USER_FILES":     one("CONSOLE_SPOOL_USER_FILES", "none"),
		"CONSOLE_SPOOL_MAX":            one("CONSOLE_SPOOL_MAX", "0"),
		"CONSOLE_REVIEW_TTL":           one("CONSOLE_REVIEW_TTL", "a while"),
		"BULKASSIGN_SCHEDULE_MAX":      one("BULKASSIGN_SCHEDULE_MAX", "-1"),
		"GRAPH_MAX_LIST_BYTES":         one("GRAPH_MAX_LIST_BYTES", "10"),
		"WORKER_TENANT_QUEUE_IDLE":     one("WORKER_TENANT_QUEUE_IDLE", "never"),
	}
	// Settings that take any value: nothing to refuse in them.
	free := map[string]bool{
		"AZURE_CLIENT_CERTIFICATE_PATH":     true, // read when the sign-in loads it
		"AZURE_CLIENT_CERTIFICATE_PASSWORD": true,
		"CONSOLE_ENTRA_ROLE":                true,
		"CONSOLE_SPOOL_DIR":                 true, // made at the console's start, which names it if it cannot
	}

	// Every variable the loaders read, on the harness's settings and on
	// each row's (which reach the branches: entra, delegated).
	var mu sync.Mutex
	read := map[string]bool{}
	record := func(env config.Env) config.Env {
		return func(k string) (string, bool) {
			mu.Lock()
			read[k] = true
			mu.Unlock()
			return env(k)
		}
	}
	for _, r := range append([]row{{}}, mapValues(rows)...) {
		env := record(h.Env(r.extra))
		config.LoadWorker(env)          //nolint:errcheck // only the reads count
		config.LoadGraph(env, true)     //nolint:errcheck
		config.LoadDelegated(env, true) //nolint:errcheck
	}
	for k := range read {
		if _, ok := rows[k]; !ok && !free[k] {
			t.Errorf("the worker reads %s, which has no invalid value in this test", k)
		}
	}

	for name, r := range rows {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkCode, checkErr, startCode, startErr := runBoth(t, h.Env(r.extra))
			if checkCode != cli.ExitSetting || !strings.HasPrefix(checkErr, "worker: "+r.wantVar+": ") || strings.Count(checkErr, "\n") != 1 {
				t.Errorf("worker check with %v: exit %d, stderr %q; want exit 2 and one line naming %s", r.extra, checkCode, checkErr, r.wantVar)
			}
			if startCode != cli.ExitSetting || startErr != checkErr {
				t.Errorf("worker with %v: exit %d, stderr %q; want exit 2 and check's line %q", r.extra, startCode, startErr, checkErr)
			}
		})
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

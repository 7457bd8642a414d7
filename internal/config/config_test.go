package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
)

// key32 is base64 of 32 bytes.
const key32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func TestCloudsSelectGraphAuthorityAndScopeTogether(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		env                       map[string]string
		baseURL, authority, scope string
	}{
		{name: "default is global", env: map[string]string{},
			baseURL: "https://graph.microsoft.com/beta", authority: "https://login.microsoftonline.com", scope: "https://graph.microsoft.com/.default"},
		{name: "global", env: map[string]string{"GRAPH_CLOUD": "global"},
			baseURL: "https://graph.microsoft.com/beta", authority: "https://login.microsoftonline.com", scope: "https://graph.microsoft.com/.default"},
		{name: "usgov (GCC High)", env: map[string]string{"GRAPH_CLOUD": "usgov"},
			baseURL: "https://graph.microsoft.us/beta", authority: "https://login.microsoftonline.us", scope: "https://graph.microsoft.us/.default"},
		{name: "usgovdod", env: map[string]string{"GRAPH_CLOUD": "usgovdod"},
			baseURL: "https://dod-graph.microsoft.us/beta", authority: "https://login.microsoftonline.us", scope: "https://dod-graph.microsoft.us/.default"},
		{name: "china", env: map[string]string{"GRAPH_CLOUD": "China"},
			baseURL: "https://microsoftgraph.chinacloudapi.cn/beta", authority: "https://login.chinacloudapi.cn", scope: "https://microsoftgraph.chinacloudapi.cn/.default"},
		{name: "GRAPH_BASE_URL overrides the cloud's Graph and so the scope", env: map[string]string{"GRAPH_CLOUD": "usgov", "GRAPH_BASE_URL": "https://graph.example.test/v1.0/"},
			baseURL: "https://graph.example.test/v1.0", authority: "https://login.microsoftonline.us", scope: "https://graph.example.test/.default"},
		{name: "AZURE_AUTHORITY_HOST overrides the cloud's authority", env: map[string]string{"GRAPH_CLOUD": "china", "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443/"},
			baseURL: "https://microsoftgraph.chinacloudapi.cn/beta", authority: "https://127.0.0.1:8443", scope: "https://microsoftgraph.chinacloudapi.cn/.default"},
		{name: "plain http Graph on loopback", env: map[string]string{"GRAPH_BASE_URL": "http://127.0.0.1:9000/beta"},
			baseURL: "http://127.0.0.1:9000/beta", authority: "https://login.microsoftonline.com", scope: "http://127.0.0.1:9000/.default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := config.LoadGraph(config.MapEnv(tt.env), false)
			if err != nil {
				t.Fatal(err)
			}
			if g.BaseURL != tt.baseURL || g.AuthorityHost != tt.authority || g.Scope() != tt.scope {
				t.Fatalf("got base %q, authority %q, scope %q; want %q, %q, %q", g.BaseURL, g.AuthorityHost, g.Scope(), tt.baseURL, tt.authority, tt.scope)
			}
		})
	}
	for name, c := range config.Clouds {
		if c.Name != name || !strings.HasPrefix(c.GraphRoot, "https://") || !strings.HasPrefix(c.AuthorityHost, "https://") {
			t.Errorf("Clouds[%q] = %+v, want its own name and https hosts", name, c)
		}
	}
}

func TestLoadGraphSignIn(t *testing.T) {
	t.Parallel()
	base := map[string]string{"AZURE_TENANT_ID": "contoso.onmicrosoft.com", "AZURE_CLIENT_ID": "0f3c9a7e-2b4d-4c6e-8a1f-3d5e7b9c1a2e"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		signIn  string
		wantVar string // the variable the error names; "" = no error
		wantMsg string
	}{
		{name: "secret", env: with("AZURE_CLIENT_SECRET", "s3cret"), signIn: config.SignInApp},
		{name: "certificate", env: with("AZURE_CLIENT_CERTIFICATE_PATH", "/etc/app.pfx"), signIn: config.SignInApp},
		{name: "app without a credential", env: with(), wantVar: "AZURE_CLIENT_SECRET", wantMsg: "AZURE_SIGNIN=delegated"},
		{name: "delegated needs no secret", env: with("AZURE_SIGNIN", "Delegated", config.TokenCacheKeyVar, key32), signIn: config.SignInDelegated},
		{name: "delegated URL-safe unpadded key", env: with("AZURE_SIGNIN", "delegated", config.TokenCacheKeyVar, strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(key32), "=")), signIn: config.SignInDelegated},
		{name: "delegated without a key", env: with("AZURE_SIGNIN", "delegated"), wantVar: config.TokenCacheKeyVar, wantMsg: "openssl rand -base64 32"},
		{name: "delegated short key", env: with("AZURE_SIGNIN", "delegated", config.TokenCacheKeyVar, "c2hvcnQta2V5"), wantVar: config.TokenCacheKeyVar, wantMsg: "decodes to 9 bytes, want 32"},
		{name: "delegated key not base64", env: with("AZURE_SIGNIN", "delegated", config.TokenCacheKeyVar, "not base64 at all!"), wantVar: config.TokenCacheKeyVar, wantMsg: "is not base64"},
		{name: "delegated without a tenant", env: map[string]string{"AZURE_SIGNIN": "delegated", "AZURE_CLIENT_ID": "x", config.TokenCacheKeyVar: key32}, wantVar: "AZURE_TENANT_ID"},
		{name: "unknown sign-in", env: with("AZURE_SIGNIN", "interactive"), wantVar: "AZURE_SIGNIN", wantMsg: `"interactive" is not one of app, delegated`},
		{name: "unknown cloud", env: with("GRAPH_CLOUD", "germany", "AZURE_CLIENT_SECRET", "s"), wantVar: "GRAPH_CLOUD"},
		{name: "http authority", env: with("AZURE_AUTHORITY_HOST", "http://127.0.0.1:1", "AZURE_CLIENT_SECRET", "s"), wantVar: "AZURE_AUTHORITY_HOST", wantMsg: "must use https"},
		{name: "http Graph off loopback", env: with("GRAPH_BASE_URL", "http://graph.example.test/beta", "AZURE_CLIENT_SECRET", "s"), wantVar: "GRAPH_BASE_URL", wantMsg: "must use https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := config.LoadGraph(config.MapEnv(tt.env), true)
			if tt.wantVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				if g.SignIn != tt.signIn {
					t.Fatalf("SignIn = %q, want %q", g.SignIn, tt.signIn)
				}
				if (g.SignIn == config.SignInDelegated) != (len(g.TokenCacheKey) == 32) {
					t.Fatalf("TokenCacheKey has %d bytes for sign-in %q", len(g.TokenCacheKey), g.SignIn)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Var != tt.wantVar || !strings.Contains(ce.Msg, tt.wantMsg) {
				t.Fatalf("err = %v, want a %s error containing %q", err, tt.wantVar, tt.wantMsg)
			}
			if v := tt.env[config.TokenCacheKeyVar]; v != "" && strings.Contains(err.Error(), v) {
				t.Fatalf("error %q quotes the key", err)
			}
		})
	}
}

func TestLoadDelegated(t *testing.T) {
	t.Parallel()
	env := map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"}
	// Logout needs no key; login does, whatever AZURE_SIGNIN says.
	if _, err := config.LoadDelegated(config.MapEnv(env), false); err != nil {
		t.Fatalf("LoadDelegated without key, needKey false: %v", err)
	}
	var ce *config.Error
	if _, err := config.LoadDelegated(config.MapEnv(env), true); !errors.As(err, &ce) || ce.Var != config.TokenCacheKeyVar {
		t.Fatalf("LoadDelegated without key, needKey true: %v, want a %s error", err, config.TokenCacheKeyVar)
	}
	env[config.TokenCacheKeyVar] = key32
	g, err := config.LoadDelegated(config.MapEnv(env), true)
	if err != nil || len(g.TokenCacheKey) != 32 || g.SignIn != config.SignInApp {
		t.Fatalf("LoadDelegated = %d-byte key, sign-in %q, %v; want the key and AZURE_SIGNIN's default", len(g.TokenCacheKey), g.SignIn, err)
	}
	delete(env, "AZURE_CLIENT_ID")
	if _, err := config.LoadDelegated(config.MapEnv(env), false); !errors.As(err, &ce) || ce.Var != "AZURE_CLIENT_ID" {
		t.Fatalf("LoadDelegated without client id: %v, want an AZURE_CLIENT_ID error", err)
	}
}

// TestRatesRefuseNaNInfAndOutOfRange covers every float setting: each bad
// value is one line naming the variable (the command exits 2), and a NaN
// never reaches the fleet's token bucket.
func TestRatesRefuseNaNInfAndOutOfRange(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"GRAPH_WRITE_RATE", "GRAPH_READ_RATE"} {
		for _, tc := range []struct {
			value string
			want  float64 // when ok
			ok    bool
		}{
			{"0", 0, true},
			{"2.5", 2.5, true},
			{" 7 ", 7, true},
			{"0.001", 0.001, true},
			{"10000", 10000, true},
			{"1e4", 10000, true},
			{"NaN", 0, false},
			{"nan", 0, false},
			{"Inf", 0, false},
			{"+Inf", 0, false},
			{"-Inf", 0, false},
			{"infinity", 0, false},
			{"1e400", 0, false},
			{"-1e400", 0, false},
			{"-1", 0, false},
			{"-0.5", 0, false},
			{"10000.5", 0, false},
			{"0x1p-1074", 0, false}, // 5e-324: 1/rate overflows a time.Duration
			{"0.0001", 0, false},
			{"five", 0, false},
		} {
			t.Run(v+"="+tc.value, func(t *testing.T) {
				w, err := config.LoadWorker(config.MapEnv(map[string]string{v: tc.value}))
				got := w.WriteRate
				if v == "GRAPH_READ_RATE" {
					got = w.ReadRate
				}
				if tc.ok {
					if err != nil || got != tc.want {
						t.Fatalf("%s=%q: %v, %v; want %v", v, tc.value, got, err, tc.want)
					}
					return
				}
				var ce *config.Error
				if !errors.As(err, &ce) || ce.Var != v {
					t.Fatalf("%s=%q: rate %v, err %v; want a *config.Error naming %s", v, tc.value, got, err, v)
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, v+": \""+strings.TrimSpace(tc.value)+"\" ") {
					t.Fatalf("%s=%q: message %q, want one line quoting the value", v, tc.value, msg)
				}
			})
		}
	}
}

// TestDatabaseMaxConns: the worker's connection bound has a default that
// does not follow WORKER_CONCURRENCY, and a bad value is one line naming
// the variable (the command exits 2).
func TestDatabaseMaxConns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want int // 0: an error naming DATABASE_MAX_CONNS
	}{
		{map[string]string{}, 10},
		{map[string]string{"WORKER_CONCURRENCY": "100"}, 10},
		{map[string]string{"DATABASE_MAX_CONNS": "2"}, 2},
		{map[string]string{"DATABASE_MAX_CONNS": " 25 "}, 25},
		{map[string]string{"DATABASE_MAX_CONNS": "10000"}, 10000},
		{map[string]string{"DATABASE_MAX_CONNS": "1"}, 0},
		{map[string]string{"DATABASE_MAX_CONNS": "0"}, 0},
		{map[string]string{"DATABASE_MAX_CONNS": "-3"}, 0},
		{map[string]string{"DATABASE_MAX_CONNS": "10001"}, 0},
		{map[string]string{"DATABASE_MAX_CONNS": "99999999999"}, 0},
		{map[string]string{"DATABASE_MAX_CONNS": "ten"}, 0},
	} {
		w, err := config.LoadWorker(config.MapEnv(tc.env))
		if tc.want != 0 {
			if err != nil || w.DatabaseMaxConns != tc.want {
				t.Errorf("%v: %d, %v; want %d", tc.env, w.DatabaseMaxConns, err, tc.want)
			}
			continue
		}
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Var != "DATABASE_MAX_CONNS" || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %d, %v; want one line naming DATABASE_MAX_CONNS", tc.env, w.DatabaseMaxConns, err)
		}
	}
}

func TestParseAge(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	for _, tt := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "90d", want: 90 * day},
		{in: "12h", want: 12 * time.Hour},
		{in: "0s", want: 0},
		{in: "0", want: 0},
		{in: "1d12h", want: 36 * time.Hour},
		{in: " 7d ", want: 7 * day},
		{in: "", bad: true},
		{in: "d", bad: true},
		{in: "90", bad: true},
		{in: "90x", bad: true},
		{in: "-1d", bad: true},
		{in: "-5h", bad: true},
		{in: "1d-2h", bad: true},
		{in: "1.5d", bad: true},
	} {
		got, err := config.ParseAge(tt.in)
		if tt.bad {
			if err == nil || !strings.Contains(err.Error(), "is not an age (e.g. 90d, 12h, 0s)") {
				t.Errorf("ParseAge(%q) = %s, %v; want the error naming the shape of an age", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAge(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value string
		want  time.Duration
		err   string
	}{
		{value: "", want: 0},
		{value: "off", want: 0},
		{value: "OFF", want: 0},
		{value: "90d", want: 90 * 24 * time.Hour},
		{value: "1h", want: time.Hour},
		{value: "0s", err: `BULKASSIGN_RETENTION: "0s" is shorter than an hour: give an age such as 90d, or off`},
		{value: "ninety", err: `BULKASSIGN_RETENTION: "ninety" is not an age (e.g. 90d, 12h, 0s); or off (the default)`},
	} {
		w, err := config.LoadWorker(config.MapEnv(map[string]string{"BULKASSIGN_RETENTION": tt.value}))
		if tt.err != "" {
			var ce *config.Error
			if !errors.As(err, &ce) || err.Error() != tt.err {
				t.Errorf("BULKASSIGN_RETENTION=%q: error %v, want %q", tt.value, err, tt.err)
			}
			continue
		}
		if err != nil || w.Retention != tt.want {
			t.Errorf("BULKASSIGN_RETENTION=%q: %s, %v; want %s", tt.value, w.Retention, err, tt.want)
		}
	}
}

// TestWebSettings: the metrics address and tenant-label cap, and the
// opt-out of plain-HTTP basic auth, as LoadWorker (and so `worker check`)
// reads them.
func TestWebSettings(t *testing.T) {
	t.Parallel()
	w, err := config.LoadWorker(config.MapEnv(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if w.MetricsAddr != "" || w.MetricsTenantLabels != config.Defaults.MetricsTenantLabels || config.Defaults.MetricsTenantLabels <= 0 || w.Console.AllowPlainHTTP {
		t.Fatalf("defaults: metrics %q, tenant labels %d (Defaults %d), plain HTTP %v", w.MetricsAddr, w.MetricsTenantLabels, config.Defaults.MetricsTenantLabels, w.Console.AllowPlainHTTP)
	}
	w, err = config.LoadWorker(config.MapEnv(map[string]string{"WORKER_METRICS_ADDR": "0.0.0.0:9090", "WORKER_METRICS_TENANT_LABELS": "7", "CONSOLE_ALLOW_PLAIN_HTTP": "TRUE"}))
	if err != nil || w.MetricsAddr != "0.0.0.0:9090" || w.MetricsTenantLabels != 7 || !w.Console.AllowPlainHTTP {
		t.Fatalf("set: %+v, %v", w, err)
	}
	for _, c := range []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"WORKER_METRICS_ADDR": "9090"}, "WORKER_METRICS_ADDR"},
		{map[string]string{"WORKER_METRICS_ADDR": "127.0.0.1:8080"}, "WORKER_METRICS_ADDR"}, // WORKER_HTTP_ADDR's default
		{map[string]string{"WORKER_METRICS_TENANT_LABELS": "0"}, "WORKER_METRICS_TENANT_LABELS"},
		{map[string]string{"WORKER_METRICS_TENANT_LABELS": "many"}, "WORKER_METRICS_TENANT_LABELS"},
		{map[string]string{"CONSOLE_ALLOW_PLAIN_HTTP": "maybe"}, "CONSOLE_ALLOW_PLAIN_HTTP"},
	} {
		_, err := config.LoadWorker(config.MapEnv(c.env))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Var != c.wantVar {
			t.Errorf("%v: %v, want a %s error", c.env, err, c.wantVar)
		}
	}
}

// TestConsoleSpool: the spool's caps and the schedule list's bound take
// bytes or KiB/MiB/GiB, default to config.Defaults, and refuse a cap that
// the cap holding it could never hold, naming both settings.
func TestConsoleSpool(t *testing.T) {
	t.Parallel()
	w, err := config.LoadWorker(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	c, d := w.Console, config.Defaults.Console
	if c.MaxUpload != d.MaxUpload || c.SpoolUserBytes != d.SpoolUserBytes || c.SpoolUserFiles != d.SpoolUserFiles ||
		c.SpoolBytes != d.SpoolBytes || c.ReviewTTL != d.ReviewTTL || c.ScheduleMax != d.ScheduleMax || c.ScheduleMax != 128<<20 {
		t.Errorf("console settings without the environment %+v, want the defaults %+v", c, d)
	}
	w, err = config.LoadWorker(config.MapEnv(map[string]string{"CONSOLE_MAX_UPLOAD": "512KiB", "CONSOLE_SPOOL_USER_MAX": "3MiB",
		"CONSOLE_SPOOL_MAX": "1GiB", "CONSOLE_SPOOL_USER_FILES": "2", "BULKASSIGN_SCHEDULE_MAX": "1048576", "CONSOLE_REVIEW_TTL": "10m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c := w.Console; c.MaxUpload != 512<<10 || c.SpoolUserBytes != 3<<20 || c.SpoolBytes != 1<<30 || c.SpoolUserFiles != 2 ||
		c.ScheduleMax != 1<<20 || c.ReviewTTL != 10*time.Minute {
		t.Errorf("console settings %+v, want those set", c)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CONSOLE_MAX_UPLOAD": "1.5GiB"}, `CONSOLE_MAX_UPLOAD: "1.5GiB" is not a size: give bytes, or a whole number of KiB, MiB or GiB (e.g. 512MiB)`},
		{map[string]string{"CONSOLE_SPOOL_MAX": "0"}, `CONSOLE_SPOOL_MAX: "0" is not a size`},
		{map[string]string{"CONSOLE_SPOOL_USER_FILES": "none"}, `CONSOLE_SPOOL_USER_FILES: "none" is not a positive whole number`},
		{map[string]string{"CONSOLE_MAX_UPLOAD": "3GiB"}, `CONSOLE_MAX_UPLOAD: 3GiB exceeds CONSOLE_SPOOL_USER_MAX (2GiB)`},
		{map[string]string{"CONSOLE_SPOOL_USER_MAX": "8MiB", "CONSOLE_MAX_UPLOAD": "8MiB"}, `BULKASSIGN_SCHEDULE_MAX: 128MiB exceeds CONSOLE_SPOOL_USER_MAX (8MiB)`},
		{map[string]string{"CONSOLE_SPOOL_MAX": "1GiB"}, `CONSOLE_SPOOL_USER_MAX: 2GiB exceeds CONSOLE_SPOOL_MAX (1GiB)`},
	} {
		_, err := config.LoadWorker(config.MapEnv(tt.env))
		var ce *config.Error
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.env, err, tt.want)
		}
	}
	if n, err := config.ScheduleMax(config.MapEnv(map[string]string{"BULKASSIGN_SCHEDULE_MAX": "64MiB"})); err != nil || n != 64<<20 {
		t.Errorf("ScheduleMax = %d, %v; want 64MiB", n, err)
	}
}

func TestMaxListBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    string
		want int64 // 0: an error naming GRAPH_MAX_LIST_BYTES
	}{
		{"", graph.DefaultMaxListBytes},
		{"65536", 65536},
		{"1073741824", 1 << 30},
		{"65535", 0},
		{"0", 0},
		{"-1", 0},
		{"64MiB", 0},
	} {
		g, err := config.LoadGraph(config.MapEnv(map[string]string{"GRAPH_MAX_LIST_BYTES": tc.v}), false)
		if tc.want != 0 {
			if err != nil || g.MaxListBytes != tc.want {
				t.Errorf("%q: %d, %v; want %d", tc.v, g.MaxListBytes, err, tc.want)
			}
			continue
		}
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Var != "GRAPH_MAX_LIST_BYTES" {
			t.Errorf("%q: %d, %v; want an error naming GRAPH_MAX_LIST_BYTES", tc.v, g.MaxListBytes, err)
		}
	}
}

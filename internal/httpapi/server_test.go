package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

var httpClient = &http.Client{Timeout: 20 * time.Second}

func get(t *testing.T, url, user, password string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	resp, body := send(t, httpClient, req)
	return resp.StatusCode, body, resp.Header
}

// scrape reads /metrics (signed in with basic auth when user is set) into
// series → value, checking every line parses.
func scrape(t *testing.T, base, user, password string) map[string]float64 {
	t.Helper()
	code, body, hdr := get(t, base+"/metrics", user, password)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q does not parse", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestWorkerObservability runs a batch against a tenant that throttles and
// fails now and then, through a worker with River UI behind a password and
// a JSON log at debug level, and checks every endpoint, the metrics against
// the simulator's own counts, and the log.
func TestWorkerObservability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := testenv.New(t, graphsim.Config{
		Seed:       11,
		Faults:     graphsim.Faults{P503: 0.15},
		WriteLimit: graphsim.Limit{Mode: graphsim.FixedWindow, N: 8, Window: time.Second},
	})
	for i := range 3 {
		h.Sim.AddConfiguration(testenv.Config(i)) // the 4th is unknown: its rows fail
	}
	const user, password = "ops", "correct horse battery"
	var logBuf testenv.LogBuffer
	o := testenv.WorkerOptions{
		Extra: map[string]string{"GRAPH_WRITE_RATE": "30", "GRAPH_READ_RATE": "500", "WORKER_CONCURRENCY": "10",
			"WORKER_HTTP_USER": user, "WORKER_HTTP_PASSWORD": password},
		Logger: slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	o.Settings.RetryBase = 50 * time.Millisecond
	rt, _ := h.StartWorker(t, o)
	base := testenv.Serving(t, rt)

	const rows, perConfig = 40, 10
	batch := h.Enqueue(t, "in.csv", testenv.GroupCSV(rows, 4))
	counts := h.WaitFinal(t, batch, 2*time.Minute)
	h.WaitJobsDone(t, batch, time.Minute)
	if counts[assign.StatusCreated] != rows-perConfig || counts[assign.StatusFailed] != perConfig {
		t.Fatalf("batch: %v, want %d created and %d failed", counts, rows-perConfig, perConfig)
	}
	st := h.Sim.Stats()
	if st.Throttled == 0 || st.Injected503 == 0 {
		t.Fatalf("the tenant neither throttled (%d) nor failed (%d): the run proves little", st.Throttled, st.Injected503)
	}

	t.Run("Probes", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body, _ := get(t, base+path, "", ""); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("%s = %d %q, want 200 ok", path, code, body)
			}
		}
		if code, body, _ := get(t, base+"/", "", ""); code != http.StatusOK || !strings.Contains(body, "/riverui/") {
			t.Errorf("/ = %d %q, want the index", code, body)
		}
		if code, _, _ := get(t, base+"/nope", "", ""); code != http.StatusNotFound {
			t.Errorf("/nope = %d, want 404", code)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		m := scrape(t, base, user, password)
		post, getc := st.Methods["POST"], st.Methods["GET"]
		// The rows' display names are GETs too (op resolve): leave them out.
		getc.S2xx -= int64(m[`bulkassign_graph_requests_total{code="200",op="resolve",tenant="default"}`])
		getc.S4xx -= int64(m[`bulkassign_graph_requests_total{code="404",op="resolve",tenant="default"}`])
		probes := float64(len(graph.UnsupportedKinds))
		for _, c := range []struct {
			series string
			want   float64
		}{
			{`bulkassign_rows_total{status="created",tenant="default"}`, rows - perConfig},
			{`bulkassign_rows_total{status="failed",tenant="default"}`, perConfig},
			{`bulkassign_rows_total{status="already_assigned",tenant="default"}`, 0},
			{`bulkassign_graph_requests_total{code="201",op="create",tenant="default"}`, float64(post.S2xx)},
			{`bulkassign_graph_requests_total{code="429",op="create",tenant="default"}`, float64(post.S429)},
			{`bulkassign_graph_requests_total{code="503",op="create",tenant="default"}`, float64(post.S5xx)},
			// Lists: one per configuration, and again after a create in doubt.
			{`bulkassign_graph_requests_total{code="200",op="list",tenant="default"}`, float64(getc.S2xx)},
			// The unknown configuration's 404, and its 404 in each kind of
			// policy bulkassign does not assign (graph.UnsupportedKinds).
			{`bulkassign_graph_requests_total{code="404",op="list",tenant="default"}`, float64(getc.S4xx) - probes},
			{`bulkassign_graph_requests_total{code="404",op="probe",tenant="default"}`, probes},
			{`bulkassign_graph_throttled_total{op="create",tenant="default"}`, float64(st.Throttled)},
			{`bulkassign_graph_request_duration_seconds_count{op="create"}`, float64(post.S2xx + post.S429 + post.S5xx)},
			{`bulkassign_graph_request_duration_seconds_bucket{op="create",le="+Inf"}`, float64(post.S2xx + post.S429 + post.S5xx)},
			{`bulkassign_graph_request_duration_seconds_count{op="list"}`, float64(getc.S2xx+getc.S4xx) - probes},
			{`bulkassign_graph_request_duration_seconds_count{op="probe"}`, probes},
			{`bulkassign_queue_jobs{state="available"}`, 0},
			{`bulkassign_queue_jobs{state="running"}`, 0},
		} {
			if got, ok := m[c.series]; !ok || got != c.want {
				t.Errorf("%s = %v (present %v), want %v", c.series, got, ok, c.want)
			}
		}
		// 40 rows at 30 writes/s from a bucket of 1.5: some waited.
		if m["bulkassign_limit_waits_total"] < 1 || m["bulkassign_limit_wait_seconds_total"] <= 0 {
			t.Errorf("limit waits = %v (%v s), want some", m["bulkassign_limit_waits_total"], m["bulkassign_limit_wait_seconds_total"])
		}
		// River's own job metrics (otelriver) and Go's, in the same scrape:
		// every row's job was worked once or more by this worker.
		var worked float64
		for series, v := range m {
			if strings.HasPrefix(series, "river_work_count_total{") && strings.Contains(series, `kind="`+(jobs.AssignArgs{}).Kind()+`"`) {
				worked += v
			}
		}
		if worked < rows {
			t.Errorf("river_work_count_total for assignment jobs = %v, want at least %d", worked, rows)
		}
		for _, name := range []string{"river_job_get_available_duration_seconds_count{queue=\"" + jobs.QueueAssign + "\"}", "go_goroutines", "process_cpu_seconds_total"} {
			if _, ok := m[name]; !ok {
				t.Errorf("/metrics lacks %s", name)
			}
		}
	})

	t.Run("QueueDepth", func(t *testing.T) {
		rc, err := jobs.NewInsertClient(h.DB.Pool)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			// Rows of a batch that does not exist, due in an hour: they wait.
			if _, err := rc.Insert(ctx, jobs.AssignArgs{Batch: assign.NewID(), Row: i + 1}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if got := scrape(t, base, user, password)[`bulkassign_queue_jobs{state="scheduled"}`]; got != 3 {
			t.Fatalf("queue depth scheduled = %v, want 3", got)
		}
	})

	t.Run("RiverUIBehindBasicAuth", func(t *testing.T) {
		for _, c := range []struct {
			name, user, password string
			want                 int
		}{
			{"NoCredentials", "", "", http.StatusUnauthorized},
			{"WrongPassword", user, "correct horse", http.StatusUnauthorized},
			{"WrongUser", "admin", password, http.StatusUnauthorized},
			{"Right", user, password, http.StatusOK},
		} {
			code, body, hdr := get(t, base+"/riverui/", c.user, c.password)
			if code != c.want {
				t.Errorf("%s: /riverui/ = %d, want %d", c.name, code, c.want)
			}
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: 401 without a Basic challenge", c.name)
			}
			if c.want == http.StatusOK && !strings.Contains(body, "<html") {
				t.Errorf("%s: /riverui/ did not serve the UI: %.200s", c.name, body)
			}
		}
		// Its assets are served under the prefix, behind the password too.
		_, index, _ := get(t, base+"/riverui/", user, password)
		asset := regexp.MustCompile(`(?:src|href)="(/riverui/assets/[^"]+\.js)"`).FindStringSubmatch(index)
		if asset == nil {
			t.Fatalf("/riverui/ links no script under /riverui/assets/: %.500s", index)
		}
		if code, _, hdr := get(t, base+asset[1], user, password); code != http.StatusOK || !strings.Contains(hdr.Get("Content-Type"), "javascript") {
			t.Errorf("%s = %d %s, want the script", asset[1], code, hdr.Get("Content-Type"))
		}
		if code, _, _ := get(t, base+asset[1], "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials = %d, want 401", asset[1], code)
		}
		// The UI's API sees this worker's River: the three waiting rows.
		code, body, _ := get(t, base+"/riverui/api/jobs?state=scheduled&limit=10", user, password)
		var list struct {
			Data []struct {
				Kind  string `json:"kind"`
				Queue string `json:"queue"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
			t.Fatalf("/riverui/api/jobs = %d (%v): %.300s", code, err, body)
		}
		if len(list.Data) != 3 || list.Data[0].Kind != (jobs.AssignArgs{}).Kind() || list.Data[0].Queue != jobs.QueueAssign {
			t.Fatalf("River UI lists %+v, want the 3 scheduled assignment jobs", list.Data)
		}
		// The metrics are behind the same password (they name every
		// tenant); the probes stay open.
		if code, _, hdr := get(t, base+"/metrics", "", ""); code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("/metrics without credentials = %d, want 401 with a Basic challenge", code)
		}
	})

	t.Run("Log", func(t *testing.T) {
		checkLog(t, logBuf.String(), st, rows, perConfig)
	})

	t.Run("ReadyzWhenMigrationsBehind", func(t *testing.T) {
		var version int
		var name string
		if err := h.DB.Pool.QueryRow(ctx, `DELETE FROM bulkassign_migrations WHERE version = (SELECT max(version) FROM bulkassign_migrations)
			RETURNING version, name`).Scan(&version, &name); err != nil {
			t.Fatal(err)
		}
		code, body, _ := get(t, base+"/readyz", "", "")
		if _, err := h.DB.Pool.Exec(ctx, `INSERT INTO bulkassign_migrations (version, name) VALUES ($1, $2)`, version, name); err != nil {
			t.Fatal(err)
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "worker migrate") {
			t.Fatalf("/readyz with migration %d missing = %d %q, want 503 naming `worker migrate`", version, code, body)
		}
		if code, _, _ := get(t, base+"/readyz", "", ""); code != http.StatusOK {
			t.Fatalf("/readyz after restoring = %d, want 200", code)
		}
	})
}

// checkLog: every Graph call is logged at debug with the batch, row,
// configuration and request-id; every throttle (info) and failure (warn)
// too; and nothing secret is.
func checkLog(t *testing.T, log string, st graphsim.Stats, rows, perConfig int) {
	t.Helper()
	for _, secret := range []string{graphsim.DefaultClientSecret, "gs1.", "Bearer", "client_secret", "access_token"} {
		if strings.Contains(log, secret) {
			t.Errorf("the worker log contains %q", secret)
		}
	}
	want := map[string]string{ // message → level
		"graph list":                       "DEBUG",
		"graph probe":                      "DEBUG",
		"graph display name":               "DEBUG",
		"graph create":                     "DEBUG",
		"graph throttled":                  "INFO",
		"graph request failed; will retry": "WARN",
		"row failed":                       "WARN",
		"row done":                         "INFO",
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		msg, _ := rec["msg"].(string)
		level, ok := want[msg]
		if !ok {
			continue
		}
		seen[msg]++
		if rec["level"] != level {
			t.Errorf("%q logged at %v, want %s", msg, rec["level"], level)
		}
		for _, k := range []string{"batch", "row", "configuration", "request_id"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("%q lacks %s: %s", msg, k, sc.Text())
			}
		}
		// Every request of this run was answered, so each carries
		// Graph's request-id (outcomes: the answer that decided them).
		if id, _ := rec["request_id"].(string); id == "" {
			t.Errorf("%q has an empty request_id: %s", msg, sc.Text())
		}
	}
	post, getc := st.Methods["POST"], st.Methods["GET"]
	if got, want := seen["graph create"], int(post.S2xx+post.S4xx+post.S429+post.S5xx+post.NoResponse); got != want {
		t.Errorf("%d creates logged, the tenant saw %d POSTs", got, want)
	}
	if got, want := seen["graph list"]+seen["graph probe"]+seen["graph display name"], int(getc.S2xx+getc.S4xx+getc.S429+getc.S5xx+getc.NoResponse); got != want {
		t.Errorf("%d lists and %d probes logged, the tenant saw %d GETs", seen["graph list"], seen["graph probe"], want)
	}
	if seen["graph probe"] != len(graph.UnsupportedKinds) {
		t.Errorf("%d probes logged, want %d: the unknown configuration looked up once in each kind", seen["graph probe"], len(graph.UnsupportedKinds))
	}
	if seen["graph throttled"] != int(st.Throttled) || seen["graph request failed; will retry"] != int(st.Injected503) {
		t.Errorf("logged %d throttles and %d failures; the tenant sent %d 429s and %d 503s",
			seen["graph throttled"], seen["graph request failed; will retry"], st.Throttled, st.Injected503)
	}
	if seen["row failed"] != perConfig || seen["row done"] != rows-perConfig {
		t.Errorf("outcome lines: %v, want %d row done and %d row failed", seen, rows-perConfig, perConfig)
	}
}

func TestWorkerHTTPSettings(t *testing.T) {
	t.Parallel()

	t.Run("RefusedAtStart", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			name string
			vars map[string]string
			want []string // all in the one line
		}{
			{"AllInterfacesWithoutPassword", map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080"}, []string{"WORKER_HTTP_ADDR", "WORKER_HTTP_USER", "loopback"}},
			{"NoHostWithoutPassword", map[string]string{"WORKER_HTTP_ADDR": ":8080"}, []string{"WORKER_HTTP_ADDR", "WORKER_HTTP_USER"}},
			{"PublicNameWithoutPassword", map[string]string{"WORKER_HTTP_ADDR": "worker.example.com:8080"}, []string{"WORKER_HTTP_ADDR", "WORKER_HTTP_USER"}},
			{"UserWithoutPassword", map[string]string{"WORKER_HTTP_USER": "ops"}, []string{"WORKER_HTTP_USER", "WORKER_HTTP_PASSWORD"}},
			{"NotHostPort", map[string]string{"WORKER_HTTP_ADDR": "8080"}, []string{"WORKER_HTTP_ADDR", "host:port"}},
			{"BasicOverPlainHTTPOffLoopback", map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080", "WORKER_HTTP_USER": "ops", "WORKER_HTTP_PASSWORD": "pw"},
				[]string{"CONSOLE_URL", "WORKER_HTTP_ADDR", "WORKER_HTTP_PASSWORD", "plain HTTP", "CONSOLE_ALLOW_PLAIN_HTTP"}},
			{"MetricsAddrNotHostPort", map[string]string{"WORKER_METRICS_ADDR": "9090"}, []string{"WORKER_METRICS_ADDR", "host:port"}},
		} {
			var stdout, stderr bytes.Buffer
			env := &cli.Env{Getenv: config.MapEnv(c.vars), Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}
			code := cli.Worker(context.Background(), env, nil)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != cli.ExitSetting || len(lines) != 1 {
				t.Errorf("%s: exit %d with %q, want exit %d and one line", c.name, code, stderr.String(), cli.ExitSetting)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%s: %q does not name %s", c.name, lines[0], w)
				}
			}
		}
	})

	t.Run("CheckExposure", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			addr, user, password string
			wantVar              string // "" means allowed
		}{
			{"127.0.0.1:8080", "", "", ""},
			{"localhost:0", "", "", ""},
			{"[::1]:9090", "", "", ""},
			// Basic auth off loopback over plain HTTP: see
			// TestPlainHTTPBasicAuth for the ways to allow it.
			{"0.0.0.0:8080", "ops", "pw", "CONSOLE_URL"},
			{"10.1.2.3:8080", "ops", "pw", "CONSOLE_URL"},
			{"0.0.0.0:8080", "", "", "WORKER_HTTP_ADDR"},
			{"[::]:8080", "", "", "WORKER_HTTP_ADDR"},
			{"127.0.0.1:8080", "", "pw", "WORKER_HTTP_USER"},
			{"127.0.0.1", "", "", "WORKER_HTTP_ADDR"},
		} {
			err := httpapi.CheckExposure(c.addr, c.user, c.password)
			var ce *config.Error
			switch {
			case c.wantVar == "" && err != nil:
				t.Errorf("CheckExposure(%q, user %q) = %v, want allowed", c.addr, c.user, err)
			case c.wantVar != "" && (!errors.As(err, &ce) || ce.Var != c.wantVar):
				t.Errorf("CheckExposure(%q, user %q) = %v, want a %s error", c.addr, c.user, err, c.wantVar)
			}
		}
	})

	t.Run("LoopbackWithoutPasswordAndOff", func(t *testing.T) {
		t.Parallel()
		h := testenv.New(t, graphsim.Config{})
		open, stopOpen := h.StartWorker(t, testenv.WorkerOptions{})
		base := testenv.Serving(t, open)
		if code, body, _ := get(t, base+"/riverui/", "", ""); code != http.StatusOK || !strings.Contains(body, "<html") {
			t.Fatalf("/riverui/ on loopback without a password = %d, want the UI", code)
		}
		if code, _, hdr := get(t, base+"/riverui", "", ""); code != http.StatusOK || hdr.Get("Content-Type") == "" {
			t.Fatalf("/riverui (no slash) = %d, want it redirected to the UI", code)
		}

		off, _ := h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"WORKER_HTTP_ADDR": "off"}})
		select {
		case <-off.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("worker not ready")
		}
		if addr := off.HTTPAddr(); addr != "" {
			t.Fatalf("WORKER_HTTP_ADDR=off serves on %s, want nothing", addr)
		}

		// Stopping the worker closes the listener.
		stopOpen()
		if resp, err := httpClient.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatalf("/healthz after stop = %d, want the connection refused", resp.StatusCode)
		}
	})
}

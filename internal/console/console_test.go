package console_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/console"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// testBundle is one test's tenant, worker and browser-like client (a
// cookie jar, as a browser keeps the session).
type testBundle struct {
	h      *testenv.Harness
	base   string
	client *http.Client
	stop   func() // stops the worker (also at cleanup)
}

func setup(t *testing.T, configs int, extra map[string]string) *testBundle {
	t.Helper()
	h := testenv.New(t, graphsim.Config{})
	for i := range configs {
		h.Sim.AddConfiguration(testenv.Config(i))
	}
	// The groups the tests' lists name exist (the review checks group ids).
	for i := range 300 {
		h.Sim.AddGroup(testenv.Group(i), fmt.Sprintf("SG-%d", i))
		h.Sim.AddGroup(testenv.Group(1000+i), fmt.Sprintf("SG-%d", 1000+i))
	}
	o := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "200", "WORKER_CONCURRENCY": "4"}, Prepare: console.Attach}
	for k, v := range extra {
		o.Extra[k] = v
	}
	rt, stop := h.StartWorker(t, o)
	return &testBundle{h: h, base: testenv.Serving(t, rt), client: newClient(t), stop: stop}
}

func newClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 60 * time.Second}
}

func (b *testBundle) do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func (b *testBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	req.Header.Set("Accept", "text/html")
	return b.do(t, req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"|data-csrf="([^"]+)"`)

// csrf opens the console and reads the session's CSRF token off the page.
func (b *testBundle) csrf(t *testing.T) string {
	t.Helper()
	code, body := b.get(t, "/console/")
	if code != http.StatusOK {
		t.Fatalf("/console/ = %d: %.300s", code, body)
	}
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on /console/: %.500s", body)
	}
	return m[1] + m[2]
}

// upload posts a file as the upload form does.
func (b *testBundle) upload(t *testing.T, csrf, name, content string) (int, string) {
	t.Helper()
	return b.uploadTo(t, "/console/upload", csrf, nil, name, content)
}

// uploadTo posts fields, then a file, to path as the console's forms do.
func (b *testBundle) uploadTo(t *testing.T, path, csrf string, fields [][2]string, name, content string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	fw, _ := mw.CreateFormFile("file", name)
	io.WriteString(fw, content)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.base+path+"?csrf="+url.QueryEscape(csrf), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", b.base)
	return b.do(t, req)
}

func (b *testBundle) postForm(t *testing.T, path string, form url.Values) (int, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

var tokenRE = regexp.MustCompile(`name="token" value="([0-9a-f]+)"`)

func TestConsoleHTTP(t *testing.T) {
	t.Parallel()

	t.Run("InvalidRowsEnqueueNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 2, nil)
		csv := "configuration_id,group_id\n" + testenv.Config(0) + "," + testenv.Group(1) + "\nnot-a-guid," + testenv.Group(2) +
			"\n" + testenv.Config(1) + ",\n"
		code, body := b.upload(t, b.csrf(t), "bad.csv", csv)
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("upload of bad rows = %d, want 422: %.500s", code, body)
		}
		for _, want := range []string{"bad.csv:3", "is not a GUID", "bad.csv:4", "group_id or group_name is required", "nothing was enqueued"} {
			if !strings.Contains(body, want) {
				t.Errorf("the page of bad rows lacks %q", want)
			}
		}
		var n int
		if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM batches`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("batches after a bad upload = %d (%v), want 0", n, err)
		}
	})

	t.Run("ForgedPostWithoutCSRFIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1, nil)
		b.csrf(t) // a session exists: only the token is missing
		for _, path := range []string{"/console/enqueue", "/console/schedules"} {
			code, body, _ := b.postForm(t, path, url.Values{"token": {"0123456789abcdef"}})
			if code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
				t.Errorf("POST %s without a CSRF token = %d, want 403 naming CSRF: %.200s", path, code, body)
			}
		}
		code, _ := b.upload(t, "wrong-token", "a.csv", "configuration_id,group_id\n"+testenv.Config(0)+","+testenv.Group(1)+"\n")
		if code != http.StatusForbidden {
			t.Errorf("upload with a wrong CSRF token = %d, want 403", code)
		}
	})

	t.Run("DoubleSubmitMakesOneBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 2, nil)
		csrf := b.csrf(t)
		code, body := b.upload(t, csrf, "ok.csv", testenv.GroupCSV(6, 2))
		if code != http.StatusOK {
			t.Fatalf("upload = %d: %.500s", code, body)
		}
		if !strings.Contains(body, `id="would-create">6<`) {
			t.Errorf("review does not say 6 would be created: %.800s", body)
		}
		m := tokenRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("review has no enqueue token: %.500s", body)
		}
		form := url.Values{"csrf": {csrf}, "token": {m[1]}}
		locs := make([]string, 4)
		var wg sync.WaitGroup
		for i := range locs {
			wg.Go(func() {
				c := *b.client
				c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
				req, _ := http.NewRequest(http.MethodPost, b.base+"/console/enqueue", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				locs[i] = resp.Header.Get("Location")
			})
		}
		wg.Wait()
		var n int
		if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM batches`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("batches after 4 submits of one review = %d (%v), want 1", n, err)
		}
		for _, l := range locs {
			if l != locs[0] || !strings.HasPrefix(l, "/console/batches/") {
				t.Fatalf("submits went to %q, want one batch page", locs)
			}
		}
		id := strings.TrimPrefix(locs[0], "/console/batches/")
		counts := b.h.WaitFinal(t, id, 60*time.Second)
		if counts["created"] != 6 {
			t.Errorf("batch counts %v, want 6 created", counts)
		}
		var by string
		if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT DISTINCT created_by FROM assignment_results WHERE batch_id = $1`, id).Scan(&by); err != nil || !strings.HasPrefix(by, "console@") {
			t.Errorf("created_by = %q (%v), want the console's user", by, err)
		}
	})

	t.Run("CrossSitePostToRiverUIIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1, nil)
		req, _ := http.NewRequest(http.MethodPost, b.base+"/riverui/api/jobs/cancel", strings.NewReader(`{"job_ids":["1"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if code, body := b.do(t, req); code != http.StatusForbidden {
			t.Errorf("cross-site POST to River UI = %d, want 403: %.200s", code, body)
		}
		req, _ = http.NewRequest(http.MethodPost, b.base+"/riverui/api/jobs/cancel", strings.NewReader(`{"job_ids":["1"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", b.base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if code, _ := b.do(t, req); code == http.StatusForbidden {
			t.Errorf("same-origin POST to River UI = %d, want it through", code)
		}
	})

	t.Run("BasicAuth", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1, map[string]string{"WORKER_HTTP_USER": "ops", "WORKER_HTTP_PASSWORD": "s3cret pass"})
		if code, _ := b.get(t, "/console/"); code != http.StatusUnauthorized {
			t.Errorf("/console/ without credentials = %d, want 401", code)
		}
		req, _ := http.NewRequest(http.MethodGet, b.base+"/console/", nil)
		req.SetBasicAuth("ops", "s3cret pass")
		code, body := b.do(t, req)
		if code != http.StatusOK || !strings.Contains(body, `id="user">ops<`) {
			t.Errorf("/console/ with credentials = %d, want the console signed in as ops: %.300s", code, body)
		}
		req, _ = http.NewRequest(http.MethodGet, b.base+"/riverui/", nil)
		req.SetBasicAuth("ops", "wrong")
		if code, _ := b.do(t, req); code != http.StatusUnauthorized {
			t.Errorf("/riverui/ with a wrong password = %d, want 401", code)
		}
	})

	t.Run("NonLoopbackWithoutSignInRefusesToStart", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			env  map[string]string
			want string // "" allowed
		}{
			{map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080"}, "WORKER_HTTP_ADDR"},
			// Basic auth off loopback: over https, or plain http only when said so.
			{map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080", "WORKER_HTTP_USER": "a", "WORKER_HTTP_PASSWORD": "b"}, "CONSOLE_URL"},
			{map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080", "WORKER_HTTP_USER": "a", "WORKER_HTTP_PASSWORD": "b",
				"CONSOLE_URL": "https://bulkassign.contoso.example"}, ""},
			{map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080", "WORKER_HTTP_USER": "a", "WORKER_HTTP_PASSWORD": "b",
				"CONSOLE_ALLOW_PLAIN_HTTP": "true"}, ""},
			{map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080", "CONSOLE_SIGNIN": "entra", "CONSOLE_ENTRA_GROUP": testenv.Group(1), "AZURE_CLIENT_SECRET": "x"}, ""},
			{map[string]string{"WORKER_HTTP_ADDR": "0.0.0.0:8080", "CONSOLE_SIGNIN": "entra", "AZURE_CLIENT_SECRET": "x"}, "CONSOLE_ENTRA_GROUP"},
			{map[string]string{"WORKER_HTTP_ADDR": "127.0.0.1:8080"}, ""},
		} {
			w, err := config.LoadWorker(config.MapEnv(c.env))
			if err == nil {
				err = httpapi.CheckSettings(w)
			}
			var ce *config.Error
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%v: %v, want allowed", c.env, err)
			case c.want != "" && (!errors.As(err, &ce) || ce.Var != c.want || strings.Contains(err.Error(), "\n")):
				t.Errorf("%v: %v, want one line about %s", c.env, err, c.want)
			}
		}
	})

	t.Run("EntraSignIn", func(t *testing.T) {
		t.Parallel()
		group := testenv.Group(7)
		b := setup(t, 1, map[string]string{"CONSOLE_SIGNIN": "entra", "CONSOLE_ENTRA_GROUP": group})
		// Not a member yet: refused, with who and why.
		b.h.Sim.SetSignInUser(graphsim.SignInUser{UPN: "eve@contoso.example", Groups: []string{testenv.Group(8)}})
		code, body := b.get(t, "/console/")
		if code != http.StatusForbidden || !strings.Contains(body, "eve@contoso.example") || !strings.Contains(body, "CONSOLE_ENTRA_GROUP") {
			t.Fatalf("sign-in of a non-member = %d, want 403 naming the user and the group setting: %.400s", code, body)
		}
		// A member: the redirects (console → /auth/login → authorize →
		// callback → console) end on the console, signed in.
		b.h.Sim.SetSignInUser(graphsim.SignInUser{UPN: "ada@contoso.example", Groups: []string{group}})
		code, body = b.get(t, "/console/")
		if code != http.StatusOK || !strings.Contains(body, `id="user">ada@contoso.example<`) {
			t.Fatalf("sign-in of a member = %d, want the console as ada: %.400s", code, body)
		}
		// River UI is behind the same sign-in: a fresh client is sent to sign in.
		anon := newClient(t)
		anon.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest(http.MethodGet, b.base+"/riverui/", nil)
		req.Header.Set("Accept", "text/html")
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/auth/login") {
			t.Errorf("/riverui/ before sign-in = %d %s, want a redirect to /auth/login", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Sign-out takes the session's CSRF token.
		if code, _, _ := b.postForm(t, "/auth/logout", url.Values{}); code != http.StatusForbidden {
			t.Errorf("sign-out without a CSRF token = %d, want 403", code)
		}
		if code, _, _ := b.postForm(t, "/auth/logout", url.Values{"csrf": {b.csrf(t)}}); code != http.StatusOK {
			t.Errorf("sign-out with the CSRF token = %d, want 200", code)
		}
		// A callback with a forged state is refused.
		code, _ = b.get(t, "/auth/callback?code=x&state=forged")
		if code != http.StatusBadRequest {
			t.Errorf("callback with a forged state = %d, want 400", code)
		}
	})
}

// TestReviewShowsNamesAndRemovals: the review of a list that names things
// and removes some says what each name resolves to (or that it does not)
// and what the removals would do, before anything is written.
func TestReviewShowsNamesAndRemovals(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, nil)
	b.h.Sim.NameConfiguration(testenv.Config(0), "Baseline & <b>")
	b.h.Sim.AddGroup(testenv.Group(1), "SG-One")
	b.h.Sim.AddGroup(testenv.Group(2), "SG-Two")
	b.h.Sim.AddGroup(testenv.Group(3), "SG-Two")
	b.h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(1)})
	csv := "configuration_name,target_type,group_name,action\n" +
		"Baseline & <b>,group,SG-One,remove\n" + // would remove
		"Baseline & <b>,all_devices,,remove\n" + // not assigned
		"Baseline & <b>,group,SG-Two,\n" + // ambiguous
		"Baseline & <b>,group,SG-None,\n" // not found
	code, body := b.upload(t, b.csrf(t), "names.csv", csv)
	if code != http.StatusOK {
		t.Fatalf("upload = %d: %.500s", code, body)
	}
	for _, want := range []string{`id="would-remove">1<`, `id="not-assigned">1<`, `id="name-ambiguous">1<`, `id="name-not-found">1<`,
		"Baseline &amp; &lt;b&gt;", testenv.Config(0), "SG-One", testenv.Group(1), testenv.Group(2) + ", " + testenv.Group(3),
		`no group is named &#34;SG-None&#34;`} {
		if !strings.Contains(body, want) {
			t.Errorf("the review lacks %q:\n%s", want, body)
		}
	}
	// Both failing rows of the configuration give their reason in its row.
	table := body[strings.Index(body, `<table id="review">`):]
	table = table[:strings.Index(table, "</table>")]
	for _, want := range []string{"name_ambiguous", "name_not_found", "SG-Two", `no group is named &#34;SG-None&#34;`} {
		if !strings.Contains(table, want) {
			t.Errorf("the review's row lacks %q:\n%s", want, table)
		}
	}
	if n := len(b.h.Sim.Ledger()); n != 0 {
		t.Errorf("the review wrote %d assignments", n)
	}
	if got := b.h.Sim.Assignments(testenv.Config(0), ""); len(got) != 1 {
		t.Errorf("the review changed the tenant: %d assignments", len(got))
	}
}

// count runs a count(*) query.
func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := b.h.DB.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTokensAreBoundToTheirPurpose: a review's token does not save a
// schedule, a schedule preview's does not enqueue (a 4xx saying so, not
// a 500), and a preview saves only the cron and zone it previewed. A save
// that fails (the name is taken) shows the preview again, and it saves
// once the name is free; the schedules page shows the next run in the
// schedule's zone.
func TestTokensAreBoundToTheirPurpose(t *testing.T) {
	t.Parallel()
	b := setup(t, 2, nil)
	csrf := b.csrf(t)
	code, body := b.upload(t, csrf, "ok.csv", testenv.GroupCSV(2, 1))
	review := mustToken(t, code, body)
	previewOf := func(cron string) (string, string) {
		t.Helper()
		code, body := b.uploadTo(t, "/console/schedules/preview", csrf,
			[][2]string{{"name", "nightly"}, {"cron", cron}, {"tz", "Asia/Tokyo"}}, "n.csv", testenv.GroupCSV(3, 1))
		return mustToken(t, code, body), body
	}
	p1, page := previewOf("0 2 * * *")
	if !strings.Contains(page, " 02:00 JST") {
		t.Errorf("the preview does not show the runs at 02:00 in Tokyo: %.600s", page)
	}
	p2, _ := previewOf("30 3 * * *")

	code, body, _ = b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {review}, "cron": {"* * * * *"}, "tz": {"UTC"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "a review&#39;s, not a schedule preview&#39;s") {
		t.Errorf("a review token posted to /console/schedules = %d, want 400 saying it is a review's: %.400s", code, body)
	}
	code, body, _ = b.postForm(t, "/console/enqueue", url.Values{"csrf": {csrf}, "token": {p1}})
	if code != http.StatusBadRequest || !strings.Contains(body, "a schedule preview&#39;s, not a review&#39;s") {
		t.Errorf("a preview token posted to /console/enqueue = %d, want 400 saying it is a preview's: %.400s", code, body)
	}
	code, body, _ = b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {p1}, "cron": {"* * * * *"}, "tz": {"Asia/Tokyo"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "differs from the one previewed") {
		t.Errorf("a save with a cron not previewed = %d, want 400: %.400s", code, body)
	}
	if n := b.count(t, `SELECT (SELECT count(*) FROM batches) + (SELECT count(*) FROM schedules)`); n != 0 {
		t.Fatalf("%d batches and schedules after the refused posts, want none", n)
	}

	// The first preview saves, with its own cron and zone.
	code, body, _ = b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {p1}})
	if code != http.StatusOK || !strings.Contains(body, "<td>nightly</td>") {
		t.Fatalf("save = %d: %.400s", code, body)
	}
	if n := b.count(t, `SELECT count(*) FROM schedules WHERE cron = '0 2 * * *' AND timezone = 'Asia/Tokyo' AND row_count = 3`); n != 1 {
		t.Errorf("the saved schedule is not the one previewed")
	}
	if !strings.Contains(body, " 02:00 JST</td>") {
		t.Errorf("the schedules page does not show the next run in the schedule's zone: %.1500s", body)
	}
	// The second's name is taken: its preview stays, and saves once the name is free.
	code, body, _ = b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {p2}})
	if code != http.StatusConflict || !strings.Contains(body, `id="save-error"`) || !strings.Contains(body, `value="`+p2+`"`) {
		t.Fatalf("a save whose name is taken = %d, want 409 with the preview kept: %.600s", code, body)
	}
	if code, body, _ := b.postForm(t, "/console/schedules/nightly/remove", url.Values{"csrf": {csrf}}); code != http.StatusOK {
		t.Fatalf("remove = %d: %.300s", code, body)
	}
	code, body, _ = b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {p2}})
	if code != http.StatusOK || b.count(t, `SELECT count(*) FROM schedules WHERE cron = '30 3 * * *'`) != 1 {
		t.Fatalf("the kept preview's second save = %d: %.400s", code, body)
	}
	// Used up: a third save is refused.
	if code, _, _ := b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {p2}}); code != http.StatusGone {
		t.Errorf("a saved preview saved again = %d, want 410", code)
	}
	// The review still enqueues.
	code, body, _ = b.postForm(t, "/console/enqueue", url.Values{"csrf": {csrf}, "token": {review}})
	if code != http.StatusOK || !strings.Contains(body, `id="batch-id"`) {
		t.Errorf("enqueue of the review = %d: %.300s", code, body)
	}
}

// TestNothingToCreateIsNotEnqueuedFirst: a review whose rows would all
// change nothing does not make Enqueue its main button.
func TestNothingToCreateIsNotEnqueuedFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, nil)
	b.h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(1)})
	csrf := b.csrf(t)
	code, body := b.upload(t, csrf, "same.csv", "configuration_id,group_id\n"+testenv.Config(0)+","+testenv.Group(1)+"\n")
	if code != http.StatusOK || !strings.Contains(body, `id="already">1<`) {
		t.Fatalf("upload = %d: %.500s", code, body)
	}
	if !strings.Contains(body, `id="nothing"`) || !strings.Contains(body, `<button type="submit" id="enqueue" class="secondary">`) ||
		!strings.Contains(body, `class="button" id="back"`) {
		t.Errorf("a review with nothing to create keeps Enqueue as its main action: %s", body)
	}
	code, body = b.upload(t, csrf, "new.csv", "configuration_id,group_id\n"+testenv.Config(0)+","+testenv.Group(2)+"\n")
	if code != http.StatusOK || strings.Contains(body, `id="nothing"`) || !strings.Contains(body, `<button type="submit" id="enqueue">`) {
		t.Errorf("a review with a row to create does not make Enqueue its main action: %.800s", body)
	}
}

// TestBatchActionsTellTheTruth: confirm pages name their batch, and
// revert is not offered while the batch runs (offered once it is final).
func TestBatchActionsTellTheTruth(t *testing.T) {
	t.Parallel()
	// One write a minute: the batch runs for the test's length.
	b := setup(t, 1, map[string]string{"GRAPH_WRITE_RATE": "0.016"})
	csrf := b.csrf(t)
	code, body := b.upload(t, csrf, "slow.csv", testenv.GroupCSV(5, 1))
	tok := mustToken(t, code, body)
	code, body, resp := b.postForm(t, "/console/enqueue", url.Values{"csrf": {csrf}, "token": {tok}})
	if code != http.StatusOK {
		t.Fatalf("enqueue = %d: %.300s", code, body)
	}
	id := strings.TrimPrefix(resp.Request.URL.Path, "/console/batches/")
	if !strings.Contains(body, `id="revert" href="/console/batches/`+id+`/confirm/revert" hidden>`) || !strings.Contains(body, `id="revert-later" class="help">`) {
		t.Errorf("a running batch's page offers revert: %s", body)
	}
	code, body = b.get(t, "/console/batches/"+id+"/confirm/revert")
	if code != http.StatusOK || strings.Contains(body, `id="confirm"`) || !strings.Contains(body, "still running") {
		t.Errorf("revert's confirmation while the batch runs = %d, want no confirm button and why: %s", code, body)
	}
	// Rows held back by the write limit are waiting, with no error.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body = b.get(t, "/console/batches/"+id)
		if strings.Contains(body, `<td>waiting <span class="why">`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(body, `<td>waiting <span class="why">`) || strings.Contains(body, "Waiting:") || strings.Contains(body, `<td>retrying`) {
		t.Errorf("rows waiting for the write limit are not shown waiting without an error: %s", body)
	}
	code, body = b.get(t, "/console/batches/"+id+"/confirm/cancel")
	if code != http.StatusOK || !strings.Contains(body, `id="batch-id">`+id+`<`) || !strings.Contains(body, "slow.csv") ||
		!strings.Contains(body, "<title>Cancel the batch of batch "+id[:8]) {
		t.Errorf("cancel's confirmation does not name the batch %s: %s", id, body)
	}
	if code, body, _ := b.postForm(t, "/console/batches/"+id+"/cancel", url.Values{"csrf": {csrf}}); code != http.StatusOK {
		t.Fatalf("cancel = %d: %.300s", code, body)
	}
	final := b.h.WaitFinal(t, id, 60*time.Second)
	_, body = b.get(t, "/console/batches/"+id)
	// Final now: revert is offered when the batch created something to
	// undo (at one write a minute, the first row may or may not have been
	// written before the cancel), and the "later" note is gone.
	offered := strings.Contains(body, `id="revert" href="/console/batches/`+id+`/confirm/revert">`)
	if want := final[assign.StatusCreated] > 0; offered != want || !strings.Contains(body, `id="revert-later" class="help" hidden>`) {
		t.Errorf("a final batch with %d rows created offers revert: %v, want %v: %s", final[assign.StatusCreated], offered, want, body)
	}
}

// TestReviewFlagsMissingGroups: the review checks group ids as the CLI's
// dry run does, and a group the tenant lacks is a reason, not a create.
func TestReviewFlagsMissingGroups(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, nil)
	csrf := b.csrf(t)
	missing := testenv.Group(5000)
	code, body := b.upload(t, csrf, "typo.csv", "configuration_id,group_id\n"+testenv.Config(0)+","+missing+"\n"+testenv.Config(0)+","+testenv.Group(1)+"\n")
	if code != http.StatusOK || !strings.Contains(body, "group_not_found") {
		t.Fatalf("review of a list naming a group the tenant lacks = %d, want group_not_found shown: %s", code, body)
	}
}

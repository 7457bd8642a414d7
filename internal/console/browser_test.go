package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulkassign/bulkassign/internal/testenv"
)

// chromium finds Debian's chromium. Locally a missing browser skips the
// test with a message; in CI (CI set) it fails: .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); CI installs it and runs this test")
	return ""
}

// shotDir is where the screenshots go: CONSOLE_SCREENSHOTS (e.g. docs/,
// for the README) or the test's temporary directory.
func shotDir(t *testing.T) string {
	if d := os.Getenv("CONSOLE_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// TestConsoleInBrowser drives chromium through the console against the
// simulator, a real worker and Postgres: a list with bad rows is shown back
// and enqueues nothing; a 300-row list whose 15 rows name configurations
// the tenant lacks is reviewed (285 would be created, 15 not found),
// enqueued with one click, followed to 285 created and 15 failed (404),
// filtered, and its failed rows retried.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	exe := chromium(t)
	b := setup(t, 19, nil)
	dir := t.TempDir()
	shots := shotDir(t)

	// 285 rows on configurations 0..18 (15 each), then 15 rows naming
	// configurations 100..114, which the tenant lacks.
	var sb strings.Builder
	sb.WriteString("configuration_id,group_id\n")
	for i := range 285 {
		fmt.Fprintf(&sb, "%s,%s\n", testenv.Config(i%19), testenv.Group(i))
	}
	for i := range 15 {
		fmt.Fprintf(&sb, "%s,%s\n", testenv.Config(100+i), testenv.Group(1000+i))
	}
	good := filepath.Join(dir, "assignments.csv")
	bad := filepath.Join(dir, "broken.csv")
	if err := os.WriteFile(good, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	badCSV := "configuration_id,group_id\n" + testenv.Config(0) + "," + testenv.Group(1) + "\nnot-a-guid," + testenv.Group(2) +
		"\n" + testenv.Config(1) + ",\n"
	if err := os.WriteFile(bad, []byte(badCSV), 0o600); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	defer cancelT()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			png, err := chromedp.CaptureScreenshot()(ctx, tg) // the viewport, as PNG
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name), png, 0o644)
		}
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	// waitText waits (loosely: up to 3 minutes on a shared machine) until
	// sel's text is want.
	waitText := func(sel, want string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			got := text(sel)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is %q, want %q", sel, got, want)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	// A list with bad rows: every bad line, nothing enqueued.
	run("upload the bad list",
		chromedp.Navigate(b.base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#upload-button")),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{bad}),
		chromedp.Click(chromedp.CSS("#upload-button")),
		chromedp.WaitVisible(chromedp.CSS("#problems")),
		shot("console-invalid.png"))
	problems := text("#problems")
	for _, want := range []string{"broken.csv:3", "broken.csv:4"} {
		if !strings.Contains(problems, want) {
			t.Errorf("the bad rows' table lacks %s: %q", want, problems)
		}
	}

	// The good list: reviewed, enqueued with one click.
	run("upload the list",
		chromedp.Navigate(b.base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#upload-button")),
		shot("console-batches-empty.png"),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{good}),
		chromedp.Click(chromedp.CSS("#upload-button")),
		chromedp.WaitVisible(chromedp.CSS("#review")),
		shot("console-review.png"))
	if c, n := text("#would-create"), text("#not-found"); c != "285" || n != "15" {
		t.Fatalf("review: %s would be created and %s not found, want 285 and 15", c, n)
	}
	run("enqueue",
		chromedp.Click(chromedp.CSS("#enqueue")),
		chromedp.WaitVisible(chromedp.CSS("#batch-id")))
	waitText("#done", "300")
	waitText("#results tbody tr:first-child td:nth-child(5)", "created") // the table refreshes itself (one tenant: no tenant column)
	run("batch page", shot("console-batch.png"))
	if c, f := text(`[data-count="created"]`), text(`[data-count="failed"]`); c != "285" || f != "15" {
		t.Fatalf("batch page: %s created and %s failed, want 285 and 15", c, f)
	}
	id := text("#batch-id")
	var n int
	if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM batches`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("batches = %d (%v), want 1: the bad list enqueued nothing", n, err)
	}

	// The failed rows, filtered on the server: each a 404.
	run("filter failed",
		chromedp.SetValue(chromedp.CSS("#f-status"), "failed"),
		chromedp.Submit(chromedp.CSS("#filter")),
		chromedp.WaitVisible(chromedp.CSS("#results")),
		chromedp.Sleep(200*time.Millisecond),
		shot("console-results-failed.png"))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#results tbody tr.st-failed").length`))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 15 || !strings.Contains(text("#results"), "404") {
		t.Errorf("filtered results show %d failed rows, want 15 with HTTP 404", rows)
	}

	// Retry the failed rows, behind a confirmation that says what it does.
	run("retry",
		chromedp.Click(chromedp.CSS("#retry")),
		chromedp.WaitVisible(chromedp.CSS("#confirm")),
		shot("console-confirm-retry.png"))
	if what := text("#what"); !strings.Contains(what, "15 failed") || !strings.Contains(what, "404") {
		t.Errorf("the retry's confirmation says %q, want the 15 failed rows and their 404", what)
	}
	run("confirm retry", chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS(".done")))
	if done := text(".done"); !strings.Contains(done, "15 rows queued again") {
		t.Errorf("after retry the page says %q", done)
	}
	waitText("#done", "300")
	if f := text(`[data-count="failed"]`); f != "15" {
		t.Errorf("after the retry %s rows failed, want the same 15 (their configurations do not exist)", f)
	}
	var retries int
	if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM items WHERE batch_id = $1 AND retries = 1`, id).Scan(&retries); err != nil || retries != 15 {
		t.Errorf("rows retried once = %d (%v), want 15", retries, err)
	}
	run("batches list", chromedp.Navigate(b.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#batches")), shot("console-batches.png"))
	if got := text(`#batches [data-f="created"]`); got != strconv.Itoa(285) {
		t.Errorf("batches list shows %s created, want 285", got)
	}
	t.Logf("screenshots in %s", shots)
}

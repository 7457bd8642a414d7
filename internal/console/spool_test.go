package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// spoolFiles counts the files in the console's directories under dir
// (CONSOLE_SPOOL_DIR), and the directories.
func spoolFiles(t *testing.T, dir string) (files, dirs int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		dirs++
		in, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files += len(in)
	}
	return files, dirs
}

// listOf is a CSV list of rows rows: 26 + 74×rows bytes.
func listOf(rows, from int) string {
	var sb strings.Builder
	sb.WriteString("configuration_id,group_id\n")
	for i := range rows {
		fmt.Fprintf(&sb, "%s,%s\n", testenv.Config(0), testenv.Group(from+i))
	}
	return sb.String()
}

// as is b seen through another client (another person's session).
func (b *testBundle) as(c *http.Client) *testBundle {
	bb := *b
	bb.client = c
	return &bb
}

// signIn signs a fresh client in as upn, a member of group.
func (b *testBundle) signIn(t *testing.T, upn, group string) *testBundle {
	t.Helper()
	b.h.Sim.SetSignInUser(graphsim.SignInUser{UPN: upn, Groups: []string{group}})
	p := b.as(newClient(t))
	if code, body := p.get(t, "/console/"); code != http.StatusOK || !strings.Contains(body, `id="user">`+upn+`<`) {
		t.Fatalf("sign-in as %s = %d: %.300s", upn, code, body)
	}
	return p
}

func mustToken(t *testing.T, code int, body string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("upload = %d, want 200 with a token: %.600s", code, body)
	}
	return m[1]
}

// TestSpoolCaps: a person's uploads past their cap of bytes or files evict
// their oldest review (its token then says so); an upload past the whole
// spool's cap is refused, naming the setting, and evicts nobody else's;
// one person's token does nothing for another; shutdown removes the spool.
func TestSpoolCaps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	group := testenv.Group(7)
	b := setup(t, 1, map[string]string{"CONSOLE_SIGNIN": "entra", "CONSOLE_ENTRA_GROUP": group, "CONSOLE_SPOOL_DIR": dir,
		"CONSOLE_SPOOL_USER_FILES": "3", "CONSOLE_MAX_UPLOAD": "40KiB", "CONSOLE_SPOOL_USER_MAX": "64KiB", "CONSOLE_SPOOL_MAX": "80KiB",
		"BULKASSIGN_SCHEDULE_MAX": "40KiB"})
	ada, bob := b.signIn(t, "ada@contoso.example", group), b.signIn(t, "bob@contoso.example", group)
	adaCSRF, bobCSRF := ada.csrf(t), bob.csrf(t)
	list := listOf(405, 0) // 29,996 bytes
	tok := func(code int, body string) string { t.Helper(); return mustToken(t, code, body) }
	wantFiles := func(want int) {
		t.Helper()
		if n, _ := spoolFiles(t, dir); n != want {
			t.Fatalf("the spool holds %d files, want %d", n, want)
		}
	}

	code, body := ada.upload(t, adaCSRF, "big.csv", listOf(700, 0))
	if code != http.StatusBadRequest || !strings.Contains(body, "CONSOLE_MAX_UPLOAD") || !strings.Contains(body, "40KiB") {
		t.Fatalf("an upload past CONSOLE_MAX_UPLOAD = %d, want 400 naming it: %.400s", code, body)
	}
	wantFiles(0)
	a1 := tok(ada.upload(t, adaCSRF, "a1.csv", list))
	a2 := tok(ada.upload(t, adaCSRF, "a2.csv", list))
	wantFiles(2)

	// Bob's would pass the spool's 80KiB: refused, Ada's two kept.
	code, body = bob.upload(t, bobCSRF, "b1.csv", list)
	if code != http.StatusBadRequest || !strings.Contains(body, "CONSOLE_SPOOL_MAX") || !strings.Contains(body, "enqueue command") {
		t.Fatalf("an upload past CONSOLE_SPOOL_MAX = %d, want 400 naming it and what to do: %.400s", code, body)
	}
	wantFiles(2)

	// Ada's third passes her 64KiB: her oldest goes.
	a3 := tok(ada.upload(t, adaCSRF, "a3.csv", list))
	wantFiles(2)
	// Two small ones: the second passes her 3 files, and a2 goes.
	p1 := tok(ada.uploadTo(t, "/console/schedules/preview", adaCSRF,
		[][2]string{{"name", "nightly"}, {"cron", "0 2 * * *"}, {"tz", "UTC"}}, "n.csv", listOf(1, 900)))
	tok(ada.upload(t, adaCSRF, "t2.csv", listOf(1, 901)))
	wantFiles(3)
	for _, evicted := range []string{a1, a2} {
		code, body, _ := ada.postForm(t, "/console/enqueue", url.Values{"csrf": {adaCSRF}, "token": {evicted}})
		if code != http.StatusGone || !strings.Contains(body, "replaced by newer uploads") {
			t.Errorf("enqueue of an evicted review = %d, want 410 saying why: %.400s", code, body)
		}
	}

	// Ada's tokens do nothing for Bob.
	code, body, _ = bob.postForm(t, "/console/enqueue", url.Values{"csrf": {bobCSRF}, "token": {a3}})
	if code != http.StatusForbidden || !strings.Contains(body, "someone else") {
		t.Errorf("Bob enqueueing Ada's review = %d, want 403: %.400s", code, body)
	}
	code, body, _ = bob.postForm(t, "/console/schedules", url.Values{"csrf": {bobCSRF}, "token": {p1}})
	if code != http.StatusForbidden || !strings.Contains(body, "someone else") {
		t.Errorf("Bob saving Ada's schedule preview = %d, want 403: %.400s", code, body)
	}
	var n int
	if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM batches) + (SELECT count(*) FROM schedules)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("batches and schedules = %d (%v), want none", n, err)
	}
	// There is room for Bob's now (Ada holds 30KiB).
	tok(bob.upload(t, bobCSRF, "b1.csv", list))
	wantFiles(4)
	// Ada's review still enqueues, and leaves the spool.
	code, body, _ = ada.postForm(t, "/console/enqueue", url.Values{"csrf": {adaCSRF}, "token": {a3}})
	if code != http.StatusOK || !strings.Contains(body, `id="batch-id"`) {
		t.Fatalf("Ada's enqueue = %d: %.400s", code, body)
	}
	wantFiles(3)

	b.stop()
	if files, dirs := spoolFiles(t, dir); files != 0 || dirs != 0 {
		t.Errorf("after shutdown the spool holds %d files in %d directories, want none", files, dirs)
	}
}

// TestSpoolSweptOnTimer: an expired review's file goes on the console's
// timer, without another upload to sweep it.
func TestSpoolSweptOnTimer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, 1, map[string]string{"CONSOLE_SPOOL_DIR": dir, "CONSOLE_REVIEW_TTL": "1s"})
	csrf := b.csrf(t)
	code, body := b.upload(t, csrf, "a.csv", listOf(3, 0))
	tok := mustToken(t, code, body)
	if n, _ := spoolFiles(t, dir); n != 1 {
		t.Fatalf("the spool holds %d files after an upload, want 1", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n, _ := spoolFiles(t, dir); n != 0; n, _ = spoolFiles(t, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("an expired review's file is still in the spool after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body, _ = b.postForm(t, "/console/enqueue", url.Values{"csrf": {csrf}, "token": {tok}})
	if code != http.StatusGone || !strings.Contains(body, "expired") {
		t.Errorf("enqueue of a swept review = %d, want 410: %.300s", code, body)
	}
}

// streamUpload posts fields and the file at path to the console as a
// multipart form, streamed from the file (the client holds none of it).
func (b *testBundle) streamUpload(t *testing.T, path, csrf string, fields [][2]string, file string) (int, string) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, f := range fields {
			mw.WriteField(f[0], f[1])
		}
		fw, err := mw.CreateFormFile("file", filepath.Base(file))
		if err == nil {
			var fh *os.File
			if fh, err = os.Open(file); err == nil {
				_, err = io.Copy(fw, fh)
				fh.Close()
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPost, b.base+path+"?csrf="+url.QueryEscape(csrf), pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", b.base)
	return b.do(t, req)
}

// heapPeak samples the heap in use until stop is called, and returns the
// peak above the heap in use at its start (after a collection).
func heapPeak() (stop func() uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	peak.Store(base)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load() - base
	}
}

var schedTokenRE = regexp.MustCompile(`name="token" value="([0-9a-f]+)"`)

// TestScheduleSaveStreamsTheList: previewing and saving an 80 MiB schedule
// list through the console keeps the process's heap within a fraction of
// the list (before, the save read it whole and bound it as one parameter:
// a 194 MB list took the worker from 87 MB to 882 MB), and stores it whole.
// Not parallel: it measures the test process's heap, which parallel tests
// would share.
func TestScheduleSaveStreamsTheList(t *testing.T) {
	b := setup(t, 1, nil)
	csrf := b.csrf(t)
	file := filepath.Join(t.TempDir(), "big.csv")
	fh, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	w.WriteString("configuration_id,group_id\n")
	pad := strings.Repeat(" ", 4000) // trimmed by intake: long rows, few of them
	const size = 80 << 20
	var rows int
	for n := 26; n < size; rows++ {
		k, _ := fmt.Fprintf(w, "%s,%s%s\n", testenv.Config(0), testenv.Group(rows), pad)
		n += k
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	st, _ := os.Stat(file)

	peak := heapPeak()
	code, body := b.streamUpload(t, "/console/schedules/preview", csrf,
		[][2]string{{"name", "big"}, {"cron", "0 2 * * *"}, {"tz", "UTC"}}, file)
	m := schedTokenRE.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		peak()
		t.Fatalf("preview = %d: %.600s", code, body)
	}
	code, body, _ = b.postForm(t, "/console/schedules", url.Values{"csrf": {csrf}, "token": {m[1]}})
	grew := peak()
	if code != http.StatusOK || !strings.Contains(body, "<td>big</td>") {
		t.Fatalf("save = %d: %.600s", code, body)
	}
	t.Logf("a %d MiB list (%d rows) previewed and saved; the heap in use peaked %d MiB above its start", st.Size()>>20, rows, grew>>20)
	if grew > uint64(st.Size())/2 {
		t.Errorf("the heap in use grew %d MiB saving a %d MiB list, want well under the list's size", grew>>20, st.Size()>>20)
	}
	var stored int64
	var count int
	if err := b.h.DB.Pool.QueryRow(context.Background(), `SELECT octet_length(content), row_count FROM schedules WHERE name = 'big'`).Scan(&stored, &count); err != nil {
		t.Fatal(err)
	}
	if stored != st.Size() || count != rows {
		t.Errorf("stored %d bytes and %d rows, want %d and %d", stored, count, st.Size(), rows)
	}
}

package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

type staticTokens struct{}

func (staticTokens) Token(context.Context, TokenOptions) (string, error) { return "t", nil }

// TestListStopsALoopingNextLink: a @odata.nextLink that points back at a page
// already read (or a chain that never ends) fails the list after a bounded
// number of requests instead of reading until the job times out.
func TestListStopsALoopingNextLink(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		next      func(base string, n int64) string
		wantCalls int64
	}{
		{"link to itself", func(base string, _ int64) string {
			return base + "/beta/deviceManagement/deviceConfigurations/c/assignments"
		}, 1},
		{"endless chain", func(base string, n int64) string { return fmt.Sprintf("%s/beta/page/%d", base, n) }, MaxPages},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			var base string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"value":[],"@odata.nextLink":%q}`, tt.next(base, n))
			}))
			defer srv.Close()
			base = srv.URL
			c, err := New(Options{BaseURL: srv.URL + "/beta", Tokens: staticTokens{}, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, resp := c.ListAssignments(context.Background(), "c", "", nil)
			if resp == nil || resp.Err == nil || !strings.Contains(resp.Err.Error(), "nextLink") {
				t.Fatalf("resp = %+v, want a nextLink error", resp)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("requests = %d, want %d", got, tt.wantCalls)
			}
			if d := Classify(resp); d.Action != Retry || d.Ambiguous {
				t.Errorf("Classify = %+v, want an unambiguous retry", d)
			}
		})
	}
}

// TestErrorTextIsBounded: whatever Graph puts in an error body, what reaches
// a Response is storable text of bounded length.
func TestErrorTextIsBounded(t *testing.T) {
	t.Parallel()
	msg := strings.Repeat("é", 3000) + "\x00tail"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("request-id", "req"+strings.Repeat("x", 500))
		w.WriteHeader(http.StatusBadRequest)
		b, _ := json.Marshal(msg)
		fmt.Fprintf(w, `{"error":{"code":"Bad\u0000Request","message":%s}}`, b)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/beta", Tokens: staticTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	_, resp := c.ListAssignments(context.Background(), "c", "", nil)
	if resp.StatusCode != 400 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	for name, s := range map[string]string{"code": resp.ErrorCode, "message": resp.ErrorMessage, "request-id": resp.RequestID} {
		if strings.ContainsRune(s, 0) || !utf8Valid(s) || len(s) > 2000 {
			t.Errorf("%s = %d bytes, valid=%v, NUL=%v", name, len(s), utf8Valid(s), strings.ContainsRune(s, 0))
		}
	}
	if resp.ErrorCode != "BadRequest" {
		t.Errorf("code = %q", resp.ErrorCode)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

// TestListByteCap: the pages of one list read add up to at most the
// client's MaxListBytes; past it the read stops (no further page is
// requested), its error wraps ErrListTooLarge and names the cap, and the
// policy fails it for good. Under the cap the same list reads whole.
func TestListByteCap(t *testing.T) {
	t.Parallel()
	sim, c := simClient(t, graphsim.Config{PageSize: 10}, "")
	const cfg = "c0000000-0000-4000-8000-000000000001"
	sim.AddConfiguration(cfg)
	for i := range 100 {
		sim.Preassign(cfg, "", assign.Target{Type: assign.TargetGroup, GroupID: guid(i)})
	}
	list, resp := c.ListAssignments(context.Background(), cfg, "", nil)
	if resp.Err != nil || len(list) != 100 {
		t.Fatalf("without a small cap: %d assignments, %v; want 100", len(list), resp.Err)
	}
	before := sim.Stats().Reads
	c.opts.MaxListBytes = 4096 // of the 10 pages' some 40 KB
	list, resp = c.ListAssignments(context.Background(), cfg, "", nil)
	if list != nil || !errors.Is(resp.Err, ErrListTooLarge) || !strings.Contains(resp.Err.Error(), "4096 bytes (GRAPH_MAX_LIST_BYTES)") {
		t.Fatalf("ListAssignments = %d, %v; want ErrListTooLarge naming 4096 bytes", len(list), resp.Err)
	}
	if n := sim.Stats().Reads - before; n < 1 || n > 2 {
		t.Errorf("read %d pages, want 1 or 2 of 10 (the read stops at the page that passes the cap)", n)
	}
	if d := Classify(resp); d.Action != Fail {
		t.Errorf("Classify = %+v, want Fail", d)
	}
}

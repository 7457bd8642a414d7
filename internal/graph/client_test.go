package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

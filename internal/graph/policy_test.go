package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// waitTooLong stands for the fleet limiter's error: it knows when to come back.
type waitTooLong struct{ d time.Duration }

func (w waitTooLong) Error() string             { return "next grant in " + w.d.String() }
func (w waitTooLong) RetryDelay() time.Duration { return w.d }

// TestClassify is one case per row of the response policy, written out
// independently of the Policy table so that a change to the table shows here.
func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		resp          Response
		wantAction    Action
		wantAmbiguous bool
		wantGone      bool
		wantSignIn    bool
	}{
		{"list 200", Response{Op: OpList, StatusCode: 200}, Succeed, false, false, false},
		{"list 404: no such configuration", Response{Op: OpList, StatusCode: 404}, Fail, false, true, false},
		{"create 201", Response{Op: OpCreate, StatusCode: 201}, Succeed, false, false, false},
		{"create 404: no such configuration", Response{Op: OpCreate, StatusCode: 404}, Fail, false, true, false},
		{"delete 204", Response{Op: OpDelete, StatusCode: 204}, Succeed, false, false, false},
		{"delete 404: already gone", Response{Op: OpDelete, StatusCode: 404}, Succeed, false, false, false},
		{"create 200", Response{Op: OpCreate, StatusCode: 200}, Succeed, false, false, false},
		{"probe 200: a policy of another kind", Response{Op: OpProbe, StatusCode: 200}, Succeed, false, false, false},
		{"probe 404: not of this kind", Response{Op: OpProbe, StatusCode: 404}, Fail, false, true, false},
		{"probe 429 throttled", Response{Op: OpProbe, StatusCode: 429}, Throttle, false, false, false},
		{"resolve 200: looked up by name", Response{Op: OpResolve, StatusCode: 200}, Succeed, false, false, false},
		{"resolve 403: no read permission", Response{Op: OpResolve, StatusCode: 403}, Fail, false, false, false},
		{"resolve 400: a name Graph cannot filter on", Response{Op: OpResolve, StatusCode: 400}, Fail, false, false, false},
		{"resolve 404", Response{Op: OpResolve, StatusCode: 404}, Fail, false, false, false},
		{"resolve 429 throttled", Response{Op: OpResolve, StatusCode: 429}, Throttle, false, false, false},
		{"resolve 503", Response{Op: OpResolve, StatusCode: 503}, Retry, true, false, false},
		{"resolve held back by the limit", *NotSent(OpResolve, waitTooLong{time.Second}), Wait, false, false, false},
		{"400 bad request", Response{Op: OpCreate, StatusCode: 400}, Fail, false, false, false},
		{"401 after renewal", Response{Op: OpList, StatusCode: 401}, Fail, false, false, false},
		{"403 permission", Response{Op: OpCreate, StatusCode: 403}, Fail, false, false, false},
		{"405 method", Response{Op: OpDelete, StatusCode: 405}, Fail, false, false, false},
		{"409 conflict", Response{Op: OpCreate, StatusCode: 409}, Reconcile, true, false, false},
		{"429 throttled", Response{Op: OpList, StatusCode: 429}, Throttle, false, false, false},
		{"500 internal", Response{Op: OpCreate, StatusCode: 500}, Retry, true, false, false},
		{"502 bad gateway", Response{Op: OpCreate, StatusCode: 502}, Retry, true, false, false},
		{"503 unavailable", Response{Op: OpDelete, StatusCode: 503}, Retry, true, false, false},
		{"504 gateway timeout", Response{Op: OpCreate, StatusCode: 504}, Retry, true, false, false},
		{"other 2xx", Response{Op: OpCreate, StatusCode: 202}, Succeed, false, false, false},
		{"other 4xx", Response{Op: OpCreate, StatusCode: 422}, Fail, false, false, false},
		{"other 5xx", Response{Op: OpCreate, StatusCode: 507}, Retry, true, false, false},
		{"reset after send", Response{Op: OpCreate, Err: errors.New("connection reset"), Sent: true}, Retry, true, false, false},
		{"refused before send", Response{Op: OpCreate, Err: errors.New("connection refused")}, Retry, false, false, false},
		{"200 whose body was cut", Response{Op: OpList, StatusCode: 200, Err: errors.New("unexpected EOF"), Sent: true}, Retry, true, false, false},
		{"held back by the limit", *NotSent(OpCreate, waitTooLong{3 * time.Second}), Wait, false, false, false},
		{"held back by shutdown", *NotSent(OpList, context.Canceled), Wait, false, false, false},
		{"sign in again", Response{Op: OpCreate, Err: fmt.Errorf("%w: %w", ErrTokenAcquisition, ErrSignInAgain)}, Fail, false, false, true},
		{"tenant refuses the app", Response{Op: OpCreate, Err: fmt.Errorf("%w: %w", ErrTokenAcquisition, ErrSignInRefused)}, Fail, false, false, false},
		{"token refused, retryable", Response{Op: OpCreate, Err: fmt.Errorf("%w: sign-in failed: AADSTS90033", ErrTokenAcquisition)}, Retry, false, false, false},
	}
	covered := map[Rule]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(&tt.resp)
			if got.Action != tt.wantAction || got.Ambiguous != tt.wantAmbiguous || got.Gone != tt.wantGone || got.SignInAgain != tt.wantSignIn {
				t.Errorf("Classify(%s %d, err=%v) = %s ambiguous=%v gone=%v signIn=%v, want %s ambiguous=%v gone=%v signIn=%v",
					tt.resp.Op, tt.resp.StatusCode, tt.resp.Err, got.Action, got.Ambiguous, got.Gone, got.SignInAgain,
					tt.wantAction, tt.wantAmbiguous, tt.wantGone, tt.wantSignIn)
			}
			if got.Why == "" {
				t.Errorf("Classify(%s %d) has no reason", tt.resp.Op, tt.resp.StatusCode)
			}
			for _, r := range Policy {
				if r.Status == got.Status && r.Action == got.Action && (r.Op == "" || r.Op == tt.resp.Op) && r.Why == got.Why {
					covered[r] = true
				}
			}
		})
	}
	// Every row of the table is exercised above.
	for _, r := range Policy {
		if !covered[r] {
			t.Errorf("policy row %+v has no test", r)
		}
	}
	if d := Classify(NotSent(OpCreate, fmt.Errorf("wrapped: %w", waitTooLong{3 * time.Second}))); d.Delay != 3*time.Second {
		t.Errorf("a held request's delay = %s, want 3s", d.Delay)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", -1},
		{"5", 5 * time.Second},
		{"0", 0},
		{"1.5", 1500 * time.Millisecond},
		{"-3", -1},
		{"soon", -1},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-7 * time.Second).Format(http.TimeFormat), 0},
		// Hostile answers are capped, never negative, never for ever.
		{"Fri, 31 Dec 9999 23:59:59 GMT", MaxRetryAfter},
		{"1e300", MaxRetryAfter},
		{"NaN", -1},
		{"86400", MaxRetryAfter},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseClaimsChallenge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ=="`}, `{"access_token":{}}`},
		{[]string{`Bearer error="invalid_token"`}, ""},
		{[]string{`Basic realm="x"`, `Bearer error="insufficient_claims", claims="eyJhIjoxfQ"`}, `{"a":1}`},
		{[]string{`Bearer error="insufficient_claims", claims="not base64 nor json"`}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := ParseClaimsChallenge(tt.in); got != tt.want {
			t.Errorf("ParseClaimsChallenge(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"https://graph.microsoft.com/beta", true},
		{"http://127.0.0.1:8080/beta", true},
		{"http://localhost:1/beta", true},
		{"http://[::1]:1/beta", true},
		{"http://graph.microsoft.com/beta", false},
		{"ftp://graph.microsoft.com", false},
		{"graph.microsoft.com/beta", false},
		{"https://user:pw@graph.microsoft.com/beta", false},
	}
	for _, tt := range tests {
		_, err := CheckURL("GRAPH_BASE_URL", tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// failingTokens is a token source whose sign-in is refused.
type failingTokens struct{ err error }

func (f failingTokens) Token(context.Context, TokenOptions) (string, error) { return "", f.err }

// TestTokenFailureIsNeverSent pins what the workers' error codes rest on: a
// refused token wraps ErrTokenAcquisition (and its cause), and the request
// never left, so a create cannot have applied.
func TestTokenFailureIsNeverSent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cause      error
		wantAction Action
		wantSignIn bool
	}{
		{"needs a person", fmt.Errorf("%w: AADSTS70043", ErrSignInAgain), Fail, true},
		{"refused otherwise", errors.New("sign-in failed: AADSTS7000215"), Retry, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Port 9 on loopback: were a request sent, it would fail differently.
			c, err := New(Options{BaseURL: "http://127.0.0.1:9/beta", Tokens: failingTokens{tt.cause}})
			if err != nil {
				t.Fatal(err)
			}
			_, resp := c.CreateAssignment(context.Background(), "c0000000-0000-4000-8000-000000000001", "", assign.Target{Type: assign.TargetAllDevices}, "")
			if !errors.Is(resp.Err, ErrTokenAcquisition) || !errors.Is(resp.Err, tt.cause) || resp.Sent || resp.StatusCode != 0 {
				t.Fatalf("resp = %+v, want Err wrapping ErrTokenAcquisition and %v, not sent", resp, tt.cause)
			}
			if got, want := resp.Err.Error(), "error acquiring token: "+tt.cause.Error(); got != want {
				t.Errorf("Err = %q, want %q", got, want)
			}
			if dec := Classify(resp); dec.Action != tt.wantAction || dec.Ambiguous || dec.SignInAgain != tt.wantSignIn {
				t.Errorf("Classify = %s ambiguous=%v signIn=%v, want %s ambiguous=false signIn=%v", dec.Action, dec.Ambiguous, dec.SignInAgain, tt.wantAction, tt.wantSignIn)
			}
		})
	}
}

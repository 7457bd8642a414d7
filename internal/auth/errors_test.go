package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// msalError mimics how MSAL quotes the platform's answer (comm.go).
func msalError(body string) error {
	return fmt.Errorf("http call(https://login.example/t/oauth2/v2.0/token)(POST) error: reply status code was 400:\n%s", body)
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"platform answer",
			msalError(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent. Trace ID: 1 Correlation ID: 2 Timestamp: 2025-01-01 00:00:00Z","error_codes":[7000215]}`),
			"sign-in failed: AADSTS7000215: Invalid client secret provided"},
		{"no description", msalError(`{"error":"invalid_scope"}`), "sign-in failed: invalid_scope"},
		{"not json", errors.New("server response error:\n dial tcp 127.0.0.1:1: connect: connection refused"),
			"sign-in failed: server response error: dial tcp 127.0.0.1:1: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := sanitize(tt.err).Error()
			if got != tt.want {
				t.Fatalf("sanitize = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "\n") {
				t.Fatalf("sanitize = %q spans lines", got)
			}
		})
	}
}

func TestRenewErrorSortsWhatNeedsAPerson(t *testing.T) {
	t.Parallel()
	d := &Delegated{cfg: DelegatedConfig{TenantID: "t", ClientID: "c"}}
	tests := []struct {
		name        string
		err         error
		signInAgain bool
		want        string
	}{
		{"revoked", msalError(`{"error":"invalid_grant","error_description":"AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed. Trace ID: x"}`),
			true, "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth token is needed"},
		{"mfa", msalError(`{"error":"interaction_required","error_description":"AADSTS50076: Due to a configuration change you must use multi-factor authentication."}`),
			true, "AADSTS50076"},
		{"not signed in", ErrNotSignedIn, true, "no delegated sign-in is stored for app c in tenant t: run `worker login`"},
		{"wrong key", ErrWrongKey, true, "BULKASSIGN_TOKEN_CACHE_KEY"},
		{"no refresh token", errors.New("no token found"), true, "holds no refresh token"},
		{"platform down", msalError(`{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred."}`),
			false, "AADSTS90033"},
		{"network", errors.New("server response error: EOF"), false, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := d.renewError(tt.err)
			if errors.Is(got, graph.ErrSignInAgain) != tt.signInAgain {
				t.Fatalf("renewError(%v) = %v: wraps ErrSignInAgain = %v, want %v", tt.err, got, !tt.signInAgain, tt.signInAgain)
			}
			if !strings.Contains(got.Error(), tt.want) || strings.Contains(got.Error(), "Trace ID") {
				t.Fatalf("renewError = %q, want it to contain %q and no trace id", got, tt.want)
			}
		})
	}
}

// TestAppErrorRefusal: a tenant's refusal of the app is final (the rows end
// at once), every other sign-in failure stays retryable.
func TestAppErrorRefusal(t *testing.T) {
	t.Parallel()
	body := func(code int, desc string) error {
		return msalError(fmt.Sprintf(`{"error":"unauthorized_client","error_description":"AADSTS%d: %s. Trace ID: 1","error_codes":[%d]}`, code, desc, code))
	}
	tests := []struct {
		err     error
		refused bool
	}{
		{body(700016, "Application with identifier 'x' was not found in the directory 'y'"), true},
		{body(65001, "The user or administrator has not consented to use the application"), true},
		{body(90002, "Tenant 'z' not found"), true},
		{body(7000112, "Application 'x' is disabled"), true},
		{body(7000215, "Invalid client secret provided"), false},
		{body(90033, "A transient error has occurred"), false},
		{errors.New("dial tcp: i/o timeout"), false},
	}
	for _, tt := range tests {
		got := appError(tt.err)
		if errors.Is(got, graph.ErrSignInRefused) != tt.refused {
			t.Errorf("appError(%v) = %v, refused=%v; want refused=%v", tt.err, got, !tt.refused, tt.refused)
		}
		if !strings.Contains(got.Error(), "AADSTS") && tt.refused {
			t.Errorf("appError = %q keeps no AADSTS code", got)
		}
	}
}

package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// oauthError is the identity platform's error answer, as MSAL quotes it in
// its error text.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

// parseOAuthError finds the platform's JSON answer in an MSAL error. MSAL
// puts the whole response body in the message (the request body, which
// carries secrets, only in its verbose form), and may already have drained
// the response itself, so the message is the one reliable source.
func parseOAuthError(err error) (oauthError, bool) {
	msg := err.Error()
	i, j := strings.Index(msg, "{"), strings.LastIndex(msg, "}")
	if i < 0 || j < i {
		return oauthError{}, false
	}
	var e oauthError
	if json.Unmarshal([]byte(msg[i:j+1]), &e) != nil || e.Code == "" {
		return oauthError{}, false
	}
	return e, true
}

// summary is the platform's error code and the first sentence of its
// description ("AADSTS7000215: Invalid client secret provided"), without
// trace ids and timestamps.
func (e oauthError) summary() string {
	d := e.Description
	if k := strings.Index(d, "AADSTS"); k >= 0 {
		d = d[k:]
	}
	if k := strings.IndexAny(d, ".\r\n"); k >= 0 {
		d = d[:k]
	}
	d = strings.TrimSpace(d)
	if len(d) > 300 {
		d = d[:300]
	}
	if d == "" {
		return e.Code
	}
	return d
}

// sanitize reduces an MSAL error to one line with the platform's code and
// description: MSAL's messages quote whole responses and URLs.
func sanitize(err error) error {
	if e, ok := parseOAuthError(err); ok {
		return fmt.Errorf("sign-in failed: %s", e.summary())
	}
	msg := err.Error()
	if i := strings.Index(msg, "AADSTS"); i >= 0 {
		end := strings.IndexAny(msg[i:], ".\"\\\n")
		if end < 0 {
			end = len(msg) - i
		}
		return fmt.Errorf("sign-in failed: %s", msg[i:i+end])
	}
	for _, code := range []string{"invalid_client", "invalid_grant", "unauthorized_client", "invalid_scope", "invalid_request"} {
		if strings.Contains(msg, code) {
			return fmt.Errorf("sign-in failed: %s", code)
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return fmt.Errorf("sign-in failed: %s", msg)
}

// ErrNotSignedIn means no delegated sign-in is stored (never signed in, or
// signed out).
var ErrNotSignedIn = errors.New("no delegated sign-in is stored")

// SignInError is a delegated sign-in that only a person can renew: it
// wraps graph.ErrSignInAgain, so the rows that meet it end failed at once
// instead of spending retries, and its cause (ErrNotSignedIn, ErrWrongKey,
// or the platform's refusal).
type SignInError struct {
	Msg   string
	Cause error
}

func (e *SignInError) Error() string { return e.Msg }

func (e *SignInError) Unwrap() []error {
	if e.Cause == nil {
		return []error{graph.ErrSignInAgain}
	}
	return []error{graph.ErrSignInAgain, e.Cause}
}

// needsPerson lists the OAuth errors a refresh can end with that no retry
// fixes: the refresh token expired, was revoked, or a policy wants the
// person back (MFA, consent, sign-in frequency).
var needsPerson = map[string]bool{
	"invalid_grant":        true,
	"interaction_required": true,
	"login_required":       true,
	"consent_required":     true,
	"expired_token":        true,
}

// refusedCodes are the platform's answers that say a tenant refuses the
// app for good: no retry fixes them, an admin of that tenant must act.
var refusedCodes = []string{
	"AADSTS700016",  // application not found in the directory: no admin consent
	"AADSTS65001",   // consent missing
	"AADSTS90002",   // tenant not found
	"AADSTS7000112", // application disabled
	"AADSTS500011",  // resource principal not found in the tenant
	"AADSTS50020",   // delegated: the signed-in person has no access to the tenant (no GDAP relationship)
}

// RefusedError is a tenant refusing the app: it wraps
// graph.ErrSignInRefused, so that tenant's rows end failed at once with the
// platform's code in the message.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }
func (e *RefusedError) Unwrap() error { return graph.ErrSignInRefused }

// appError sorts a failed app sign-in: a tenant's refusal is
// *RefusedError; anything else (a wrong secret, a 5xx, a timeout) stays
// retryable, reduced to one line by sanitize.
func appError(err error) error {
	clean := sanitize(err)
	for _, code := range refusedCodes {
		if strings.Contains(clean.Error(), code+":") || strings.HasSuffix(clean.Error(), code) {
			return &RefusedError{Msg: clean.Error()}
		}
	}
	return clean
}

package graph

import (
	"errors"
	"net/http"
)

// Action is what the worker does with a Graph answer.
type Action string

const (
	// Succeed: the request did what was asked.
	Succeed Action = "succeed"
	// Fail: Graph refused for good; the row ends failed with Graph's code.
	Fail Action = "fail"
	// Reconcile: the state is unclear (409); re-read the list and decide.
	Reconcile Action = "reconcile"
	// Throttle: wait (Retry-After, else backoff) without using an attempt,
	// and slow the whole fleet.
	Throttle Action = "throttle"
	// Retry: a transient failure; retry with backoff, using an attempt. For
	// a create, Ambiguous says it may have applied: re-read before re-posting.
	Retry Action = "retry"
)

// Rule is one row of the response policy.
type Rule struct {
	// Status is the HTTP status; 0 means no answer (transport error).
	Status int
	Action Action
	// Ambiguous, for a create, means the create may have been applied.
	Ambiguous bool
	// Why is recorded with failures and shown in the README's table.
	Why string
}

// Policy is the whole response policy, in one place. The worker consults it
// through Classify; statuses not listed fall back to the 4xx/5xx rows.
var Policy = []Rule{
	{Status: 200, Action: Succeed, Why: "ok"},
	{Status: 201, Action: Succeed, Why: "created"},
	{Status: 204, Action: Succeed, Why: "deleted"},
	{Status: 400, Action: Fail, Why: "Graph rejected the request"},
	{Status: 401, Action: Fail, Why: "authentication failed again after renewing the token"},
	{Status: 403, Action: Fail, Why: "permission denied: the app or user needs DeviceManagementConfiguration.ReadWrite.All"},
	{Status: 404, Action: Fail, Why: "not found: the configuration (or path) does not exist"},
	{Status: 405, Action: Fail, Why: "method not allowed on this path"},
	{Status: 409, Action: Reconcile, Ambiguous: true, Why: "conflict: re-read the assignments and decide"},
	{Status: 429, Action: Throttle, Why: "throttled"},
	{Status: 500, Action: Retry, Ambiguous: true, Why: "Graph internal error"},
	{Status: 502, Action: Retry, Ambiguous: true, Why: "bad gateway"},
	{Status: 503, Action: Retry, Ambiguous: true, Why: "service unavailable"},
	{Status: 504, Action: Retry, Ambiguous: true, Why: "gateway timeout: the create may have applied"},
	{Status: 0, Action: Retry, Ambiguous: true, Why: "no answer (timeout or connection lost)"},
}

var (
	other4xx = Rule{Action: Fail, Why: "Graph rejected the request"}
	other5xx = Rule{Action: Retry, Ambiguous: true, Why: "Graph server error"}
)

// Decision is the policy applied to one Response.
type Decision struct {
	Rule
	// Permanent token failures (a wrong credential, a sign-in that needs a
	// person) end the row instead of retrying.
	SignInAgain bool
}

// Classify applies the policy to a response.
func Classify(r *Response) Decision {
	if r.StatusCode == 0 {
		if errors.Is(r.Err, ErrSignInAgain) {
			return Decision{Rule: Rule{Action: Fail, Why: ErrSignInAgain.Error()}, SignInAgain: true}
		}
		rule := lookup(0)
		// A request that never reached the wire cannot have applied.
		rule.Ambiguous = r.Sent
		return Decision{Rule: rule}
	}
	rule := lookup(r.StatusCode)
	rule.Status = r.StatusCode
	return Decision{Rule: rule}
}

func lookup(status int) Rule {
	for _, rule := range Policy {
		if rule.Status == status {
			return rule
		}
	}
	switch {
	case status >= 200 && status < 300:
		return Rule{Status: status, Action: Succeed, Why: http.StatusText(status)}
	case status >= 500:
		return other5xx
	default:
		return other4xx
	}
}

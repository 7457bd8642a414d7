package graph

import (
	"errors"
	"net/http"
	"time"
)

// Op is the Graph operation a request performs; the same status means
// different things for different operations (a 404 on a delete means the
// assignment is already gone, on a list that the configuration does not
// exist).
type Op string

const (
	OpList   Op = "list"
	OpCreate Op = "create"
	OpDelete Op = "delete"
	// OpProbe reads one policy of a kind bulkassign does not assign
	// (GetPolicy), to say what an id that is not a device configuration is.
	OpProbe Op = "probe"
	// OpResolve looks a configuration, a group or an assignment filter up
	// by display name (FindByName), for rows that name them instead of
	// giving ids.
	OpResolve Op = "resolve"
)

// Method is the HTTP method of the operation's requests: a create posts,
// a delete deletes, every other operation reads.
func (op Op) Method() string {
	switch op {
	case OpCreate:
		return http.MethodPost
	case OpDelete:
		return http.MethodDelete
	}
	return http.MethodGet
}

// Action is what the caller does with a Graph answer.
type Action string

const (
	// Succeed: the request did what was asked (or the state it asked for
	// already holds).
	Succeed Action = "succeed"
	// Fail: Graph refused for good; the row ends failed with Graph's code.
	Fail Action = "fail"
	// Reconcile: the state is unclear (409); re-read the list and decide.
	// It spends an attempt like Retry.
	Reconcile Action = "reconcile"
	// Throttle: wait (Retry-After, else backoff) without using an attempt,
	// and slow the whole fleet.
	Throttle Action = "throttle"
	// Retry: a transient failure; retry with backoff, using an attempt. For
	// a create, Ambiguous says it may have applied: re-read before re-posting.
	Retry Action = "retry"
	// Wait: the request was never sent because the fleet's limit (or a
	// shutdown) held it back; come back later without using an attempt.
	Wait Action = "wait"
)

// Rule is one row of the response policy.
type Rule struct {
	// Op is the operation the row is for; "" is every operation.
	Op Op
	// Status is the HTTP status; 0 means no answer (transport error),
	// and statusNotSent a request held back before it left.
	Status int
	Action Action
	// Ambiguous, for a create or delete, means it may have been applied.
	Ambiguous bool
	// Gone says the object addressed does not exist: a list or create on
	// a configuration that is not there (every row on that path fails the
	// same way, so callers may remember it).
	Gone bool
	// Why is recorded with failures and shown in the README's table.
	Why string
}

// statusNotSent is the pseudo-status of a request that was held back by
// the fleet's limit or a shutdown: nothing reached Graph.
const statusNotSent = -1

// Policy is the whole response policy, in one place: every answer of every
// operation is one row. Rows with an Op come before the rows for every
// operation; statuses not listed fall back to the 2xx/4xx/5xx rows.
var Policy = []Rule{
	{Op: OpList, Status: 200, Action: Succeed, Why: "listed"},
	{Op: OpList, Status: 404, Action: Fail, Gone: true, Why: "not found: the configuration (or path) does not exist"},
	{Op: OpCreate, Status: 201, Action: Succeed, Why: "created"},
	{Op: OpCreate, Status: 404, Action: Fail, Gone: true, Why: "not found: the configuration (or path) does not exist"},
	{Op: OpDelete, Status: 204, Action: Succeed, Why: "deleted"},
	{Op: OpDelete, Status: 404, Action: Succeed, Why: "already gone: deleted before, or by someone else"},
	{Op: OpProbe, Status: 200, Action: Succeed, Why: "exists: a policy of a kind bulkassign does not assign"},
	{Op: OpProbe, Status: 404, Action: Fail, Gone: true, Why: "not found: no policy of this kind has the id"},
	{Op: OpResolve, Status: 200, Action: Succeed, Why: "found by name"},
	{Op: OpResolve, Status: 403, Action: Fail, Why: "permission denied: name lookups need Group.Read.All for groups and DeviceManagementConfiguration.Read.All for configurations and filters"},
	{Status: 200, Action: Succeed, Why: "ok"},
	{Status: 400, Action: Fail, Why: "Graph rejected the request"},
	{Status: 401, Action: Fail, Why: "authentication failed again after renewing the token"},
	{Status: 403, Action: Fail, Why: "permission denied: the app or user needs DeviceManagementConfiguration.ReadWrite.All"},
	{Status: 405, Action: Fail, Why: "method not allowed on this path"},
	{Status: 409, Action: Reconcile, Ambiguous: true, Why: "conflict: re-read the assignments and decide"},
	{Status: 429, Action: Throttle, Why: "throttled"},
	{Status: 500, Action: Retry, Ambiguous: true, Why: "Graph internal error"},
	{Status: 502, Action: Retry, Ambiguous: true, Why: "bad gateway"},
	{Status: 503, Action: Retry, Ambiguous: true, Why: "service unavailable"},
	{Status: 504, Action: Retry, Ambiguous: true, Why: "gateway timeout: the request may have applied"},
	{Status: 0, Action: Retry, Ambiguous: true, Why: "no answer (timeout or connection lost)"},
	{Status: statusNotSent, Action: Wait, Why: "not sent: waiting for the fleet's rate limit"},
}

var (
	other2xx = Rule{Action: Succeed, Why: "ok"}
	other4xx = Rule{Action: Fail, Why: "Graph rejected the request"}
	other5xx = Rule{Action: Retry, Ambiguous: true, Why: "Graph server error"}
)

// Decision is the policy applied to one Response.
type Decision struct {
	Rule
	// SignInAgain: the token could not be had and only a person can fix
	// it; the row ends instead of retrying.
	SignInAgain bool
	// SignInRefused: the row's tenant refuses the app (no consent, no such
	// tenant, app disabled); the row ends instead of retrying.
	SignInRefused bool
	// Delay is how long a Wait should last (the limiter's estimate); 0
	// when unknown.
	Delay time.Duration
}

// Classify applies the policy to a response of r.Op.
func Classify(r *Response) Decision {
	switch {
	case r.Err != nil && !r.Sent && r.Held != nil:
		d := Decision{Rule: lookup(r.Op, statusNotSent)}
		d.Delay = r.Held.Delay
		return d
	case r.Err != nil && errors.Is(r.Err, ErrSignInAgain):
		return Decision{Rule: Rule{Op: r.Op, Action: Fail, Why: ErrSignInAgain.Error()}, SignInAgain: true}
	case r.Err != nil && errors.Is(r.Err, ErrSignInRefused):
		return Decision{Rule: Rule{Op: r.Op, Action: Fail, Why: ErrSignInRefused.Error()}, SignInRefused: true}
	case r.Err != nil && errors.Is(r.Err, ErrListTooLarge):
		return Decision{Rule: Rule{Op: r.Op, Action: Fail, Why: ErrListTooLarge.Error()}}
	case r.Err != nil || r.StatusCode == 0:
		// An answer that did not arrive whole is no answer.
		rule := lookup(r.Op, 0)
		// A request that never reached the wire cannot have applied.
		rule.Ambiguous = r.Sent
		return Decision{Rule: rule}
	}
	return Decision{Rule: lookup(r.Op, r.StatusCode)}
}

func lookup(op Op, status int) Rule {
	for _, rule := range Policy {
		if rule.Status == status && (rule.Op == op || rule.Op == "") {
			return rule
		}
	}
	var r Rule
	switch {
	case status >= 200 && status < 300:
		r = other2xx
	case status >= 500:
		r = other5xx
	default:
		r = other4xx
	}
	r.Op, r.Status = op, status
	if status >= 200 && status < 300 {
		r.Why = http.StatusText(status)
	}
	return r
}

package assign

// Status is where a row stands. Which statuses are final is decided twice,
// once per language: Status.Final here, and bulkassign_final() in the
// migrations for SQL (TestFinalMatchesSQL keeps them equal).
type Status string

const (
	StatusQueued  Status = "queued"
	StatusRunning Status = "running"
	// StatusWaiting: the row waits, spending no attempt, for the fleet's
	// write or read budget, a throttle to pass, or another row or worker
	// writing or reading what it needs. Waiting is not failing: it has no
	// error.
	StatusWaiting  Status = "waiting"
	StatusRetrying Status = "retrying"
	// StatusCancelling: `enqueue cancel` stopped the row while a write of
	// it may be in flight (or its last write's answer was lost). No new
	// write starts for it; it ends created (or removed) if that write
	// applied, canceled if not: a read settles which.
	StatusCancelling      Status = "cancelling"
	StatusCreated         Status = "created"
	StatusAlreadyAssigned Status = "already_assigned"
	StatusFailed          Status = "failed"
	StatusCanceled        Status = "canceled"
	// StatusRemoved: a remove row deleted its target's assignment.
	StatusRemoved Status = "removed"
	// StatusNotAssigned: a remove row found no assignment of its target.
	StatusNotAssigned Status = "not_assigned"
)

// Statuses lists every status, non-final first.
var Statuses = []Status{StatusQueued, StatusRunning, StatusWaiting, StatusRetrying, StatusCancelling,
	StatusCreated, StatusAlreadyAssigned, StatusRemoved, StatusNotAssigned, StatusFailed, StatusCanceled}

// Final reports whether no more work will be done for a row in this status.
func (s Status) Final() bool {
	switch s {
	case StatusCreated, StatusAlreadyAssigned, StatusRemoved, StatusNotAssigned, StatusFailed, StatusCanceled:
		return true
	}
	return false
}

// MayWrite reports whether a run may start a new write (claim the target)
// for a row in this status: not once it is final, nor while a cancel waits
// for its write in flight to settle. bulkassign_claims() is its SQL copy.
func (s Status) MayWrite() bool { return !s.Final() && s != StatusCancelling }

// Applied reports whether a row in this status changed the tenant: it
// created or removed its target's assignment. Revert undoes exactly these.
func (s Status) Applied() bool { return s == StatusCreated || s == StatusRemoved }

// RevertStatus is where a row's revert stands; "" is no revert asked for.
// Final here and bulkassign_revert_final() in SQL decide which are final.
type RevertStatus string

const (
	RevertNone     RevertStatus = ""
	RevertQueued   RevertStatus = "queued"
	RevertRunning  RevertStatus = "running"
	RevertRetrying RevertStatus = "retrying"
	// RevertCancelling: `enqueue cancel` stopped the revert while its
	// request was in flight; it ends reverted if that applied, else canceled.
	RevertCancelling RevertStatus = "cancelling"
	RevertReverted   RevertStatus = "reverted"
	RevertFailed     RevertStatus = "failed"
	RevertCanceled   RevertStatus = "canceled"
)

// RevertStatuses lists every revert status, non-final first.
var RevertStatuses = []RevertStatus{RevertQueued, RevertRunning, RevertRetrying, RevertCancelling, RevertReverted, RevertFailed, RevertCanceled}

// Final reports whether the revert of a row is over.
func (s RevertStatus) Final() bool {
	return s == RevertReverted || s == RevertFailed || s == RevertCanceled
}

// Error codes bulkassign writes to error_code (and revert_error_code) when
// the reason is its own rather than Graph's code; the README lists them.
const (
	// CodeCanceled: `enqueue cancel` stopped the row.
	CodeCanceled = "Canceled"
	// CodePatienceExceeded: GRAPH_PATIENCE ran out before a final answer.
	CodePatienceExceeded = "PatienceExceeded"
	// CodeNoResponse: the request got no answer (timeout, connection lost).
	CodeNoResponse = "NoResponse"
	// CodeSignInAgain: the stored delegated sign-in needs `worker login`.
	CodeSignInAgain = "SignInAgain"
	// CodeSignInRefused: the row's tenant refuses the app for good: admin
	// consent missing (AADSTS700016, AADSTS65001), tenant not found
	// (AADSTS90002), app disabled (AADSTS7000112); the message keeps the code.
	CodeSignInRefused = "SignInRefused"
	// CodeSignInFailed: no token for another reason (a rotated secret).
	CodeSignInFailed = "SignInFailed"
	// CodeNothingToRevert: a revert found no assignment the batch created.
	CodeNothingToRevert = "NothingToRevert"
	// CodeJobDiscarded: River gave up on the row's job (its attempts ran
	// out on errors other than Graph's, e.g. the database refusing writes).
	CodeJobDiscarded = "JobDiscarded"
	// CodeJobCancelled: the row's River job was cancelled outside
	// bulkassign (River UI, the River API).
	CodeJobCancelled = "JobCancelled"
	// CodeUnsupportedPolicyType: the id is not a device configuration
	// (Graph answered 404) but another kind of Intune policy that
	// bulkassign does not assign: a Settings Catalog policy, a compliance
	// policy or an administrative template; the message names the kind.
	CodeUnsupportedPolicyType = "UnsupportedPolicyType"
	// CodeListTooLarge: the pages of a list the row needed (the
	// configuration's assignments, or a display name's matches) add up to
	// more than GRAPH_MAX_LIST_BYTES; the message names the cap.
	CodeListTooLarge = "ListTooLarge"
	// CodeTenantNotAllowed: the row's tenant is not one BULKASSIGN_TENANTS
	// lists while the file allows only those (onlyListed): a row of an
	// older batch, enqueued before the tenant was taken off.
	CodeTenantNotAllowed = "TenantNotAllowed"
	// CodeNameNotFound: a display name the row gave matches no object of
	// its kind in the row's tenant.
	CodeNameNotFound = "NameNotFound"
	// CodeNameAmbiguous: a display name matches more than one object; the
	// message lists the candidates' ids.
	CodeNameAmbiguous = "NameAmbiguous"
)

// Package jobs is the glue between the store, Graph and River: the job args,
// the AssignWorker that turns one item into one Graph assignment, the
// RevertWorker that deletes it again, the River client set-up, the sweep
// that ends rows whose job River gave up, and Enqueue, which turns an input
// file into a batch.
package jobs

import (
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/bulkassign/bulkassign/internal/backoff"
)

// QueueAssign is the River queue for assignment rows.
const QueueAssign = "bulkassign"

// maxAttempts bounds only failures River sees itself (database errors,
// crashes); Graph errors are counted on the item against Settings.MaxErrors.
// A job that runs out is discarded, and the sweep ends its row failed.
const maxAttempts = 25

// AssignArgs names one item: the row of a batch. Everything else about the
// row lives in its item, the truth the worker reads and writes. Tenant, the
// row's tenant id ("" for rows enqueued before rows named tenants), chooses
// the row's queue.
type AssignArgs struct {
	Batch  string `json:"batch"`
	Row    int    `json:"row"`
	Tenant string `json:"tenant,omitempty"`
}

// Kind is the River job kind.
func (AssignArgs) Kind() string { return "bulkassign_assign" }

// InsertOpts puts the row on its tenant's queue.
func (a AssignArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: TenantQueue(a.Tenant), MaxAttempts: maxAttempts}
}

// tenantQueuePrefix starts the name of every tenant's queue but the
// default tenant's (QueueAssign).
const tenantQueuePrefix = QueueAssign + "_t_"

// TenantQueue is the River queue of a tenant's rows: each tenant has its
// own, so River fetches every tenant's rows side by side and a row that
// waits for its tenant's limit holds a slot of its own tenant only (a
// list sorted by tenant, or one tenant with most rows, holds no other
// back). tenant is a tenant id; "" (rows enqueued before rows named
// tenants) is QueueAssign.
func TenantQueue(tenant string) string {
	if tenant == "" {
		return QueueAssign
	}
	return tenantQueuePrefix + strings.ToLower(tenant)
}

// QueueTenant is the tenant whose queue is queue (TenantQueue's inverse):
// its id in lower case, and whether queue is a tenant's queue at all.
func QueueTenant(queue string) (string, bool) { return strings.CutPrefix(queue, tenantQueuePrefix) }

// TenantQueuePrefix starts the names of the tenants' queues.
const TenantQueuePrefix = tenantQueuePrefix

// IsTenantQueue reports whether queue is a tenant's queue other than the
// default tenant's.
func IsTenantQueue(queue string) bool { return strings.HasPrefix(queue, tenantQueuePrefix) }

// retryPolicy replaces River's (n+1)^4 s backoff for the failures that reach
// River (database outages, crashes) with the shared backoff from 1 s to 5
// minutes, so a Postgres restart is recovered from quickly.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(backoff.Policy{Base: time.Second, Max: 5 * time.Minute}.Delay(job.Attempt))
}

// Package jobs is the glue between the store, Graph and River: the job args,
// the AssignWorker that turns one item into one Graph assignment, the
// RevertWorker that deletes it again, the River client set-up, the sweep
// that ends rows whose job River gave up, and Enqueue, which turns an input
// file into a batch.
package jobs

import (
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
// row lives in its item, the truth the worker reads and writes.
type AssignArgs struct {
	Batch string `json:"batch"`
	Row   int    `json:"row"`
}

// Kind is the River job kind.
func (AssignArgs) Kind() string { return "bulkassign_assign" }

// InsertOpts puts every row on the assignment queue.
func (AssignArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAssign, MaxAttempts: maxAttempts}
}

// retryPolicy replaces River's (n+1)^4 s backoff for the failures that reach
// River (database outages, crashes) with the shared backoff from 1 s to 5
// minutes, so a Postgres restart is recovered from quickly.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(backoff.Policy{Base: time.Second, Max: 5 * time.Minute}.Delay(job.Attempt))
}

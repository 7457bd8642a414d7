// Package jobs is the glue between the store, Graph and River: the job args,
// the AssignWorker that turns one item into one Graph assignment, the River
// client set-up, and Enqueue, which turns an input file into a batch.
package jobs

import (
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueAssign is the River queue for assignment rows.
const QueueAssign = "bulkassign"

// AssignArgs names one item: the row of a batch. Everything else about the
// row lives in its item, the truth the worker reads and writes.
type AssignArgs struct {
	Batch string `json:"batch"`
	Row   int    `json:"row"`
}

// Kind is the River job kind.
func (AssignArgs) Kind() string { return "bulkassign_assign" }

// InsertOpts puts every row on the assignment queue. MaxAttempts bounds
// only failures River sees itself (database errors, crashes); Graph errors
// are counted on the item against Settings.MaxErrors.
func (AssignArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAssign, MaxAttempts: 25}
}

// retryPolicy replaces River's (n+1)^4 s backoff for the failures that reach
// River (database outages, crashes): exponential from 1 s, capped at 5
// minutes, with jitter, so a Postgres restart is recovered from quickly.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(jittered(time.Second, 5*time.Minute, job.Attempt))
}

// jittered is base·2^(n-1), capped, scaled by a random factor in [0.5, 1].
func jittered(base, limit time.Duration, n int) time.Duration {
	d := base << min(max(n-1, 0), 20)
	if d > limit || d <= 0 {
		d = limit
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

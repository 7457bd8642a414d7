package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/store"
)

// The store's upkeep, run by the leader on the maintenance queue beside the
// sweep: folding the kept counts' deltas (store.CompactCounts) every few
// seconds, and, with BULKASSIGN_RETENTION set, pruning finished batches once
// a day (store.Prune).

// CompactInterval is how often the leader folds the kept counts. Between
// two runs a batch's count reads the deltas of the rows that changed
// meanwhile: a few thousand at most, at the fleet's fastest.
const CompactInterval = 15 * time.Second

// CompactCountsArgs is the periodic compaction job.
type CompactCountsArgs struct{}

// Kind is the River job kind.
func (CompactCountsArgs) Kind() string { return "bulkassign_compact_counts" }

// InsertOpts puts the job on the maintenance queue; one attempt, since the
// next run does whatever a failed one did not.
func (CompactCountsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// CompactCountsWorker folds the kept counts.
type CompactCountsWorker struct {
	river.WorkerDefaults[CompactCountsArgs]
	pool *pgxpool.Pool
}

// Work compacts once.
func (w *CompactCountsWorker) Work(ctx context.Context, _ *river.Job[CompactCountsArgs]) error {
	_, err := store.CompactCounts(ctx, w.pool)
	return err
}

func newCompactCountsJob() *river.PeriodicJob {
	return leaderEvery(CompactInterval, CompactCountsArgs{})
}

// PruneEvery is how often the fleet prunes on its own (BULKASSIGN_RETENTION).
const PruneEvery = 24 * time.Hour

// pruneTick is how often the leader asks whether the day's prune is due:
// the day is counted on the database's clock (store.ClaimDailyPrune), so a
// new leader neither repeats nor skips a day's prune.
const pruneTick = time.Hour

// PruneArgs is the periodic prune job.
type PruneArgs struct{}

// Kind is the River job kind.
func (PruneArgs) Kind() string { return "bulkassign_prune" }

// InsertOpts puts the prune on the maintenance queue, one attempt: the next
// tick finishes what a failed one left (store.Prune resumes cut prunes).
func (PruneArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 1}
}

// PruneWorker prunes finished batches older than its retention once a day.
// Every worker registers it (a tick inserted by a leader set up otherwise
// must find a worker); with retention 0 it only finishes cut prunes.
type PruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	pool      *pgxpool.Pool
	log       *slog.Logger
	retention time.Duration
}

// Timeout leaves room for large batches: a prune deletes in short
// transactions and may be cut anywhere; the next one finishes it.
func (w *PruneWorker) Timeout(*river.Job[PruneArgs]) time.Duration { return time.Hour }

// Work prunes when the day's prune is due, and otherwise finishes any
// prune cut short.
func (w *PruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	opts := PruneOptions(w.retention)
	due := false
	if w.retention > 0 {
		var err error
		if due, err = store.ClaimDailyPrune(ctx, w.pool, PruneEvery); err != nil {
			return err
		}
	}
	prune := store.FinishPrunes
	if due {
		prune = store.Prune
	}
	rep, err := prune(ctx, w.pool, opts)
	if err != nil {
		return err
	}
	if due || len(rep.Removed) > 0 {
		w.log.Info("pruned finished batches", "older_than", w.retention, "batches", len(rep.Removed), "rows", rep.Items(),
			"jobs", rep.Jobs(), "kept_unfinished", rep.Unfinished, "kept_latest_runs", rep.LatestRuns, "kept_jobs_running", rep.JobsRunning)
	}
	return nil
}

// PruneOptions are store.Prune's options for the batches of this package's
// jobs: their assign and revert jobs go with them.
func PruneOptions(olderThan time.Duration) store.PruneOptions {
	return store.PruneOptions{OlderThan: olderThan, JobKinds: []string{AssignArgs{}.Kind(), RevertArgs{}.Kind()}}
}

func newPruneJob() *river.PeriodicJob { return leaderEvery(pruneTick, PruneArgs{}) }

package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/store"
)

// Every row ends: whatever stops a row's job for good outside the workers
// (River discarding it after its attempts, a cancel in River UI), the sweep
// ends the row failed with the reason, instead of leaving it running or
// retrying with nothing left to move it.

// QueueMaintenance is the queue of the fleet's own upkeep (the sweep), kept
// apart so that it never waits behind a large batch's rows.
const QueueMaintenance = "bulkassign_maintenance"

// SweepInterval is how often the leader sweeps.
const SweepInterval = time.Minute

// SweepArgs is the periodic sweep job.
type SweepArgs struct{}

// Kind is the River job kind.
func (SweepArgs) Kind() string { return "bulkassign_sweep" }

// InsertOpts puts the sweep on the maintenance queue. Sweeps are
// idempotent, so one left over from a previous leader does no harm.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// SweepWorker ends rows whose job ended outside the workers.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Work sweeps once.
func (w *SweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	res, err := store.Sweep(ctx, w.pool, AssignArgs{}.Kind(), RevertArgs{}.Kind())
	if err != nil {
		// What the chunks before the failure did is kept; River tries the
		// sweep again, and the leader starts a new one every interval.
		w.log.Warn("sweep failed; River retries it, and the next sweep starts within "+SweepInterval.String(),
			"rows", res.Rows, "reverts", res.Reverts, "jobs_looked_at", res.Jobs, "error", err)
		return err
	}
	if res.Rows+res.Reverts > 0 {
		w.log.Warn("ended rows whose River job was discarded or cancelled outside bulkassign",
			"rows", res.Rows, "reverts", res.Reverts)
	}
	return nil
}

func newSweepJob() *river.PeriodicJob { return leaderEvery(SweepInterval, SweepArgs{}) }

// leaderEvery is a periodic job that River's elected leader inserts every
// interval, and once at its start: the fleet's upkeep and schedule ticks.
func leaderEvery(interval time.Duration, args river.JobArgs) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return args, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

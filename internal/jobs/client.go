package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/riverqueue/river/rivertype"
)

// ClientConfig sets up a working River client.
type ClientConfig struct {
	// Workers is the number of rows worked at once by this process.
	Workers int
	// RescueAfter is how long a job may stay running before River's leader
	// hands it to another worker: it is how soon a SIGKILLed worker's rows
	// are finished by the fleet. It must exceed the job timeout; default
	// config.RescueAfter of the job timeout.
	RescueAfter time.Duration
	// FetchPollInterval: how often idle workers look for jobs when no
	// notification arrives; default River's (1 s).
	FetchPollInterval time.Duration
	Logger            *slog.Logger
	// Extra workers and periodic jobs (revert, schedules) are added here.
	Register     func(*river.Workers)
	PeriodicJobs []*river.PeriodicJob
	// Plugins are River hooks and middleware together (metrics).
	Plugins []rivertype.Plugin
	// Retention, when positive, has the leader prune finished batches
	// enqueued longer ago than this once a day (BULKASSIGN_RETENTION).
	Retention time.Duration
}

// NewClient returns a River client that works assignment rows with w.
func NewClient(pool *pgxpool.Pool, w *AssignWorker, cfg ClientConfig) (*river.Client[pgx.Tx], error) {
	if cfg.Workers <= 0 {
		cfg.Workers = config.Defaults.Concurrency
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = config.RescueAfter(w.d.Settings.JobTimeout)
	}
	if err := config.CheckRescueAfter(cfg.RescueAfter, w.d.Settings.JobTimeout); err != nil {
		return nil, fmt.Errorf("rescue-after: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	river.AddWorker(workers, &SweepWorker{pool: pool, log: logger.With("component", "sweep")})
	river.AddWorker(workers, &CompactCountsWorker{pool: pool})
	river.AddWorker(workers, &PruneWorker{pool: pool, log: logger.With("component", "prune"), retention: cfg.Retention})
	if cfg.Register != nil {
		cfg.Register(workers)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			QueueAssign:      {MaxWorkers: cfg.Workers},
			QueueMaintenance: {MaxWorkers: 1},
		},
		Workers:              workers,
		JobTimeout:           w.d.Settings.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		RetryPolicy:          retryPolicy{},
		FetchPollInterval:    cfg.FetchPollInterval,
		PeriodicJobs:         append(upkeepJobs(cfg.Retention), cfg.PeriodicJobs...),
		Logger:               logger,
		Plugins:              cfg.Plugins,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating River client: %w", err)
	}
	return client, nil
}

// NewInsertClient returns a River client that only inserts jobs.
func NewInsertClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("error creating River client: %w", err)
	}
	return client, nil
}

// upkeepJobs are the leader's periodic jobs of the store's upkeep: the
// sweep, the counts' compaction and, with a retention, the daily prune
// (which also finishes prunes cut short).
func upkeepJobs(retention time.Duration) []*river.PeriodicJob {
	out := []*river.PeriodicJob{newSweepJob(), newCompactCountsJob()}
	if retention > 0 {
		out = append(out, newPruneJob())
	}
	return out
}

package worker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// TenantQueuePoll is how often a worker looks for tenants' queues it does
// not serve yet.
const TenantQueuePoll = 2 * time.Second

// serveTenantQueues adds every tenant queue that holds work to client,
// each with WORKER_TENANT_CONCURRENCY workers (the default tenant's with
// WORKER_CONCURRENCY), until ctx ends: rows of a
// tenant first enqueued after the worker started are served within
// TenantQueuePoll. A queue once served stays served.
func (r *Runtime) serveTenantQueues(ctx context.Context, client *river.Client[pgx.Tx]) {
	served := map[string]bool{}
	if id, err := assign.ParseGUID("AZURE_TENANT_ID", r.Deps.DefaultTenant); err == nil {
		served[jobs.TenantQueue(id)] = true // added by Run
	}
	t := time.NewTicker(r.tenantQueuePoll())
	defer t.Stop()
	for {
		queues, err := store.QueuesWithWork(ctx, r.Pool, jobs.TenantQueuePrefix)
		if err != nil && ctx.Err() == nil {
			r.Logger.Warn("cannot list tenants' queues; will try again", "error", err)
		}
		for _, q := range queues {
			if served[q] || !jobs.IsTenantQueue(q) {
				continue
			}
			// The default tenant's queue gets the process's concurrency, as
			// its rows alone used to; every other tenant its own share.
			workers := r.cfg.TenantConcurrency
			if q == jobs.TenantQueue(r.Deps.DefaultTenant) {
				workers = r.cfg.Concurrency
			}
			if err := client.Queues().Add(q, river.QueueConfig{MaxWorkers: workers}); err != nil {
				r.Logger.Warn("cannot serve a tenant's queue", "queue", q, "error", err)
				continue
			}
			served[q] = true
			r.Logger.Info("serving a tenant's queue", "queue", q, "workers", workers)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runtime) tenantQueuePoll() time.Duration {
	if r.TenantQueuePoll > 0 {
		return r.TenantQueuePoll
	}
	return TenantQueuePoll
}

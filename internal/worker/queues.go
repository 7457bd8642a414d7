package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// TenantQueuePoll is how often a worker looks for tenants' queues it does
// not serve yet, and for served ones gone idle.
const TenantQueuePoll = 2 * time.Second

// retireTimeout bounds one try at retiring a queue: River's Remove waits
// for the queue's rows in flight in this process, and a row fetched just
// as the queue went idle may run up to the job timeout. The queue then
// stays stopped (it fetches nothing new) and the next poll tries again.
const retireTimeout = 5 * time.Second

// tenantQueues are the tenants' queues this process serves: each queue
// and when it was last seen holding work.
type tenantQueues struct {
	mu       sync.Mutex
	lastBusy map[string]time.Time
}

// TenantQueuesServed is how many tenants' queues (the default tenant's
// included, when AZURE_TENANT_ID is a tenant id) the process serves now.
func (r *Runtime) TenantQueuesServed() int {
	r.queues.mu.Lock()
	defer r.queues.mu.Unlock()
	return len(r.queues.lastBusy)
}

// serveTenantQueues adds every tenant queue that holds work to client,
// each with WORKER_TENANT_CONCURRENCY workers (the default tenant's with
// WORKER_CONCURRENCY), until ctx ends: rows of a tenant first enqueued
// after the worker started are served within TenantQueuePoll. A queue
// other than the default tenant's that has held no work (no row waiting,
// scheduled, retrying or running anywhere in the fleet) for
// WORKER_TENANT_QUEUE_IDLE is removed from the client (River's
// QueueBundle.Remove stops its producer: its fetch loop, its
// goroutines, its transactions), and its tenant's sign-in and Graph
// client are dropped; rows that come later bring it back within a poll.
func (r *Runtime) serveTenantQueues(ctx context.Context, client *river.Client[pgx.Tx]) {
	q := &r.queues
	q.mu.Lock()
	q.lastBusy = map[string]time.Time{}
	def := ""
	if id, err := assign.ParseGUID("AZURE_TENANT_ID", r.Deps.DefaultTenant); err == nil {
		def = jobs.TenantQueue(id)
		q.lastBusy[def] = time.Now() // added by Run, never retired
	}
	q.mu.Unlock()
	idle := r.cfg.TenantQueueIdle
	if idle <= 0 {
		idle = config.Defaults.TenantQueueIdle
	}
	t := time.NewTicker(r.tenantQueuePoll())
	defer t.Stop()
	for {
		busy, err := store.QueuesWithWork(ctx, r.Pool, jobs.TenantQueuePrefix)
		if err != nil && ctx.Err() == nil {
			r.Logger.Warn("cannot list tenants' queues; will try again", "error", err)
		}
		if err == nil {
			r.addQueues(client, busy, def)
			r.retireQueues(ctx, client, idle, def)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// addQueues serves every queue of busy not served yet, and marks every
// queue of busy as seen busy now.
func (r *Runtime) addQueues(client *river.Client[pgx.Tx], busy []string, def string) {
	q := &r.queues
	now := time.Now()
	for _, name := range busy {
		if !jobs.IsTenantQueue(name) {
			continue
		}
		q.mu.Lock()
		_, served := q.lastBusy[name]
		q.mu.Unlock()
		if !served {
			// The default tenant's queue gets the process's concurrency, as
			// its rows alone used to; every other tenant its own share.
			workers := r.cfg.TenantConcurrency
			if name == def {
				workers = r.cfg.Concurrency
			}
			if err := client.Queues().Add(name, river.QueueConfig{MaxWorkers: workers}); err != nil {
				r.Logger.Warn("cannot serve a tenant's queue", "queue", name, "error", err)
				continue
			}
			r.Logger.Info("serving a tenant's queue", "queue", name, "workers", workers)
		}
		q.mu.Lock()
		q.lastBusy[name] = now
		q.mu.Unlock()
	}
}

// retireQueues removes the served queues (but def) idle for longer than
// idle.
func (r *Runtime) retireQueues(ctx context.Context, client *river.Client[pgx.Tx], idle time.Duration, def string) {
	q := &r.queues
	var retire []string
	q.mu.Lock()
	for name, last := range q.lastBusy {
		if name != def && time.Since(last) > idle {
			retire = append(retire, name)
		}
	}
	q.mu.Unlock()
	for _, name := range retire {
		rctx, cancel := context.WithTimeout(ctx, retireTimeout)
		err := client.Queues().Remove(rctx, name)
		cancel()
		var nf *river.QueueNotFoundError
		if err != nil && !errors.As(err, &nf) {
			if ctx.Err() == nil {
				r.Logger.Info("a tenant's queue still finishes rows; will retire it later", "queue", name, "error", err)
			}
			continue
		}
		q.mu.Lock()
		delete(q.lastBusy, name)
		q.mu.Unlock()
		if tenant, ok := jobs.QueueTenant(name); ok {
			if ts, ok := r.Deps.Tenants.(*tenants); ok {
				ts.forget(tenant)
			}
		}
		r.Logger.Info("retired an idle tenant's queue", "queue", name, "idle_for", idle)
	}
}

func (r *Runtime) tenantQueuePoll() time.Duration {
	if r.TenantQueuePoll > 0 {
		return r.TenantQueuePoll
	}
	return TenantQueuePoll
}

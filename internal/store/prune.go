package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Retention: enqueue prune (and the leader's daily prune,
// BULKASSIGN_RETENTION) removes finished batches older than an age. A batch
// is prunable when every row and every revert is final, no River job of it
// may still run, and it is not the latest run of a schedule. Pruning one
// first deletes its batches row (recording it in batch_prunes) in one short
// transaction, so it is gone from every command and from the view at once,
// then deletes its items, history, claims and River jobs in transactions of
// PruneChunk rows, so no lock is held for long and workers of other batches
// never wait on it; a prune cut short is finished by the next one.

// PruneChunk is how many item rows (and River jobs) one transaction of a
// prune deletes.
const PruneChunk = 10_000

// PruneOptions say what Prune removes.
type PruneOptions struct {
	// OlderThan: batches enqueued more than this long ago (by the
	// database's clock) are removed when finished.
	OlderThan time.Duration
	// JobKinds are the River job kinds whose jobs belong to a batch's rows
	// (args {"batch": id, "row": n}); they go with the batch.
	JobKinds []string
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Removed, when set, is called for each batch once it is removed (or,
	// in a dry run, would be).
	Removed func(PrunedBatch)
}

// PrunedBatch is one batch Prune removed.
type PrunedBatch struct {
	ID         string
	Source     string
	RowCount   int
	EnqueuedAt time.Time
	// Items and Jobs are the item rows and River jobs deleted; in a dry
	// run, Items is the rows the batch holds and Jobs 0.
	Items, Jobs int64
	// Resumed: the batch was removed by a prune cut short, finished now.
	Resumed bool
}

// PruneReport is what Prune did.
type PruneReport struct {
	// Cutoff is the database time batches were enqueued before.
	Cutoff  time.Time
	Removed []PrunedBatch
	// Kept older batches: rows or reverts not final (Unfinished), the latest
	// run of a schedule (LatestRuns), or jobs still running (JobsRunning).
	Unfinished, LatestRuns, JobsRunning int
}

// Items sums the item rows removed.
func (r PruneReport) Items() int64 {
	var n int64
	for _, b := range r.Removed {
		n += b.Items
	}
	return n
}

// Jobs sums the River jobs removed.
func (r PruneReport) Jobs() int64 {
	var n int64
	for _, b := range r.Removed {
		n += b.Jobs
	}
	return n
}

// Prune removes the finished batches enqueued more than o.OlderThan ago,
// oldest first, after finishing any prune that was cut short.
func Prune(ctx context.Context, pool *pgxpool.Pool, o PruneOptions) (PruneReport, error) {
	if o.OlderThan < 0 {
		return PruneReport{}, errors.New("prune: the age must not be negative")
	}
	var rep PruneReport
	if !o.DryRun {
		var err error
		if rep, err = FinishPrunes(ctx, pool, o); err != nil {
			return rep, err
		}
	}
	cands, cutoff, err := pruneCandidates(ctx, pool, o.OlderThan, "")
	if err != nil {
		return rep, err
	}
	rep.Cutoff = cutoff
	for _, c := range cands {
		switch {
		case c.latestRun:
			rep.LatestRuns++
			continue
		case c.open > 0:
			rep.Unfinished++
			continue
		}
		if o.DryRun {
			b := c.PrunedBatch
			b.Items = int64(b.RowCount)
			rep.Removed = append(rep.Removed, b)
			if o.Removed != nil {
				o.Removed(b)
			}
			continue
		}
		b, verdict, err := removeBatch(ctx, pool, c.ID, o.OlderThan, o.JobKinds)
		if err != nil {
			return rep, err
		}
		switch verdict {
		case pruneGone:
			continue
		case pruneLatestRun:
			rep.LatestRuns++
			continue
		case pruneUnfinished:
			rep.Unfinished++
			continue
		case pruneJobsRunning:
			rep.JobsRunning++
			continue
		}
		if err := rep.remove(ctx, pool, o, b); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// FinishPrunes finishes the prunes that were cut short (their batches are
// gone already; their rows are not), reporting them as Resumed.
func FinishPrunes(ctx context.Context, pool *pgxpool.Pool, o PruneOptions) (PruneReport, error) {
	var rep PruneReport
	unfinished, err := unfinishedPrunes(ctx, pool)
	if err != nil {
		return rep, err
	}
	for _, b := range unfinished {
		b.Resumed = true
		if err := rep.remove(ctx, pool, o, b); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// remove deletes the rows of b, a batch whose batches row is gone, and
// reports it.
func (rep *PruneReport) remove(ctx context.Context, pool *pgxpool.Pool, o PruneOptions, b PrunedBatch) error {
	var err error
	if b.Items, b.Jobs, err = deletePrunedRows(ctx, pool, b.ID, o.JobKinds); err != nil {
		return err
	}
	rep.Removed = append(rep.Removed, b)
	if o.Removed != nil {
		o.Removed(b)
	}
	return nil
}

type pruneCandidate struct {
	PrunedBatch
	latestRun bool
	open      int64 // rows and reverts not final
}

// pruneCandidates lists the batches enqueued before now - olderThan (only
// batchID when set), oldest first, with what keeps each: being the latest
// run of its schedule, rows or reverts not final (from the kept counts).
func pruneCandidates(ctx context.Context, q Querier, olderThan time.Duration, batchID string) ([]pruneCandidate, time.Time, error) {
	rows, err := q.Query(ctx, `WITH latest AS (
			SELECT DISTINCT ON (schedule) id FROM batches WHERE schedule IS NOT NULL
			ORDER BY schedule, created_at DESC, id DESC
		), last AS (
			SELECT last_batch_id AS id FROM schedules WHERE last_batch_id IS NOT NULL
		)
		SELECT b.id::text, b.source, b.row_count, b.created_at,
			b.id IN (SELECT id FROM latest UNION ALL SELECT id FROM last),
			coalesce((SELECT sum(c.n) FROM batch_counts c WHERE c.batch_id = b.id
				AND (NOT bulkassign_final(c.status) OR (c.revert_status <> '' AND NOT bulkassign_revert_final(c.revert_status)))), 0),
			now() - $1::interval
		FROM batches b
		WHERE b.created_at < now() - $1::interval AND ($2::uuid IS NULL OR b.id = $2::uuid)
		ORDER BY b.created_at, b.id`, olderThan, nullable(batchID))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("error listing batches to prune: %w", err)
	}
	defer rows.Close()
	var out []pruneCandidate
	var cutoff time.Time
	for rows.Next() {
		var c pruneCandidate
		if err := rows.Scan(&c.ID, &c.Source, &c.RowCount, &c.EnqueuedAt, &c.latestRun, &c.open, &cutoff); err != nil {
			return nil, time.Time{}, fmt.Errorf("error listing batches to prune: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("error listing batches to prune: %w", err)
	}
	if cutoff.IsZero() {
		if err := q.QueryRow(ctx, `SELECT now() - $1::interval`, olderThan).Scan(&cutoff); err != nil {
			return nil, time.Time{}, fmt.Errorf("error reading the database's clock: %w", err)
		}
	}
	return out, cutoff, nil
}

type pruneVerdict int

const (
	pruneRemoved pruneVerdict = iota
	pruneGone                 // removed meanwhile, by another prune
	pruneLatestRun
	pruneUnfinished
	pruneJobsRunning
)

// removeBatch deletes the batch's row, its counts and (by cascade) its
// assignment lists, and records it in batch_prunes, in one transaction that
// holds the batch's row (as retry, cancel and revert do) while it checks
// again that the batch may go.
func removeBatch(ctx context.Context, pool *pgxpool.Pool, batchID string, olderThan time.Duration, kinds []string) (PrunedBatch, pruneVerdict, error) {
	var b PrunedBatch
	verdict := pruneRemoved
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := LockBatch(ctx, tx, batchID); errors.Is(err, ErrNotFound) {
			verdict = pruneGone
			return nil
		} else if err != nil {
			return err
		}
		cands, _, err := pruneCandidates(ctx, tx, olderThan, batchID)
		if err != nil {
			return err
		}
		switch {
		case len(cands) == 0:
			verdict = pruneGone
			return nil
		case cands[0].latestRun:
			verdict = pruneLatestRun
			return nil
		case cands[0].open > 0:
			verdict = pruneUnfinished
			return nil
		}
		b = cands[0].PrunedBatch
		// A row canceled while its create was in flight is final, yet its
		// job still runs and may record the create: wait for it.
		var live bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM river_job WHERE kind = ANY($1)
				AND args @> jsonb_build_object('batch', $2::text) AND state::text = ANY($3))`,
			kinds, batchID, QueueStates).Scan(&live); err != nil {
			return fmt.Errorf("error reading the batch's jobs: %w", err)
		}
		if live {
			verdict = pruneJobsRunning
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO batch_prunes (batch_id, source, row_count, enqueued_at) VALUES ($1, $2, $3, $4)`,
			batchID, b.Source, b.RowCount, b.EnqueuedAt); err != nil {
			return fmt.Errorf("error recording the prune of batch %s: %w", batchID, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM batches WHERE id = $1`, batchID); err != nil {
			return fmt.Errorf("error deleting batch %s: %w", batchID, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM batch_counts WHERE batch_id = $1`, batchID); err != nil {
			return fmt.Errorf("error deleting the counts of batch %s: %w", batchID, err)
		}
		return nil
	})
	if err != nil {
		return b, verdict, fmt.Errorf("error pruning batch %s: %w", batchID, err)
	}
	return b, verdict, nil
}

// unfinishedPrunes lists the batches whose prune was cut short.
func unfinishedPrunes(ctx context.Context, q Querier) ([]PrunedBatch, error) {
	rows, err := q.Query(ctx, `SELECT batch_id::text, source, row_count, enqueued_at FROM batch_prunes ORDER BY started_at, batch_id`)
	if err != nil {
		return nil, fmt.Errorf("error listing unfinished prunes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PrunedBatch, error) {
		var b PrunedBatch
		err := r.Scan(&b.ID, &b.Source, &b.RowCount, &b.EnqueuedAt)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("error listing unfinished prunes: %w", err)
	}
	return out, nil
}

// deletePrunedRows deletes what is left of a batch removed by removeBatch:
// its items, item history and target claims by ranges of PruneChunk row
// numbers along their primary keys, then its River jobs PruneChunk at a
// time, each chunk in a transaction of its own; then its batch_prunes row.
func deletePrunedRows(ctx context.Context, q Querier, batchID string, kinds []string) (items, jobs int64, err error) {
	var maxRow int64
	if err := q.QueryRow(ctx, `SELECT greatest(
			(SELECT coalesce(max(row), 0) FROM items WHERE batch_id = $1),
			(SELECT coalesce(max(row), 0) FROM item_history WHERE batch_id = $1),
			(SELECT coalesce(max(row), 0) FROM target_claims WHERE batch_id = $1))`, batchID).Scan(&maxRow); err != nil {
		return 0, 0, fmt.Errorf("error pruning batch %s: %w", batchID, err)
	}
	for lo := int64(0); lo < maxRow; lo += PruneChunk {
		var n int64
		if err := q.QueryRow(ctx, `WITH i AS (
				DELETE FROM items WHERE batch_id = $1 AND row > $2 AND row <= $3 RETURNING 1
			), h AS (
				DELETE FROM item_history WHERE batch_id = $1 AND row > $2 AND row <= $3
			), c AS (
				DELETE FROM target_claims WHERE batch_id = $1 AND row > $2 AND row <= $3
			)
			SELECT count(*) FROM i`, batchID, lo, lo+PruneChunk).Scan(&n); err != nil {
			return items, jobs, fmt.Errorf("error pruning the rows of batch %s: %w", batchID, err)
		}
		items += n
	}
	// The batch's jobs are found once through River's index on args, then
	// deleted by id: finding them again for every chunk would walk the
	// entries of the jobs already deleted each time.
	rows, err := q.Query(ctx, `SELECT id FROM river_job WHERE kind = ANY($1) AND args @> jsonb_build_object('batch', $2::text)
		ORDER BY id`, kinds, batchID)
	if err != nil {
		return items, jobs, fmt.Errorf("error finding the jobs of batch %s: %w", batchID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return items, jobs, fmt.Errorf("error finding the jobs of batch %s: %w", batchID, err)
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), PruneChunk)]
		ids = ids[len(chunk):]
		tag, err := q.Exec(ctx, `DELETE FROM river_job WHERE id = ANY($1) AND NOT (state::text = ANY($2))`, chunk, QueueStates)
		if err != nil {
			return items, jobs, fmt.Errorf("error pruning the jobs of batch %s: %w", batchID, err)
		}
		jobs += tag.RowsAffected()
	}
	if _, err := q.Exec(ctx, `WITH c AS (DELETE FROM batch_counts WHERE batch_id = $1)
		DELETE FROM batch_prunes WHERE batch_id = $1`, batchID); err != nil {
		return items, jobs, fmt.Errorf("error finishing the prune of batch %s: %w", batchID, err)
	}
	return items, jobs, nil
}

// ClaimDailyPrune reports whether the caller is the one to prune now: at
// most once per every for the whole fleet, by the database's clock, however
// many leaders come and go (the claim is a row of sweeps).
func ClaimDailyPrune(ctx context.Context, q Querier, every time.Duration) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `INSERT INTO sweeps (name, swept_until) VALUES ('prune', now())
		ON CONFLICT (name) DO UPDATE SET swept_until = now() WHERE sweeps.swept_until <= now() - $1::interval
		RETURNING true`, every).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("error claiming the daily prune: %w", err)
	}
	return ok, nil
}

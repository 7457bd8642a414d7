-- A results store that stays fast for years of nightly runs: counts kept as
-- rows change (so `batches`, `status`, `--wait` cost the same for any batch
-- and any store), indexes for the documented queries, and retention
-- (`enqueue prune`, BULKASSIGN_RETENTION). The view is not touched: a pruned
-- batch loses its batches row first, and the view joins batches.

-- A batch's rows counted by tenant, status and revert status, kept as delta
-- rows: every statement that inserts, updates or deletes items adds one row
-- per key whose count it changed, with the change (n may be negative). A
-- batch's count is the sum of its rows. No row is ever updated in place, so
-- workers finishing rows of one batch never wait on each other's counter;
-- the leader folds each key's rows into one every few seconds
-- (store.CompactCounts), so a count reads a handful of rows. tenant_id is ''
-- for rows enqueued before rows named a tenant, revert_status '' for rows
-- without a revert.
CREATE TABLE batch_counts (
    batch_id      uuid   NOT NULL,
    tenant_id     text   NOT NULL,
    status        text   NOT NULL,
    revert_status text   NOT NULL,
    n             bigint NOT NULL
);
CREATE INDEX batch_counts_batch ON batch_counts (batch_id);

-- Rows are counted as they are written: enqueue's COPY adds its chunk's
-- counts itself (store.CopyItems: all its rows are queued, counted in Go
-- by tenant, one INSERT a chunk; a trigger capturing each copied row in a
-- transition table cost enqueue a tenth of its speed), and statement-level
-- triggers with transition tables count every update and delete: a
-- batched UPDATE of many rows writes one delta row per key it changed, not
-- one per item; an update that changes no status writes none. COPY (in
-- CopyItems) is the only way rows enter items.
CREATE FUNCTION bulkassign_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
    SELECT batch_id, tenant_id, status, revert_status, sum(d)
    FROM (SELECT batch_id, coalesce(tenant_id, '') AS tenant_id, status, coalesce(revert_status, '') AS revert_status, 1 AS d
          FROM new_items
          UNION ALL
          SELECT batch_id, coalesce(tenant_id, ''), status, coalesce(revert_status, ''), -1
          FROM old_items) c
    GROUP BY 1, 2, 3, 4
    HAVING sum(d) <> 0;
    RETURN NULL;
END
$$;

-- Rows deleted with their batch (enqueue prune deletes the batch first)
-- leave no counts behind.
CREATE FUNCTION bulkassign_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
    SELECT d.batch_id, d.tenant_id, d.status, d.revert_status, -d.n
    FROM (SELECT batch_id, coalesce(tenant_id, '') AS tenant_id, status, coalesce(revert_status, '') AS revert_status,
                 count(*) AS n
          FROM deleted_items
          GROUP BY 1, 2, 3, 4) d
    WHERE EXISTS (SELECT 1 FROM batches b WHERE b.id = d.batch_id);
    RETURN NULL;
END
$$;

CREATE FUNCTION bulkassign_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE batch_counts;
    RETURN NULL;
END
$$;

-- The triggers first: CREATE TRIGGER holds off writers of items until this
-- migration commits, so the backfill below misses no change.
CREATE TRIGGER items_count_updated AFTER UPDATE ON items
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION bulkassign_count_updated();
CREATE TRIGGER items_count_deleted AFTER DELETE ON items
    REFERENCING OLD TABLE AS deleted_items FOR EACH STATEMENT EXECUTE FUNCTION bulkassign_count_deleted();
CREATE TRIGGER items_count_truncated AFTER TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION bulkassign_count_truncated();

-- Batches enqueued before this migration: counted once, here.
INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
SELECT batch_id, coalesce(tenant_id, ''), status, coalesce(revert_status, ''), count(*)
FROM items
GROUP BY 1, 2, 3, 4;

-- The documented queries. Both indexes are partial on statuses a row only
-- reaches after enqueue, so the COPY that enqueues a file writes neither.
--
-- `enqueue results BATCH --status failed,canceled` (and the count of rows a
-- retry can help) reads only those rows of the batch. Other statuses
-- (created, already_assigned: most rows) are read along the primary key.
CREATE INDEX items_unsuccessful ON items (batch_id, status, row) WHERE status IN ('failed', 'canceled');
-- The README's "failures in the last day" across every batch. Its predicate
-- names updated_at, which that query bounds, so that a query without a
-- bound on updated_at (a batch's failed rows) cannot use it: the planner
-- would AND a scan of every failed row in the store into the batch's.
CREATE INDEX items_failed_updated ON items (updated_at) WHERE status = 'failed' AND updated_at IS NOT NULL;
-- The newest batches, in the order `enqueue batches` lists them; also the
-- README's "latest batch".
CREATE INDEX batches_created ON batches (created_at DESC, id);

-- Batches being pruned: enqueue prune (or the leader's daily prune) deletes
-- the batch's row and records it here in one transaction, so the batch is
-- gone from every command and from the view at once; its items, history,
-- claims and River jobs are then deleted in short transactions of a few
-- thousand rows, and the row here last. A prune cut short is finished by the
-- next.
CREATE TABLE batch_prunes (
    batch_id    uuid        PRIMARY KEY,
    source      text        NOT NULL,
    row_count   integer     NOT NULL,
    enqueued_at timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now()
);

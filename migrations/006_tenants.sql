-- Many tenants in one fleet: every row names the tenant it writes to.

-- The row's tenant (directory) id, a canonical lower-case GUID: the one the
-- row named (tenant_id, tenantId), else the default tenant (AZURE_TENANT_ID)
-- that enqueue, or a schedule's run, filled in. NULL only for rows enqueued
-- before this migration, which went to the one tenant the fleet served
-- then. text, as target_claims.tenant_id. A nullable column without a
-- default: adding it rewrites nothing, and COPY writes one more value a row.
--
-- No index: `enqueue results BATCH --tenant T` reads the batch by its
-- primary key in row order, as the unfiltered export does, and filters as
-- it streams; an index on (batch_id, tenant_id) would be paid for by every
-- enqueue's COPY.
ALTER TABLE items ADD COLUMN tenant_id text;

-- Columns are appended at the end only (as in 003 and 005).
CREATE OR REPLACE VIEW assignment_results AS
SELECT i.batch_id,
       i.row AS item_id,
       i.line,
       b.source,
       i.configuration_id,
       i.path,
       i.target_type,
       i.group_id,
       i.collection_id,
       i.filter_id,
       i.filter_type,
       i.status,
       bulkassign_final(i.status) AS final,
       i.http_status,
       i.assignment_id,
       i.attempts,
       i.error_code,
       i.error_message,
       i.request_id,
       i.created_at,
       i.updated_at,
       i.finished_at,
       i.retries,
       i.revert_status,
       i.revert_http_status,
       i.revert_error_code,
       i.revert_error,
       i.revert_request_id,
       i.reverted_at,
       i.row,
       i.tenant_id
FROM items i
JOIN batches b ON b.id = i.batch_id;

-- The web console (issue 11): who started each batch, and one batch per
-- submitted review however often the form is sent.

-- Who started the batch: the console user's UPN (or basic-auth user), the
-- OS user@host of the enqueue command, or schedule:<name> for a scheduled
-- run. NULL for batches enqueued before this migration. A column without a
-- default: adding it rewrites nothing.
ALTER TABLE batches ADD COLUMN created_by text;

-- The console's enqueue token (the review it was submitted from): a double
-- click or a resubmitted form finds the batch the first submit made instead
-- of making a second. NULL for every other batch; the index holds only the
-- console's.
ALTER TABLE batches ADD COLUMN request_key text;
CREATE UNIQUE INDEX batches_request_key ON batches (request_key) WHERE request_key IS NOT NULL;

-- Columns are appended at the end only (as in 003, 005 and 006).
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
       i.tenant_id,
       b.created_by
FROM items i
JOIN batches b ON b.id = i.batch_id;

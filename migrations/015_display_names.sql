-- Names on every output (issue 23, item 5): a row that gives ids shows
-- the display names Graph holds for them (configuration, group, filter)
-- and its tenant's, beside the ids.
--
-- What Graph named one object of a batch's tenant: read once per batch for
-- the whole fleet, like name_lookups (011, the other way round: a name to
-- its ids) and leased the same way: one worker reads while the batch's
-- other rows on the id go on without waiting. kind is configuration,
-- group, filter or tenant (whose id is ''); name is NULL when Graph gave
-- none (the object is gone, the app may not read it: http_status says),
-- and while a reader holds the lease (reader set). A name read that fails
-- never fails a row: its name is absent, shown as the id.
CREATE TABLE display_names (
    batch_id    uuid        NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    tenant_id   text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('configuration', 'group', 'filter', 'tenant')),
    id          text        NOT NULL,
    name        text,
    http_status integer,
    request_id  text,
    reader      uuid,
    lease_until timestamptz,
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, tenant_id, kind, id)
);

-- configuration_name, group_name and filter_name now hold the name to show:
-- the one the row gave (as before), else the one Graph gave the id the
-- row gave. The *_name_given columns say which: true for a name the row
-- gave (and the worker resolved to the id), false for Graph's, NULL for
-- none. tenant_name is the row's tenant's display name (GET
-- /organization). Each join is on display_names' whole key, so a query
-- that reads none of the names skips it (join removal). Columns are
-- appended at the end only (as in 003, 005, 006, 008 and 011).
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
       b.created_by,
       coalesce(i.action, 'assign') AS action,
       coalesce(i.configuration_name, dc.name) AS configuration_name,
       coalesce(i.group_name, dg.name) AS group_name,
       coalesce(i.filter_name, df.name) AS filter_name,
       i.revert_assignment_id,
       dt.name AS tenant_name,
       CASE WHEN i.configuration_name IS NOT NULL THEN true WHEN dc.name IS NOT NULL THEN false END
           AS configuration_name_given,
       CASE WHEN i.group_name IS NOT NULL THEN true WHEN dg.name IS NOT NULL THEN false END AS group_name_given,
       CASE WHEN i.filter_name IS NOT NULL THEN true WHEN df.name IS NOT NULL THEN false END AS filter_name_given
FROM items i
JOIN batches b ON b.id = i.batch_id
LEFT JOIN display_names dc ON dc.batch_id = i.batch_id AND dc.tenant_id = coalesce(i.tenant_id, '')
    AND dc.kind = 'configuration' AND dc.id = i.configuration_id::text
LEFT JOIN display_names dg ON dg.batch_id = i.batch_id AND dg.tenant_id = coalesce(i.tenant_id, '')
    AND dg.kind = 'group' AND dg.id = i.group_id::text
LEFT JOIN display_names df ON df.batch_id = i.batch_id AND df.tenant_id = coalesce(i.tenant_id, '')
    AND df.kind = 'filter' AND df.id = i.filter_id::text
LEFT JOIN display_names dt ON dt.batch_id = i.batch_id AND dt.tenant_id = coalesce(i.tenant_id, '')
    AND dt.kind = 'tenant' AND dt.id = '';

-- Lists in admins' words (issue 12): a row may name its configuration,
-- group and filter by display name instead of id, and may remove its
-- target instead of assigning it.

-- Two more final statuses, for remove rows: removed (the row deleted its
-- target's assignment) and not_assigned (there was none to delete). The
-- list of statuses is assign.Statuses in Go; the CHECK and
-- bulkassign_final() are its SQL copies (TestFinalMatchesSQL and
-- TestStatusCheckMatchesGo keep them equal). NOT VALID: existing rows are
-- not re-checked (they hold older, narrower statuses), new writes are.
ALTER TABLE items DROP CONSTRAINT items_status_check,
    ADD CONSTRAINT items_status_check CHECK (status IN ('queued', 'running', 'retrying', 'created', 'already_assigned',
        'removed', 'not_assigned', 'failed', 'canceled')) NOT VALID;

CREATE OR REPLACE FUNCTION bulkassign_final(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT status IN ('created', 'already_assigned', 'removed', 'not_assigned', 'failed', 'canceled') $$;

-- The row's action: NULL assigns (every row before this migration, and the
-- default), 'remove' deletes the assignment of exactly this target. The
-- names the row gave instead of ids; the id columns are filled in once a
-- worker has resolved the names in the row's tenant, so a row keeps both
-- the name given and the id used. A configuration given by name has no id
-- until then: the column loses NOT NULL. Nullable columns without
-- defaults: adding them rewrites nothing.
ALTER TABLE items
    ALTER COLUMN configuration_id DROP NOT NULL,
    ADD COLUMN action text CHECK (action = 'remove'),
    ADD COLUMN configuration_name text,
    ADD COLUMN group_name text,
    ADD COLUMN filter_name text,
    -- the assignment a revert of a remove row created again
    ADD COLUMN revert_assignment_id text;

-- What a display name resolved to in a tenant, read from Graph once per
-- batch for the whole fleet, like assignment_lists (and leased the same
-- way: one worker reads while the batch's other rows on the name wait).
-- kind is configuration, group or filter; ids the matching objects' ids
-- (none: not found; two or more: ambiguous), capped; found is NULL while
-- a reader holds the lease.
CREATE TABLE name_lookups (
    batch_id    uuid        NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    tenant_id   text        NOT NULL,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    ids         text[],
    more        boolean     NOT NULL DEFAULT false,
    request_id  text,
    reader      uuid,
    lease_until timestamptz,
    read_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, tenant_id, kind, name)
);

-- Columns are appended at the end only (as in 003, 005, 006 and 008).
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
       i.configuration_name,
       i.group_name,
       i.filter_name,
       i.revert_assignment_id
FROM items i
JOIN batches b ON b.id = i.batch_id;

-- Operating batches after they were enqueued: retry, cancel and revert.

-- retries counts the times `enqueue retry` re-ran the row; the outcome each
-- earlier run ended with is kept in item_history. The revert_* columns are
-- the row's revert: set only for rows whose assignment this batch created,
-- and only once `enqueue revert` was asked for the batch.
ALTER TABLE items
    ADD COLUMN retries            integer NOT NULL DEFAULT 0,
    ADD COLUMN revert_status      text
        CHECK (revert_status IN ('queued', 'running', 'retrying', 'reverted', 'failed', 'canceled')),
    ADD COLUMN revert_http_status integer,
    ADD COLUMN revert_error_code  text,
    ADD COLUMN revert_error       text,
    ADD COLUMN revert_request_id  text,
    ADD COLUMN revert_errors      integer NOT NULL DEFAULT 0,
    ADD COLUMN revert_started_at  timestamptz,
    ADD COLUMN reverted_at        timestamptz;

-- One row per finished run of an item that `enqueue retry` sent round again:
-- the outcome that run ended with, as the item held it.
CREATE TABLE item_history (
    batch_id      uuid        NOT NULL,
    row           integer     NOT NULL,
    run           integer     NOT NULL, -- 0 is the first run, 1 the first retry, ...
    status        text        NOT NULL,
    http_status   integer,
    attempts      integer     NOT NULL,
    errors        integer     NOT NULL,
    error_code    text,
    error_message text,
    request_id    text,
    started_at    timestamptz,
    finished_at   timestamptz,
    archived_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, row, run)
);

-- Columns are appended at the end only: existing ones keep their place,
-- names and meaning (CREATE OR REPLACE VIEW requires it, and so do users).
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
       i.status IN ('created', 'already_assigned', 'failed', 'canceled') AS final,
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
       i.reverted_at
FROM items i
JOIN batches b ON b.id = i.batch_id;

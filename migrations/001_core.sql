-- One batch per enqueued file (or scheduled run).
CREATE TABLE batches (
    id             uuid PRIMARY KEY,
    source         text        NOT NULL,
    sha256         text        NOT NULL,
    bytes          bigint      NOT NULL,
    row_count      integer     NOT NULL,
    duplicate_rows integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- One item per unique input row: the row is the truth about its outcome.
-- No foreign key to batches: its per-row trigger would triple the cost of
-- the COPY that enqueues a file; items are only written in the transaction
-- that writes their batch.
CREATE TABLE items (
    batch_id          uuid        NOT NULL,
    row               integer     NOT NULL,
    line              integer     NOT NULL,
    configuration_id  uuid        NOT NULL,
    path              text        NOT NULL DEFAULT '',
    target_type       text        NOT NULL,
    group_id          uuid,
    collection_id     text,
    filter_id         uuid,
    filter_type       text,
    status            text        NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'retrying', 'created', 'already_assigned', 'failed', 'canceled')),
    http_status       integer,
    assignment_id     text,
    attempts          integer     NOT NULL DEFAULT 0,
    errors            integer     NOT NULL DEFAULT 0,
    error_code        text,
    error_message     text,
    request_id        text,
    client_request_id text,
    -- Set before a create leaves the process and cleared once its answer is
    -- known: while set, the create may have been applied unseen.
    intent_request_id text,
    intent_at         timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, row)
);


-- The assignments found on one configuration path, read once per batch and
-- kept current with what the batch itself creates. keys maps a target key
-- (assign.Target.Key) to the assignment id.
CREATE TABLE assignment_lists (
    batch_id         uuid        NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    configuration_id uuid        NOT NULL,
    path             text        NOT NULL,
    found            boolean     NOT NULL,
    http_status      integer,
    error_code       text,
    error_message    text,
    request_id       text,
    keys             jsonb       NOT NULL DEFAULT '{}',
    read_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, configuration_id, path)
);

-- The fleet's shared Graph budgets (token buckets), one row per limit.
CREATE TABLE rate_limits (
    name             text             PRIMARY KEY,
    tokens           double precision NOT NULL,
    factor           double precision NOT NULL DEFAULT 1,
    paused_until     timestamptz      NOT NULL DEFAULT 'epoch',
    last_throttle_at timestamptz      NOT NULL DEFAULT 'epoch',
    throttle_streak  integer          NOT NULL DEFAULT 0,
    updated_at       timestamptz      NOT NULL DEFAULT clock_timestamp()
);

-- The stable query surface for users and reports. Columns may be added;
-- existing ones keep their names and meaning.
CREATE VIEW assignment_results AS
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
       i.finished_at
FROM items i
JOIN batches b ON b.id = i.batch_id;

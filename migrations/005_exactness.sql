-- Exactness across batches, runs and restarts.

-- Which statuses are final is decided here once for SQL (and once for Go,
-- in assign.Status.Final): every query and the view call these.
CREATE FUNCTION bulkassign_final(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT status IN ('created', 'already_assigned', 'failed', 'canceled') $$;

CREATE FUNCTION bulkassign_revert_final(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT status IN ('reverted', 'failed', 'canceled') $$;

-- The run that holds a row: a worker sets run_id and run_until (database
-- clock) when it starts the row, and every write of that run checks it.
-- A second run of the same row (a job rescued while its first run still
-- lives) finds the row held and backs off instead of posting beside it.
ALTER TABLE items
    ADD COLUMN run_id    uuid,
    ADD COLUMN run_until timestamptz;

-- One claim per target on a configuration path, across every batch: the
-- row about to create it. A row of another batch that finds the claim does
-- not post: it waits for the holder, or ends already_assigned with the
-- holder's assignment. tenant_id is '' for the default tenant.
CREATE TABLE target_claims (
    tenant_id        text        NOT NULL DEFAULT '',
    configuration_id uuid        NOT NULL,
    path             text        NOT NULL,
    target_key       text        NOT NULL,
    batch_id         uuid        NOT NULL,
    row              integer     NOT NULL,
    claimed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, configuration_id, path, target_key)
);
CREATE INDEX target_claims_holder ON target_claims (batch_id, row);

-- How far the sweep that ends rows whose River job was discarded or
-- cancelled outside bulkassign has looked (by the jobs' finalized_at).
CREATE TABLE sweeps (
    name        text        PRIMARY KEY,
    swept_until timestamptz NOT NULL
);

-- The comment on assignment_lists in 001 said the batch's own creates are
-- added to the list; they are not (intake removes duplicate rows, and
-- target_claims now settles rows of different batches).
COMMENT ON TABLE assignment_lists IS
    'The assignments found on one configuration path, read from Graph once per batch (and again for a row whose create may have applied unseen). keys maps a target key to the assignment id. read_at is the database time the read began.';

-- The view's "final" column moves to bulkassign_final(), and the view gains
-- "row" (one name per thing: the row's number in its batch is row in
-- items, River's args and Go; item_id, its first name in the view, stays
-- for queries written against it): both in 006, which re-creates the view
-- once for this and for the rows' tenant.

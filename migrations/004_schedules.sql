-- Lists enqueued again and again on a cron schedule (enqueue schedule add).
-- The list itself is kept, as given, so every run enqueues the same bytes.
CREATE TABLE schedules (
    name          text        PRIMARY KEY,
    cron          text        NOT NULL,
    timezone      text        NOT NULL,
    source        text        NOT NULL,
    format        text        NOT NULL,
    content       bytea       NOT NULL,
    sha256        text        NOT NULL,
    row_count     integer     NOT NULL,
    -- last_run_at is the slot last run (at first: when the schedule was
    -- added); next_run_at is the cron's first slot after it. A run is due
    -- when next_run_at has passed, and runs once, for the latest slot passed,
    -- however many were missed.
    last_run_at   timestamptz NOT NULL,
    next_run_at   timestamptz NOT NULL,
    last_batch_id uuid,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The schedule a batch was enqueued by; NULL for files enqueued by hand.
ALTER TABLE batches ADD COLUMN schedule text;

CREATE INDEX batches_schedule ON batches (schedule, created_at) WHERE schedule IS NOT NULL;

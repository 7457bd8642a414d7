-- A batch's list of a configuration path is read from Graph by one worker
-- of the fleet while the others wait for it. The wait used to be an
-- advisory lock held in a transaction across the Graph request, which kept
-- a connection per waiting row; now the reader leaves a lease on the
-- list's row instead and holds no connection while it reads.
--
-- A row being read has reader and lease_until set and found NULL; read_at
-- is then when the read began (taken before the request was sent). Storing
-- the list clears reader and lease_until. Another worker may take a lease
-- over once lease_until (database clock) has passed: its reader died.
ALTER TABLE assignment_lists
    ALTER COLUMN found DROP NOT NULL,
    ADD COLUMN reader      uuid,
    ADD COLUMN lease_until timestamptz,
    ADD CONSTRAINT assignment_lists_read_or_reading
        CHECK ((found IS NULL) = (reader IS NOT NULL) AND (reader IS NULL) = (lease_until IS NULL));

COMMENT ON TABLE assignment_lists IS
    'The assignments found on one configuration path, read from Graph once per batch (and again for a row whose create may have applied unseen). keys maps a target key to the assignment id. read_at is the database time the read began. A row with reader set (found NULL) is a read in progress, leased until lease_until.';

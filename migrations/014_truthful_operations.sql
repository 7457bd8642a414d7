-- Operations that tell the truth (issue 23): cancel is true, and waiting
-- is not an error.
--
-- Two more statuses, neither final: waiting (a row held back by the limit,
-- a throttle, or another row's write or read: no attempt spent, no error)
-- and cancelling (canceled while a write of the row may be in flight: it
-- ends created or removed if that write applied, canceled if not, and no
-- new write starts for it). A revert gets cancelling too. The lists are
-- assign.Statuses and assign.RevertStatuses in Go (TestStatusesMatchSQL).
-- NOT VALID: existing rows hold older, narrower statuses; new writes are
-- checked, and no scan of items holds its writers back.
ALTER TABLE items DROP CONSTRAINT items_status_check,
    ADD CONSTRAINT items_status_check CHECK (status IN ('queued', 'running', 'waiting', 'retrying', 'cancelling',
        'created', 'already_assigned', 'removed', 'not_assigned', 'failed', 'canceled')) NOT VALID;
ALTER TABLE items DROP CONSTRAINT items_revert_status_check,
    ADD CONSTRAINT items_revert_status_check CHECK (revert_status IN ('queued', 'running', 'retrying', 'cancelling',
        'reverted', 'failed', 'canceled')) NOT VALID;

-- Whether a run may start a new write for a row in status: the SQL copy of
-- assign.Status.MayWrite (TestStatusesMatchSQL).
CREATE FUNCTION bulkassign_may_write(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT NOT bulkassign_final(status) AND status <> 'cancelling' $$;

-- A round of claims, as in 012, except that a row being cancelled is
-- refused: cancel asked it to write nothing more.
CREATE OR REPLACE FUNCTION bulkassign_claims(
    p_tenant text[], p_configuration uuid[], p_path text[], p_target text[],
    p_batch uuid[], p_row integer[], p_run uuid[], p_hold interval, p_request text[], p_read_at timestamptz[])
RETURNS TABLE (k integer, verdict text, holder_batch uuid, holder_row integer, holder_status text, holder_assignment text)
LANGUAGE plpgsql AS $$
DECLARE
    free    integer[];
    claimed integer[];
    c       record;
    e       integer;
BEGIN
    -- The rows this round may take, locked in key order: until the round
    -- commits, no cancel or outcome changes them under it. Two runs of
    -- one row in one round (a job rescued into the process that runs it):
    -- the first takes it, the other is refused.
    SELECT coalesce(array_agg(f.k ORDER BY f.k), '{}') INTO free FROM (
        SELECT DISTINCT ON (l.b, l.r) l.k FROM (
            SELECT o.b, o.r, o.k FROM unnest(p_batch, p_row, p_run) WITH ORDINALITY AS o(b, r, run, k)
              JOIN items i ON i.batch_id = o.b AND i.row = o.r
             WHERE bulkassign_may_write(i.status) AND bulkassign_free(i.run_id, i.run_until, o.run)
             ORDER BY o.b, o.r
               FOR UPDATE OF i) l
         ORDER BY l.b, l.r, l.k) f;
    -- Targets nobody holds, the common case, in one statement (in target
    -- order): a row whose claim is inserted holds it. Of two rows of the
    -- round on one target, the first is inserted and the second goes on
    -- to the rule below, which finds the first holding it.
    WITH inserted AS (
        INSERT INTO target_claims (tenant_id, configuration_id, path, target_key, batch_id, row)
        SELECT u.t, u.cfg, u.p, u.tk, p_batch[u.k], p_row[u.k]
          FROM unnest(p_tenant, p_configuration, p_path, p_target) WITH ORDINALITY AS u(t, cfg, p, tk, k)
         WHERE u.k = ANY (free)
         ORDER BY u.t, u.cfg, u.p, u.tk, u.k
        ON CONFLICT DO NOTHING
        RETURNING batch_id, row)
    SELECT coalesce(array_agg(f.k), '{}') INTO claimed
      FROM unnest(p_batch, p_row) WITH ORDINALITY AS f(b, r, k)
      JOIN inserted n ON n.batch_id = f.b AND n.row = f.r
     WHERE f.k = ANY (free);
    RETURN QUERY SELECT x.k::integer, 'claimed'::text, NULL::uuid, NULL::integer, NULL::text, NULL::text
      FROM unnest(claimed) AS x(k);
    -- The others, one by one, by the rule of one claim.
    FOR e IN SELECT u.k FROM unnest(p_tenant, p_configuration, p_path, p_target) WITH ORDINALITY AS u(t, cfg, p, tk, k)
             WHERE u.k = ANY (free) AND NOT u.k = ANY (claimed) ORDER BY u.t, u.cfg, u.p, u.tk, u.k
    LOOP
        c := bulkassign_claim_target(p_tenant[e], p_configuration[e], p_path[e], p_target[e], p_batch[e], p_row[e], p_read_at[e]);
        IF c.verdict = 'claimed' THEN
            claimed := claimed || e;
        END IF;
        k := e;
        verdict := c.verdict;
        holder_batch := c.holder_batch;
        holder_row := c.holder_row;
        holder_status := c.holder_status;
        holder_assignment := c.holder_assignment;
        RETURN NEXT;
    END LOOP;
    -- The intents, before the writes leave their processes: if an answer
    -- is lost, the row's next attempt knows the write may have applied.
    UPDATE items i SET intent_request_id = p_request[o.k], intent_at = now(), client_request_id = p_request[o.k],
           attempts = i.attempts + 1, status = 'running', started_at = coalesce(i.started_at, now()),
           run_id = p_run[o.k], run_until = now() + p_hold, updated_at = now()
      FROM unnest(claimed) AS o(k)
     WHERE i.batch_id = p_batch[o.k] AND i.row = p_row[o.k];
    RETURN QUERY SELECT u.k::integer, 'refused'::text, NULL::uuid, NULL::integer, NULL::text, NULL::text
      FROM generate_subscripts(p_batch, 1) AS u(k) WHERE NOT u.k = ANY (free);
END
$$;

-- What a row becomes when a run records status for it, keeping the intent
-- or not: the rule of a row being cancelled, once. A row that is not
-- cancelling takes status. A cancelling row takes what its write did
-- (created, removed, or a read that found created, already_assigned,
-- not_assigned); it stays cancelling while its write is still in doubt
-- and the row not final (its next run reads Graph to settle it), and ends
-- canceled otherwise: the write did not apply, or will never be known.
CREATE FUNCTION bulkassign_settle(current text, status text, keep_intent boolean) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN current <> 'cancelling' OR status IN ('created', 'removed', 'already_assigned', 'not_assigned') THEN status
        WHEN keep_intent AND NOT bulkassign_final(status) THEN 'cancelling'
        ELSE 'canceled' END $$;

-- The shim of 013 for the workers of the release before 012 refuses a
-- row being cancelled as well (a new write), as bulkassign_claims does.
CREATE OR REPLACE FUNCTION bulkassign_claim(
    p_tenant text, p_configuration uuid, p_path text, p_target text,
    p_batch uuid, p_row integer, p_run uuid, p_hold interval, p_request text, p_read_at timestamptz,
    OUT verdict text, OUT holder_batch uuid, OUT holder_row integer,
    OUT holder_status text, OUT holder_assignment text)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    c := bulkassign_claim_target(p_tenant, p_configuration, p_path, p_target, p_batch, p_row, p_read_at);
    verdict := c.verdict;
    holder_batch := c.holder_batch;
    holder_row := c.holder_row;
    holder_status := c.holder_status;
    holder_assignment := c.holder_assignment;
    IF verdict <> 'claimed' THEN
        RETURN;
    END IF;
    UPDATE items SET intent_request_id = p_request, intent_at = now(), client_request_id = p_request,
           attempts = attempts + 1, status = 'running', started_at = coalesce(started_at, now()),
           run_id = p_run, run_until = now() + p_hold, updated_at = now()
     WHERE batch_id = p_batch AND row = p_row AND bulkassign_may_write(status)
       AND bulkassign_free(run_id, run_until, p_run);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item %/% is final, gone, or held by another run', p_batch, p_row
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

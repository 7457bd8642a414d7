-- Claims in rounds (issue 10, item 6): a worker process claims the targets
-- of many rows in one statement, as it records their outcomes in one
-- (a group commit), instead of one statement and one commit a row.
--
-- bulkassign_claim (010) did one row's claim and intent. Its rule is kept,
-- and now lives in two parts: bulkassign_claim_target, the rule of one
-- target's claim (verdicts as in 010), and bulkassign_claims, which runs a
-- round: it takes the round's rows that no other live run holds and that
-- are not final (locked in key order, as outcomes and cancels lock them),
-- claims each one's target (in target order, so two rounds never wait on
-- each other's claims in a cycle), and records the intent of every row
-- that holds its claim, in one UPDATE. A row refused (final, gone, held by
-- another live run) gets verdict 'refused' and no claim: nothing of it
-- stays. Two rows of one round on one target: the first claims it, the
-- second finds it busy.
DROP FUNCTION bulkassign_claim(text, uuid, text, text, uuid, integer, uuid, interval, text, timestamptz);

-- The claim of one target for row (p_batch, p_row), whose list of the
-- target's configuration path was read at p_read_at:
--   claimed         the row holds the claim: it may write;
--   read_first      the row took the claim over from a row that ended while
--                   its write was in doubt, or whose row is gone: read Graph
--                   afresh before writing, then claim again;
--   holder_busy     another row holds the claim and is not final (or its
--                   run still lives): wait for it;
--   holder_created  another row created (or found) the target after this
--                   row's list was read: the target is assigned.
CREATE FUNCTION bulkassign_claim_target(
    p_tenant text, p_configuration uuid, p_path text, p_target text,
    p_batch uuid, p_row integer, p_read_at timestamptz,
    OUT verdict text, OUT holder_batch uuid, OUT holder_row integer,
    OUT holder_status text, OUT holder_assignment text)
LANGUAGE plpgsql AS $$
DECLARE
    h_exists   boolean;
    h_finished timestamptz;
    h_in_doubt boolean;
    h_running  boolean;
BEGIN
    LOOP
        INSERT INTO target_claims (tenant_id, configuration_id, path, target_key, batch_id, row)
        VALUES (p_tenant, p_configuration, p_path, p_target, p_batch, p_row)
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            verdict := 'claimed';
            RETURN;
        END IF;
        SELECT c.batch_id, c.row, i.row IS NOT NULL, i.status, i.assignment_id, i.finished_at,
               coalesce(i.intent_request_id IS NOT NULL, false), NOT bulkassign_free(i.run_id, i.run_until, NULL)
          INTO holder_batch, holder_row, h_exists, holder_status, holder_assignment, h_finished,
               h_in_doubt, h_running
          FROM target_claims c
          LEFT JOIN items i ON i.batch_id = c.batch_id AND i.row = c.row
         WHERE c.tenant_id = p_tenant AND c.configuration_id = p_configuration
           AND c.path = p_path AND c.target_key = p_target
           FOR UPDATE OF c;
        IF NOT FOUND THEN
            CONTINUE; -- released between the two statements (a revert): again
        END IF;
        IF holder_batch = p_batch AND holder_row = p_row THEN
            verdict := 'claimed'; -- ours: a later run of the same row
            RETURN;
        END IF;
        IF h_exists AND (h_running OR NOT bulkassign_final(holder_status)) THEN
            verdict := 'holder_busy';
            RETURN;
        END IF;
        IF h_exists AND holder_status IN ('created', 'already_assigned')
           AND coalesce(holder_assignment, '') <> '' AND h_finished >= p_read_at THEN
            verdict := 'holder_created';
            RETURN;
        END IF;
        -- The holder is done and has no assignment this row's list could
        -- have missed: it failed, was canceled, removed its target, is
        -- gone, or its assignment was deleted since. Take the claim over.
        UPDATE target_claims SET batch_id = p_batch, row = p_row, claimed_at = now()
         WHERE tenant_id = p_tenant AND configuration_id = p_configuration
           AND path = p_path AND target_key = p_target;
        IF NOT h_exists OR (h_in_doubt AND holder_status NOT IN ('created', 'removed')) THEN
            verdict := 'read_first';
            RETURN;
        END IF;
        verdict := 'claimed';
        RETURN;
    END LOOP;
END
$$;

-- A round of claims: element k of the arrays is one row's request. With
-- its claim, run p_run[k] takes the row: it holds it for p_hold on the
-- database's clock (a second run of the same row, rescued early, backs
-- off instead of writing beside it), until the run's outcome is recorded;
-- the intent (p_request[k]) is recorded before the write leaves the
-- process, and the attempt counted.
CREATE FUNCTION bulkassign_claims(
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
             WHERE NOT bulkassign_final(i.status) AND bulkassign_free(i.run_id, i.run_until, o.run)
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

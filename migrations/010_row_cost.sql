-- A worked row costs few statements: claiming a target and recording the
-- intent to create it were four statements (begin, insert the claim,
-- update the item, commit); they are now one call of bulkassign_claim,
-- which does both atomically in the statement's own transaction.
--
-- The rule lives here, once (claims.go calls it and maps the verdict):
--   claimed         the row holds the target's claim and its intent is
--                   recorded (the attempt counted): post;
--   read_first      the row took the claim over from a row that ended while
--                   its create was in doubt, or whose row is gone: read
--                   Graph afresh before posting, then claim again;
--   holder_busy     another row holds the claim and is not final (or its
--                   run still lives): wait for it;
--   holder_created  another row created (or found) the target after this
--                   row's list was read (p_read_at): the target is assigned.
-- With the claim, run p_run takes the row: it holds it for p_hold on the
-- database's clock (a second run of the same row, rescued early, backs off
-- instead of posting beside it), until the run's outcome is recorded.
-- A row that is final, gone, or held by another live run gets no claim
-- and no intent: the call raises no_data_found (P0002) and changes nothing.
-- The rule of a row's hold, once: run may act on a row whose hold is
-- (run_id, run_until) when no live run holds it (none ever did, or the
-- hold ran out on the database's clock: its run can no longer post) or run
-- itself does. With run NULL it says whether the row is free of every live
-- run. StartRun, the claim, outcomes and the live-job count call it.
CREATE FUNCTION bulkassign_free(run_id uuid, run_until timestamptz, run uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT $2 IS NULL OR $2 <= now() OR $1 IS NOT DISTINCT FROM $3 $$;

CREATE FUNCTION bulkassign_claim(
    p_tenant text, p_configuration uuid, p_path text, p_target text,
    p_batch uuid, p_row integer, p_run uuid, p_hold interval, p_request text, p_read_at timestamptz,
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
            EXIT;
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
            EXIT;
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
        -- have missed: it failed, was canceled, is gone, or its assignment
        -- was deleted since. Take the claim over.
        UPDATE target_claims SET batch_id = p_batch, row = p_row, claimed_at = now()
         WHERE tenant_id = p_tenant AND configuration_id = p_configuration
           AND path = p_path AND target_key = p_target;
        IF NOT h_exists OR (h_in_doubt AND holder_status <> 'created') THEN
            verdict := 'read_first';
            RETURN;
        END IF;
        verdict := 'claimed';
        EXIT;
    END LOOP;

    -- The intent, before the create leaves the process: if its answer is
    -- lost, the next attempt knows a create may have been applied. Only a
    -- run that may hold the row records it (and takes the row); otherwise
    -- nothing of this call stays (the claim above included).
    UPDATE items SET intent_request_id = p_request, intent_at = now(), client_request_id = p_request,
           attempts = attempts + 1, status = 'running', started_at = coalesce(started_at, now()),
           run_id = p_run, run_until = now() + p_hold, updated_at = now()
     WHERE batch_id = p_batch AND row = p_row AND NOT bulkassign_final(status)
       AND bulkassign_free(run_id, run_until, p_run);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item %/% is final, gone, or held by another run', p_batch, p_row
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

-- Upgrades while workers run (issue 22, item 10): 012 dropped
-- bulkassign_claim (010), which the workers of the release before 012
-- call for every row they claim: run `worker migrate` with the new binary
-- while they work, and each of their claims failed until they were
-- rolled. It comes back here as a shim of the same signature and answers
-- over the rule that now lives in bulkassign_claim_target (012): one
-- row's claim, then, when the row holds it, its intent, in one statement;
-- a row final, gone or held by another live run raises no_data_found, as
-- 010's did, and nothing of the call stays. No worker of this release
-- calls it. It is kept one release: the release after the next may drop
-- it, since by then no worker that calls it can still run.
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
     WHERE batch_id = p_batch AND row = p_row AND NOT bulkassign_final(status)
       AND bulkassign_free(run_id, run_until, p_run);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'item %/% is final, gone, or held by another run', p_batch, p_row
            USING ERRCODE = 'no_data_found';
    END IF;
END
$$;

package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// opsBundle is a batch of 10 queued rows with one River job each; rows
// 1..10 assign Group(0..9) to Config(i % 3).
type opsBundle struct {
	db    *testdb.DB
	batch string
}

func setupOps(t *testing.T) *opsBundle {
	t.Helper()
	db := testdb.New(t, 4)
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jobs.Enqueue(context.Background(), db.Pool, rc, []jobs.Input{{Name: "ops.csv",
		Reader: strings.NewReader(testenv.GroupCSV(10, 3)), Format: intake.FormatCSV, DefaultTenant: testTenant}})
	if err != nil {
		t.Fatal(err)
	}
	return &opsBundle{db: db, batch: out[0].Batch.ID}
}

// exec runs SQL that stands for what a worker would have done.
func (b *opsBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := b.db.Pool.Exec(context.Background(), sql, append([]any{b.batch}, args...)...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (b *opsBundle) tx(t *testing.T, fn func(tx pgx.Tx) error) {
	t.Helper()
	if err := pgx.BeginFunc(context.Background(), b.db.Pool, fn); err != nil {
		t.Fatal(err)
	}
}

func (b *opsBundle) statuses(t *testing.T) map[int]string {
	t.Helper()
	out := map[int]string{}
	err := store.ListResults(context.Background(), b.db.Pool, b.batch, nil, func(r *store.Result) error {
		out[r.Row] = string(r.Status)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (b *opsBundle) jobStates(t *testing.T, kind string) map[string]int {
	t.Helper()
	rows, err := b.db.Pool.Query(context.Background(), `SELECT state::text, count(*) FROM river_job WHERE kind = $1 GROUP BY state`, kind)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

func TestCancelThenRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupOps(t)
	kind := jobs.AssignArgs{}.Kind()
	// Row 1 created, row 2 failed; row 3 is in flight with a create intent
	// and its job running; the rest are queued.
	b.exec(t, `UPDATE items SET status = 'created', assignment_id = 'a1', finished_at = now() WHERE batch_id = $1 AND row = 1`)
	b.exec(t, `UPDATE items SET status = 'failed', http_status = 404, error_code = 'ResourceNotFound', attempts = 1,
		finished_at = now() WHERE batch_id = $1 AND row = 2`)
	b.exec(t, `UPDATE items SET status = 'running', intent_request_id = 'crid-3', intent_at = now(),
		run_id = gen_random_uuid(), run_until = now() + interval '1 minute' WHERE batch_id = $1 AND row = 3`)
	b.exec(t, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE args @> jsonb_build_object('batch', $1::text)
		AND (args->>'row')::int IN (1, 2)`)
	b.exec(t, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE args @> jsonb_build_object('batch', $1::text)
		AND (args->>'row')::int = 3`)
	b.exec(t, `INSERT INTO assignment_lists (batch_id, configuration_id, path, found) VALUES ($1, $2, '', false), ($1, $3, '', true)`,
		testenv.Config(1), testenv.Config(0))

	var canceled store.CancelCounts
	var jobsCanceled int
	b.tx(t, func(tx pgx.Tx) error {
		if err := store.LockBatch(ctx, tx, b.batch); err != nil {
			return err
		}
		var err error
		if canceled, err = store.CancelItems(ctx, tx, b.batch); err != nil {
			return err
		}
		jobsCanceled, err = store.CancelJobs(ctx, tx, kind, b.batch, false)
		return err
	})
	if want := (store.CancelCounts{Canceled: 7, Cancelling: 1}); canceled != want || jobsCanceled != 7 {
		t.Fatalf("cancel: %+v rows, %d jobs; want %+v (3 has a create in flight) and 7 jobs (4..10; row 3's job is running)", canceled, jobsCanceled, want)
	}
	st := b.statuses(t)
	if st[1] != "created" || st[2] != "failed" || st[3] != "cancelling" || st[10] != "canceled" {
		t.Fatalf("after cancel: %v", st)
	}
	if got := b.jobStates(t, kind); got["cancelled"] != 7 || got["running"] != 1 || got["completed"] != 2 {
		t.Fatalf("job states after cancel = %v, want 7 cancelled, 1 running, 2 completed", got)
	}
	var msg3 string
	if err := b.db.Pool.QueryRow(ctx, `SELECT error_message FROM items WHERE batch_id = $1 AND row = 3`, b.batch).Scan(&msg3); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg3, "may be in flight") {
		t.Fatalf("row 3 cancelled with a create in flight says %q, want it to say the write may be in flight", msg3)
	}
	if n, err := store.CountInDoubt(ctx, b.db.Pool, b.batch); err != nil || n != 0 {
		t.Fatalf("CountInDoubt = %d, %v; want 0 (row 3 is not final yet)", n, err)
	}
	// Its run may not claim again (a new write), and its outcome settles it.
	res, err := store.Claims(ctx, b.db.Pool, []store.ClaimRequest{{BatchID: b.batch, Row: 3, Run: assign.NewID(), Hold: time.Minute,
		Spec: assign.Spec{ConfigurationID: testenv.Config(0), Target: assign.Target{Type: assign.TargetAllDevices}}, ClientRequestID: "crid-again"}})
	if err != nil || res[0].Verdict != store.Refused {
		t.Fatalf("claim of a cancelling row: %+v, %v; want Refused", res, err)
	}
	// Cancel again: nothing left.
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		if canceled, err = store.CancelItems(ctx, tx, b.batch); err != nil {
			return err
		}
		jobsCanceled, err = store.CancelJobs(ctx, tx, kind, b.batch, false)
		return err
	})
	if canceled != (store.CancelCounts{}) || jobsCanceled != 0 {
		t.Fatalf("second cancel: %d rows, %d jobs; want none", canceled, jobsCanceled)
	}

	live, err := store.LiveJobRows(ctx, b.db.Pool, kind, b.batch)
	if err != nil || !slices.Equal(live, []int{3}) {
		t.Fatalf("LiveJobRows = %v, %v; want [3]", live, err)
	}
	var retried []int
	b.tx(t, func(tx pgx.Tx) error {
		retried, err = store.RetryItems(ctx, tx, b.batch, live)
		return err
	})
	if want := []int{2, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(retried, want) {
		t.Fatalf("retried rows %v, want %v (failed and canceled, not row 3 whose job runs)", retried, want)
	}
	var (
		status, intent                string
		retries, attempts, errorCount int
		errCode                       *string
	)
	err = b.db.Pool.QueryRow(ctx, `SELECT status, retries, attempts, errors, error_code FROM items WHERE batch_id = $1 AND row = 2`,
		b.batch).Scan(&status, &retries, &attempts, &errorCount, &errCode)
	if err != nil {
		t.Fatal(err)
	}
	if status != "queued" || retries != 1 || attempts != 1 || errorCount != 0 || errCode != nil {
		t.Fatalf("row 2 after retry: %s retries %d attempts %d errors %d code %v; want queued, 1 retry, attempts kept, errors and code cleared",
			status, retries, attempts, errorCount, errCode)
	}
	var histStatus, histCode string
	var run int
	err = b.db.Pool.QueryRow(ctx, `SELECT run, status, error_code FROM item_history WHERE batch_id = $1 AND row = 2`, b.batch).Scan(&run, &histStatus, &histCode)
	if err != nil || run != 0 || histStatus != "failed" || histCode != "ResourceNotFound" {
		t.Fatalf("history of row 2 = run %d %s %s (%v); want run 0 failed ResourceNotFound", run, histStatus, histCode, err)
	}
	// The cached lists of retried rows' paths are gone (row 2 is on
	// Config(1), row 4 on Config(0)): the rows re-read Graph.
	var lists int
	if err := b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM assignment_lists WHERE batch_id = $1`, b.batch).Scan(&lists); err != nil {
		t.Fatal(err)
	}
	if lists != 0 {
		t.Fatalf("%d cached lists left, want 0", lists)
	}
	// Retry again: the rows are queued now, and row 3 is still being
	// cancelled (not final): nothing to do.
	b.tx(t, func(tx pgx.Tx) error {
		retried, err = store.RetryItems(ctx, tx, b.batch, nil)
		return err
	})
	if len(retried) != 0 {
		t.Fatalf("second retry = %v, want nothing", retried)
	}
	if err := b.db.Pool.QueryRow(ctx, `SELECT intent_request_id FROM items WHERE batch_id = $1 AND row = 3`, b.batch).Scan(&intent); err != nil || intent != "crid-3" {
		t.Fatalf("row 3's intent = %q (%v), want it kept so its run settles it", intent, err)
	}
	// Its run's answer: a 503 keeps the write in doubt (cancelling still);
	// then a read that finds nothing ends it canceled; final stays final.
	recordOutcome := func(o store.Outcome) bool {
		wrote, err := store.RecordOutcome(ctx, b.db.Pool, b.batch, 3, "", o)
		if err != nil {
			t.Fatal(err)
		}
		return wrote
	}
	recordOutcome(store.Outcome{Status: assign.StatusRetrying, HTTPStatus: 503, KeepIntent: true})
	if st := b.statuses(t); st[3] != "cancelling" {
		t.Fatalf("row 3 after a 503 = %s, want cancelling (its write is in doubt)", st[3])
	}
	recordOutcome(store.Outcome{Status: assign.StatusCanceled, HTTPStatus: 200})
	if st := b.statuses(t); st[3] != "canceled" {
		t.Fatalf("row 3 after its read = %s, want canceled", st[3])
	}
	if recordOutcome(store.Outcome{Status: assign.StatusCreated, AssignmentID: "late"}) {
		t.Fatal("a created outcome overwrote a canceled row: a final status changed")
	}
}

func TestRevertBookkeeping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupOps(t)
	// Rows 1-4 created, 5-6 already assigned, 7 failed, the rest canceled.
	b.exec(t, `UPDATE items SET status = 'created', assignment_id = 'a' || row WHERE batch_id = $1 AND row <= 4`)
	b.exec(t, `UPDATE items SET status = 'already_assigned', assignment_id = 'x' || row WHERE batch_id = $1 AND row IN (5, 6)`)
	b.exec(t, `UPDATE items SET status = 'failed' WHERE batch_id = $1 AND row = 7`)
	b.exec(t, `UPDATE items SET status = 'canceled' WHERE batch_id = $1 AND row > 7`)

	queue := func() []int {
		var rows []int
		b.tx(t, func(tx pgx.Tx) error {
			var err error
			rows, err = store.QueueRevert(ctx, tx, b.batch)
			return err
		})
		return rows
	}
	if got := queue(); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Fatalf("QueueRevert = %v, want the created rows 1-4", got)
	}
	if got := queue(); len(got) != 0 {
		t.Fatalf("second QueueRevert = %v, want nothing (all queued)", got)
	}
	st, err := store.MarkRevertRunning(ctx, b.db.Pool, b.batch, 1)
	if err != nil || st.Status != assign.RevertRunning || st.Elapsed < 0 {
		t.Fatalf("MarkRevertRunning(1) = %+v, %v; want running with a start time", st, err)
	}
	if st, err := store.MarkRevertRunning(ctx, b.db.Pool, b.batch, 5); err != nil || st.Status != assign.RevertNone {
		t.Fatalf("MarkRevertRunning(5) = %+v, %v; want no revert (already_assigned rows are never reverted)", st, err)
	}
	record := func(row int, o store.RevertOutcome) bool {
		wrote, err := store.RecordRevert(ctx, b.db.Pool, b.batch, row, o)
		if err != nil {
			t.Fatal(err)
		}
		return wrote
	}
	record(1, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: 204, RequestID: "r1"})
	record(2, store.RevertOutcome{Status: assign.RevertFailed, HTTPStatus: 403, ErrorCode: "Forbidden", Error: "no"})
	// Row 3's revert runs (its DELETE may be in flight), row 4's is queued.
	if _, err := store.MarkRevertRunning(ctx, b.db.Pool, b.batch, 3); err != nil {
		t.Fatal(err)
	}
	var cc store.CancelCounts
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		cc, err = store.CancelReverts(ctx, tx, b.batch)
		return err
	})
	if want := (store.CancelCounts{Canceled: 1, Cancelling: 1}); cc != want {
		t.Fatalf("CancelReverts = %+v, want %+v", cc, want)
	}
	if st, err := store.MarkRevertRunning(ctx, b.db.Pool, b.batch, 3); err != nil || st.Status != assign.RevertCancelling {
		t.Fatalf("MarkRevertRunning of a cancelling revert = %+v, %v; want it left cancelling", st, err)
	}
	if !record(3, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: 204}) {
		t.Fatal("a DELETE that applied was not recorded over a cancelling revert")
	}
	if record(4, store.RevertOutcome{Status: assign.RevertReverted, HTTPStatus: 204}) {
		t.Fatal("an outcome overwrote a canceled revert: a final status changed")
	}
	if record(1, store.RevertOutcome{Status: assign.RevertFailed}) {
		t.Fatal("an outcome overwrote a final reverted row")
	}
	counts, err := store.CountReverts(ctx, b.db.Pool, b.batch)
	if err != nil {
		t.Fatal(err)
	}
	want := store.RevertCounts{assign.RevertReverted: 2, assign.RevertFailed: 1, assign.RevertCanceled: 1}
	if len(counts) != len(want) || counts[assign.RevertReverted] != 2 || counts[assign.RevertFailed] != 1 || counts[assign.RevertCanceled] != 1 {
		t.Fatalf("CountReverts = %v, want %v", counts, want)
	}
	// Revert again: only the failed and canceled reverts go round.
	if got := queue(); !slices.Equal(got, []int{2, 4}) {
		t.Fatalf("QueueRevert after outcomes = %v, want [2 4]", got)
	}

	var rows []store.ExportRow
	err = store.ExportResults(ctx, b.db.Pool, b.batch, []assign.Status{assign.StatusCreated}, func(r *store.ExportRow) error {
		rows = append(rows, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0].RevertStatus != assign.RevertReverted || rows[0].RevertRequestID != "r1" ||
		rows[0].RevertedAt == nil || rows[0].Source != "ops.csv" || rows[1].RevertStatus != assign.RevertQueued {
		t.Fatalf("ExportResults(created) = %+v", rows)
	}
}

func TestListBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		out, err := jobs.Enqueue(ctx, db.Pool, rc, []jobs.Input{{Name: "b.csv",
			Reader: strings.NewReader(testenv.GroupCSV(i+1, 1)), Format: intake.FormatCSV, DefaultTenant: testTenant}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, out[0].Batch.ID)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE items SET status = 'failed' WHERE batch_id = $1 AND row = 1`, ids[2]); err != nil {
		t.Fatal(err)
	}
	list, err := store.ListBatches(ctx, db.Pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != ids[2] || list[1].ID != ids[1] {
		t.Fatalf("ListBatches(2) = %+v, want the last two batches, newest first", list)
	}
	if c := list[0].Counts; c[assign.StatusFailed] != 1 || c[assign.StatusQueued] != 2 || c.Total() != 3 {
		t.Fatalf("newest batch counts = %v, want 1 failed and 2 queued", c)
	}
	if list[0].Reverts.Total() != 0 {
		t.Fatalf("reverts = %v, want none", list[0].Reverts)
	}
}

func TestExportColumnsAreTheView(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, 2)
	rows, err := db.Pool.Query(context.Background(), `SELECT column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'assignment_results' AND column_name NOT IN ('final', 'item_id', 'row')
		ORDER BY ordinal_position`, db.Schema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// The row's number comes second, as the view's item_id did (row is
	// its one name; the view keeps item_id for old queries, row at its end).
	want := slices.Concat(store.ExportColumns[:1], store.ExportColumns[2:])
	if store.ExportColumns[1] != "row" || !slices.Equal(got, want) {
		t.Fatalf("view columns (but final, item_id, row) = %v\nExportColumns = %v", got, store.ExportColumns)
	}
}

// TestHoldRevert: the run that restores a removed row holds it; another
// run of the same revert is told how long the hold lasts, until the
// holder's outcome releases the row. An outcome of a run that holds
// nothing leaves another's hold alone.
func TestHoldRevert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupOps(t)
	if _, err := b.db.Pool.Exec(ctx, `UPDATE items SET revert_status = 'running' WHERE batch_id = $1 AND row = 1`, b.batch); err != nil {
		t.Fatal(err)
	}
	first, second := assign.NewID(), assign.NewID()
	if err := store.HoldRevert(ctx, b.db.Pool, b.batch, 1, first, time.Minute); err != nil {
		t.Fatalf("first HoldRevert: %v", err)
	}
	var held *store.HeldError
	if err := store.HoldRevert(ctx, b.db.Pool, b.batch, 1, second, time.Minute); !errors.As(err, &held) || held.Left <= 50*time.Second {
		t.Fatalf("second HoldRevert = %v, want held for about a minute", err)
	}
	if err := store.HoldRevert(ctx, b.db.Pool, b.batch, 1, first, time.Minute); err != nil {
		t.Fatalf("the holder again: %v", err)
	}
	if _, err := store.RecordRevert(ctx, b.db.Pool, b.batch, 1, store.RevertOutcome{Status: assign.RevertRetrying, Run: second}); err != nil {
		t.Fatal(err)
	}
	if err := store.HoldRevert(ctx, b.db.Pool, b.batch, 1, second, time.Minute); !errors.As(err, &held) {
		t.Fatalf("after an outcome of a run that holds nothing: %v, want still held", err)
	}
	if _, err := store.RecordRevert(ctx, b.db.Pool, b.batch, 1, store.RevertOutcome{Status: assign.RevertRetrying, Run: first}); err != nil {
		t.Fatal(err)
	}
	if err := store.HoldRevert(ctx, b.db.Pool, b.batch, 1, second, time.Minute); err != nil {
		t.Fatalf("after the holder's outcome: %v, want the row free", err)
	}
}

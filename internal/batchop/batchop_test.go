package batchop_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/batchop"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// The operations run on a real schema without a worker: the tests set the
// rows' outcomes (and their jobs' states) as a worker would have left them.

type testBundle struct {
	db    *store.DB
	batch string
}

// setup enqueues a batch of rows rows, each with a job waiting.
func setup(t *testing.T, rows int) *testBundle {
	t.Helper()
	ctx := context.Background()
	tdb := testdb.New(t, 2)
	db, err := store.Connect(ctx, tdb.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	out, err := batchop.Enqueue(ctx, db, []jobs.Input{{Name: "ops.csv", Format: intake.FormatCSV,
		Reader: strings.NewReader(testenv.GroupCSV(rows, 2)), DefaultTenant: "5e0c9f3a-7d21-4b8e-a6f4-2c1d0e9b8a73"}})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{db: db, batch: out[0].Batch.ID}
}

// exec runs SQL with the batch id as $1.
func (b *testBundle) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := b.db.Exec(context.Background(), sql, b.batch); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// jobs counts the batch's jobs of kind in state.
func (b *testBundle) jobs(t *testing.T, kind, state string) int {
	t.Helper()
	var n int
	err := b.db.QueryRow(context.Background(), `SELECT count(*) FROM river_job
		WHERE kind = $2 AND state = $3 AND args->>'batch' = $1`, b.batch, kind, state).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var (
	assignKind = jobs.AssignArgs{}.Kind()
	revertKind = jobs.RevertArgs{}.Kind()
)

// finish leaves rows 1 and 2 created, row 3 already_assigned and row 4 in
// doubt (canceled with a create in flight); every job is done.
func (b *testBundle) finish(t *testing.T) {
	t.Helper()
	if _, err := batchop.Cancel(context.Background(), b.db, b.batch); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `UPDATE items SET status = 'created', assignment_id = 'a' || row WHERE batch_id = $1 AND row IN (1, 2)`)
	b.exec(t, `UPDATE items SET status = 'already_assigned', assignment_id = 'x' || row WHERE batch_id = $1 AND row = 3`)
	b.exec(t, `UPDATE items SET intent_request_id = 'r4' WHERE batch_id = $1 AND row = 4`)
}

func TestRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("QueuesFailedAndCanceledRows", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 6)
		if _, err := batchop.Cancel(ctx, b.db, b.batch); err != nil {
			t.Fatal(err)
		}
		b.exec(t, `UPDATE items SET status = 'failed', http_status = 503 WHERE batch_id = $1 AND row IN (1, 2)`)
		res, err := batchop.Retry(ctx, b.db, b.batch)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{1, 2, 3, 4, 5, 6}; !slices.Equal(res.Queued, want) || res.StillFinishing != 0 {
			t.Fatalf("retry: %+v, want rows %v queued and none still finishing", res, want)
		}
		if n := b.jobs(t, assignKind, "available"); n != 6 {
			t.Fatalf("%d jobs waiting after retry, want 6", n)
		}
		res, err = batchop.Retry(ctx, b.db, b.batch)
		if err != nil || len(res.Queued) != 0 {
			t.Fatalf("second retry: %+v, %v; want nothing queued", res, err)
		}
	})

	t.Run("LeavesRowsWhoseJobStillRuns", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 3)
		// Canceled while their jobs still wait (or run): a second job
		// beside them could post twice.
		b.exec(t, `UPDATE items SET status = 'canceled' WHERE batch_id = $1`)
		res, err := batchop.Retry(ctx, b.db, b.batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Queued) != 0 || res.StillFinishing != 3 {
			t.Fatalf("retry: %+v, want nothing queued and 3 still finishing", res)
		}
		if n := b.jobs(t, assignKind, "available"); n != 3 {
			t.Fatalf("%d jobs waiting, want the 3 original ones", n)
		}
	})

	t.Run("RowsWhoseRunWroteItsOutcome", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 3)
		// Every job shows running. Row 1 failed and its run wrote that
		// (River completes the job in its next batch); row 2 failed while
		// a run holds it (its claim came after: it may post); row 3 is
		// still running.
		b.exec(t, `UPDATE river_job SET state = 'running', attempted_at = now() WHERE args->>'batch' = $1::text`)
		b.exec(t, `UPDATE items SET status = 'failed', http_status = 503, finished_at = now() WHERE batch_id = $1 AND row IN (1, 2)`)
		b.exec(t, `UPDATE items SET run_id = gen_random_uuid(), run_until = now() + interval '1 minute' WHERE batch_id = $1 AND row = 2`)
		res, err := batchop.Retry(ctx, b.db, b.batch)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Queued, []int{1}) || res.StillFinishing != 1 {
			t.Fatalf("retry: %+v, want row 1 queued and 1 still finishing", res)
		}
	})

	t.Run("RefusesARevertedBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 4)
		b.finish(t)
		if _, err := batchop.Revert(ctx, b.db, b.batch); err != nil {
			t.Fatal(err)
		}
		if _, err := batchop.Retry(ctx, b.db, b.batch); !errors.Is(err, batchop.ErrReverted) {
			t.Fatalf("retry of a reverted batch: %v, want ErrReverted", err)
		}
	})

	t.Run("UnknownBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1)
		if _, err := batchop.Retry(ctx, b.db, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("retry of an unknown batch: %v, want ErrNotFound", err)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RowsAndJobs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 4)
		// Row 1's job runs and its run has claimed the target (it holds
		// the row: its create may be in flight): it is left to finish its
		// call. Row 2's job runs too, but its run has not claimed: once
		// the row is canceled, its claim is refused and it creates nothing.
		b.exec(t, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now()
			WHERE args->>'batch' = $1 AND (args->>'row')::int IN (1, 2)`)
		b.exec(t, `UPDATE items SET status = 'running', intent_request_id = 'crid-1', intent_at = now(),
			run_id = gen_random_uuid(), run_until = now() + interval '1 minute' WHERE batch_id = $1 AND row = 1`)
		res, err := batchop.Cancel(ctx, b.db, b.batch)
		if err != nil {
			t.Fatal(err)
		}
		// Row 1 may be writing: cancelling, not canceled (its run ends it).
		if want := (batchop.CancelResult{Rows: store.CancelCounts{Canceled: 3, Cancelling: 1}}); res != want {
			t.Fatalf("cancel: %+v, want %+v", res, want)
		}
		if n := b.jobs(t, assignKind, "cancelled"); n != 2 {
			t.Fatalf("%d jobs cancelled, want 2 (the other two run)", n)
		}
		if rows, reverts, err := batchop.Cancelling(ctx, b.db, b.batch); err != nil || rows != 1 || reverts != 0 {
			t.Fatalf("Cancelling = %d rows, %d reverts, %v; want 1 row", rows, reverts, err)
		}
		res, err = batchop.Cancel(ctx, b.db, b.batch)
		if want := (batchop.CancelResult{}); err != nil || res != want {
			t.Fatalf("second cancel: %+v, %v; want %+v", res, err, want)
		}
		st, err := batchop.ReadState(ctx, b.db.Pool(), b.batch)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Allowed(batchop.OpCancel); !errors.Is(err, batchop.ErrNothingTo) {
			t.Fatalf("cancel allowed while only a cancelling row is open: %v, want ErrNothingTo", err)
		}
		var nf *batchop.NotFinalError
		if err := st.Allowed(batchop.OpRevert); !errors.As(err, &nf) || nf.Open != 1 {
			t.Fatalf("revert allowed while a row is cancelling: %v, want NotFinalError of 1", err)
		}
	})

	t.Run("SnoozedInDoubtRowKeepsItsJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 2)
		// Row 1's last create got no answer (its intent kept) and its job
		// snoozes for minutes: cancel keeps the job and makes it due now,
		// so that its run reads Graph and settles the row.
		b.exec(t, `UPDATE items SET status = 'retrying', intent_request_id = 'crid-1', intent_at = now() WHERE batch_id = $1 AND row = 1`)
		b.exec(t, `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '5 minutes'
			WHERE args->>'batch' = $1 AND (args->>'row')::int = 1`)
		res, err := batchop.Cancel(ctx, b.db, b.batch)
		if want := (batchop.CancelResult{Rows: store.CancelCounts{Canceled: 1, Cancelling: 1}}); err != nil || res != want {
			t.Fatalf("cancel: %+v, %v; want %+v", res, err, want)
		}
		var state string
		var due bool
		if err := b.db.Pool().QueryRow(ctx, `SELECT state::text, scheduled_at <= now() FROM river_job
			WHERE args->>'batch' = $1 AND (args->>'row')::int = 1`, b.batch).Scan(&state, &due); err != nil {
			t.Fatal(err)
		}
		if state != "scheduled" || !due {
			t.Fatalf("row 1's job: %s, due %v; want it kept (scheduled) and due now", state, due)
		}
		if n := b.jobs(t, assignKind, "cancelled"); n != 1 {
			t.Fatalf("%d jobs cancelled, want 1 (row 2's)", n)
		}
	})

	t.Run("Reverts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 4)
		b.finish(t)
		if _, err := batchop.Revert(ctx, b.db, b.batch); err != nil {
			t.Fatal(err)
		}
		res, err := batchop.Cancel(ctx, b.db, b.batch)
		if want := (batchop.CancelResult{Reverts: store.CancelCounts{Canceled: 3}}); err != nil || res != want {
			t.Fatalf("cancel of a revert: %+v, %v; want %+v", res, err, want)
		}
		if n := b.jobs(t, revertKind, "cancelled"); n != 3 {
			t.Fatalf("%d revert jobs cancelled, want 3", n)
		}
	})
}

func TestRevert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("QueuesWhatTheBatchCreated", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 4)
		b.finish(t)
		res, err := batchop.Revert(ctx, b.db, b.batch)
		if err != nil {
			t.Fatal(err)
		}
		// Row 4 is in doubt (canceled with its intent): its revert reads
		// Graph first and undoes only what applied.
		if !slices.Equal(res.Queued, []int{1, 2, 4}) || res.AlreadyAssigned != 1 || res.InDoubt != 1 ||
			res.Reverts.Total() != 3 || res.Reverts[assign.RevertQueued] != 3 {
			t.Fatalf("revert: %+v, want rows 1, 2 and 4 (in doubt) queued, 1 already assigned, 1 in doubt", res)
		}
		if n := b.jobs(t, revertKind, "available"); n != 3 {
			t.Fatalf("%d revert jobs, want 3", n)
		}
		// Again: nothing new, and no second job.
		res, err = batchop.Revert(ctx, b.db, b.batch)
		if err != nil || len(res.Queued) != 0 || res.Reverts.Total() != 3 {
			t.Fatalf("second revert: %+v, %v; want nothing queued of 3 reverts", res, err)
		}
		if n := b.jobs(t, revertKind, "available"); n != 3 {
			t.Fatalf("%d revert jobs after the second revert, want 3", n)
		}
		// After a revert, retry is refused by the one rule the console and
		// the CLI follow.
		if _, err := batchop.Retry(ctx, b.db, b.batch); !errors.Is(err, batchop.ErrReverted) {
			t.Fatalf("retry after revert: %v, want ErrReverted", err)
		}
		st, err := batchop.ReadState(ctx, b.db.Pool(), b.batch)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Allowed(batchop.OpRetry); !errors.Is(err, batchop.ErrReverted) {
			t.Fatalf("Allowed(retry) after revert: %v, want ErrReverted", err)
		}
	})

	t.Run("RefusesRowsNotFinal", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 3)
		_, err := batchop.Revert(ctx, b.db, b.batch)
		var nf *batchop.NotFinalError
		if !errors.As(err, &nf) || nf.Open != 3 {
			t.Fatalf("revert of a queued batch: %v, want NotFinalError of 3 rows", err)
		}
	})

	t.Run("RefusesJobsInFlight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 3)
		b.exec(t, `UPDATE items SET status = 'canceled' WHERE batch_id = $1`)
		_, err := batchop.Revert(ctx, b.db, b.batch)
		var inf *batchop.InFlightError
		if !errors.As(err, &inf) || inf.Rows != 3 {
			t.Fatalf("revert with jobs still live: %v, want InFlightError of 3 rows", err)
		}
		if n := b.jobs(t, revertKind, "available"); n != 0 {
			t.Fatalf("%d revert jobs after a refused revert, want 0", n)
		}
	})
}

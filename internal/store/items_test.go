package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

const itemsBatch = "b0000000-0000-4000-8000-000000000001"

func insertItem(t *testing.T, db *testdb.DB, row int, path string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO items (batch_id, row, line, configuration_id, path, target_type)
		VALUES ($1, $2, $2 + 1, 'c0000000-0000-4000-8000-000000000001', $3, 'all_devices')`, itemsBatch, row, path); err != nil {
		t.Fatal(err)
	}
}

// TestItemPathIsCheckedOnRead: a path read back from the database passes
// the same allow-list as input, so a row changed behind bulkassign's back
// can never send a request (with its token) to another Graph URL.
func TestItemPathIsCheckedOnRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	insertItem(t, db, 0, "rootCertificate")
	insertItem(t, db, 1, "../../users")
	if it, err := store.GetItem(ctx, db.Pool, itemsBatch, 0); err != nil || it.Spec.Path != "rootCertificate" {
		t.Fatalf("GetItem(allowed path) = %+v, %v", it, err)
	}
	_, err := store.GetItem(ctx, db.Pool, itemsBatch, 1)
	if err == nil || !strings.Contains(err.Error(), "invalid path") {
		t.Fatalf("GetItem(../../users) err = %v, want an invalid path error", err)
	}
	if _, err := store.StartRun(ctx, db.Pool, itemsBatch, 1, assign.NewID(), time.Minute); err == nil {
		t.Fatal("StartRun handed out a row with a path outside the allow-list")
	}
}

// TestStartRunHoldsTheRow: one run holds a row; another run of it is told
// how long the hold lasts, until the first run's outcome releases it.
func TestStartRunHoldsTheRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	insertItem(t, db, 0, "")
	first, second := assign.NewID(), assign.NewID()
	it, err := store.StartRun(ctx, db.Pool, itemsBatch, 0, first, time.Minute)
	if err != nil || it.Status != assign.StatusRunning {
		t.Fatalf("first StartRun = %+v, %v", it, err)
	}
	_, err = store.StartRun(ctx, db.Pool, itemsBatch, 0, second, time.Minute)
	var held *store.HeldError
	if !errors.As(err, &held) || held.Left <= 50*time.Second || held.Left > time.Minute {
		t.Fatalf("second StartRun err = %v, want held for about a minute", err)
	}
	// The second run may not write; the first may.
	if ok, err := store.RecordOutcome(ctx, db.Pool, itemsBatch, 0, second, store.Outcome{Status: assign.StatusFailed}); err != nil || ok {
		t.Fatalf("outcome of the run that does not hold the row = %v, %v; want not written", ok, err)
	}
	if ok, err := store.RecordOutcome(ctx, db.Pool, itemsBatch, 0, first, store.Outcome{Status: assign.StatusRetrying}); err != nil || !ok {
		t.Fatalf("outcome of the holding run = %v, %v; want written", ok, err)
	}
	// A snooze released the hold: the next run takes the row.
	if _, err := store.StartRun(ctx, db.Pool, itemsBatch, 0, second, time.Minute); err != nil {
		t.Fatalf("StartRun after the hold was released: %v", err)
	}
}

package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestCountRetryable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jobs.Enqueue(ctx, db.Pool, rc, []jobs.Input{{Name: "retry.csv",
		Reader: strings.NewReader(testenv.GroupCSV(10, 3)), Format: intake.FormatCSV, DefaultTenant: testTenant}})
	if err != nil {
		t.Fatal(err)
	}
	batch := out[0].Batch.ID
	count := func() store.RetryCounts {
		t.Helper()
		c, err := store.CountRetryable(ctx, db.Pool, batch)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := count(); c != (store.RetryCounts{}) {
		t.Fatalf("queued rows: %+v, want none to retry", c)
	}
	// As workers leave them: rows 1-3 failed on a missing configuration,
	// row 4 failed on a 503, row 5 gave up without an answer, row 6 was
	// canceled, row 7 created; the rest still queued.
	for _, sql := range []string{
		`UPDATE items SET status = 'failed', http_status = 404, error_code = 'ResourceNotFound' WHERE batch_id = $1 AND row <= 3`,
		`UPDATE items SET status = 'failed', http_status = 503 WHERE batch_id = $1 AND row = 4`,
		`UPDATE items SET status = 'failed', error_code = 'Timeout' WHERE batch_id = $1 AND row = 5`,
		`UPDATE items SET status = 'canceled', http_status = 404 WHERE batch_id = $1 AND row = 6`,
		`UPDATE items SET status = 'created', http_status = 201, assignment_id = 'a7' WHERE batch_id = $1 AND row = 7`,
	} {
		if _, err := db.Pool.Exec(ctx, sql, batch); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if got, want := count(), (store.RetryCounts{Retryable: 3, NotFound: 3}); got != want {
		t.Fatalf("CountRetryable = %+v, want %+v", got, want)
	}
}

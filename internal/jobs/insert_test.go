package jobs_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

func TestInsertJobs(t *testing.T) {
	t.Parallel()
	// 5,001 jobs cross a chunk boundary; 0 inserts nothing.
	for _, n := range []int{0, 5001} {
		db := testdb.New(t, 2)
		ctx := context.Background()
		rc, err := jobs.NewInsertClient(db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return jobs.InsertJobs(ctx, tx, rc, n, func(i int) river.JobArgs {
				return jobs.AssignArgs{Batch: "00000000-0000-4000-8000-000000000001", Row: i + 1}
			})
		})
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		var count, rows, lo, hi int
		err = db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (args->>'row')::int),
			coalesce(min((args->>'row')::int), 0), coalesce(max((args->>'row')::int), 0) FROM river_job`).Scan(&count, &rows, &lo, &hi)
		if err != nil {
			t.Fatal(err)
		}
		want := [4]int{n, n, min(n, 1), n}
		if got := [4]int{count, rows, lo, hi}; got != want {
			t.Fatalf("n=%d: jobs, distinct rows, first and last row = %v, want %v", n, got, want)
		}
	}
}

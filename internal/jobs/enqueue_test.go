package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func countRows(t testing.TB, db *testdb.DB) (batches, items, riverJobs int) {
	t.Helper()
	err := db.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM items),
		(SELECT count(*) FROM river_job)`).Scan(&batches, &items, &riverJobs)
	if err != nil {
		t.Fatal(err)
	}
	return
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setup := func(t *testing.T) *testdb.DB {
		t.Helper()
		return testdb.New(t, 4)
	}
	enqueue := func(t *testing.T, db *testdb.DB, inputs ...jobs.Input) ([]jobs.Enqueued, error) {
		t.Helper()
		rc, err := jobs.NewInsertClient(db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		return jobs.Enqueue(ctx, db.Pool, rc, inputs)
	}
	csvInput := func(name, content string) jobs.Input {
		return jobs.Input{Name: name, Reader: strings.NewReader(content), Format: intake.FormatCSV}
	}

	t.Run("WritesBatchItemsAndOneJobPerUniqueRow", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		content := testenv.GroupCSV(12000, 7) + testenv.Config(0) + ",group," + testenv.Group(0) + "\n" // a duplicate of line 2
		out, err := enqueue(t, db, csvInput("big.csv", content))
		if err != nil {
			t.Fatal(err)
		}
		b := out[0].Batch
		if b.RowCount != 12000 || b.DuplicateRows != 1 || len(b.SHA256) != 64 || b.Bytes != int64(len(content)) {
			t.Fatalf("batch = %+v, want 12000 rows, 1 duplicate, a sha256 and %d bytes", b, len(content))
		}
		batches, items, riverJobs := countRows(t, db)
		if batches != 1 || items != 12000 || riverJobs != 12000 {
			t.Fatalf("wrote %d batches, %d items, %d jobs; want 1, 12000, 12000", batches, items, riverJobs)
		}
		var line, row int
		if err := db.Pool.QueryRow(ctx, `SELECT line, row FROM items WHERE group_id = $1`, testenv.Group(11999)).Scan(&line, &row); err != nil {
			t.Fatal(err)
		}
		if line != 12001 || row != 12000 {
			t.Fatalf("last row: line %d row %d, want line 12001 (header is line 1), row 12000", line, row)
		}
	})

	t.Run("InvalidFileWritesNothing", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		// Invalid row far past the first chunk, so chunks were already written.
		content := testenv.GroupCSV(7000, 3) + "not-a-guid,group," + testenv.Group(1) + "\n"
		_, err := enqueue(t, db, csvInput("bad.csv", content))
		var invalid *jobs.InvalidInputError
		if !errors.As(err, &invalid) {
			t.Fatalf("err = %v, want InvalidInputError", err)
		}
		if got := invalid.Error(); !strings.Contains(got, `bad.csv:7002: configuration_id "not-a-guid" is not a GUID`) {
			t.Fatalf("error = %q, want it to name bad.csv:7002 and the field", got)
		}
		if b, i, j := countRows(t, db); b+i+j != 0 {
			t.Fatalf("rejected file left %d batches, %d items, %d jobs; want nothing", b, i, j)
		}
	})

	t.Run("OneInvalidFileRejectsAll", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		_, err := enqueue(t, db, csvInput("good.csv", testenv.GroupCSV(10, 2)),
			csvInput("bad.csv", "configuration_id,group_id\n"+testenv.Config(1)+",x\n"))
		var invalid *jobs.InvalidInputError
		if !errors.As(err, &invalid) {
			t.Fatalf("err = %v, want invalid input", err)
		}
		if b, i, j := countRows(t, db); b+i+j != 0 {
			t.Fatalf("left %d batches, %d items, %d jobs; want nothing", b, i, j)
		}
	})
}

// BenchmarkEnqueue100k measures enqueueing a 100,000-row CSV: parse,
// validate, batch, items (COPY) and River jobs (InsertManyFastTx).
func BenchmarkEnqueue100k(b *testing.B) {
	const rows = 100_000
	content := testenv.GroupCSV(rows, 500)
	db := testdb.New(b, 4)
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		_, err := jobs.Enqueue(context.Background(), db.Pool, rc, []jobs.Input{{Name: "bench.csv", Reader: strings.NewReader(content), Format: intake.FormatCSV}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

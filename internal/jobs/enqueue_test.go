package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// testTenant is the default tenant of lists enqueued here: the
// AZURE_TENANT_ID the enqueue command would pass.
const testTenant = "5e0c9f3a-7d21-4b8e-a6f4-2c1d0e9b8a73"

// Tenants that rows name.
const (
	tenantA = "2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d"
	tenantB = "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29180"
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
		return jobs.Input{Name: name, Reader: strings.NewReader(content), Format: intake.FormatCSV, DefaultTenant: testTenant}
	}
	// tenants maps each row of the batch to its tenant ("NULL" for none).
	tenants := func(t *testing.T, db *testdb.DB, batch string) map[int]string {
		t.Helper()
		rows, err := db.Pool.Query(ctx, `SELECT row, coalesce(tenant_id, 'NULL') FROM assignment_results WHERE batch_id = $1`, batch)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]string{}
		for rows.Next() {
			var row int
			var tenant string
			if err := rows.Scan(&row, &tenant); err != nil {
				t.Fatal(err)
			}
			out[row] = tenant
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
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

	t.Run("EveryRowNamesItsTenant", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		// The same target in three tenants is three rows; a row that names
		// the default tenant repeats the one that names none.
		row := testenv.Config(0) + ",group," + testenv.Group(0) + ","
		content := "configuration_id,target_type,group_id,tenant_id\n" + row + tenantA + "\n" + row + "{" + strings.ToUpper(tenantB) + "}\n" +
			row + "\n" + row + testTenant + "\n"
		out, err := enqueue(t, db, csvInput("tenants.csv", content), csvInput("plain.csv", testenv.GroupCSV(2, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if b := out[0].Batch; b.RowCount != 3 || b.DuplicateRows != 1 {
			t.Fatalf("batch = %+v, want 3 rows and 1 duplicate", b)
		}
		if got, want := tenants(t, db, out[0].Batch.ID), map[int]string{1: tenantA, 2: tenantB, 3: testTenant}; !maps.Equal(got, want) {
			t.Fatalf("tenants by row %v, want %v", got, want)
		}
		if got, want := tenants(t, db, out[1].Batch.ID), map[int]string{1: testTenant, 2: testTenant}; !maps.Equal(got, want) {
			t.Fatalf("a list without tenants: %v, want %v", got, want)
		}
		// The worker's view of the row names it too.
		it, err := store.GetItem(ctx, db.Pool, out[0].Batch.ID, 2)
		if err != nil || it.TenantID != tenantB {
			t.Fatalf("GetItem = %+v, %v; want tenant %s", it, err, tenantB)
		}
	})

	t.Run("NoDefaultTenantWritesNothing", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		// The first row without a tenant is past the first written chunk.
		named := func(n int) string {
			var b strings.Builder
			b.WriteString("configuration_id,target_type,group_id,tenant_id\n")
			for i := range n {
				b.WriteString(testenv.Config(0) + ",group," + testenv.Group(i) + "," + tenantA + "\n")
			}
			return b.String()
		}
		content := named(6000) + testenv.Config(1) + ",group," + testenv.Group(1) + ",\n" + testenv.Config(2) + ",all_devices,,\n"
		for _, def := range []string{"", "contoso.onmicrosoft.com", "00000000-0000-0000-0000-000000000000"} {
			in := csvInput("mixed.csv", content)
			in.DefaultTenant = def
			_, err := enqueue(t, db, csvInput("first.csv", testenv.GroupCSV(3, 1)), in)
			var nt *jobs.NoTenantError
			if !errors.As(err, &nt) || nt.File != "mixed.csv" || nt.Line != 6002 || nt.DefaultTenant != def {
				t.Fatalf("default tenant %q: err = %v, want a NoTenantError naming mixed.csv:6002", def, err)
			}
			if b, i, j := countRows(t, db); b+i+j != 0 {
				t.Fatalf("default tenant %q: left %d batches, %d items, %d jobs; want nothing", def, b, i, j)
			}
		}
		// A default tenant that is no tenant id does not matter to rows that
		// name theirs.
		in := csvInput("named.csv", named(10))
		in.DefaultTenant = "contoso.onmicrosoft.com"
		out, err := enqueue(t, db, in)
		if err != nil || out[0].Batch.RowCount != 10 {
			t.Fatalf("rows that name their tenant, default tenant a domain: %v", err)
		}
		// Invalid rows are told about before the missing tenant.
		in = csvInput("bad.csv", "configuration_id,target_type\n"+testenv.Config(0)+",all_devices\nnot-a-guid,all_devices\n")
		in.DefaultTenant = ""
		var invalid *jobs.InvalidInputError
		if _, err := enqueue(t, db, in); !errors.As(err, &invalid) {
			t.Fatalf("err = %v, want the invalid row first", err)
		}
	})

	t.Run("ScheduledRunsFillTheWorkersTenant", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		rc, err := jobs.NewInsertClient(db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 5, 1, 10, 2, 0, 0, time.UTC)
		content := "configuration_id,target_type,tenant_id\n" + testenv.Config(0) + ",all_devices," + tenantA + "\n" +
			testenv.Config(0) + ",all_devices,\n"
		err = store.PutSchedule(ctx, db.Pool, &store.Schedule{Name: "n", Cron: "*/5 * * * *", TimeZone: "UTC", Source: "n.csv",
			Format: string(intake.FormatCSV), Content: []byte(content), SHA256: "-", RowCount: 2, LastRunAt: start,
			NextRunAt: start.Add(3 * time.Minute)}, false)
		if err != nil {
			t.Fatal(err)
		}
		// A worker whose AZURE_TENANT_ID is a domain name: the run
		// enqueues nothing and says why.
		runs, err := jobs.RunDueSchedules(ctx, db.Pool, rc, start.Add(4*time.Minute), "contoso.onmicrosoft.com", slog.New(slog.DiscardHandler))
		if err != nil || len(runs) != 1 || runs[0].BatchID != "" || !strings.Contains(runs[0].Error, "n.csv:3: the row names no tenant") {
			t.Fatalf("runs = %+v, %v; want one run, no batch, an error naming n.csv:3", runs, err)
		}
		if b, i, j := countRows(t, db); b+i+j != 0 {
			t.Fatalf("left %d batches, %d items, %d jobs; want nothing", b, i, j)
		}
		runs, err = jobs.RunDueSchedules(ctx, db.Pool, rc, start.Add(9*time.Minute), testTenant, slog.New(slog.DiscardHandler))
		if err != nil || len(runs) != 1 || runs[0].BatchID == "" {
			t.Fatalf("runs = %+v, %v; want a batch", runs, err)
		}
		if got, want := tenants(t, db, runs[0].BatchID), map[int]string{1: tenantA, 2: testTenant}; !maps.Equal(got, want) {
			t.Fatalf("tenants by row %v, want %v", got, want)
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
		_, err := jobs.Enqueue(context.Background(), db.Pool, rc, []jobs.Input{{Name: "bench.csv", Reader: strings.NewReader(content),
			Format: intake.FormatCSV, DefaultTenant: testTenant}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

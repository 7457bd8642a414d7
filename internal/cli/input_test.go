package cli_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestResultsAsInput goes round: a batch's failed rows, written with
// --format input, are an input file that enqueue accepts unchanged and
// that asks for exactly what those rows asked for.
func TestResultsAsInput(t *testing.T) {
	t.Parallel()
	// Configurations 0 and 1 exist, 2 and 3 do not (yet): the rows on them
	// fail with 404, every target type, filter and path among them.
	h := newTenant(t, 2)
	h.StartWorker(t, fastWorker)
	in, err := os.ReadFile("testdata/roundtrip.csv")
	if err != nil {
		t.Fatal(err)
	}
	r := enqueue(t, h, false, testenv.WriteFile(t, "roundtrip.csv", string(in)))
	if r.code != cli.ExitOK {
		t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
	}
	batch := strings.TrimSpace(r.stdout)
	if c := h.WaitFinal(t, batch, 30*time.Second); c[assign.StatusFailed] != 6 || c[assign.StatusCreated] != 3 {
		t.Fatalf("first batch: %v, want 3 created and 6 failed", c)
	}

	r = enqueue(t, h, false, "results", batch[:8], "--status", "failed", "--format", "input")
	if r.code != cli.ExitOK {
		t.Fatalf("results --format input: exit %d\n%s", r.code, r.stderr)
	}
	want, err := os.ReadFile("testdata/roundtrip.failed.golden")
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(want) {
		t.Fatalf("results --format input:\n--- got\n%s--- want\n%s", r.stdout, want)
	}

	// Read back by the real parser, the rows are the failed input rows.
	var got []intake.Row
	sum, err := intake.Reader{Name: "failed.csv", Format: intake.FormatCSV}.Read(strings.NewReader(r.stdout), func(row intake.Row) error {
		got = append(got, row)
		return nil
	})
	if err != nil || sum.Err() != nil || len(sum.Warnings) != 0 {
		t.Fatalf("intake: %v, %v, warnings %v", err, sum.Err(), sum.Warnings)
	}
	var orig []intake.Row
	if _, err := (intake.Reader{Name: "roundtrip.csv", DefaultTenant: h.Sim.TenantID()}).Read(strings.NewReader(string(in)), func(row intake.Row) error {
		if row.Spec.ConfigurationID == testenv.Config(2) || row.Spec.ConfigurationID == testenv.Config(3) {
			orig = append(orig, row)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(orig) {
		t.Fatalf("read back %d rows, want %d", len(got), len(orig))
	}
	for i := range got {
		if got[i].Spec != orig[i].Spec || got[i].TenantID != orig[i].TenantID {
			t.Errorf("row %d: read back %+v in %s, want %+v in %s", i, got[i].Spec, got[i].TenantID, orig[i].Spec, orig[i].TenantID)
		}
	}

	// Enqueued again once the configurations exist, every row is created.
	h.Sim.AddConfiguration(testenv.Config(2), testenv.Config(3))
	r = enqueue(t, h, false, testenv.WriteFile(t, "failed.csv", r.stdout))
	if r.code != cli.ExitOK {
		t.Fatalf("enqueue failed.csv: exit %d\n%s", r.code, r.stderr)
	}
	if c := h.WaitFinal(t, strings.TrimSpace(r.stdout), 30*time.Second); c[assign.StatusCreated] != 6 {
		t.Fatalf("second batch: %v, want 6 created", c)
	}

	// An empty selection is the header alone: still an input file's shape.
	r = enqueue(t, h, false, "results", batch, "--status", "canceled", "--format", "input")
	if r.stdout != strings.Join(intake.Columns, ",")+"\n" {
		t.Fatalf("no rows as input = %q, want the header alone", r.stdout)
	}
}

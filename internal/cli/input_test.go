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

// TestResultsAsInputKeepsNamesAndActions: failed rows that gave names, and
// remove rows, go round in their own words: `results --format input`
// writes the names given (not the ids they resolved to) and the action,
// a name that starts like a formula survives the CSV formula guard, and
// the list enqueued again once the tenant is fixed ends as asked.
func TestResultsAsInputKeepsNamesAndActions(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	h.Sim.NameConfiguration(testenv.Config(0), "Baseline")
	h.Sim.AddGroup(testenv.Group(1), "SG-One")
	h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(1)})
	h.StartWorker(t, fastWorker)
	list := "configuration_name,configuration_id,target_type,group_name,action\n" +
		"Baseline,,group,SG-One,remove\n" + // removed
		"Baseline,,group,=Contractors,\n" + // NameNotFound, a name that starts like a formula
		",c0000000-0000-4000-8000-000000000009,all_devices,,remove\n" // 404: no such configuration
	r := enqueue(t, h, false, testenv.WriteFile(t, "names.csv", list))
	if r.code != cli.ExitOK {
		t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
	}
	batch := strings.TrimSpace(r.stdout)
	if c := h.WaitFinal(t, batch, 30*time.Second); c[assign.StatusRemoved] != 1 || c[assign.StatusFailed] != 2 {
		t.Fatalf("first batch: %v, want 1 removed and 2 failed", c)
	}
	r = enqueue(t, h, false, "results", batch, "--status", "failed", "--format", "input")
	if r.code != cli.ExitOK {
		t.Fatalf("results --format input: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, ",'=Contractors,") || !strings.Contains(r.stdout, ",remove,") || strings.Contains(r.stdout, testenv.Config(0)) {
		t.Fatalf("results --format input: want the name guarded, the action kept and the resolved id left out:\n%s", r.stdout)
	}
	var got []intake.Row
	sum, err := intake.Reader{Name: "failed.csv", Format: intake.FormatCSV}.Read(strings.NewReader(r.stdout), func(row intake.Row) error {
		got = append(got, row)
		return nil
	})
	if err != nil || sum.Err() != nil || len(got) != 2 {
		t.Fatalf("intake: %v, %v, %d rows", err, sum.Err(), len(got))
	}
	if s := got[0].Spec; s.Names.Configuration != "Baseline" || s.Names.Group != "=Contractors" || s.ConfigurationID != "" || s.Action != assign.ActionAssign {
		t.Errorf("row 1 read back as %+v", s)
	}
	if s := got[1].Spec; s.ConfigurationID != "c0000000-0000-4000-8000-000000000009" || s.Action != assign.ActionRemove {
		t.Errorf("row 2 read back as %+v", s)
	}

	h.Sim.AddGroup(testenv.Group(2), "=Contractors")
	r = enqueue(t, h, false, testenv.WriteFile(t, "failed.csv", r.stdout))
	if r.code != cli.ExitOK {
		t.Fatalf("enqueue again: exit %d\n%s", r.code, r.stderr)
	}
	again := strings.TrimSpace(r.stdout)
	c := h.WaitFinal(t, again, 30*time.Second)
	if c[assign.StatusCreated] != 1 || c[assign.StatusFailed] != 1 {
		t.Fatalf("second batch: %v, want the named row created and the removal on a missing configuration failed again", c)
	}
}

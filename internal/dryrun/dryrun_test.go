package dryrun

import (
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	group := func(n int) assign.Target { return assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(n)} }
	row := func(cfg, g int) Row {
		return Row{Source: "in.csv", Line: 2, Spec: assign.Spec{ConfigurationID: testenv.Config(cfg), Target: group(g)}}
	}
	lists := map[key]*list{
		{testenv.Config(0), ""}: {found: true, keys: map[string]string{group(1).Key(): "a1"}},
		{testenv.Config(1), ""}: {err: "HTTP 404 ResourceNotFound (request-id r)"},
		{testenv.Config(2), ""}: {found: true, err: "gave up after 4 failed reads"},
	}
	tests := []struct {
		name string
		row  Row
		want Outcome
	}{
		{"NotAssignedYet", row(0, 2), Outcome{Result: WouldCreate}},
		{"AssignedAlready", row(0, 1), Outcome{Result: AlreadyAssigned, AssignmentID: "a1"}},
		{"NoConfiguration", row(1, 1), Outcome{Result: ConfigurationNotFound, Why: "HTTP 404 ResourceNotFound (request-id r)"}},
		{"ReadFailed", row(2, 1), Outcome{Result: ReadFailed, Why: "gave up after 4 failed reads"}},
		{"NotRead", row(3, 1), Outcome{Result: ReadFailed, Why: "not read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.want.Row = tt.row
			if got := outcome(tt.row, lists); got != tt.want {
				t.Errorf("outcome = %+v, want %+v", got, tt.want)
			}
		})
	}

	rows := []Row{row(0, 1), row(0, 2), row(0, 3), row(1, 1), row(3, 1)}
	rep := newReport(rows, lists)
	if len(rep.Rows) != 5 || rep.Lists != 3 || rep.Counts[WouldCreate] != 2 || rep.Counts[AlreadyAssigned] != 1 ||
		rep.Counts[ConfigurationNotFound] != 1 || rep.Counts[ReadFailed] != 1 {
		t.Fatalf("report: %d rows, %d lists, counts %v; want 5 rows, 3 lists, 2 would_create and one of each other result", len(rep.Rows), rep.Lists, rep.Counts)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	// Two files on three configurations: each configuration path is read
	// once, in order of first use.
	p, err := NewPlan([]jobs.Input{
		{Name: "a.csv", Format: intake.FormatCSV, Reader: strings.NewReader(testenv.GroupCSV(4, 2))},
		{Name: "b.csv", Format: intake.FormatCSV, Reader: strings.NewReader(testenv.GroupCSV(3, 3))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Invalid() || len(p.Rows) != 7 || len(p.Intake) != 2 {
		t.Fatalf("plan: invalid %v, %d rows, %d intake results; want valid, 7 and 2", p.Invalid(), len(p.Rows), len(p.Intake))
	}
	want := []key{{testenv.Config(0), ""}, {testenv.Config(1), ""}, {testenv.Config(2), ""}}
	if len(p.keys) != len(want) || p.keys[0] != want[0] || p.keys[1] != want[1] || p.keys[2] != want[2] {
		t.Fatalf("keys %v, want %v", p.keys, want)
	}
	if r := p.Rows[4]; r.Source != "b.csv" || r.Line != 2 {
		t.Fatalf("row 5: %+v, want b.csv line 2", r)
	}

	bad, err := NewPlan([]jobs.Input{{Name: "bad.csv", Format: intake.FormatCSV,
		Reader: strings.NewReader("configuration_id,target_type,group_id\nnot-a-guid,group," + testenv.Group(1) + "\n")}})
	if err != nil || !bad.Invalid() {
		t.Fatalf("a plan with an invalid row: %v, invalid %v; want it marked invalid", err, bad != nil && bad.Invalid())
	}
}

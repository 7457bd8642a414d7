package jobs_test

import (
	"os"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestExamples runs the demo's inputs (examples/) as `make demo` does and
// pins the outcome the README states: 35 created, 3 already assigned, 2
// failed with 404 (the configuration the tenant does not have).
func TestExamples(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"assignments.csv", "assignments.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			h := testenv.New(t, graphsim.Config{})
			if _, err := h.Sim.LoadTenantFile("../../examples/tenant.json"); err != nil {
				t.Fatal(err)
			}
			content, err := os.ReadFile("../../examples/" + file)
			if err != nil {
				t.Fatal(err)
			}
			batch := h.Enqueue(t, file, string(content))
			h.StartWorker(t, fast)
			counts := h.WaitFinal(t, batch, time.Minute)
			failed404 := 0
			for _, r := range h.Results(t, batch) {
				if r.Status == assign.StatusFailed && r.HTTPStatus == 404 {
					failed404++
				}
			}
			t.Logf("%s: %v", file, counts)
			if file == "assignments.csv" && (counts[assign.StatusCreated] != 35 || counts[assign.StatusAlreadyAssigned] != 3 || failed404 != 2 || counts.Total() != 40) {
				t.Fatalf("counts %v (404s %d), want 35 created, 3 already_assigned, 2 failed with 404 — as the README says", counts, failed404)
			}
			if counts.Final() != counts.Total() || counts[assign.StatusCreated] == 0 {
				t.Fatalf("counts %v", counts)
			}
			if d := h.Sim.Duplicates(); d != 0 {
				t.Fatalf("%d duplicates", d)
			}
		})
	}
}

// TestExampleNamesAndRemovals runs examples/names.csv and
// examples/removals.csv against examples/tenant.json and pins what the
// README says of them: names resolve (4 created, 2 already assigned, one
// name missing, one ambiguous), removals remove (3 removed, 1 not
// assigned, and the file's one assign row created).
func TestExampleNamesAndRemovals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file string
		want map[assign.Status]int
		// codes are the error codes of the failed rows, by line.
		codes map[int]string
	}{
		{"names.csv", map[assign.Status]int{assign.StatusCreated: 4, assign.StatusAlreadyAssigned: 2, assign.StatusFailed: 2},
			map[int]string{8: assign.CodeNameNotFound, 9: assign.CodeNameAmbiguous}},
		{"removals.csv", map[assign.Status]int{assign.StatusRemoved: 3, assign.StatusNotAssigned: 1, assign.StatusCreated: 1}, nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			h := testenv.New(t, graphsim.Config{})
			if _, err := h.Sim.LoadTenantFile("../../examples/tenant.json"); err != nil {
				t.Fatal(err)
			}
			content, err := os.ReadFile("../../examples/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			batch := h.Enqueue(t, tc.file, string(content))
			h.StartWorker(t, fast)
			counts := h.WaitFinal(t, batch, time.Minute)
			for st, n := range tc.want {
				if counts[st] != n {
					t.Errorf("%s: %d, want %d (counts %v) — as the README says", st, counts[st], n, counts)
				}
			}
			for _, r := range h.Results(t, batch) {
				if code, ok := tc.codes[r.Line]; ok && (r.Status != assign.StatusFailed || r.ErrorCode != code) {
					t.Errorf("line %d: %s %s %s, want failed %s", r.Line, r.Status, r.ErrorCode, r.ErrorMessage, code)
				}
			}
			if d := h.Sim.Duplicates(); d != 0 {
				t.Fatalf("%d duplicates", d)
			}
		})
	}
}

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

package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestListCap: a configuration whose assignments' pages add up to more
// than GRAPH_MAX_LIST_BYTES fails its rows at once with ListTooLarge and a
// message naming the cap, instead of holding every page in memory; rows of
// a configuration with a short list are worked as usual.
func TestListCap(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{PageSize: 50})
	h.Sim.AddConfiguration(testenv.Config(0), testenv.Config(1))
	// 600 assignments of about 300 bytes each: some 180 KB over 12 pages,
	// against a cap of 64 KiB.
	for i := range 600 {
		h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(1000 + i)})
	}
	var csv strings.Builder
	csv.WriteString("configuration_id,target_type,group_id\n")
	for i := range 3 {
		csv.WriteString(testenv.Config(0) + ",group," + testenv.Group(i) + "\n")
		csv.WriteString(testenv.Config(1) + ",group," + testenv.Group(i) + "\n")
	}
	batch := h.Enqueue(t, "cap.csv", csv.String())
	o := fast
	o.Extra = map[string]string{"GRAPH_MAX_LIST_BYTES": "65536"}
	for k, v := range fast.Extra {
		o.Extra[k] = v
	}
	h.StartWorker(t, o)
	h.WaitFinal(t, batch, 30*time.Second)
	for _, r := range h.Results(t, batch) {
		switch r.ConfigurationID {
		case testenv.Config(0):
			if r.Status != assign.StatusFailed || r.ErrorCode != assign.CodeListTooLarge || !strings.Contains(r.ErrorMessage, "65536 bytes (GRAPH_MAX_LIST_BYTES)") {
				t.Errorf("line %d: %s %s %q, want failed %s naming the cap", r.Line, r.Status, r.ErrorCode, r.ErrorMessage, assign.CodeListTooLarge)
			}
			if r.Attempts > 1 {
				t.Errorf("line %d: %d attempts, want the first to end the row", r.Line, r.Attempts)
			}
		default:
			if r.Status != assign.StatusCreated {
				t.Errorf("line %d: %s %s %q, want created", r.Line, r.Status, r.ErrorCode, r.ErrorMessage)
			}
		}
	}
	if n := len(h.Sim.Assignments(testenv.Config(0), "")); n != 600 {
		t.Errorf("configuration 0 holds %d assignments, want the 600 it had", n)
	}
}

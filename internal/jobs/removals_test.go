package jobs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestRemoveBesideCreate: one batch removes targets while another, enqueued
// at the same time, assigns the same targets, on two workers, with writes
// that apply and lose their answers. Whatever order the rows run in, no
// target is ever assigned twice, every id a row says it created is one
// Graph created, every id a row says it removed is gone, and a target is
// left assigned only if a row created it after the last removal.
func TestRemoveBesideCreate(t *testing.T) {
	t.Parallel()
	const targets, configs = 60, 3
	h := testenv.New(t, graphsim.Config{Faults: graphsim.Faults{P503: 0.1, PAppliedThen504: 0.1, Latency: 5 * time.Millisecond}})
	var remove, create strings.Builder
	remove.WriteString("configuration_id,target_type,group_id,action\n")
	create.WriteString("configuration_id,target_type,group_id\n")
	for i := range targets {
		cfg := testenv.Config(i % configs)
		h.Sim.AddConfiguration(cfg)
		h.Sim.Preassign(cfg, "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(i)})
		fmt.Fprintf(&remove, "%s,group,%s,remove\n", cfg, testenv.Group(i))
		fmt.Fprintf(&create, "%s,group,%s\n", cfg, testenv.Group(i))
	}
	before := h.TenantState(configs)
	rb := h.Enqueue(t, "remove.csv", remove.String())
	cb := h.Enqueue(t, "create.csv", create.String())
	w := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "0", "WORKER_CONCURRENCY": "6", "GRAPH_MAX_ERRORS": "50"}}
	w.Settings.RetryBase, w.Settings.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	h.StartWorker(t, w)
	h.StartWorker(t, w)
	h.WaitFinal(t, rb, 2*time.Minute)
	h.WaitFinal(t, cb, 2*time.Minute)

	created := map[string]bool{}
	for _, e := range h.Sim.Ledger() {
		created[e.ID] = true
	}
	after := h.TenantState(configs)
	for _, r := range h.Results(t, rb) {
		switch r.Status {
		case assign.StatusRemoved:
			if after[r.AssignmentID] != "" || (before[r.AssignmentID] == "" && !created[r.AssignmentID]) {
				t.Errorf("remove line %d: removed %q, which is still there or never was", r.Line, r.AssignmentID)
			}
		case assign.StatusNotAssigned:
		default:
			t.Errorf("remove line %d: %s %s %s", r.Line, r.Status, r.ErrorCode, r.ErrorMessage)
		}
	}
	for _, r := range h.Results(t, cb) {
		switch r.Status {
		case assign.StatusCreated:
			if !created[r.AssignmentID] {
				t.Errorf("create line %d: created %q, which Graph never created", r.Line, r.AssignmentID)
			}
		case assign.StatusAlreadyAssigned:
			if before[r.AssignmentID] == "" && !created[r.AssignmentID] {
				t.Errorf("create line %d: already assigned as %q, which never existed", r.Line, r.AssignmentID)
			}
		default:
			t.Errorf("create line %d: %s %s %s", r.Line, r.Status, r.ErrorCode, r.ErrorMessage)
		}
	}
	for id := range after {
		if before[id] == "" && !created[id] {
			t.Errorf("the tenant holds %s, which no one created", id)
		}
	}
	if d := h.Sim.Duplicates(); d != 0 {
		t.Errorf("%d duplicate assignments", d)
	}
	t.Logf("%d targets: %d assigned at the end, %d created by the create batch", targets, len(after), len(created))
}

package cli_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestRemovals, as a new user would: a list that removes 100 existing
// assignments (some with filters, some exclusions) and names 5 that do not
// exist ends with 100 rows removed, whose assignments are gone from the
// tenant, 5 not_assigned, and nothing else touched (the tenant diffed
// before and after); revert of the batch puts the 100 back. Also under the
// simulator's fault mix, where deletes are answered 503, or apply and are
// then answered 504 or cut off.
func TestRemovals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults graphsim.Faults
	}{
		{"Polite", graphsim.Faults{}},
		{"FaultMix", graphsim.Faults{P503: 0.15, PAppliedThen504: 0.1, PAppliedThenReset: 0.05, P503Read: 0.05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const configs = 4
			h := testenv.New(t, graphsim.Config{Faults: tc.faults})
			filter := "f0000000-0000-4000-8000-000000000001"
			var b strings.Builder
			b.WriteString("configuration_id,target_type,group_id,filter_id,filter_type,action\n")
			for i := range 100 {
				tg := assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(i)}
				switch i % 4 {
				case 1:
					tg.FilterID, tg.FilterType = filter, assign.FilterInclude
				case 2:
					tg.Type = assign.TargetExclusionGroup
				}
				cfg := testenv.Config(i % configs)
				h.Sim.AddConfiguration(cfg)
				h.Sim.Preassign(cfg, "", tg)
				b.WriteString(cfg + "," + string(tg.Type) + "," + tg.GroupID + "," + tg.FilterID + "," + string(tg.FilterType) + ",remove\n")
			}
			// Untouched: other groups, the same groups with another filter,
			// all devices.
			for i := range 20 {
				cfg := testenv.Config(i % configs)
				h.Sim.Preassign(cfg, "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(200 + i)})
			}
			h.Sim.Preassign(testenv.Config(3), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(0), FilterID: filter, FilterType: assign.FilterExclude})
			h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetAllDevices})
			for i := range 5 { // not assigned
				b.WriteString(testenv.Config(i%configs) + ",group," + testenv.Group(300+i) + ",,,remove\n")
			}
			before := h.TenantState(configs)
			file := testenv.WriteFile(t, "removals.csv", b.String())

			r := enqueue(t, h, false, "--dry-run", file)
			if r.code != cli.ExitOK || !strings.Contains(r.stderr, "100 would be removed, 5 to remove but not assigned") {
				t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
			}
			r = enqueue(t, h, false, file)
			if r.code != cli.ExitOK {
				t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
			}
			batch := strings.TrimSpace(r.stdout)
			worker := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "200", "WORKER_CONCURRENCY": "8", "GRAPH_MAX_ERRORS": "50"}}
			worker.Settings.RetryBase = 20 * time.Millisecond
			worker.Settings.RetryMax = 200 * time.Millisecond
			h.StartWorker(t, worker)
			counts := h.WaitFinal(t, batch, 2*time.Minute)
			if counts[assign.StatusRemoved] != 100 || counts[assign.StatusNotAssigned] != 5 || counts.Total() != 105 {
				t.Fatalf("counts %v, want 100 removed and 5 not_assigned", counts)
			}
			removedIDs := map[string]bool{}
			attempts := 0
			for _, res := range h.Results(t, batch) {
				attempts += res.Attempts
				if res.Status == assign.StatusRemoved {
					if before[res.AssignmentID] == "" {
						t.Errorf("line %d removed %q, which the tenant did not hold", res.Line, res.AssignmentID)
					}
					removedIDs[res.AssignmentID] = true
				}
			}
			if tc.faults.P503 > 0 && attempts <= 100 {
				t.Errorf("%d delete attempts for 100 removals under the fault mix: the faults were not exercised", attempts)
			}
			after := h.TenantState(configs)
			want := maps.Clone(before)
			for id := range removedIDs {
				delete(want, id)
			}
			if len(removedIDs) != 100 || !maps.Equal(after, want) {
				t.Fatalf("the tenant holds %d assignments, want the %d it held less the 100 removed (%d distinct ids removed)", len(after), len(before), len(removedIDs))
			}

			r = enqueue(t, h, false, "revert", batch, "--wait")
			if r.code != cli.ExitOK {
				t.Fatalf("revert: exit %d\n%s", r.code, r.stderr)
			}
			restored := slices.Sorted(maps.Values(h.TenantState(configs)))
			if wantTargets := slices.Sorted(maps.Values(before)); !slices.Equal(restored, wantTargets) {
				t.Fatalf("after revert the tenant holds %d assignments, want the %d targets it held before", len(restored), len(wantTargets))
			}
			if d := h.Sim.Duplicates(); d != 0 {
				t.Errorf("%d duplicate assignments", d)
			}
			for _, res := range h.Export(t, batch) {
				if res.Status == assign.StatusRemoved && (res.RevertStatus != assign.RevertReverted || res.RevertAssignmentID == "") {
					t.Errorf("line %d: revert %s %q, want reverted with the new assignment id", res.Line, res.RevertStatus, res.RevertAssignmentID)
				}
				if res.Status == assign.StatusNotAssigned && res.RevertStatus != assign.RevertNone {
					t.Errorf("line %d: not_assigned, yet reverted %s", res.Line, res.RevertStatus)
				}
			}
		})
	}
}

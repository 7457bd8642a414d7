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

// displayFilter is the assignment filter the display-name tests use.
const displayFilter = "f0000000-0000-4000-8000-0000000000d1"

// displayCSV is 30 rows given by id only: row i assigns Group(i % 10) to
// Config(i % 3), every third row with displayFilter.
func displayCSV() string {
	var b strings.Builder
	b.WriteString("configuration_id,target_type,group_id,filter_id,filter_type\n")
	for i := range 30 {
		filter, typ := "", ""
		if i%3 == 0 {
			filter, typ = displayFilter, "include"
		}
		fmt.Fprintf(&b, "%s,group,%s,%s,%s\n", testenv.Config(i%3), testenv.Group(i%10), filter, typ)
	}
	return b.String()
}

// TestDisplayNames: a batch whose rows give only ids ends with the display
// names Graph holds for its configurations, groups, filter and tenant
// stored with it and shown on every row, each read from Graph once for the
// batch across a fleet of two workers, not once per row. A name Graph will
// not give (the app may not read groups; a group Graph does not know) is
// absent and leaves the row's outcome as it would be without it.
func TestDisplayNames(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *testenv.Harness {
		t.Helper()
		h := testenv.New(t, graphsim.Config{TenantName: "Contoso Ltd"})
		for i := range 3 {
			h.Sim.AddConfiguration(testenv.Config(i))
			h.Sim.NameConfiguration(testenv.Config(i), fmt.Sprintf("Config %d", i))
		}
		for i := range 10 {
			h.Sim.AddGroup(testenv.Group(i), fmt.Sprintf("SG-%d", i))
		}
		h.Sim.AddFilter(displayFilter, "Corporate devices")
		return h
	}

	t.Run("OncePerBatch", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		batch := h.Enqueue(t, "ids.csv", displayCSV())
		for range 2 {
			h.StartWorker(t, fast)
		}
		if c := h.WaitFinal(t, batch, time.Minute); c[assign.StatusCreated] != 30 {
			t.Fatalf("counts = %v, want 30 created", c)
		}
		for _, r := range h.Export(t, batch) {
			i := (r.Line - 2)
			want := assign.Names{Configuration: fmt.Sprintf("Config %d", i%3), Group: fmt.Sprintf("SG-%d", i%10)}
			if i%3 == 0 {
				want.Filter = "Corporate devices"
			}
			if r.Display != want || r.TenantName != "Contoso Ltd" || r.ConfigurationName != "" || r.GroupName != "" {
				t.Errorf("line %d: display %+v, tenant %q, given %q %q; want %+v, Contoso Ltd, none given",
					r.Line, r.Display, r.TenantName, r.ConfigurationName, r.GroupName, want)
			}
			if l := r.ConfigurationLabel(); l != fmt.Sprintf("%q=%s", want.Configuration, r.ConfigurationID) {
				t.Errorf("line %d: configuration label %q", r.Line, l)
			}
		}
		// Once per distinct (tenant, kind, id) of the batch.
		if got, want := h.Sim.Stats().ObjectReads, (graphsim.ObjectCounts{Configurations: 3, Groups: 10, Filters: 1, Organization: 1}); got != want {
			t.Errorf("name reads = %+v, want %+v", got, want)
		}
	})

	t.Run("FailedReadsLeaveOutcomes", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		h.Sim.DefaultTenant().SetNoGroupRead(true) // every group read answers 403
		// Group(50) is one Graph does not know (404): its row is created all the same.
		csv := displayCSV() + testenv.Config(0) + ",group," + testenv.Group(50) + ",,\n"
		batch := h.Enqueue(t, "ids.csv", csv)
		h.StartWorker(t, fast)
		if c := h.WaitFinal(t, batch, time.Minute); c[assign.StatusCreated] != 31 || c.Total() != 31 {
			t.Fatalf("counts = %v, want 31 created", c)
		}
		for _, r := range h.Export(t, batch) {
			if r.Display.Group != "" || r.Display.Configuration == "" || r.TenantName != "Contoso Ltd" ||
				r.Attempts != 1 || r.ErrorCode != "" {
				t.Errorf("line %d: %+v, want no group name, the others, and a clean first-attempt outcome", r.Line, r.Result)
			}
			if l := r.TargetLabel(); l != "group:"+r.GroupID+displayFilterLabel(r.FilterID) {
				t.Errorf("line %d: target label %q, want the group's id alone", r.Line, l)
			}
		}
		// A 403 or 404 is Graph's answer: kept, not asked again per row.
		if got := h.Sim.Stats().ObjectReads.Groups; got != 11 {
			t.Errorf("group name reads = %d, want 11 (one per group)", got)
		}
	})
}

func displayFilterLabel(id string) string {
	if id == "" {
		return ""
	}
	return ` (include "Corporate devices"=` + id + ")"
}

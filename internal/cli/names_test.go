package cli_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestNames, as a new user would: a list naming configurations, groups and
// filters only by display name, with one name that matches nothing and one
// that matches two groups, dry-runs with each row's resolution shown, then
// ends with every resolvable row created (its assignment held by the
// tenant, the row keeping name and id) and the two others failed
// NameNotFound / NameAmbiguous — with one Graph read per distinct name per
// batch, across a fleet of several workers.
func TestNames(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0), testenv.Config(1))
	h.Sim.NameConfiguration(testenv.Config(0), "Win11 – BitLocker")
	h.Sim.NameConfiguration(testenv.Config(1), "iOS Wi-Fi, \"corp\"")
	for i := range 10 {
		h.Sim.AddGroup(testenv.Group(i), fmt.Sprintf("SG-%d", i))
	}
	h.Sim.AddGroup(testenv.Group(100), "SG-Pilot")
	h.Sim.AddGroup(testenv.Group(101), "SG-Pilot")
	filter := "f0000000-0000-4000-8000-000000000001"
	h.Sim.AddFilter(filter, "Corporate devices")

	var b strings.Builder
	b.WriteString("configuration_name,target_type,group_name,filter_name,filter_type\n")
	want := map[int]string{} // line → group id it should assign, "" for failures
	line := 1
	add := func(row, group string) {
		b.WriteString(row + "\n")
		line++
		want[line] = group
	}
	for i := range 10 {
		add(fmt.Sprintf("Win11 – BitLocker,group,SG-%d,,", i), testenv.Group(i))
	}
	for i := range 5 {
		add(fmt.Sprintf(`"iOS Wi-Fi, ""corp""",group,SG-%d,Corporate devices,include`, i), testenv.Group(i))
	}
	add(`"iOS Wi-Fi, ""corp""",exclusion_group,sg-5,,`, testenv.Group(5)) // Graph compares names without case
	add(`"iOS Wi-Fi, ""corp""",all_devices,,,`, "")
	add("Win11 – BitLocker,group,SG-Missing,,", "")
	add("Win11 – BitLocker,group,SG-Pilot,,", "")
	missing, ambiguous, allDevices := line-1, line, line-2
	file := testenv.WriteFile(t, "names.csv", b.String())
	// 2 configurations, SG-0..SG-9, sg-5, SG-Missing, SG-Pilot, 1 filter.
	const distinctNames = 2 + 13 + 1

	// The dry run resolves every name once and shows it per row.
	r := enqueue(t, h, false, "--dry-run", file, "--output", "csv")
	if r.code != cli.ExitOK {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	recs := readCSV(t, r.stdout)
	col := func(name string) int { return slices.Index(recs[0], name) }
	for _, rec := range recs[1:] {
		var ln int
		fmt.Sscan(rec[col("line")], &ln)
		switch res := rec[col("result")]; {
		case ln == missing:
			if res != "name_not_found" || !strings.Contains(rec[col("error")], `NameNotFound: no group is named "SG-Missing"`) {
				t.Errorf("dry run line %d: %v", ln, rec)
			}
		case ln == ambiguous:
			if res != "name_ambiguous" || !strings.Contains(rec[col("error")], testenv.Group(100)) || !strings.Contains(rec[col("error")], testenv.Group(101)) {
				t.Errorf("dry run line %d: %v, want name_ambiguous naming both groups", ln, rec)
			}
		case res != "would_create" || rec[col("configuration_id")] == "" || rec[col("group_id")] != want[ln] ||
			rec[col("configuration_name")] == "":
			t.Errorf("dry run line %d: %v, want would_create resolved to group %s", ln, rec, want[ln])
		}
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("%d names looked up", distinctNames)) {
		t.Errorf("dry run summary:\n%s", r.stderr)
	}
	if n := h.Sim.Stats().NameLookups; n.Configurations+n.Groups+n.Filters != distinctNames {
		t.Errorf("the dry run looked names up %+v, want %d in all", n, distinctNames)
	}
	before := h.Sim.Stats().NameLookups

	r = enqueue(t, h, false, file)
	if r.code != cli.ExitOK {
		t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
	}
	batch := strings.TrimSpace(r.stdout)
	for range 2 { // a fleet: names are read once whichever worker asks
		h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "100", "WORKER_CONCURRENCY": "8"}})
	}
	h.WaitFinal(t, batch, time.Minute)

	held := map[string]bool{}
	for _, c := range []string{testenv.Config(0), testenv.Config(1)} {
		for _, a := range h.Sim.Assignments(c, "") {
			held[a.ID] = true
		}
	}
	created := 0
	for _, res := range h.Export(t, batch) {
		switch res.Line {
		case missing:
			if res.Status != assign.StatusFailed || res.ErrorCode != assign.CodeNameNotFound || res.GroupName != "SG-Missing" || res.GroupID != "" {
				t.Errorf("line %d: %+v, want failed NameNotFound", res.Line, res.Result)
			}
		case ambiguous:
			if res.Status != assign.StatusFailed || res.ErrorCode != assign.CodeNameAmbiguous ||
				!strings.Contains(res.ErrorMessage, testenv.Group(100)+", "+testenv.Group(101)) {
				t.Errorf("line %d: %+v, want failed NameAmbiguous naming both ids", res.Line, res.Result)
			}
		default:
			if res.Status != assign.StatusCreated || !held[res.AssignmentID] || res.GroupID != want[res.Line] ||
				res.ConfigurationID == "" || res.ConfigurationName == "" {
				t.Errorf("line %d: %+v, want created, name and id kept, assignment held by the tenant", res.Line, res.Result)
			}
			if res.Line <= 16 && res.Line > 11 && (res.FilterID != filter || res.FilterName != "Corporate devices") {
				t.Errorf("line %d: filter %q %q, want %s by name", res.Line, res.FilterID, res.FilterName, filter)
			}
			created++
		}
	}
	if created != len(want)-2 || len(held) != created {
		t.Errorf("%d rows created, %d assignments in the tenant; want %d of each", created, len(held), len(want)-2)
	}
	_ = allDevices
	after := h.Sim.Stats().NameLookups
	if got := after.Configurations + after.Groups + after.Filters - before.Configurations - before.Groups - before.Filters; got != distinctNames {
		t.Errorf("the batch looked names up %d times, want %d: one read per distinct name per batch", got, distinctNames)
	}
	if d := h.Sim.Duplicates(); d != 0 {
		t.Errorf("%d duplicate assignments", d)
	}
}

// TestNamesWithoutGroupRead: a tenant that does not let the app read
// groups fails the rows that name groups with one clear message naming the
// permission, and the rows that need no group lookup go on.
func TestNamesWithoutGroupRead(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0))
	h.Sim.NameConfiguration(testenv.Config(0), "Baseline")
	h.Sim.AddGroup(testenv.Group(1), "SG-1")
	h.Sim.DefaultTenant().SetNoGroupRead(true)
	file := testenv.WriteFile(t, "names.csv", "configuration_name,target_type,group_name,group_id\n"+
		"Baseline,group,SG-1,\nBaseline,all_devices,,\nBaseline,group,,"+testenv.Group(2)+"\n")
	r := enqueue(t, h, false, file)
	if r.code != cli.ExitOK {
		t.Fatalf("enqueue: exit %d\n%s", r.code, r.stderr)
	}
	batch := strings.TrimSpace(r.stdout)
	h.StartWorker(t, testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "100"}})
	h.WaitFinal(t, batch, time.Minute)
	for _, res := range h.Results(t, batch) {
		if res.Line == 2 {
			if res.Status != assign.StatusFailed || res.HTTPStatus != 403 || !strings.Contains(res.ErrorMessage, "Group.Read.All") {
				t.Errorf("line 2: %+v, want failed 403 naming Group.Read.All", res)
			}
		} else if res.Status != assign.StatusCreated {
			t.Errorf("line %d: %+v, want created", res.Line, res)
		}
	}
}

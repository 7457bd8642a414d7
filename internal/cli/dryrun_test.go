package cli_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestDryRun(t *testing.T) {
	t.Parallel()
	// 12 rows on 3 configurations; Config(2) does not exist. Rows 0 and 4
	// (on Config(0) and Config(1)) are assigned already.
	h := newTenant(t, 2)
	for i := range 12 {
		h.Sim.AddGroup(testenv.Group(i), "SG-"+strconv.Itoa(i))
	}
	existing := map[int]string{
		0: h.Sim.Preassign(testenv.Config(0), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(0)}),
		4: h.Sim.Preassign(testenv.Config(1), "", assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(4)}),
	}
	file := testenv.WriteFile(t, "dry.csv", testenv.GroupCSV(12, 3))
	// want is the result of data row i (line i+2).
	want := func(i int) (string, string) {
		switch {
		case i%3 == 2:
			return "configuration_not_found", ""
		case existing[i] != "":
			return "already_assigned", existing[i]
		}
		return "would_create", ""
	}
	nothingWritten := func(t *testing.T) {
		t.Helper()
		var batches, items, jobs int
		err := h.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM items),
			(SELECT count(*) FROM river_job)`).Scan(&batches, &items, &jobs)
		if err != nil {
			t.Fatal(err)
		}
		st := h.Sim.Stats()
		if batches+items+jobs != 0 || len(h.Sim.Ledger()) != 0 || st.Methods["POST"] != (graphsim.StatusCounts{}) || st.Methods["DELETE"] != (graphsim.StatusCounts{}) {
			t.Fatalf("a dry run wrote: %d batches, %d items, %d jobs; Graph POST %+v DELETE %+v", batches, items, jobs, st.Methods["POST"], st.Methods["DELETE"])
		}
	}

	// The subtests share the tenant and count its reads: they run in turn.
	t.Run("CSV", func(t *testing.T) {
		readsBefore := listReads(h.Sim.Stats())
		r := enqueue(t, h, false, "--dry-run", file, "--output", "csv")
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		recs := readCSV(t, r.stdout)
		col := func(name string) int { return slices.Index(recs[0], name) }
		if len(recs) != 13 || col("result") < 0 || col("assignment_id") < 0 {
			t.Fatalf("dry run CSV:\n%s", r.stdout)
		}
		for i, rec := range recs[1:] {
			result, id := want(i)
			if rec[col("line")] != strconv.Itoa(i+2) || rec[col("result")] != result || rec[col("assignment_id")] != id {
				t.Errorf("row %d: %v, want line %d %s %q", i, rec, i+2, result, id)
			}
		}
		if !strings.Contains(r.stderr, "12 rows: 6 would be created, 2 already assigned, 4 on configurations that do not exist, 0 not checked; 3 assignment lists read, 1 read of group ids, nothing written") {
			t.Fatalf("summary:\n%s", r.stderr)
		}
		// One read per configuration path, not per row; the one that does
		// not exist is then looked up once in each kind of policy
		// bulkassign does not assign; the 6 groups of the rows to create
		// are checked in one read.
		if reads := listReads(h.Sim.Stats()) - readsBefore; reads != 3+int64(len(graph.UnsupportedKinds))+1 {
			t.Fatalf("the dry run read Graph %d times, want 3 lists, %d probes and 1 group read", reads, len(graph.UnsupportedKinds))
		}
		nothingWritten(t)
	})

	t.Run("TableAndJSON", func(t *testing.T) {
		r := enqueue(t, h, false, "--dry-run", file)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != cli.ExitOK || len(lines) != 13 || !strings.HasPrefix(lines[0], "LINE") || !strings.Contains(lines[1], existing[0]) {
			t.Fatalf("table: exit %d\n%s", r.code, r.stdout)
		}
		r = enqueue(t, h, false, "--dry-run", file, "--output", "json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 12 {
			t.Fatalf("json (%v):\n%s", err, r.stdout)
		}
		for i, row := range rows {
			result, id := want(i)
			if row["result"] != result || (id != "" && row["assignment_id"] != id) || (id == "" && row["assignment_id"] != nil) {
				t.Errorf("row %d: %v, want %s %q", i, row, result, id)
			}
		}
		nothingWritten(t)
	})

	t.Run("InvalidFileIsNotRead", func(t *testing.T) {
		bad := testenv.WriteFile(t, "bad.csv", testenv.GroupCSV(3, 1)+"not-a-guid,group,"+testenv.Group(9)+"\n")
		readsBefore := listReads(h.Sim.Stats())
		r := enqueue(t, h, false, "--dry-run", bad)
		if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "bad.csv:5: ") {
			t.Fatalf("exit %d, want 1 and the file and line:\n%s", r.code, r.stderr)
		}
		if reads := listReads(h.Sim.Stats()) - readsBefore; reads != 0 {
			t.Fatalf("an invalid file caused %d reads, want none", reads)
		}
		nothingWritten(t)
	})

	t.Run("BadOutputFlag", func(t *testing.T) {
		if r := enqueue(t, h, false, "--dry-run", file, "--output", "yaml"); r.code != cli.ExitSetting || !strings.Contains(r.stderr, "-output") {
			t.Fatalf("exit %d %q, want 2 naming -output", r.code, r.stderr)
		}
	})

	t.Run("WithinTheReadRateThroughFailingReads", func(t *testing.T) {
		// Its own tenant: 10 configurations whose reads fail with 503 a
		// third of the time, read at 5 a second.
		h := testenv.New(t, graphsim.Config{Seed: 3, Faults: graphsim.Faults{P503Read: 0.3}})
		for i := range 10 {
			h.Sim.AddConfiguration(testenv.Config(i))
		}
		for i := range 30 {
			h.Sim.AddGroup(testenv.Group(i), "SG-"+strconv.Itoa(i))
		}
		file := testenv.WriteFile(t, "paced.csv", testenv.GroupCSV(30, 10))
		var out, errb strings.Builder
		env := &cli.Env{Getenv: h.Env(map[string]string{"GRAPH_READ_RATE": "5"}), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
		start := time.Now()
		code := cli.Enqueue(context.Background(), env, []string{"--dry-run", file, "--output", "csv"})
		took := time.Since(start)
		if code != cli.ExitOK || !strings.Contains(errb.String(), "30 would be created") {
			t.Fatalf("exit %d\n%s", code, errb.String())
		}
		st := h.Sim.Stats()
		t.Logf("figure: dry run of 10 lists at GRAPH_READ_RATE=5 with 30%% of reads failing: %d reads (%d answered 503) in %s",
			st.Reads, st.InjectedRead503, took.Round(10*time.Millisecond))
		if st.InjectedRead503 == 0 {
			t.Fatal("no read failed: the test did not exercise the retries")
		}
		// 10 or more reads at 5 a second cannot take less than about 1.7 s.
		if took < 1500*time.Millisecond {
			t.Fatalf("%d reads took %s: faster than GRAPH_READ_RATE=5 allows", st.Reads, took)
		}
	})
}

// TestDryRunUnsupportedPolicyType: an id that is a policy of a kind
// bulkassign does not assign is said to be so, per row, not "not found".
func TestDryRunUnsupportedPolicyType(t *testing.T) {
	t.Parallel()
	// Config(0) is a device configuration, Config(1) a Settings Catalog
	// policy, Config(2) an administrative template, Config(3) nothing.
	h := newTenant(t, 1)
	for i := range 8 {
		h.Sim.AddGroup(testenv.Group(i), "SG-"+strconv.Itoa(i))
	}
	if err := h.Sim.AddPolicy("configurationPolicies", testenv.Config(1)); err != nil {
		t.Fatal(err)
	}
	if err := h.Sim.AddPolicy("groupPolicyConfigurations", testenv.Config(2)); err != nil {
		t.Fatal(err)
	}
	r := enqueue(t, h, false, "--dry-run", testenv.WriteFile(t, "dry.csv", testenv.GroupCSV(8, 4)), "--output", "csv")
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	recs := readCSV(t, r.stdout)
	col := func(name string) int { return slices.Index(recs[0], name) }
	want := []struct{ result, why string }{
		{"would_create", ""},
		{"unsupported_policy_type", "UnsupportedPolicyType: " + testenv.Config(1) + " is a Settings Catalog policy (configurationPolicies), not a device configuration: bulkassign assigns device configurations only"},
		{"unsupported_policy_type", "UnsupportedPolicyType: " + testenv.Config(2) + " is an administrative template (groupPolicyConfigurations), not a device configuration: bulkassign assigns device configurations only"},
		{"configuration_not_found", "HTTP 404 ResourceNotFound"},
	}
	if len(recs) != 9 {
		t.Fatalf("dry run CSV:\n%s", r.stdout)
	}
	for i, rec := range recs[1:] {
		w := want[i%4]
		if rec[col("result")] != w.result || !strings.HasPrefix(rec[col("error")], w.why) {
			t.Errorf("row %d: result %q, error %q; want %q, %q", i, rec[col("result")], rec[col("error")], w.result, w.why)
		}
	}
	if !strings.Contains(r.stderr, "8 rows: 2 would be created, 0 already assigned, 2 on configurations that do not exist, 4 on policies that are not device configurations (not supported), 0 not checked; 4 assignment lists read") {
		t.Fatalf("summary:\n%s", r.stderr)
	}
	// 4 lists, then 1 probe for Config(1), 3 for Config(2) (the third
	// kind), 3 for Config(3): one GET per kind at most, only after a 404;
	// then one read of the 2 groups of the rows to create.
	if reads := listReads(h.Sim.Stats()); reads != 4+1+3+3+1 {
		t.Fatalf("the dry run read Graph %d times, want 12", reads)
	}
}

// TestDryRunFlagsMissingGroups: 3,000 rows of random group ids (none a
// group of the tenant) beside 30 of real groups: every random one comes
// back group_not_found, the real ones would_create, the ids are read 15 a
// request (200 reads, not 3,000), and nothing is written.
func TestDryRunFlagsMissingGroups(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	var b strings.Builder
	b.WriteString("configuration_id,target_type,group_id\n")
	const random, real = 3000, 30
	for i := range real {
		h.Sim.AddGroup(testenv.Group(i), "SG-"+strconv.Itoa(i))
		b.WriteString(testenv.Config(0) + ",group," + testenv.Group(i) + "\n")
	}
	for range random {
		b.WriteString(testenv.Config(0) + ",group," + assign.NewID() + "\n")
	}
	file := testenv.WriteFile(t, "random.csv", b.String())
	var out, errb strings.Builder
	env := &cli.Env{Getenv: h.Env(map[string]string{"GRAPH_READ_RATE": "0"}), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	if code := cli.Enqueue(context.Background(), env, []string{"--dry-run", file, "--output", "csv"}); code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	recs := readCSV(t, out.String())
	col := func(name string) int { return slices.Index(recs[0], name) }
	if len(recs) != 1+real+random {
		t.Fatalf("%d rows", len(recs)-1)
	}
	for i, rec := range recs[1:] {
		want := "group_not_found"
		if i < real {
			want = "would_create"
		}
		if rec[col("result")] != want {
			t.Fatalf("line %s (group %s): %s %q, want %s", rec[col("line")], rec[col("group_id")], rec[col("result")], rec[col("error")], want)
		}
	}
	st := h.Sim.Stats()
	wantReads := int64(1 + (random+real+14)/15)
	t.Logf("figure: %d rows, %d of them random group ids: %d Graph reads (%d with $filter)", random+real, random, st.Reads, st.NameLookups.Groups)
	if listReads(st) != wantReads || st.NameLookups.Groups != wantReads-1 {
		t.Errorf("%d reads (%d of groups), want %d: one list and the group ids 15 a read", listReads(st), st.NameLookups.Groups, wantReads)
	}
	// The group check's reads name the groups too: no group is read by id
	// for its display name (only the configuration's and the tenant's).
	if st.ObjectReads.Groups != 0 || st.ObjectReads.Total() != 2 {
		t.Errorf("display names read %+v, want only the configuration's and the tenant's", st.ObjectReads)
	}
	if !strings.Contains(errb.String(), "3000 give a group id the tenant does not have") {
		t.Errorf("summary:\n%s", errb.String())
	}
	if len(h.Sim.Ledger()) != 0 || st.Methods["POST"] != (graphsim.StatusCounts{}) {
		t.Errorf("a dry run wrote to Graph")
	}
}

// TestDryRunGroupsNotReadable: a tenant whose groups the app may not read
// (no Group.Read.All) leaves the rows as they were, and says that their
// group ids were not checked and why.
func TestDryRunGroupsNotReadable(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	h.Sim.DefaultTenant().SetNoGroupRead(true)
	r := enqueue(t, h, false, "--dry-run", testenv.WriteFile(t, "ids.csv", testenv.GroupCSV(3, 1)))
	if r.code != cli.ExitOK || !strings.Contains(r.stderr, "3 would be created") ||
		!strings.Contains(r.stderr, "enqueue: dry run: group ids not checked in tenant "+h.Sim.TenantID()+": GET resolve: HTTP 403") ||
		!strings.Contains(r.stderr, "Group.Read.All") {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
}

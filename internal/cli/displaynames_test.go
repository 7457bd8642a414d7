package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// listReads are the GETs a tenant served but the display names' (Stats.
// ObjectReads): the lists, probes and name lookups tests count.
func listReads(st graphsim.Stats) int64 { return st.Reads - st.ObjectReads.Total() }

// cells splits a table's lines into their cells (tabwriter pads cells
// with two spaces or more), with each assignment id (random) replaced by
// "ID".
func cells(table string) [][]string {
	assignment := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		cs := regexp.MustCompile(`  +`).Split(strings.TrimSpace(line), -1)
		for i, c := range cs {
			if assignment.MatchString(c) && (i > 0 && cs[i-1] == "201") {
				cs[i] = "ID"
			}
		}
		out = append(out, cs)
	}
	return out
}

// TestResultsDisplayNames: `enqueue results` shows the display names
// Graph holds beside the ids rows gave (a name Graph does not give is
// the id alone), and a TENANT column, with each tenant's name, only for a
// batch of more than one tenant.
func TestResultsDisplayNames(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{TenantName: "Contoso", Tenants: []graphsim.TenantConfig{{ID: tenantA, Name: "Fabrikam"}}})
	def := graphsim.DefaultTenantID
	h.Sim.AddConfiguration(testenv.Config(0))
	h.Sim.NameConfiguration(testenv.Config(0), "Win11 baseline")
	h.Sim.AddGroup(testenv.Group(0), "SG Pilot")
	a := h.Sim.Tenant(tenantA)
	a.AddConfiguration(testenv.Config(0))
	a.NameConfiguration(testenv.Config(0), "Fabrikam baseline")
	a.AddGroup(testenv.Group(0), "FB Pilot")
	h.StartWorker(t, fastWorker)

	// Group(1) and Group(2) are unknown to Graph: shown by their ids.
	one := h.Enqueue(t, "one.csv", tenantCSV("", ""))
	two := h.Enqueue(t, "two.csv", "configuration_id,target_type,group_id,tenant_id\n"+
		testenv.Config(0)+",group,"+testenv.Group(2)+",\n"+testenv.Config(0)+",group,"+testenv.Group(0)+","+tenantA+"\n")
	h.WaitFinal(t, one, 30*time.Second)
	h.WaitFinal(t, two, 30*time.Second)

	cfg, g0, g1, g2 := testenv.Config(0), testenv.Group(0), testenv.Group(1), testenv.Group(2)
	for _, tc := range []struct {
		batch string
		want  [][]string
	}{
		{one, [][]string{
			{"LINE", "CONFIGURATION", "PATH", "TARGET", "STATUS", "HTTP", "ASSIGNMENT", "ERROR"},
			{"2", `"Win11 baseline"=` + cfg, "-", `group:"SG Pilot"=` + g0, "created", "201", "ID", "-"},
			{"3", `"Win11 baseline"=` + cfg, "-", "group:" + g1, "created", "201", "ID", "-"},
		}},
		{two, [][]string{
			{"TENANT", "LINE", "CONFIGURATION", "PATH", "TARGET", "STATUS", "HTTP", "ASSIGNMENT", "ERROR"},
			{`"Contoso"=` + def, "2", `"Win11 baseline"=` + cfg, "-", "group:" + g2, "created", "201", "ID", "-"},
			{`"Fabrikam"=` + tenantA, "3", `"Fabrikam baseline"=` + cfg, "-", `group:"FB Pilot"=` + g0, "created", "201", "ID", "-"},
		}},
	} {
		r := enqueue(t, h, false, "results", tc.batch)
		if r.code != cli.ExitOK {
			t.Fatalf("results: exit %d\n%s", r.code, r.stderr)
		}
		got := cells(r.stdout)
		if len(got) != len(tc.want) {
			t.Fatalf("results table:\n%s\nwant %d lines", r.stdout, len(tc.want))
		}
		for i := range got {
			if strings.Join(got[i], " | ") != strings.Join(tc.want[i], " | ") {
				t.Errorf("results line %d:\n got %q\nwant %q", i+1, got[i], tc.want[i])
			}
		}
	}

	// csv: the names in the view's columns, and which the row gave.
	r := enqueue(t, h, false, "results", two, "--format", "csv")
	recs := readCSV(t, r.stdout)
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	for i, want := range [][4]string{{"Win11 baseline", "false", "", "Contoso"}, {"Fabrikam baseline", "false", "FB Pilot", "Fabrikam"}} {
		rec := recs[i+1]
		if got := [4]string{rec[col["configuration_name"]], rec[col["configuration_name_given"]], rec[col["group_name"]], rec[col["tenant_name"]]}; got != want {
			t.Errorf("csv row %d: %v, want %v", i+1, got, want)
		}
	}
	// The dry run's review shows the names too, read within its reads.
	twoFile := testenv.WriteFile(t, "two.csv", "configuration_id,target_type,group_id,tenant_id\n"+
		cfg+",group,"+g2+",\n"+cfg+",group,"+g0+","+tenantA+"\n")
	r = enqueue(t, h, false, "--dry-run", twoFile)
	if got, want := cells(r.stdout), [][]string{
		{"TENANT", "LINE", "CONFIGURATION", "PATH", "TARGET", "RESULT", "ASSIGNMENT", "ERROR"},
		{`"Contoso"=` + def, "2", `"Win11 baseline"=` + cfg, "-", "group:" + g2, "already_assigned"},
		{`"Fabrikam"=` + tenantA, "3", `"Fabrikam baseline"=` + cfg, "-", `group:"FB Pilot"=` + g0, "already_assigned"},
	}; len(got) != 3 || strings.Join(got[0], "|") != strings.Join(want[0], "|") ||
		strings.Join(got[1][:6], "|") != strings.Join(want[1], "|") || strings.Join(got[2][:6], "|") != strings.Join(want[2], "|") {
		t.Errorf("dry run table:\n%s\nwant %q", r.stdout, want)
	}

	// input: the rows as they were given, by id, not by the names shown.
	r = enqueue(t, h, false, "results", two, "--format", "input")
	if strings.Contains(r.stdout, "baseline") || strings.Count(r.stdout, cfg) != 2 {
		t.Errorf("results --format input:\n%s\nwant the ids the rows gave", r.stdout)
	}
}

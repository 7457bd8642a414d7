package cli_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestEnqueueList: `enqueue list` writes every configuration, group and
// filter of a tenant, read through the simulator's pages of 10, in the
// input's own columns; the CSV of groups, given a configuration and a
// target type, enqueues as a list; --tenant reads another tenant and
// names it in each row.
func TestEnqueueList(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{PageSize: 10, Tenants: []graphsim.TenantConfig{{ID: tenantA}}})
	const n = 25
	for i := range n {
		h.Sim.NameConfiguration(testenv.Config(i), fmt.Sprintf("Profile %02d", i))
		h.Sim.AddGroup(testenv.Group(i), fmt.Sprintf("SG, \"quoted\" %02d", i))
		h.Sim.AddFilter(fmt.Sprintf("f0000000-0000-4000-8000-%012d", i), fmt.Sprintf("Filter %02d", i))
	}
	h.Sim.Tenant(tenantA).AddGroup(testenv.Group(100), "A's only group")

	for _, tt := range []struct{ kind, id, name string }{
		{"configurations", "configuration_id", "configuration_name"},
		{"groups", "group_id", "group_name"},
		{"filters", "filter_id", "filter_name"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			r := enqueue(t, h, false, "list", tt.kind, "--format", "csv")
			if r.code != cli.ExitOK {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			recs := readCSV(t, r.stdout)
			if !slices.Equal(recs[0], []string{tt.id, tt.name}) || len(recs) != 1+n {
				t.Fatalf("header %v, %d rows; want [%s %s] and %d\n%s", recs[0], len(recs)-1, tt.id, tt.name, n, r.stdout)
			}
			for _, c := range recs[0] {
				if !slices.Contains(intake.Columns, c) {
					t.Errorf("column %s is not an input column", c)
				}
			}
			if tt.kind == "groups" && (recs[1][0] != testenv.Group(0) || recs[1][1] != `SG, "quoted" 00`) {
				t.Errorf("first group: %v", recs[1])
			}
			table := enqueue(t, h, false, "list", tt.kind)
			if lines := strings.Split(strings.TrimSpace(table.stdout), "\n"); table.code != cli.ExitOK || len(lines) != 1+n || !strings.HasPrefix(lines[0], "ID") {
				t.Errorf("table: exit %d\n%s", table.code, table.stdout)
			}
		})
	}

	t.Run("GroupsPasteIntoAList", func(t *testing.T) {
		r := enqueue(t, h, false, "list", "groups", "--format", "csv")
		var b strings.Builder
		b.WriteString("configuration_id,target_type," + strings.SplitN(r.stdout, "\n", 2)[0] + "\n")
		for _, rec := range readCSV(t, r.stdout)[1:] {
			fmt.Fprintf(&b, "%s,group,%s,\n", testenv.Config(0), rec[0])
		}
		res, err := intake.Reader{Name: "pasted.csv", Format: intake.FormatCSV}.Read(strings.NewReader(b.String()), func(intake.Row) error { return nil })
		if err != nil || res.Err() != nil || res.Rows != n {
			t.Fatalf("the pasted list: %v, %v, %d rows\n%s", err, res.Err(), res.Rows, b.String())
		}
	})

	t.Run("Tenant", func(t *testing.T) {
		r := enqueue(t, h, false, "list", "groups", "--tenant", strings.ToUpper(tenantA), "--format", "csv")
		want := [][]string{{"group_id", "group_name", "tenant_id"}, {testenv.Group(100), "A's only group", tenantA}}
		if recs := readCSV(t, r.stdout); r.code != cli.ExitOK || fmt.Sprint(recs) != fmt.Sprint(want) {
			t.Fatalf("exit %d: %v, want %v\n%s", r.code, recs, want, r.stderr)
		}
	})

	t.Run("BadArguments", func(t *testing.T) {
		for _, args := range [][]string{{"list"}, {"list", "users"}, {"list", "groups", "--format", "xml"}, {"list", "groups", "--tenant", "contoso"}} {
			if r := enqueue(t, h, false, args...); r.code != cli.ExitSetting {
				t.Errorf("enqueue %v: exit %d, want 2\n%s", args, r.code, r.stderr)
			}
		}
	})

	t.Run("NoGroupRead", func(t *testing.T) {
		h.Sim.Tenant(tenantA).SetNoGroupRead(true)
		defer h.Sim.Tenant(tenantA).SetNoGroupRead(false)
		r := enqueue(t, h, false, "list", "groups", "--tenant", tenantA)
		if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "Group.Read.All") {
			t.Errorf("exit %d, want 1 with the 403 and the permission\n%s", r.code, r.stderr)
		}
	})
}

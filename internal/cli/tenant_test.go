package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// Tenants other than the simulator's (graphsim.DefaultTenantID, the
// harness's AZURE_TENANT_ID).
const (
	tenantA = "2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d"
	tenantB = "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29180"
)

// enqueueEnv is enqueue with settings overridden ("" removes one).
func enqueueEnv(t *testing.T, h *testenv.Harness, extra map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Getenv: h.Env(extra), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code := cli.Enqueue(context.Background(), env, args)
	return result{code, out.String(), errb.String()}
}

// tenantCSV is a list of rows, each on Config(0) for Group(i), in the
// tenant given ("" names none).
func tenantCSV(tenants ...string) string {
	var b strings.Builder
	b.WriteString("configuration_id,target_type,group_id,tenant_id\n")
	for i, tenant := range tenants {
		b.WriteString(testenv.Config(0) + ",group," + testenv.Group(i) + "," + tenant + "\n")
	}
	return b.String()
}

// TestEnqueueDefaultTenant: rows that name no tenant need AZURE_TENANT_ID
// to be a tenant id; without one, enqueue says so in one line naming the
// variable and the first such row, and writes nothing. Rows that name
// their tenant do not need it.
func TestEnqueueDefaultTenant(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	mixed := testenv.WriteFile(t, "mixed.csv", tenantCSV(tenantA, "", ""))
	named := testenv.WriteFile(t, "named.json", `[{"configurationId": "`+testenv.Config(0)+`", "tenantId": "`+tenantB+
		`", "target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}}]`)
	written := func() (n int) {
		t.Helper()
		if err := h.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM batches) + (SELECT count(*) FROM items)
			+ (SELECT count(*) FROM river_job)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, tc := range []struct {
		name, tenant string
		want         string
	}{
		{"Unset", "", "enqueue: AZURE_TENANT_ID: is not set, and " + mixed + ":3 names no tenant: "},
		{"DomainName", "contoso.onmicrosoft.com", `enqueue: AZURE_TENANT_ID: "contoso.onmicrosoft.com" is not a tenant id (a GUID), and ` + mixed + `:3 names no tenant: ` +
			"rows without a tenant_id (tenantId in JSON) go to the default tenant, AZURE_TENANT_ID, which must then be the tenant's GUID, not a domain name"},
	} {
		r := enqueueEnv(t, h, map[string]string{"AZURE_TENANT_ID": tc.tenant}, named, mixed)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != cli.ExitSetting || len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) ||
			!strings.HasSuffix(lines[0], "nothing was enqueued") || r.stdout != "" {
			t.Fatalf("%s: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and one line starting %q", tc.name, r.code, r.stdout, r.stderr, tc.want)
		}
		if n := written(); n != 0 {
			t.Fatalf("%s: %d rows written, want none", tc.name, n)
		}
	}

	// Every row names its tenant: AZURE_TENANT_ID may be a domain name.
	r := enqueueEnv(t, h, map[string]string{"AZURE_TENANT_ID": "contoso.onmicrosoft.com"}, named)
	if r.code != cli.ExitOK {
		t.Fatalf("rows that name their tenant: exit %d\n%s", r.code, r.stderr)
	}
	// With AZURE_TENANT_ID a GUID, rows without a tenant are its.
	r = enqueueEnv(t, h, nil, mixed)
	batch := strings.TrimSpace(r.stdout)
	if r.code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	got := map[int]string{}
	for _, row := range h.Export(t, batch) {
		got[row.Row] = row.TenantID
	}
	if got[1] != tenantA || got[2] != graphsim.DefaultTenantID || got[3] != graphsim.DefaultTenantID {
		t.Fatalf("tenants by row %v, want %s then the default tenant %s twice", got, tenantA, graphsim.DefaultTenantID)
	}
}

// TestDryRunTenants: the dry run reads each (tenant, configuration, path)
// once and, when a row is not the default tenant's, shows the tenant of
// every row; it refuses what enqueue would refuse, before reading.
func TestDryRunTenants(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: tenantA, Name: "Tenant A"}}})
	h.Sim.AddConfiguration(testenv.Config(0), testenv.Config(1))
	h.Sim.Tenant(tenantA).AddConfiguration(testenv.Config(0))
	for _, g := range []int{0, 2, 3} {
		h.Sim.AddGroup(testenv.Group(g), "SG-"+strconv.Itoa(g))
	}
	for _, g := range []int{1, 4} {
		h.Sim.Tenant(tenantA).AddGroup(testenv.Group(g), "SG-"+strconv.Itoa(g))
	}
	reads := func() int64 { return listReads(h.Sim.Stats()) + listReads(h.Sim.Tenant(tenantA).Stats()) }
	def := graphsim.DefaultTenantID
	// Config(0) in the default tenant (named and not) and in tenant A;
	// Config(1) in the default tenant: three lists.
	list := "configuration_id,target_type,group_id,tenant_id\n" +
		testenv.Config(0) + ",group," + testenv.Group(0) + ",\n" +
		testenv.Config(0) + ",group," + testenv.Group(1) + "," + tenantA + "\n" +
		testenv.Config(0) + ",group," + testenv.Group(2) + "," + strings.ToUpper(def) + "\n" +
		testenv.Config(1) + ",group," + testenv.Group(3) + ",\n" +
		testenv.Config(0) + ",group," + testenv.Group(4) + "," + tenantA + "\n"
	file := testenv.WriteFile(t, "tenants.csv", list)
	wantTenants := []string{def, tenantA, def, def, tenantA}

	// The subtests count the simulator's reads: they run in turn.
	t.Run("CSV", func(t *testing.T) {
		before, beforeA := reads(), listReads(h.Sim.Tenant(tenantA).Stats())
		r := enqueue(t, h, false, "--dry-run", file, "--output", "csv")
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		recs := readCSV(t, r.stdout)
		if len(recs) != 6 || !slices.Equal(recs[0][:4], []string{"source", "line", "tenant_id", "configuration_id"}) {
			t.Fatalf("dry run CSV:\n%s", r.stdout)
		}
		for i, rec := range recs[1:] {
			if rec[2] != wantTenants[i] || rec[slices.Index(recs[0], "result")] != "would_create" {
				t.Errorf("row %d: %v, want tenant %s, would_create", i, rec, wantTenants[i])
			}
		}
		if n, inA := reads()-before, listReads(h.Sim.Tenant(tenantA).Stats())-beforeA; n != 3+2 || inA != 1+1 {
			t.Errorf("%d reads (%d in tenant A), want 3 lists, one per tenant, configuration and path, each in its tenant, and one read of group ids per tenant", n, inA)
		}
		if !strings.Contains(r.stderr, "3 assignment lists read") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})

	t.Run("TableAndJSON", func(t *testing.T) {
		r := enqueue(t, h, false, "--dry-run", file)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != cli.ExitOK || len(lines) != 6 || !strings.HasPrefix(lines[0], "TENANT") || !strings.HasPrefix(lines[2], `"Tenant A"=`+tenantA) {
			t.Fatalf("table: exit %d\n%s", r.code, r.stdout)
		}
		r = enqueue(t, h, false, "--dry-run", file, "--output", "json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 5 {
			t.Fatalf("json (%v):\n%s", err, r.stdout)
		}
		for i, row := range rows {
			if row["tenant_id"] != wantTenants[i] {
				t.Errorf("row %d: %v, want tenant %s", i, row, wantTenants[i])
			}
		}
	})

	t.Run("DefaultTenantOnlyHasNoTenantColumn", func(t *testing.T) {
		only := testenv.WriteFile(t, "default.csv", tenantCSV(def, ""))
		r := enqueue(t, h, false, "--dry-run", only, "--output", "csv")
		recs := readCSV(t, r.stdout)
		if r.code != cli.ExitOK || slices.Contains(recs[0], "tenant_id") || len(recs) != 3 || strings.Contains(r.stderr, "warning") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("NoDefaultTenant", func(t *testing.T) {
		before := listReads(h.Sim.Stats())
		r := enqueueEnv(t, h, map[string]string{"AZURE_TENANT_ID": "contoso.onmicrosoft.com"}, "--dry-run", file)
		if r.code != cli.ExitSetting || !strings.Contains(r.stderr, `AZURE_TENANT_ID: "contoso.onmicrosoft.com" is not a tenant id (a GUID), and `+file+`:2 names no tenant`) {
			t.Fatalf("exit %d, want 2:\n%s", r.code, r.stderr)
		}
		if reads := listReads(h.Sim.Stats()) - before; reads != 0 {
			t.Fatalf("%d lists read, want none", reads)
		}
	})
}

// TestTenantCommands: results filters by --tenant; status, batches and a
// --wait summary count rows per tenant for a batch of more than one, and
// say nothing more for a batch of one.
func TestTenantCommands(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	def := graphsim.DefaultTenantID
	// No worker: the rows are brought to their outcome here, as one would
	// whatever signs in to each tenant.
	finish := func(batch, status string) {
		t.Helper()
		if _, err := h.DB.Pool.Exec(context.Background(), `UPDATE items SET status = $2, finished_at = now() WHERE batch_id = $1`,
			batch, status); err != nil {
			t.Fatal(err)
		}
	}
	// Rows 1-3 in tenant A, 4-5 in the default tenant.
	file := testenv.WriteFile(t, "two.csv", tenantCSV(tenantA, tenantA, tenantA, "", def))
	done := make(chan result)
	go func() { done <- enqueue(t, h, false, file, "--wait", "--progress-interval", "100ms") }()
	waitFor(t, "the batch", 30*time.Second, func() bool {
		var n int
		if err := h.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM items`).Scan(&n); err != nil {
			t.Error(err)
			return true
		}
		return n == 5
	})
	var two string
	if err := h.DB.Pool.QueryRow(context.Background(), `SELECT id::text FROM batches`).Scan(&two); err != nil {
		t.Fatal(err)
	}
	finish(two, "created")
	r := <-done
	if r.code != cli.ExitOK || strings.TrimSpace(r.stdout) != two {
		t.Fatalf("enqueue --wait: exit %d\n%s", r.code, r.stderr)
	}
	tenantLine := func(tenant string, rows, created int) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^\s*` + tenant + `\s+` + strconv.Itoa(rows) + `\s+0\s+` + strconv.Itoa(created) + `(\s+0){5}\s*$`)
	}
	if !strings.Contains(r.stderr, "TENANT") || !tenantLine(tenantA, 3, 3).MatchString(r.stderr) || !tenantLine(def, 2, 2).MatchString(r.stderr) {
		t.Fatalf("--wait summary has no line per tenant:\n%s", r.stderr)
	}
	one := h.Enqueue(t, "one.csv", testenv.GroupCSV(2, 1))
	finish(one, "already_assigned")

	t.Run("Results", func(t *testing.T) {
		t.Parallel()
		r := enqueue(t, h, false, "results", two, "--tenant", strings.ToUpper(tenantA), "--format", "csv")
		recs := readCSV(t, r.stdout)
		tenant := slices.Index(recs[0], "tenant_id")
		// Columns are appended only: tenant_id, then created_by (008), then
		// the five of 011, then the four of 015.
		if r.code != cli.ExitOK || len(recs) != 4 || tenant != len(recs[0])-11 || recs[0][tenant+1] != "created_by" ||
			recs[0][len(recs[0])-5] != "revert_assignment_id" || recs[0][len(recs[0])-1] != "filter_name_given" {
			t.Fatalf("results --tenant: exit %d\n%s", r.code, r.stdout)
		}
		for _, rec := range recs[1:] {
			if rec[tenant] != tenantA {
				t.Errorf("row %v, want tenant %s only", rec, tenantA)
			}
			if by := rec[tenant+1]; !strings.Contains(by, "@") {
				t.Errorf("row %v: created_by %q, want the command's user@host", rec, by)
			}
		}
		// A prefix of the tenant's id names it, as a prefix names a batch.
		r = enqueue(t, h, false, "results", two, "--tenant", tenantA[:8], "--format", "csv")
		if p := readCSV(t, r.stdout); r.code != cli.ExitOK || len(p) != 4 || p[1][tenant] != tenantA {
			t.Fatalf("results --tenant %s: exit %d\n%s%s", tenantA[:8], r.code, r.stdout, r.stderr)
		}
		for _, bad := range []struct{ prefix, why string }{{"ffffffff", "starts no tenant id"}, {"abc", "first 8 or more"}} {
			if r := enqueue(t, h, false, "results", two, "--tenant", bad.prefix); r.code != cli.ExitSetting || !strings.Contains(r.stderr, bad.why) {
				t.Errorf("results --tenant %s: exit %d, stderr %q; want a usage error saying %q", bad.prefix, r.code, r.stderr, bad.why)
			}
		}
		r = enqueue(t, h, false, "results", two)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 6 || !strings.HasPrefix(lines[0], "TENANT") || !strings.HasPrefix(lines[1], tenantA) || !strings.HasPrefix(lines[5], def) {
			t.Fatalf("results table of a batch of two tenants:\n%s", r.stdout)
		}
		r = enqueue(t, h, false, "results", one)
		if !strings.HasPrefix(r.stdout, "LINE") {
			t.Fatalf("results table of a batch of one tenant:\n%s", r.stdout)
		}
		for _, bad := range []string{"contoso.onmicrosoft.com", "not-a-guid"} {
			if r := enqueue(t, h, false, "results", two, "--tenant", bad); r.code != cli.ExitSetting || !strings.Contains(r.stderr, `-tenant "`+bad+`" is not a GUID`) {
				t.Errorf("--tenant %s: exit %d, stderr %q; want 2 naming the flag", bad, r.code, r.stderr)
			}
		}
	})

	t.Run("Status", func(t *testing.T) {
		t.Parallel()
		r := enqueue(t, h, false, "status", two)
		if r.code != cli.ExitOK || !tenantLine(tenantA, 3, 3).MatchString(r.stdout) || !tenantLine(def, 2, 2).MatchString(r.stdout) ||
			!regexp.MustCompile(`(?m)^\s*created\s+5$`).MatchString(r.stdout) {
			t.Fatalf("status of a batch of two tenants:\n%s", r.stdout)
		}
		r = enqueue(t, h, false, "status", two, "--wait")
		if r.code != cli.ExitOK || !tenantLine(tenantA, 3, 3).MatchString(r.stdout) {
			t.Fatalf("status --wait of a batch of two tenants:\n%s", r.stdout)
		}
		if r := enqueue(t, h, false, "status", one); strings.Contains(r.stdout, "TENANT") {
			t.Fatalf("status of a batch of one tenant:\n%s", r.stdout)
		}
	})

	t.Run("Batches", func(t *testing.T) {
		t.Parallel()
		r := enqueue(t, h, false, "batches")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		// Newest first: one, then two and its tenants in order.
		if r.code != cli.ExitOK || len(lines) != 5 || !strings.HasPrefix(lines[1], one) || !strings.HasPrefix(lines[2], two) ||
			!regexp.MustCompile(`^  tenant `+tenantA+`\s+3\s+0\s+3(\s+0){5}$`).MatchString(lines[3]) ||
			!regexp.MustCompile(`^  tenant `+def+`\s+2\s+0\s+2(\s+0){5}$`).MatchString(lines[4]) {
			t.Fatalf("batches:\n%s", r.stdout)
		}
		r = enqueue(t, h, false, "batches", "--format", "csv")
		recs := readCSV(t, r.stdout)
		col := slices.Index(recs[0], "tenants")
		if len(recs) != 3 || col < 0 || recs[1][col] != "1" || recs[2][col] != "2" {
			t.Fatalf("batches --format csv:\n%s", r.stdout)
		}
	})
}

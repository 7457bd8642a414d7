package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

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
	h := newTenant(t, 2)
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
		before := h.Sim.Stats().Reads
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
		if reads := h.Sim.Stats().Reads - before; reads != 3 {
			t.Errorf("%d lists read, want 3: one per tenant, configuration and path", reads)
		}
		if !strings.Contains(r.stderr, "warning: rows of tenants other than AZURE_TENANT_ID were read with its sign-in") ||
			!strings.Contains(r.stderr, "3 assignment lists read") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})

	t.Run("TableAndJSON", func(t *testing.T) {
		r := enqueue(t, h, false, "--dry-run", file)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != cli.ExitOK || len(lines) != 6 || !strings.HasPrefix(lines[0], "TENANT") || !strings.HasPrefix(lines[2], tenantA) {
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
		before := h.Sim.Stats().Reads
		r := enqueueEnv(t, h, map[string]string{"AZURE_TENANT_ID": "contoso.onmicrosoft.com"}, "--dry-run", file)
		if r.code != cli.ExitSetting || !strings.Contains(r.stderr, `AZURE_TENANT_ID: "contoso.onmicrosoft.com" is not a tenant id (a GUID), and `+file+`:2 names no tenant`) {
			t.Fatalf("exit %d, want 2:\n%s", r.code, r.stderr)
		}
		if reads := h.Sim.Stats().Reads - before; reads != 0 {
			t.Fatalf("%d lists read, want none", reads)
		}
	})
}

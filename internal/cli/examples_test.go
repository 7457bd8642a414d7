package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// readmeExamples is the README's "The examples on the simulator" section:
// the tenant file its graphsim line seeds the simulator with, and the
// arguments of each of its enqueue lines.
func readmeExamples(t *testing.T) (tenantFile string, runs [][]string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### The examples on the simulator\n")
	if !ok {
		t.Fatal(`README.md: no section "### The examples on the simulator"`)
	}
	section, _, _ = strings.Cut(section, "\n### ")
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	for _, line := range strings.Split(block, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "bin/graphsim":
			if i := slices.Index(f, "-tenant-file"); i >= 0 && i+1 < len(f) {
				tenantFile = f[i+1]
			}
		case len(f) > 0 && f[0] == "bin/enqueue":
			runs = append(runs, f[1:])
		}
	}
	if tenantFile == "" || len(runs) == 0 {
		t.Fatalf("README's examples section has no graphsim -tenant-file line or no enqueue lines:\n%s", block)
	}
	return tenantFile, runs
}

// TestREADMEExamples runs the README's dry runs of the examples, as
// written, against the simulator seeded with the tenant file the README
// names: every list in examples/ is among them, and none of their rows
// fails to sign in or to be read (multi-tenant.csv's customer tenants once
// answered AADSTS90002 for 6 of its 8 rows).
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	tenantFile, runs := readmeExamples(t)
	h := testenv.New(t, graphsim.Config{})
	if _, err := h.Sim.LoadTenantFile("../../" + tenantFile); err != nil {
		t.Fatal(err)
	}
	lists, err := filepath.Glob("../../examples/*")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, args := range runs {
		for i, a := range args {
			if strings.HasPrefix(a, "examples/") {
				covered[a] = true
				args[i] = "../../" + a
			}
		}
	}
	for _, l := range lists {
		name := strings.TrimPrefix(l, "../../")
		if ext := filepath.Ext(name); (ext == ".csv" || ext == ".json" || ext == ".ndjson") && name != tenantFile && !covered[name] {
			t.Errorf("%s is not run in the README's examples section", name)
		}
	}
	failed := regexp.MustCompile(`(?m)\b(read_failed|AADSTS\d+)\b`)
	for _, args := range runs {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := enqueue(t, h, false, args...)
			if r.code != cli.ExitOK || failed.MatchString(r.stdout+r.stderr) || !strings.Contains(r.stderr, " 0 not checked;") {
				t.Errorf("enqueue %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			t.Logf("%s", r.stderr)
		})
	}
}

package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestCheckTellsOfGroupNames: `worker check` says whether the token may
// read groups, which rows that give group_name need; a tenant that does
// not grant it is told, not failed (lists of ids need no more).
func TestCheckTellsOfGroupNames(t *testing.T) {
	t.Parallel()
	h := testenv.New(t, graphsim.Config{})
	h.Sim.AddConfiguration(testenv.Config(0))
	other := "7e1d2c3b-4a59-4e87-9d6c-5b4a39281716"
	if _, err := h.Sim.AddTenant(graphsim.TenantConfig{ID: other, NoGroupRead: true}); err != nil {
		t.Fatal(err)
	}
	check := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		env := &cli.Env{Getenv: h.Env(nil), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
		return cli.Worker(context.Background(), env, append([]string{"check"}, args...)), out.String() + errb.String()
	}
	if code, out := check(); code != cli.ExitOK || !strings.Contains(out, "Group.Read.All") || !strings.Contains(out, "group names  ok") {
		t.Errorf("worker check: exit %d\n%s", code, out)
	}
	if code, out := check("--tenant", other); code != cli.ExitOK || !strings.Contains(out, "MISSING Group.Read.All: rows that give group_name will fail") {
		t.Errorf("worker check --tenant (no group reads): exit %d\n%s", code, out)
	}
}

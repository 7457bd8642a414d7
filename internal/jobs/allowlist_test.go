package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestTenantAllowlist: with BULKASSIGN_TENANTS listing only tenant A
// ("onlyListed": true), a list with a row of tenant B is refused at its
// line and nothing of it is enqueued; and a row of B enqueued before the
// file said so (an older batch) ends failed with TenantNotAllowed,
// final, without a request to B, while A's rows are worked.
func TestTenantAllowlist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const a, b = "a1000000-0000-4000-8000-00000000000a", "b1000000-0000-4000-8000-00000000000b"
	h := testenv.New(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: a, Name: "A"}, {ID: b, Name: "B"}}})
	for _, id := range []string{a, b} {
		h.Sim.Tenant(id).AddConfiguration(testenv.Config(0))
	}
	file := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(file, []byte(`{"onlyListed": true, "tenants": [{"id": "`+a+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	allow, err := config.LoadTenantAllowlist(config.MapEnv(map[string]string{config.TenantsVar: file}))
	if err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("tenant_id,configuration_id,target_type,group_id\n")
	for i, id := range []string{a, b, a, b} {
		fmt.Fprintf(&csv, "%s,%s,group,%s\n", id, testenv.Config(0), testenv.Group(i))
	}

	rc, err := jobs.NewInsertClient(h.DB.Pool)
	if err != nil {
		t.Fatal(err)
	}
	_, err = jobs.Enqueue(ctx, h.DB.Pool, rc, []jobs.Input{{Name: "in.csv", Reader: strings.NewReader(csv.String()), Format: intake.FormatCSV,
		DefaultTenant: h.Sim.TenantID(), Allowlist: &allow}})
	var inv *jobs.InvalidInputError
	if !errors.As(err, &inv) {
		t.Fatalf("enqueue: %v, want an *InvalidInputError", err)
	}
	for _, line := range []int{3, 5} {
		if want := fmt.Sprintf("in.csv:%d: tenant %s is not listed in %s (%s", line, b, config.TenantsVar, file); !strings.Contains(err.Error(), want) {
			t.Errorf("enqueue error %q lacks %q", err, want)
		}
	}
	var batches, riverJobs int
	if err := h.DB.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM batches), (SELECT count(*) FROM river_job)").Scan(&batches, &riverJobs); err != nil {
		t.Fatal(err)
	}
	if batches != 0 || riverJobs != 0 {
		t.Fatalf("%d batches and %d jobs after a refused list, want none", batches, riverJobs)
	}

	// The same list enqueued while the file did not say so.
	batch := h.Enqueue(t, "old.csv", csv.String())
	o := fast
	o.Extra = map[string]string{config.TenantsVar: file}
	for k, v := range fast.Extra {
		o.Extra[k] = v
	}
	h.StartWorker(t, o)
	h.WaitFinal(t, batch, 30*time.Second)
	for _, r := range h.Results(t, batch) {
		switch r.TenantID {
		case a:
			if r.Status != assign.StatusCreated {
				t.Errorf("line %d (tenant A): %s %s, want created", r.Line, r.Status, r.ErrorMessage)
			}
		default:
			if r.Status != assign.StatusFailed || r.ErrorCode != assign.CodeTenantNotAllowed || r.Attempts != 0 ||
				!strings.Contains(r.ErrorMessage, "tenant "+b+" is not listed in "+config.TenantsVar) {
				t.Errorf("line %d (tenant B): %s %s %q, %d attempts; want failed %s naming the file, no attempt",
					r.Line, r.Status, r.ErrorCode, r.ErrorMessage, r.Attempts, assign.CodeTenantNotAllowed)
			}
		}
	}
	if st := h.Sim.Tenant(b).Stats(); st.Reads+st.Writes+st.TokenRequests != 0 {
		t.Errorf("tenant B got %d token requests, %d reads and %d writes, want none", st.TokenRequests, st.Reads, st.Writes)
	}
}

// TestEnqueueReadsTheProcessAllowlist: without Input.Allowlist, Enqueue
// checks rows against this process's BULKASSIGN_TENANTS, as the enqueue
// command, the console's upload and the schedules (which set none) do.
func TestEnqueueReadsTheProcessAllowlist(t *testing.T) {
	// Not parallel: it sets the process's environment.
	const a, b = "a1000000-0000-4000-8000-00000000000a", "b1000000-0000-4000-8000-00000000000b"
	file := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(file, []byte(`{"onlyListed": true, "tenants": [{"id": "`+a+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.TenantsVar, file)
	h := testenv.New(t, graphsim.Config{})
	rc, err := jobs.NewInsertClient(h.DB.Pool)
	if err != nil {
		t.Fatal(err)
	}
	csv := "tenant_id,configuration_id,target_type\n" + a + "," + testenv.Config(0) + ",all_devices\n" + b + "," + testenv.Config(0) + ",all_devices\n"
	_, err = jobs.Enqueue(context.Background(), h.DB.Pool, rc, []jobs.Input{{Name: "in.csv", Reader: strings.NewReader(csv), Format: intake.FormatCSV,
		DefaultTenant: h.Sim.TenantID()}})
	if want := "in.csv:3: tenant " + b + " is not listed in " + config.TenantsVar; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("enqueue: %v, want an error containing %q", err, want)
	}
}

package intake

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/config"
)

// allowlistDefault is the default tenant (AZURE_TENANT_ID) the allowlist
// tests read with: not in the file, and allowed all the same.
const allowlistDefault = "b0000000-0000-4000-8000-00000000000b"

// TestAllowlist reads each testdata/allowlist input with the allowlist of
// testdata/allowlist/tenants.json ("onlyListed": true) as the enqueue
// command does, and compares the report, and the lines and tenants of the
// rows passed on, with its .golden file. A row of a tenant the file does
// not list is an error at its line (repeats of it too: nothing of it is
// enqueued); rows of listed tenants, in any spelling of their id, and of
// the default tenant pass. go test -run TestAllowlist -update rewrites
// the golden files.
func TestAllowlist(t *testing.T) {
	allow, err := config.LoadTenantAllowlist(config.MapEnv(map[string]string{config.TenantsVar: "testdata/allowlist/tenants.json"}))
	if err != nil || !allow.On() {
		t.Fatalf("allowlist: %v, on %v", err, allow.On())
	}
	files, err := filepath.Glob("testdata/allowlist/rows.*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range files {
		if strings.HasSuffix(path, ".golden") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := DetectFormat(path, "")
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var asked []string
			rd := Reader{Name: filepath.Base(path), Format: f, DefaultTenant: allowlistDefault,
				Refuse: func(tenant string) string {
					asked = append(asked, tenant)
					return allow.Refuses(tenant, allowlistDefault)
				}}
			var b strings.Builder
			res, err := rd.Read(bytes.NewReader(data), func(r Row) error {
				fmt.Fprintf(&b, "passed: line %d, tenant %s\n", r.Line, r.TenantID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Err() == nil {
				t.Fatal("no error for rows of a tenant the file does not list")
			}
			got := report(res) + b.String()
			seen := map[string]bool{}
			for _, a := range asked {
				if seen[a] {
					t.Errorf("Refuse asked twice about %s", a)
				}
				seen[a] = true
			}
			golden := path + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("report differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
	if n != 3 {
		t.Errorf("%d allowlist inputs, want 3", n)
	}
}

// TestAllowlistOff: without "onlyListed" the file allows every tenant, as
// BULKASSIGN_TENANTS always did.
func TestAllowlistOff(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(p, []byte(`{"tenants":[{"id":"2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d","writeRate":2}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	allow, err := config.LoadTenantAllowlist(config.MapEnv(map[string]string{config.TenantsVar: p}))
	if err != nil || allow.On() {
		t.Fatalf("allowlist: %v, on %v; want off", err, allow.On())
	}
	if msg := allow.Refuses("a1b2c3d4-0000-4000-8000-000000000001", ""); msg != "" {
		t.Errorf("Refuses = %q, want every tenant allowed", msg)
	}
}

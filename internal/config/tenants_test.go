package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadTenants(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, body string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "tenants.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const a, b = "a1000000-0000-4000-8000-000000000001", "a1000000-0000-4000-8000-000000000002"
	t.Run("Good", func(t *testing.T) {
		t.Parallel()
		p := write(t, `{"tenants":[{"id":"`+strings.ToUpper(a)+`","name":"Contoso","writeRate":2.5},
			{"id":"`+b+`","clientId":"c","clientSecretVar":"B_SECRET","readRate":0}]}`)
		ts, err := LoadTenants(MapEnv(map[string]string{TenantsVar: p, "B_SECRET": "s3cret"}))
		if err != nil {
			t.Fatal(err)
		}
		w := Worker{WriteRate: 5, ReadRate: 50}
		if wr, rd := ts.Rates(a, w); wr != 2.5 || rd != 50 || ts[a].Name != "Contoso" {
			t.Errorf("tenant a: rates %v %v, %+v", wr, rd, ts[a])
		}
		if wr, rd := ts.Rates(b, w); wr != 5 || rd != 0 || ts[b].Secret != "s3cret" {
			t.Errorf("tenant b: rates %v %v, secret read %v", wr, rd, ts[b].Secret != "")
		}
		if wr, rd := ts.Rates("other", w); wr != 5 || rd != 50 {
			t.Errorf("another tenant: %v %v, want the fleet's", wr, rd)
		}
	})
	for _, tt := range []struct{ name, body, want string }{
		{"BadJSON", `{"tenants":[`, "unexpected EOF"},
		{"UnknownKey", `{"tenants":[{"id":"` + a + `","secret":"x"}]}`, `unknown field "secret"`},
		{"BadID", `{"tenants":[{"id":"contoso"}]}`, "tenants[0]: id"},
		{"Twice", `{"tenants":[{"id":"` + a + `"},{"id":"` + a + `"}]}`, "tenants[1]: tenant " + a + " is listed twice"},
		{"NegativeRate", `{"tenants":[{"id":"` + a + `","writeRate":-1}]}`, "tenants[0]: writeRate -1"},
		{"CredentialWithoutApp", `{"tenants":[{"id":"` + a + `","certificatePath":"x.pem"}]}`, "without clientId"},
		{"AppWithoutCredential", `{"tenants":[{"id":"` + a + `","clientId":"c"}]}`, "needs certificatePath or clientSecretVar"},
		{"SecretVarUnset", `{"tenants":[{"id":"` + a + `","clientId":"c","clientSecretVar":"NOPE"}]}`, "clientSecretVar NOPE is not set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := write(t, tt.body)
			_, err := LoadTenants(MapEnv(map[string]string{TenantsVar: p}))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), TenantsVar+": "+p) {
				t.Errorf("err = %v, want one line naming %s, the file and %q", err, TenantsVar, tt.want)
			}
		})
	}
	if _, err := LoadTenants(MapEnv(map[string]string{TenantsVar: "/nonexistent/tenants.json"})); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTenantAllowlistFile(t *testing.T) {
	t.Parallel()
	const a, def = "a1000000-0000-4000-8000-000000000001", "d1000000-0000-4000-8000-00000000000d"
	p := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(p, []byte(`{"onlyListed": true, "tenants": [{"id": "`+strings.ToUpper(a)+`", "writeRate": 2}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := LoadWorker(MapEnv(map[string]string{TenantsVar: p}))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Allowlist.On() || w.Tenants[a].WriteRate == nil {
		t.Fatalf("allowlist on %v, tenants %+v", w.Allowlist.On(), w.Tenants)
	}
	for _, id := range []string{a, strings.ToUpper(a), def, strings.ToUpper(def), ""} {
		if msg := w.Allowlist.Refuses(id, def); msg != "" {
			t.Errorf("Refuses(%q) = %q, want allowed", id, msg)
		}
	}
	other := "b1000000-0000-4000-8000-000000000002"
	if msg := w.Allowlist.Refuses(other, def); !strings.Contains(msg, "tenant "+other+" is not listed in "+TenantsVar+" ("+p) {
		t.Errorf("Refuses(other) = %q, want it named with the variable and file", msg)
	}
	if (TenantAllowlist{}).Refuses(other, def) != "" {
		t.Error("the zero allowlist refuses a tenant")
	}
	if _, err := LoadTenantFile(MapEnv(map[string]string{TenantsVar: write(t, `{"onlyListed": "yes"}`)})); err == nil || !strings.HasPrefix(err.Error(), TenantsVar+": ") {
		t.Errorf("onlyListed not a boolean: %v", err)
	}
}

func TestTenantQueueIdle(t *testing.T) {
	t.Parallel()
	w, err := LoadWorker(MapEnv(map[string]string{}))
	if err != nil || w.TenantQueueIdle != Defaults.TenantQueueIdle {
		t.Errorf("default: %v, %v", w.TenantQueueIdle, err)
	}
	if w, err := LoadWorker(MapEnv(map[string]string{"WORKER_TENANT_QUEUE_IDLE": "2s"})); err != nil || w.TenantQueueIdle != 2*time.Second {
		t.Errorf("2s: %v, %v", w.TenantQueueIdle, err)
	}
	if _, err := LoadWorker(MapEnv(map[string]string{"WORKER_TENANT_QUEUE_IDLE": "0"})); err == nil || !strings.HasPrefix(err.Error(), "WORKER_TENANT_QUEUE_IDLE: ") {
		t.Errorf("0: %v, want an error naming the variable", err)
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

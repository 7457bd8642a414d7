package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// TenantsVar names the file of per-tenant settings.
const TenantsVar = "BULKASSIGN_TENANTS"

// Tenant is what one tenant may set apart from the fleet's settings. Every
// process of the fleet must read the same file: the rates are fleet-wide
// budgets shared through the database.
type Tenant struct {
	// ID is the tenant's GUID (canonical form).
	ID string `json:"id"`
	// Name is shown in logs and by `worker check`.
	Name string `json:"name,omitempty"`
	// WriteRate and ReadRate replace GRAPH_WRITE_RATE and GRAPH_READ_RATE
	// for this tenant (nil: the fleet's; 0: no limit), for a customer whose
	// own tools need more of Intune's 200 writes per 20 s.
	WriteRate *float64 `json:"writeRate,omitempty"`
	ReadRate  *float64 `json:"readRate,omitempty"`
	// ClientID, with CertificatePath (and CertificatePasswordVar) or
	// ClientSecretVar, is an app registration of the tenant's own, used
	// instead of AZURE_CLIENT_ID's. Secrets are never in the file: the
	// *Var fields name environment variables that hold them.
	ClientID               string `json:"clientId,omitempty"`
	CertificatePath        string `json:"certificatePath,omitempty"`
	CertificatePasswordVar string `json:"certificatePasswordVar,omitempty"`
	ClientSecretVar        string `json:"clientSecretVar,omitempty"`

	// Secret and CertificatePassword are read from the variables named.
	Secret              string `json:"-"`
	CertificatePassword string `json:"-"`
}

// Tenants are the per-tenant settings, by tenant id.
type Tenants map[string]Tenant

// TenantAllowlist says which tenants may have rows. Its zero value allows
// every tenant; BULKASSIGN_TENANTS with "onlyListed": true allows only the
// tenants the file lists, and the default tenant (AZURE_TENANT_ID).
type TenantAllowlist struct {
	path string
	ids  map[string]bool // nil: every tenant
}

// On reports whether the list allows only some tenants.
func (a TenantAllowlist) On() bool { return a.ids != nil }

// Refuses is why rows of tenant id may not be enqueued or worked, or ""
// when they may. id is a tenant id in any case; the default tenant
// (defaultTenant, AZURE_TENANT_ID) is always allowed, and so is "" (a row
// of the default tenant). It is the one rule both intake and the workers
// apply.
func (a TenantAllowlist) Refuses(id, defaultTenant string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	if a.ids == nil || id == "" || a.ids[id] || id == strings.ToLower(strings.TrimSpace(defaultTenant)) {
		return ""
	}
	return fmt.Sprintf("tenant %s is not listed in %s (%s allows only the tenants it lists: \"onlyListed\": true)", id, TenantsVar, a.path)
}

// TenantFile is BULKASSIGN_TENANTS read: the per-tenant settings and
// which tenants may have rows.
type TenantFile struct {
	Tenants   Tenants
	Allowlist TenantAllowlist
}

// LoadTenants reads BULKASSIGN_TENANTS's per-tenant settings (see
// LoadTenantFile).
func LoadTenants(env Env) (Tenants, error) {
	f, err := LoadTenantFile(env)
	return f.Tenants, err
}

// LoadTenantAllowlist reads which tenants may have rows (see
// LoadTenantFile): what intake checks rows against.
func LoadTenantAllowlist(env Env) (TenantAllowlist, error) {
	f, err := LoadTenantFile(env)
	return f.Allowlist, err
}

// LoadTenantFile reads BULKASSIGN_TENANTS (a JSON file; unset: no
// per-tenant settings, and every tenant may have rows). With
// "onlyListed": true in the file, only the tenants it lists (and
// AZURE_TENANT_ID's) may. Every problem names the file and the entry.
func LoadTenantFile(env Env) (TenantFile, error) {
	path := get(env, TenantsVar, "")
	if path == "" {
		return TenantFile{Tenants: Tenants{}}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return TenantFile{}, &Error{TenantsVar, fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err))}
	}
	var file struct {
		// OnlyListed makes the file an allowlist: rows of a tenant it
		// does not list are refused at intake (FILE:LINE) and, if one
		// was enqueued before, fail with TenantNotAllowed.
		OnlyListed bool     `json:"onlyListed"`
		Tenants    []Tenant `json:"tenants"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return TenantFile{}, &Error{TenantsVar, fmt.Sprintf("%s: %v", path, err)}
	}
	out := Tenants{}
	for i, t := range file.Tenants {
		where := fmt.Sprintf("%s: tenants[%d]", path, i)
		bad := func(format string, args ...any) error {
			return &Error{TenantsVar, where + ": " + fmt.Sprintf(format, args...)}
		}
		id, err := assign.ParseGUID("id", t.ID)
		if err != nil {
			return TenantFile{}, bad("%v", err)
		}
		if _, dup := out[id]; dup {
			return TenantFile{}, bad("tenant %s is listed twice", id)
		}
		t.ID = id
		for name, r := range map[string]*float64{"writeRate": t.WriteRate, "readRate": t.ReadRate} {
			if r != nil && (math.IsNaN(*r) || *r < 0 || (*r != 0 && (*r < minRate || *r > maxRate))) {
				return TenantFile{}, bad("%s %v: want 0 (no limit) or %g to %g requests per second", name, *r, float64(minRate), float64(maxRate))
			}
		}
		if t.ClientID == "" && (t.CertificatePath != "" || t.ClientSecretVar != "" || t.CertificatePasswordVar != "") {
			return TenantFile{}, bad("a credential without clientId: give the app registration's clientId too")
		}
		if t.ClientID != "" {
			if t.CertificatePath == "" && t.ClientSecretVar == "" {
				return TenantFile{}, bad("clientId %s needs certificatePath or clientSecretVar", t.ClientID)
			}
			if t.ClientSecretVar != "" {
				if t.Secret = strings.TrimSpace(get(env, t.ClientSecretVar, "")); t.Secret == "" {
					return TenantFile{}, bad("clientSecretVar %s is not set", t.ClientSecretVar)
				}
			}
			if t.CertificatePasswordVar != "" {
				t.CertificatePassword = get(env, t.CertificatePasswordVar, "")
			}
		}
		out[id] = t
	}
	f := TenantFile{Tenants: out}
	if file.OnlyListed {
		f.Allowlist = TenantAllowlist{path: path, ids: make(map[string]bool, len(out))}
		for id := range out {
			f.Allowlist.ids[id] = true
		}
	}
	return f, nil
}

// Rates are a tenant's write and read rates: its own where the file sets
// them, else w's.
func (ts Tenants) Rates(id string, w Worker) (write, read float64) {
	write, read = w.WriteRate, w.ReadRate
	if t, ok := ts[strings.ToLower(id)]; ok {
		if t.WriteRate != nil {
			write = *t.WriteRate
		}
		if t.ReadRate != nil {
			read = *t.ReadRate
		}
	}
	return write, read
}

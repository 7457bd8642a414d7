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

// LoadTenants reads BULKASSIGN_TENANTS (a JSON file; unset: no per-tenant
// settings). Every problem names the file and the entry.
func LoadTenants(env Env) (Tenants, error) {
	path := get(env, TenantsVar, "")
	if path == "" {
		return Tenants{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{TenantsVar, fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err))}
	}
	var file struct {
		Tenants []Tenant `json:"tenants"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, &Error{TenantsVar, fmt.Sprintf("%s: %v", path, err)}
	}
	out := Tenants{}
	for i, t := range file.Tenants {
		where := fmt.Sprintf("%s: tenants[%d]", path, i)
		bad := func(format string, args ...any) error {
			return &Error{TenantsVar, where + ": " + fmt.Sprintf(format, args...)}
		}
		id, err := assign.ParseGUID("id", t.ID)
		if err != nil {
			return nil, bad("%v", err)
		}
		if _, dup := out[id]; dup {
			return nil, bad("tenant %s is listed twice", id)
		}
		t.ID = id
		for name, r := range map[string]*float64{"writeRate": t.WriteRate, "readRate": t.ReadRate} {
			if r != nil && (math.IsNaN(*r) || *r < 0 || (*r != 0 && (*r < minRate || *r > maxRate))) {
				return nil, bad("%s %v: want 0 (no limit) or %g to %g requests per second", name, *r, float64(minRate), float64(maxRate))
			}
		}
		if t.ClientID == "" && (t.CertificatePath != "" || t.ClientSecretVar != "" || t.CertificatePasswordVar != "") {
			return nil, bad("a credential without clientId: give the app registration's clientId too")
		}
		if t.ClientID != "" {
			if t.CertificatePath == "" && t.ClientSecretVar == "" {
				return nil, bad("clientId %s needs certificatePath or clientSecretVar", t.ClientID)
			}
			if t.ClientSecretVar != "" {
				if t.Secret = strings.TrimSpace(get(env, t.ClientSecretVar, "")); t.Secret == "" {
					return nil, bad("clientSecretVar %s is not set", t.ClientSecretVar)
				}
			}
			if t.CertificatePasswordVar != "" {
				t.CertificatePassword = get(env, t.CertificatePasswordVar, "")
			}
		}
		out[id] = t
	}
	return out, nil
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

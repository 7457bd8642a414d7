package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// tenantData is what a tenant file holds for one tenant.
type tenantData struct {
	Configurations []string `json:"configurations"`
	// Policies of kinds bulkassign does not assign, one list per
	// collection, in PolicyCollections order.
	ConfigurationPolicies     []string `json:"configurationPolicies"`
	DeviceCompliancePolicies  []string `json:"deviceCompliancePolicies"`
	GroupPolicyConfigurations []string `json:"groupPolicyConfigurations"`
	Existing                  []struct {
		ConfigurationID string        `json:"configurationId"`
		Path            string        `json:"path"`
		Target          assign.Target `json:"target"`
	} `json:"existing"`
}

// tenantEntry is one element of a tenant file's "tenants". Absent settings
// leave an existing tenant's settings alone.
type tenantEntry struct {
	ID            string   `json:"id"`
	Name          *string  `json:"name"`
	WriteLimit    *string  `json:"writeLimit"`
	Refuse        *Refusal `json:"refuse"`
	TokenFailures *int     `json:"tokenFailures"`
	NoPermission  *bool    `json:"noPermission"`
	tenantData
}

// preassignment is a validated element of "existing".
type preassignment struct {
	cfg    string
	path   assign.Path
	target assign.Target
}

// validate checks a tenant's data and returns its configuration ids and
// existing assignments; where prefixes the error messages.
func (d tenantData) validate(where string) ([]string, []preassignment, error) {
	var ids []string
	for i, id := range d.Configurations {
		g, err := assign.ParseGUID(where+"configurations["+strconv.Itoa(i)+"]", id)
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, g)
	}
	var pre []preassignment
	for i, e := range d.Existing {
		cfg, err := assign.ParseGUID("configurationId", e.ConfigurationID)
		var p assign.Path
		if err == nil {
			p, err = assign.ParsePath(e.Path)
		}
		if err == nil {
			err = e.Target.Validate()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%sexisting[%d]: %w", where, i, err)
		}
		pre = append(pre, preassignment{cfg, p, e.Target})
	}
	return ids, pre, nil
}

// policies checks the tenant's policies of other kinds and returns their
// canonical ids by collection; where prefixes the error messages.
func (d tenantData) policies(where string) (map[string][]string, error) {
	out := map[string][]string{}
	for i, ids := range [][]string{d.ConfigurationPolicies, d.DeviceCompliancePolicies, d.GroupPolicyConfigurations} {
		c := PolicyCollections[i]
		for i, id := range ids {
			g, err := assign.ParseGUID(where+c+"["+strconv.Itoa(i)+"]", id)
			if err != nil {
				return nil, err
			}
			out[c] = append(out[c], g)
		}
	}
	return out, nil
}

// addPolicies registers pols (from tenantData.policies) in t.
func addPolicies(t *Tenant, pols map[string][]string) error {
	for c, ids := range pols {
		if err := t.AddPolicy(c, ids...); err != nil {
			return err
		}
	}
	return nil
}

// LoadTenantFile registers the configurations and existing assignments a
// JSON file describes, and the tenants it lists, and returns the
// configuration ids it added to the default tenant:
//
//	{"name": "<default tenant display name>",
//	 "configurations": ["<guid>", ...],
//	 "existing": [{"configurationId": "<guid>", "path": "", "target": {<Graph target>}}, ...],
//	 "configurationPolicies": ["<guid>", ...], "deviceCompliancePolicies": [...], "groupPolicyConfigurations": [...],
//	 "tenants": [{"id": "<tenant guid>", "name": "Fabrikam", "writeLimit": "100/20s",
//	              "refuse": ""|"consent"|"notfound"|"disabled", "tokenFailures": 0, "noPermission": false,
//	              "configurations": [...], "existing": [...]}, ...]}
//
// Every key is optional. The top-level configurations and existing belong
// to the default tenant. A tenants entry for a tenant the server does not
// have yet adds it (see TenantConfig; writeLimit as in ParseLimit); an
// entry for one it has (the default tenant, one of Config.Tenants) adds
// the data to it and applies the settings the entry gives. Nothing is
// applied unless the whole file is valid.
func (s *Server) LoadTenantFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenant file: %w", err)
	}
	var f struct {
		Name *string `json:"name"`
		tenantData
		Tenants []tenantEntry `json:"tenants"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tenant file %s: %w", path, err)
	}
	fail := func(err error) ([]string, error) { return nil, fmt.Errorf("tenant file %s: %w", path, err) }
	ids, pre, err := f.validate("")
	if err != nil {
		return fail(err)
	}
	pols, err := f.policies("")
	if err != nil {
		return fail(err)
	}

	type loaded struct {
		id    string
		tc    TenantConfig
		e     tenantEntry
		limit *Limit
		ids   []string
		pre   []preassignment
		pols  map[string][]string
	}
	var entries []loaded
	seen := map[string]bool{}
	for i, e := range f.Tenants {
		where := fmt.Sprintf("tenants[%d]: ", i)
		id, err := assign.ParseGUID(where+"id", e.ID)
		if err != nil && strings.EqualFold(strings.TrimSpace(e.ID), s.tenant) {
			id, err = s.tenant, nil // a default tenant id that is not a GUID
		}
		if err != nil {
			return fail(err)
		}
		if seen[id] {
			return fail(fmt.Errorf("%stenant %s listed twice", where, id))
		}
		seen[id] = true
		ld := loaded{id: id, e: e, tc: TenantConfig{ID: id}}
		if e.Name != nil {
			ld.tc.Name = *e.Name
		}
		if e.WriteLimit != nil {
			l, err := ParseLimit(*e.WriteLimit)
			if err != nil {
				return fail(fmt.Errorf("%s%w", where, err))
			}
			ld.limit, ld.tc.WriteLimit = &l, l
		}
		if e.Refuse != nil {
			if err := e.Refuse.validate(); err != nil {
				return fail(fmt.Errorf("%s%w", where, err))
			}
			ld.tc.Refuse = *e.Refuse
		}
		if e.TokenFailures != nil {
			if *e.TokenFailures < 0 {
				return fail(fmt.Errorf("%stokenFailures is negative", where))
			}
			ld.tc.TokenFailures = *e.TokenFailures
		}
		if e.NoPermission != nil {
			ld.tc.NoPermission = *e.NoPermission
		}
		if ld.ids, ld.pre, err = e.validate(where); err != nil {
			return fail(err)
		}
		if ld.pols, err = e.policies(where); err != nil {
			return fail(err)
		}
		entries = append(entries, ld)
	}

	def := s.DefaultTenant()
	if f.Name != nil {
		s.mu.Lock()
		s.home.name = *f.Name
		s.mu.Unlock()
	}
	def.AddConfiguration(ids...)
	if err := addPolicies(def, pols); err != nil {
		return fail(err)
	}
	for _, p := range pre {
		def.Preassign(p.cfg, p.path, p.target)
	}
	for _, ld := range entries {
		t := s.Tenant(ld.id)
		if t == nil {
			if t, err = s.AddTenant(ld.tc); err != nil {
				return fail(err)
			}
		} else {
			s.mu.Lock()
			ts := t.t
			if ld.e.Name != nil {
				ts.name = *ld.e.Name
			}
			if ld.limit != nil {
				ts.limit, ts.lim = *ld.limit, newLimiter(*ld.limit, s.start)
			}
			if ld.e.Refuse != nil {
				ts.refuse = *ld.e.Refuse
			}
			if ld.e.TokenFailures != nil {
				ts.tokenFails = *ld.e.TokenFailures
			}
			if ld.e.NoPermission != nil {
				ts.noPermission = *ld.e.NoPermission
			}
			s.mu.Unlock()
		}
		t.AddConfiguration(ld.ids...)
		if err := addPolicies(t, ld.pols); err != nil {
			return fail(err)
		}
		for _, p := range ld.pre {
			t.Preassign(p.cfg, p.path, p.target)
		}
		if t.t == s.home {
			ids = append(ids, ld.ids...)
		}
	}
	return ids, nil
}

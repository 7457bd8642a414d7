package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
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
	// Display names, for rows that name objects instead of giving ids:
	// configuration id -> displayName, and the tenant's groups and
	// assignment filters.
	ConfigurationNames map[string]string `json:"configurationNames"`
	Groups             []namedEntry      `json:"groups"`
	Filters            []namedEntry      `json:"filters"`
}

// namedEntry is an element of "groups" or "filters".
type namedEntry struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
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
	NoGroupRead   *bool    `json:"noGroupRead"`
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

// tenantNames are a tenant file's validated display names.
type tenantNames struct {
	configs, groups, filters []namedObject
}

// names checks the tenant's display names and returns them with canonical
// ids, configurations in id order (a JSON object has none); where
// prefixes the error messages.
func (d tenantData) names(where string) (tenantNames, error) {
	var n tenantNames
	seen := map[string]string{}
	// Keys in order, so that of several bad ones the same is reported.
	for _, key := range slices.Sorted(maps.Keys(d.ConfigurationNames)) {
		name := d.ConfigurationNames[key]
		id, err := assign.ParseGUID(where+"configurationNames: configuration id", key)
		if err != nil {
			return n, err
		}
		if other, dup := seen[id]; dup {
			return n, fmt.Errorf("%sconfigurationNames: %q and %q are the same configuration", where, other, key)
		}
		seen[id] = key
		if name == "" {
			return n, fmt.Errorf("%sconfigurationNames[%q]: the display name is empty", where, key)
		}
		n.configs = append(n.configs, namedObject{id, name})
	}
	slices.SortFunc(n.configs, func(a, b namedObject) int { return strings.Compare(a.id, b.id) })
	for _, l := range []struct {
		key  string
		list []namedEntry
		out  *[]namedObject
	}{{"groups", d.Groups, &n.groups}, {"filters", d.Filters, &n.filters}} {
		seen := map[string]bool{}
		for i, e := range l.list {
			at := fmt.Sprintf("%s%s[%d]", where, l.key, i)
			id, err := assign.ParseGUID(at+".id", e.ID)
			if err != nil {
				return n, err
			}
			if seen[id] {
				return n, fmt.Errorf("%s: id %s listed twice", at, id)
			}
			seen[id] = true
			if e.DisplayName == "" {
				return n, fmt.Errorf("%s: displayName is empty", at)
			}
			*l.out = append(*l.out, namedObject{id, e.DisplayName})
		}
	}
	return n, nil
}

// addNames registers n (from tenantData.names) in t.
func addNames(t *Tenant, n tenantNames) {
	for _, c := range n.configs {
		t.NameConfiguration(c.id, c.name)
	}
	for _, g := range n.groups {
		t.AddGroup(g.id, g.name)
	}
	for _, f := range n.filters {
		t.AddFilter(f.id, f.name)
	}
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
//	 "configurationNames": {"<configuration guid>": "Win11 – BitLocker", ...},
//	 "groups": [{"id": "<guid>", "displayName": "All Windows devices"}, ...],
//	 "filters": [{"id": "<guid>", "displayName": "Corporate devices"}, ...],
//	 "tenants": [{"id": "<tenant guid>", "name": "Fabrikam", "writeLimit": "100/20s",
//	              "refuse": ""|"consent"|"notfound"|"disabled", "tokenFailures": 0, "noPermission": false,
//	              "noGroupRead": false, "configurations": [...], "existing": [...], "groups": [...], ...}, ...]}
//
// Every key is optional. The top-level data keys belong to the default
// tenant; a tenants entry takes the same data keys for its tenant. Naming
// a configuration (configurationNames) registers it, as existing does; a
// configuration without a name is called "Configuration " and the first 8
// characters of its id. Several groups (or filters) may share a display
// name, as in Entra, which makes the name ambiguous; ids must be GUIDs and
// display names non-empty. noGroupRead denies reads of the tenant's groups
// (TenantConfig.NoGroupRead). A tenants entry for a tenant the server does not
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
	names, err := f.names("")
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
		names tenantNames
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
		if e.NoGroupRead != nil {
			ld.tc.NoGroupRead = *e.NoGroupRead
		}
		if ld.ids, ld.pre, err = e.validate(where); err != nil {
			return fail(err)
		}
		if ld.pols, err = e.policies(where); err != nil {
			return fail(err)
		}
		if ld.names, err = e.names(where); err != nil {
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
	addNames(def, names)
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
			if ld.e.NoGroupRead != nil {
				ts.noGroupRead = *ld.e.NoGroupRead
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
		addNames(t, ld.names)
		if t.t == s.home {
			ids = append(ids, ld.ids...)
		}
	}
	return ids, nil
}

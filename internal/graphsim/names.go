package graphsim

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Display names. Input rows may name a device configuration, a group or an
// assignment filter instead of giving its id; bulkassign resolves a name by
// listing the collection with $filter=displayName eq '…'. The simulator
// serves that filter on the three collections (and, on groups, id in
// ('…', …) of up to 15 ids, which the dry run checks group ids with; `enqueue
// list` reads them whole), with $select, $top and
// paging, compares names case-insensitively as Graph does, and lets several
// objects share a name (Entra allows it for groups), which is how a test
// makes a name ambiguous.

// directory is an ordered set of named objects of one kind (groups,
// assignment filters): ids are unique, display names need not be.
type directory struct {
	order []string          // ids, in the order they were added
	names map[string]string // id -> displayName
}

// add registers id (canonicalised) under name, or renames it.
func (d *directory) add(id, name string) {
	id = assign.CanonicalGUID(id)
	if d.names == nil {
		d.names = map[string]string{}
	}
	if _, ok := d.names[id]; !ok {
		d.order = append(d.order, id)
	}
	d.names[id] = name
}

// namedObject is an object as a list of its collection shows it.
type namedObject struct {
	id, name string
}

func (d *directory) objects() []namedObject {
	out := make([]namedObject, len(d.order))
	for i, id := range d.order {
		out[i] = namedObject{id, d.names[id]}
	}
	return out
}

// NameConfiguration gives a device configuration of the tenant its
// displayName, registering the configuration if needed. An empty name
// restores the default ("Configuration " and the first 8 characters of
// the id).
func (t *Tenant) NameConfiguration(id, displayName string) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.configLocked(id, true).name = displayName
}

// AddGroup registers an Entra group (id a GUID, any case) in the tenant,
// or renames it. Several groups may share a display name, as in Entra.
// Groups exist only to be found (GET /groups, by name or by id): the simulator
// accepts assignments to any group id, registered or not.
func (t *Tenant) AddGroup(id, displayName string) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.groups.add(id, displayName)
}

// AddFilter registers an assignment filter (id a GUID, any case) in the
// tenant, or renames it. Like groups, filters exist only to be found by
// name (GET deviceManagement/assignmentFilters).
func (t *Tenant) AddFilter(id, displayName string) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.filters.add(id, displayName)
}

// SetNoGroupRead changes TenantConfig.NoGroupRead: from now on, reads of
// the tenant's groups answer 403 (deny) or are served again.
func (t *Tenant) SetNoGroupRead(deny bool) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.noGroupRead = deny
}

// NameConfiguration names a device configuration of the default tenant;
// see Tenant.NameConfiguration.
func (s *Server) NameConfiguration(id, displayName string) {
	s.DefaultTenant().NameConfiguration(id, displayName)
}

// AddGroup registers a group in the default tenant; see Tenant.AddGroup.
func (s *Server) AddGroup(id, displayName string) { s.DefaultTenant().AddGroup(id, displayName) }

// AddFilter registers an assignment filter in the default tenant; see
// Tenant.AddFilter.
func (s *Server) AddFilter(id, displayName string) { s.DefaultTenant().AddFilter(id, displayName) }

// countLookup counts a GET carrying $filter on one of the collections
// names are resolved in (Stats.NameLookups), before anything can refuse it.
func (s *Server) countLookup(gc *graphCall, rt route) {
	if gc.r.Method != http.MethodGet || !gc.r.URL.Query().Has("$filter") {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &gc.ten.stats.NameLookups
	switch rt.kind {
	case routeConfigurations:
		n.Configurations++
	case routeGroups:
		n.Groups++
	case routeFilters:
		n.Filters++
	}
}

// listConfigurations answers GET deviceManagement/deviceConfigurations:
// the tenant's configurations in the order they were added.
func (s *Server) listConfigurations(gc *graphCall, rt route) {
	s.listNamed(gc, rt, "deviceManagement/deviceConfigurations", func(ts *tenantState) []namedObject {
		cs := ts.sortedConfigs()
		out := make([]namedObject, len(cs))
		for i, c := range cs {
			out[i] = namedObject{c.id, c.displayName()}
		}
		return out
	}, func(o namedObject) map[string]any {
		return map[string]any{"@odata.type": configurationType, "id": o.id, "displayName": o.name, "version": 1}
	})
}

// listGroups answers GET /groups, or 403 in Graph's words for a directory
// read the app may not make (TenantConfig.NoGroupRead).
func (s *Server) listGroups(gc *graphCall, rt route) {
	s.mu.Lock()
	deny := gc.ten.noGroupRead
	if deny {
		gc.ten.stats.Forbidden++
	}
	s.mu.Unlock()
	if deny {
		s.graphError(gc, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	s.listNamed(gc, rt, "groups", func(ts *tenantState) []namedObject { return ts.groups.objects() },
		func(o namedObject) map[string]any {
			return map[string]any{"id": o.id, "displayName": o.name, "securityEnabled": true, "mailEnabled": false, "groupTypes": []string{}}
		})
}

// listFilters answers GET deviceManagement/assignmentFilters.
func (s *Server) listFilters(gc *graphCall, rt route) {
	s.listNamed(gc, rt, "deviceManagement/assignmentFilters", func(ts *tenantState) []namedObject { return ts.filters.objects() },
		func(o namedObject) map[string]any {
			return map[string]any{"@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter", "id": o.id, "displayName": o.name,
				"platform": "windows10AndLater", "rule": `(device.deviceOwnership -eq "Corporate")`}
		})
}

// listNamed answers a GET of a collection of named objects, as Graph
// does: $filter=displayName eq '…' (parseNameFilter; case-insensitive
// equality), $select (unknown properties ignored; @odata.type is always
// kept, as Graph keeps it for derived types), and pages of at most
// PageSize (or $top if smaller) with an absolute @odata.nextLink carrying
// the query and a $skiptoken. objects lists the tenant's objects in order
// (Server.mu held); fields gives one object's full JSON.
func (s *Server) listNamed(gc *graphCall, rt route, collection string, objects func(*tenantState) []namedObject, fields func(namedObject) map[string]any) {
	if s.maybeRead503(gc) {
		return
	}
	q := gc.r.URL.Query()
	var (
		name     string
		ids      map[string]bool // $filter=id in (...), on groups
		filtered = q.Has("$filter")
	)
	if filtered {
		var ge *graphErr
		if collection == "groups" && idFilterRE.MatchString(q.Get("$filter")) {
			ids, ge = parseIDFilter(q.Get("$filter"))
		} else {
			name, ge = parseNameFilter(q.Get("$filter"))
		}
		if ge != nil {
			s.graphError(gc, ge.status, ge.code, ge.message)
			return
		}
	}
	var sel []string
	for _, f := range strings.Split(q.Get("$select"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			sel = append(sel, f)
		}
	}
	page, off, ok := s.paging(gc)
	if !ok {
		return
	}

	s.mu.Lock()
	var match []namedObject
	for _, o := range objects(gc.ten) {
		if !filtered || (ids == nil && strings.EqualFold(o.name, name)) || ids[o.id] {
			match = append(match, o)
		}
	}
	s.mu.Unlock()
	off = min(off, len(match))
	end := min(off+page, len(match))
	value := make([]map[string]any, 0, end-off)
	for _, o := range match[off:end] {
		value = append(value, selectFields(fields(o), sel))
	}

	ctx := s.url + "/" + rt.version + "/$metadata#" + collection
	if sel != nil {
		ctx += "(" + strings.Join(sel, ",") + ")"
	}
	out := map[string]any{"@odata.context": ctx, "value": value}
	if end < len(match) {
		out["@odata.nextLink"] = s.nextLink(gc, page, end, "$filter", "$select")
	}
	s.writeGraph(gc, http.StatusOK, out)
}

// selectFields keeps the properties $select names (case-insensitively, as
// Graph matches them) and @odata.type; no $select keeps them all.
func selectFields(all map[string]any, sel []string) map[string]any {
	if sel == nil {
		return all
	}
	out := map[string]any{}
	for k, v := range all {
		if k == "@odata.type" {
			out[k] = v
			continue
		}
		for _, f := range sel {
			if strings.EqualFold(f, k) {
				out[k] = v
			}
		}
	}
	return out
}

// idFilterRE matches the shape of $filter=id in ('…', …), which Graph
// serves on groups (and other directory objects).
var idFilterRE = regexp.MustCompile(`(?i)^\s*id\s+in\s*\(`)

// idLiteralRE is one element of the list: a quoted id.
var idLiteralRE = regexp.MustCompile(`^\s*'([^']*)'\s*$`)

// maxInValues is how many values Graph takes in one "in" on directory
// objects; more is a 400.
const maxInValues = 15

// parseIDFilter reads id in ('<id>', '<id>', ...) and returns the ids,
// canonicalised. More than maxInValues values is a 400 in Graph's words.
func parseIDFilter(f string) (map[string]bool, *graphErr) {
	bad := &graphErr{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid filter clause: graphsim serves id in ('<id>', ...), not '%s'.", f)}
	loc := idFilterRE.FindStringIndex(f)
	rest := strings.TrimSpace(f[loc[1]:])
	list, ok := strings.CutSuffix(rest, ")")
	if !ok {
		return nil, bad
	}
	ids := map[string]bool{}
	parts := strings.Split(list, ",")
	if len(parts) > maxInValues {
		return nil, &graphErr{http.StatusBadRequest, "Request_UnsupportedQuery",
			fmt.Sprintf("Too many child clauses specified in search filter expression containing 'OR' operators: %d. Max allowed: %d.", len(parts), maxInValues)}
	}
	for _, p := range parts {
		m := idLiteralRE.FindStringSubmatch(p)
		if m == nil {
			return nil, bad
		}
		ids[assign.CanonicalGUID(m[1])] = true
	}
	return ids, nil
}

// parseNameFilter reads the one $filter the simulator serves,
//
//	displayName eq '<OData string literal>'
//
// and returns the literal's value. The property and the operator are
// matched case-insensitively, as Graph does; tokens are separated by
// spaces (or tabs); a quote inside the literal is written twice. A filter
// that is not valid OData is a 400 in the words OData uses; a valid one of
// another shape (another property, operator or function, "and") is a 400
// that says what the simulator serves.
func parseNameFilter(f string) (string, *graphErr) {
	syntax := func(pos int) (string, *graphErr) {
		return "", &graphErr{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid filter clause: Syntax error at position %d in '%s'.", pos, f)}
	}
	unsupported := func() (string, *graphErr) {
		return "", &graphErr{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid filter clause: graphsim serves only displayName eq '<name>', not '%s'.", f)}
	}
	space := func(i int) int {
		for i < len(f) && (f[i] == ' ' || f[i] == '\t') {
			i++
		}
		return i
	}
	word := func(i int) int {
		for i < len(f) && (f[i] == '_' || f[i] >= 'a' && f[i] <= 'z' || f[i] >= 'A' && f[i] <= 'Z' || f[i] >= '0' && f[i] <= '9') {
			i++
		}
		return i
	}
	i := space(0)
	p := word(i)
	if p == i {
		return syntax(i)
	}
	prop := f[i:p]
	if p < len(f) && f[p] == '(' {
		return unsupported() // a function: startswith(displayName,'x'), ...
	}
	i = space(p)
	if i == p {
		return syntax(i)
	}
	o := word(i)
	if o == i {
		return syntax(i)
	}
	op := f[i:o]
	i = space(o)
	if i == o {
		return syntax(i)
	}
	if i == len(f) || f[i] != '\'' {
		if !strings.EqualFold(prop, "displayName") || !strings.EqualFold(op, "eq") {
			return unsupported()
		}
		return syntax(i) // displayName eq 42, displayName eq null: not a string
	}
	start := i
	var b strings.Builder
	for i++; ; i++ {
		if i == len(f) {
			return "", &graphErr{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid filter clause: There is an unterminated string literal at position %d in '%s'.", start, f)}
		}
		if f[i] == '\'' {
			if i+1 < len(f) && f[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			i++
			break
		}
		b.WriteByte(f[i])
	}
	if rest := space(i); rest != len(f) {
		if rest > i && word(rest) > rest {
			return unsupported() // ... and ..., ... or ...
		}
		return syntax(rest)
	}
	if !strings.EqualFold(prop, "displayName") || !strings.EqualFold(op, "eq") {
		return unsupported()
	}
	return b.String(), nil
}

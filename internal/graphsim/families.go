package graphsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/family"
)

// Policy families. Besides device configurations (graph.go) the
// simulator holds policies of every family of internal/family and serves,
// under each of their collections (beta and v1.0):
//
//	GET    /{collection}/{id}                          the policy (id, displayName)
//	GET    /{collection}/{id}/assignments              its set, paged ($top, @odata.nextLink)
//	GET    /{collection}/{id}/assignments/{aid}        one assignment
//	POST   /{collection}/{id}/assign                   {"<body key>": [...]} REPLACES the whole set
//	POST   /{collection}/{id}/assignments              apps: creates one (201); elsewhere 400 "No method match route template"
//	DELETE /{collection}/{id}/assignments/{aid}        apps: 204; elsewhere the same 400
//
// and POST /deviceManagement/deviceConfigurations/{id}/assign, which
// replaces a configuration's own assignments (the other routes of device
// configurations are graph.go's).
//
// An /assign is ONE write against the tenant's write limit, with the
// write fault mix (startWrite, answerFault), however many assignments it
// carries. What its body leaves out is removed, policy-set entries
// included: an element keeps an entry (its id, source and sourceId) when
// it names the entry's id in the same slot (target type and group);
// every other element is a new direct assignment with a new id, whatever
// source it claims. Every /assign, create and delete is recorded in the
// tenant's AssignLedger with the set before and after.
//
// hasPolicy reports whether the tenant has the policy (any family).
func (t *Tenant) hasPolicy(collection, id string) bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	_, ok := t.t.setLocked(collection, id)
	return ok
}

// EditBetweenReadAndWrite arms a concurrent editor: once a client has
// read the last page of a policy's assignments, the edit is applied to
// the live set (as an admin in the portal would, outside the write
// limit), so that a client that posts a union computed from that read
// without reading again loses the edit.

// familyData is a tenant's policies of the families; Server.mu guards it.
type familyData struct {
	policies map[string]map[string]*policy // collection name -> canonical id -> policy
	seq      int
	ledger   []AssignRecord
	editors  map[string]func([]family.Entry) []family.Entry // collection/id -> armed edit
}

// policy is one policy of a family other than device configurations.
type policy struct {
	fam  *family.Family
	coll *family.Collection
	id   string
	name string
	seq  int
	set  []family.Entry
}

// policyLocked returns the policy of collection (a collection name of
// the family table) with id, registering it if create; nil if unknown.
func (fd *familyData) policyLocked(collection, id string, create bool) *policy {
	f, c := family.ByCollection(collection)
	if f == nil {
		return nil
	}
	id = assign.CanonicalGUID(id)
	m := fd.policies[c.Name]
	if p := m[id]; p != nil || !create {
		return p
	}
	if fd.policies == nil {
		fd.policies = map[string]map[string]*policy{}
	}
	if m == nil {
		m = map[string]*policy{}
		fd.policies[c.Name] = m
	}
	fd.seq++
	p := &policy{fam: f, coll: c, id: id, seq: fd.seq}
	m[id] = p
	return p
}

// policySet is the live set of one policy of any family, device
// configurations included (their own assignments, path ""), read and
// replaced through one interface; Server.mu is held while it is used.
type policySet struct {
	fam  *family.Family
	coll *family.Collection
	id   string
	p    *policy
	c    *configuration
}

// setLocked finds a policy's set; ok is false when the tenant has none.
func (ts *tenantState) setLocked(collection, id string) (policySet, bool) {
	f, c := family.ByCollection(collection)
	if f == nil {
		return policySet{}, false
	}
	ps := policySet{fam: f, coll: c, id: assign.CanonicalGUID(id)}
	if f.Name == family.DeviceConfiguration {
		ps.c = ts.configLocked(id, false)
		return ps, ps.c != nil
	}
	ps.p = ts.fam.policyLocked(c.Name, id, false)
	return ps, ps.p != nil
}

func (ps policySet) entries() []family.Entry {
	if ps.p != nil {
		return append([]family.Entry(nil), ps.p.set...)
	}
	list := ps.c.lists[""]
	out := make([]family.Entry, len(list))
	for i, a := range list {
		out[i] = family.Entry{ID: a.ID, Source: family.Source(a.Source), SourceID: a.SourceID, Assignment: family.Assignment{Target: a.Target}}
	}
	return out
}

func (ps policySet) replace(next []family.Entry) {
	if ps.p != nil {
		ps.p.set = next
		return
	}
	old := map[string]*Assignment{}
	for _, a := range ps.c.lists[""] {
		old[a.ID] = a
	}
	now := time.Now().UTC()
	list := make([]*Assignment, len(next))
	for i, e := range next {
		a := &Assignment{ID: e.ID, Target: e.Target, Source: string(e.Source), SourceID: e.SourceID, Intent: "apply", Created: now}
		if o := old[e.ID]; o != nil {
			a.Intent, a.Created = o.Intent, o.Created
		}
		list[i] = a
	}
	ps.c.lists[""] = list
}

// AssignRecord is one write of a policy's set through the API: an
// /assign, or a create or delete of one assignment (apps, device
// configurations' /assign). Before and After are the whole set.
type AssignRecord struct {
	Seq             int            `json:"seq"`
	Op              string         `json:"op"` // "assign", "create" or "delete"
	Family          family.Name    `json:"family"`
	Collection      string         `json:"collection"`
	PolicyID        string         `json:"policyId"`
	Before          []family.Entry `json:"before"`
	After           []family.Entry `json:"after"`
	Time            time.Time      `json:"time"`
	ClientID        string         `json:"clientId"`
	RequestID       string         `json:"requestId"`
	ClientRequestID string         `json:"clientRequestId"`
	Outcome         Outcome        `json:"outcome"`
	Answered        bool           `json:"answered"` // the caller was sent the success answer
}

// familyRoute is a request below a family's collection.
type familyRoute struct {
	version string
	fam     *family.Family
	coll    *family.Collection
	id      string // policy id, canonical
	op      familyOp
	aid     string // assignment id (opItem)
}

type familyOp int

const (
	opPolicy familyOp = iota
	opList
	opItem
	opAssign
)

// parseFamilyPath maps a URL path below /beta or /v1.0 to a request of a
// policy family; ok is false for any other path. graph.go asks it only
// for paths its own routes refuse.
func parseFamilyPath(p string) (familyRoute, bool) {
	var fr familyRoute
	switch {
	case strings.HasPrefix(p, "/beta/"):
		fr.version, p = "beta", strings.TrimPrefix(p, "/beta")
	case strings.HasPrefix(p, "/v1.0/"):
		fr.version, p = "v1.0", strings.TrimPrefix(p, "/v1.0")
	default:
		return fr, false
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) < 3 || segs[2] == "" {
		return fr, false
	}
	fr.fam, fr.coll = family.ByCollection(segs[1])
	if fr.fam == nil || !strings.EqualFold("/"+segs[0]+"/"+segs[1], fr.coll.Path) {
		return fr, false
	}
	fr.id = assign.CanonicalGUID(segs[2])
	tail := segs[3:]
	switch {
	case len(tail) == 0:
		fr.op = opPolicy
	case len(tail) == 1 && strings.EqualFold(tail[0], "assignments"):
		fr.op = opList
	case len(tail) == 2 && strings.EqualFold(tail[0], "assignments") && tail[1] != "":
		fr.op, fr.aid = opItem, strings.ToLower(tail[1])
	case len(tail) == 1 && strings.EqualFold(tail[0], "assign"):
		fr.op = opAssign
	default:
		return fr, false
	}
	return fr, true
}

// serveFamily serves a request of a policy family (see the top of this
// file), behind the same permission check as device configurations.
func (s *Server) serveFamily(gc *graphCall, fr familyRoute, b bearer) {
	if b.app && !permitted(b.roles, gc.r.Method) {
		s.forbidden(gc)
		return
	}
	m := gc.r.Method
	switch {
	case fr.op == opPolicy && m == http.MethodGet:
		s.getPolicy(gc, route{version: fr.version, collection: fr.coll.Name, id: fr.id})
	case fr.op == opList && m == http.MethodGet:
		s.listFamily(gc, fr)
	case fr.op == opList && m == http.MethodPost && fr.fam.PerAssignment:
		s.createFamily(gc, fr)
	case fr.op == opList && m == http.MethodPost:
		s.noMethodMatch(gc, fr, "~/singleton/navigation/key/navigation", "/assignments")
	case fr.op == opItem && m == http.MethodGet:
		s.getFamilyAssignment(gc, fr)
	case fr.op == opItem && m == http.MethodDelete && fr.fam.PerAssignment:
		s.deleteFamily(gc, fr)
	case fr.op == opItem && m == http.MethodDelete:
		s.noMethodMatch(gc, fr, "~/singleton/navigation/key/navigation/key", "/assignments('"+fr.aid+"')")
	case fr.op == opAssign && m == http.MethodPost:
		s.assignFamily(gc, fr)
	default:
		s.noRoute(gc)
	}
}

// noMethodMatch answers a per-assignment write of a family without that
// route as Graph does: 400 "No method match route template".
func (s *Server) noMethodMatch(gc *graphCall, fr familyRoute, template, tail string) {
	service := "/StatelessDeviceConfigurationFEService"
	if strings.HasPrefix(fr.coll.Path, "/deviceAppManagement") {
		service = "/StatelessAppMetadataFEService"
	}
	s.graphError(gc, http.StatusBadRequest, "No method match route template",
		fmt.Sprintf("No OData route exists that match template %s with http verb %s for request %s%s('%s')%s.",
			template, gc.r.Method, service, fr.coll.Path, fr.id, tail))
}

// noPolicy answers 404 for an unknown policy, in Graph's words.
func (s *Server) noPolicy(gc *graphCall, collection, id string) {
	s.notFound(gc, fmt.Sprintf("Resource not found: %s '%s'.", strings.TrimSuffix(collection, "s"), id))
}

// getPolicy answers GET {collection}/{id} for a policy of a family other
// than device configurations: its id and display name, or 404.
func (s *Server) getPolicy(gc *graphCall, rt route) {
	if s.maybeRead503(gc) {
		return
	}
	s.mu.Lock()
	p := gc.ten.fam.policyLocked(rt.collection, rt.id, false)
	var out map[string]any
	if p != nil {
		out = map[string]any{
			"@odata.context": s.url + "/" + rt.version + "/$metadata#" + strings.TrimPrefix(p.coll.Path, "/") + "/$entity",
			"id":             p.id,
			"displayName":    p.name,
		}
	}
	s.mu.Unlock()
	if p == nil {
		s.noPolicy(gc, rt.collection, rt.id)
		return
	}
	s.writeGraph(gc, http.StatusOK, out)
}

// scheduleOut is a remediation's runSchedule in Graph's shape.
type scheduleOut struct {
	ODataType string  `json:"@odata.type"`
	Interval  int     `json:"interval"`
	Time      *string `json:"time,omitempty"`
	Date      *string `json:"date,omitempty"`
	UseUTC    *bool   `json:"useUtc,omitempty"`
}

// familyAssignmentOut is one assignment of a family in Graph's shape.
type familyAssignmentOut struct {
	Context              string          `json:"@odata.context,omitempty"`
	ODataType            string          `json:"@odata.type"`
	ID                   string          `json:"id"`
	Source               string          `json:"source,omitempty"`
	SourceID             string          `json:"sourceId,omitempty"`
	Intent               string          `json:"intent,omitempty"`
	Settings             json.RawMessage `json:"settings,omitempty"`
	RunRemediationScript *bool           `json:"runRemediationScript,omitempty"`
	RunSchedule          *scheduleOut    `json:"runSchedule,omitempty"`
	Target               targetOut       `json:"target"`
}

// familyToGraph writes an entry as Graph does (toGraph's target shape);
// source and sourceId are beta-only.
func familyToGraph(fr familyRoute, e family.Entry) familyAssignmentOut {
	t := targetOut{ODataType: e.Target.Type.ODataType(), FilterType: "none", GroupID: e.Target.GroupID, CollectionID: e.Target.CollectionID}
	if e.Target.FilterID != "" {
		id := e.Target.FilterID
		t.FilterID, t.FilterType = &id, string(e.Target.FilterType)
	}
	out := familyAssignmentOut{ODataType: fr.coll.AssignmentType, ID: e.ID, Target: t, Intent: string(e.Intent), Settings: e.Settings}
	if fr.version == "beta" {
		out.Source, out.SourceID = string(e.Source), e.SourceID
	}
	if len(fr.fam.Schedules) > 0 {
		run := e.RunRemediationScript
		out.RunRemediationScript = &run
		if sc := e.Schedule; sc != nil {
			o := &scheduleOut{ODataType: sc.Kind.ODataType(), Interval: sc.Interval}
			if sc.Kind != family.ScheduleHourly {
				tm, utc := sc.Time, sc.UseUTC
				o.Time, o.UseUTC = &tm, &utc
			}
			if sc.Kind == family.ScheduleOnce {
				d := sc.Date
				o.Date = &d
			}
			out.RunSchedule = o
		}
	}
	return out
}

func (s *Server) familyContext(fr familyRoute) string {
	return s.url + "/" + fr.version + "/$metadata#" + strings.TrimPrefix(fr.coll.Path, "/") + "('" + fr.id + "')/assignments"
}

// listFamily answers GET …/assignments a page at a time (paging, as
// list does), then runs an armed editor once the last page is served.
func (s *Server) listFamily(gc *graphCall, fr familyRoute) {
	if s.maybeRead503(gc) {
		return
	}
	page, off, ok := s.paging(gc)
	if !ok {
		return
	}
	s.mu.Lock()
	ps, found := gc.ten.setLocked(fr.coll.Name, fr.id)
	var items []familyAssignmentOut
	more := false
	if found {
		all := ps.entries()
		off = min(off, len(all))
		end := min(off+page, len(all))
		items = make([]familyAssignmentOut, 0, end-off)
		for _, e := range all[off:end] {
			items = append(items, familyToGraph(fr, e))
		}
		more, off = end < len(all), end
		if !more {
			gc.ten.runEditorLocked(fr.coll.Name, fr.id)
		}
	}
	s.mu.Unlock()
	if !found {
		s.noPolicy(gc, fr.coll.Name, fr.id)
		return
	}
	type listOut struct {
		Context  string                `json:"@odata.context"`
		NextLink string                `json:"@odata.nextLink,omitempty"`
		Value    []familyAssignmentOut `json:"value"`
	}
	out := listOut{Context: s.familyContext(fr), Value: items}
	if more {
		out.NextLink = s.nextLink(gc, page, off)
	}
	s.writeGraph(gc, http.StatusOK, out)
}

// runEditorLocked runs the editor armed on a policy, once
// (EditBetweenReadAndWrite); Server.mu is held.
func (ts *tenantState) runEditorLocked(collection, id string) {
	key := collection + "/" + id
	edit := ts.fam.editors[key]
	if edit == nil {
		return
	}
	delete(ts.fam.editors, key)
	if ps, ok := ts.setLocked(collection, id); ok {
		next := edit(ps.entries())
		for i := range next {
			if next[i].ID == "" {
				next[i].ID = newGUID()
			}
			if next[i].Source == "" {
				next[i].Source, next[i].SourceID = family.SourceDirect, ps.id
			}
		}
		ps.replace(next)
	}
}

func (s *Server) getFamilyAssignment(gc *graphCall, fr familyRoute) {
	if s.maybeRead503(gc) {
		return
	}
	s.mu.Lock()
	ps, found := gc.ten.setLocked(fr.coll.Name, fr.id)
	var out *familyAssignmentOut
	if found {
		for _, e := range ps.entries() {
			if e.ID == fr.aid {
				o := familyToGraph(fr, e)
				out = &o
			}
		}
	}
	s.mu.Unlock()
	switch {
	case !found:
		s.noPolicy(gc, fr.coll.Name, fr.id)
	case out == nil:
		s.notFound(gc, fmt.Sprintf("Resource not found: %s '%s'.", strings.TrimPrefix(fr.coll.AssignmentType, "#microsoft.graph."), fr.aid))
	default:
		out.Context = s.familyContext(fr) + "/$entity"
		s.writeGraph(gc, http.StatusOK, out)
	}
}

// recordLocked appends a write to the ledger; Server.mu is held.
func (s *Server) recordLocked(gc *graphCall, fr familyRoute, op string, before, after []family.Entry, fault writeFault) {
	ts := gc.ten
	outcome := OutcomeCreated
	switch fault {
	case fault504:
		outcome = OutcomeAppliedThen504
		ts.stats.AppliedThen504++
	case faultReset:
		outcome = OutcomeAppliedThenReset
		ts.stats.AppliedThenReset++
	}
	ts.fam.ledger = append(ts.fam.ledger, AssignRecord{
		Seq: len(ts.fam.ledger) + 1, Op: op, Family: fr.fam.Name, Collection: fr.coll.Name, PolicyID: fr.id,
		Before: before, After: after, Time: time.Now().UTC(),
		ClientID: gc.clientID, RequestID: gc.rid, ClientRequestID: gc.crid,
		Outcome: outcome, Answered: fault == faultNone,
	})
}

// readBody returns the request body, or answers 413 or 400 and false.
func (s *Server) readBody(gc *graphCall) ([]byte, bool) {
	if err := gc.bodyErr; err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.graphError(gc, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
			return nil, false
		}
		s.graphError(gc, http.StatusBadRequest, "BadRequest", "Unable to read the request body.")
		return nil, false
	}
	return gc.body, true
}

// assignFamily answers POST …/assign: one write under the write limit and
// the fault mix, 404 for an unknown policy, 400 for a bad body, then the
// whole set replaced by the body's, answered 200 with the new set or 204
// (Family.AssignStatus), or by a 504 or a reset after it applied.
func (s *Server) assignFamily(gc *graphCall, fr familyRoute) {
	fault, ok := s.startWrite(gc)
	if !ok {
		return
	}
	body, ok := s.readBody(gc)
	if !ok {
		return
	}
	s.mu.Lock()
	_, found := gc.ten.setLocked(fr.coll.Name, fr.id)
	s.mu.Unlock()
	if !found {
		s.noPolicy(gc, fr.coll.Name, fr.id)
		return
	}
	posted, msg := parseAssignBody(fr, body)
	if msg != "" {
		s.graphError(gc, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	s.mu.Lock()
	ps, found := gc.ten.setLocked(fr.coll.Name, fr.id)
	if !found { // removed meanwhile
		s.mu.Unlock()
		s.noPolicy(gc, fr.coll.Name, fr.id)
		return
	}
	before := ps.entries()
	byID := make(map[string]family.Entry, len(before))
	for _, e := range before {
		byID[e.ID] = e
	}
	after := make([]family.Entry, 0, len(posted))
	for _, e := range posted {
		if old, ok := byID[e.ID]; ok && e.ID != "" && family.Slot(old.Target) == family.Slot(e.Target) {
			if old.PolicySet() {
				after = append(after, old) // a policy set's entry is the set's
				delete(byID, e.ID)
				continue
			}
			delete(byID, e.ID)
		} else {
			e.ID = newGUID()
		}
		e.Source, e.SourceID = family.SourceDirect, fr.id
		after = append(after, e)
	}
	ps.replace(after)
	s.recordLocked(gc, fr, "assign", before, ps.entries(), fault)
	var value []familyAssignmentOut
	for _, e := range ps.entries() {
		value = append(value, familyToGraph(fr, e))
	}
	s.mu.Unlock()
	if s.answerFault(gc, fault) {
		return
	}
	if fr.fam.AssignStatus == http.StatusNoContent {
		s.writeGraph(gc, http.StatusNoContent, nil)
		return
	}
	if value == nil {
		value = []familyAssignmentOut{}
	}
	s.writeGraph(gc, http.StatusOK, map[string]any{"@odata.context": s.url + "/" + fr.version + "/$metadata#Collection(" + strings.TrimPrefix(fr.coll.AssignmentType, "#") + ")", "value": value})
}

// parseAssignBody reads an /assign body: an object whose only property
// is the family's body key, a list of the collection's assignments.
func parseAssignBody(fr familyRoute, b []byte) ([]family.Entry, string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
	}
	for k := range m {
		if k != fr.fam.BodyKey {
			return nil, fmt.Sprintf("The parameter '%s' in the request payload is not a valid parameter for the operation 'assign'.", k)
		}
	}
	raw, ok := m[fr.fam.BodyKey]
	if !ok {
		return nil, fmt.Sprintf("The parameter '%s' is missing from the request payload of the operation 'assign'.", fr.fam.BodyKey)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil || elems == nil {
		return nil, fmt.Sprintf("The parameter '%s' must be a collection of %s.", fr.fam.BodyKey, strings.TrimPrefix(fr.coll.AssignmentType, "#microsoft.graph."))
	}
	out := make([]family.Entry, 0, len(elems))
	for i, el := range elems {
		e, msg := parseFamilyAssignment(fr, el)
		if msg != "" {
			return nil, fmt.Sprintf("%s[%d]: %s", fr.fam.BodyKey, i, msg)
		}
		out = append(out, e)
	}
	return out, ""
}

// parseFamilyAssignment reads one assignment of the collection: its
// @odata.type, optional id, target, and the family's own properties,
// checked against the family table (family.Validate).
func parseFamilyAssignment(fr familyRoute, b []byte) (family.Entry, string) {
	typeName := strings.TrimPrefix(fr.coll.AssignmentType, "#")
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return family.Entry{}, "an assignment must be an object."
	}
	var e family.Entry
	var rawTarget json.RawMessage
	for k, v := range m {
		switch {
		case k == "@odata.type":
			var t string
			if json.Unmarshal(v, &t) != nil || !strings.EqualFold(strings.TrimPrefix(t, "#"), typeName) {
				return e, fmt.Sprintf("A type named '%s' could not be resolved by the model, or is not a %s.", strings.Trim(string(v), `"`), typeName)
			}
		case k == "id":
			if json.Unmarshal(v, &e.ID) != nil {
				return e, "The property 'id' must be a string."
			}
			e.ID = strings.ToLower(e.ID)
		case k == "target":
			rawTarget = v
		case k == "source" || k == "sourceId":
			// read-only, ignored as Graph does
		case k == "intent" && fr.fam.Name == family.DeviceConfiguration:
			// apply or remove, as a device configuration's beta
			// assignments carry it; a client may post back what it read
			var in string
			if json.Unmarshal(v, &in) != nil || (in != "apply" && in != "remove") {
				return e, fmt.Sprintf("Invalid value %s for property 'intent': expected 'apply' or 'remove'.", v)
			}
		case k == "intent" && len(fr.fam.Intents) > 0:
			if json.Unmarshal(v, &e.Intent) != nil {
				return e, "The property 'intent' must be a string."
			}
		case k == "settings" && fr.fam.Settings:
			if string(v) != "null" {
				e.Settings = append(json.RawMessage(nil), v...)
			}
		case k == "runRemediationScript" && len(fr.fam.Schedules) > 0:
			if json.Unmarshal(v, &e.RunRemediationScript) != nil {
				return e, "The property 'runRemediationScript' must be a boolean."
			}
		case k == "runSchedule" && len(fr.fam.Schedules) > 0:
			if string(v) == "null" {
				continue
			}
			sc, msg := parseSchedule(v)
			if msg != "" {
				return e, msg
			}
			e.Schedule = sc
		default:
			return e, fmt.Sprintf("The property '%s' does not exist on type '%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", k, typeName)
		}
	}
	if len(rawTarget) == 0 || string(rawTarget) == "null" {
		return e, "The property 'target' is required."
	}
	t, msg := parseTarget(rawTarget)
	if msg != "" {
		return e, msg
	}
	e.Target = t
	if err := fr.fam.Validate(e.Assignment, assign.ActionAssign); err != nil {
		return e, "Invalid assignment: " + err.Error()
	}
	return e, ""
}

func parseSchedule(v json.RawMessage) (*family.Schedule, string) {
	var w struct {
		ODataType string `json:"@odata.type"`
		Interval  int    `json:"interval"`
		Time      string `json:"time"`
		Date      string `json:"date"`
		UseUTC    bool   `json:"useUtc"`
	}
	if err := json.Unmarshal(v, &w); err != nil {
		return nil, "Invalid runSchedule: " + err.Error()
	}
	k, ok := family.ScheduleKindFromOData(w.ODataType)
	if !ok {
		return nil, fmt.Sprintf("A type named '%s' could not be resolved by the model, or is not a deviceHealthScriptRunSchedule.", w.ODataType)
	}
	return &family.Schedule{Kind: k, Interval: w.Interval, Time: w.Time, Date: w.Date, UseUTC: w.UseUTC}, ""
}

// createFamily answers POST …/assignments of a family with the route
// (apps): one write that adds one assignment, answered 201.
func (s *Server) createFamily(gc *graphCall, fr familyRoute) {
	fault, ok := s.startWrite(gc)
	if !ok {
		return
	}
	body, ok := s.readBody(gc)
	if !ok {
		return
	}
	e, msg := parseFamilyAssignment(fr, body)
	if msg == "" && e.ID != "" {
		msg = "The property 'id' is server-generated and must not be sent on create."
	}
	s.mu.Lock()
	ps, found := gc.ten.setLocked(fr.coll.Name, fr.id)
	var out familyAssignmentOut
	if found && msg == "" {
		before := ps.entries()
		e.ID, e.Source, e.SourceID = newGUID(), family.SourceDirect, fr.id
		ps.replace(append(ps.entries(), e))
		s.recordLocked(gc, fr, "create", before, ps.entries(), fault)
		gc.ten.stats.Created++
		out = familyToGraph(fr, e)
	}
	s.mu.Unlock()
	switch {
	case !found:
		s.noPolicy(gc, fr.coll.Name, fr.id)
	case msg != "":
		s.graphError(gc, http.StatusBadRequest, "BadRequest", msg)
	case !s.answerFault(gc, fault):
		out.Context = s.familyContext(fr) + "/$entity"
		s.writeGraph(gc, http.StatusCreated, out)
	}
}

// deleteFamily answers DELETE …/assignments/{aid} of a family with the
// route (apps): one write, 204, or 404.
func (s *Server) deleteFamily(gc *graphCall, fr familyRoute) {
	fault, ok := s.startWrite(gc)
	if !ok {
		return
	}
	s.mu.Lock()
	ps, found := gc.ten.setLocked(fr.coll.Name, fr.id)
	hit := false
	if found {
		before := ps.entries()
		var after []family.Entry
		for _, e := range before {
			if e.ID == fr.aid {
				hit = true
				continue
			}
			after = append(after, e)
		}
		if hit {
			ps.replace(after)
			s.recordLocked(gc, fr, "delete", before, ps.entries(), fault)
			gc.ten.stats.Deleted++
		}
	}
	s.mu.Unlock()
	switch {
	case !found:
		s.noPolicy(gc, fr.coll.Name, fr.id)
	case !hit:
		s.notFound(gc, fmt.Sprintf("Resource not found: %s '%s'.", strings.TrimPrefix(fr.coll.AssignmentType, "#microsoft.graph."), fr.aid))
	case !s.answerFault(gc, fault):
		s.writeGraph(gc, http.StatusNoContent, nil)
	}
}

// NamePolicy registers a policy of a family (collection: a collection
// name of the family table other than deviceConfigurations, for which
// see NameConfiguration) in the tenant, or renames it.
func (t *Tenant) NamePolicy(collection, id, displayName string) error {
	f, c := family.ByCollection(collection)
	switch {
	case f == nil:
		return fmt.Errorf("graphsim: %q is not a collection of a policy family", collection)
	case f.Name == family.DeviceConfiguration:
		return errors.New("graphsim: device configurations are registered with AddConfiguration or NameConfiguration")
	}
	if _, err := assign.ParseGUID("policy id", id); err != nil {
		return fmt.Errorf("graphsim: %w", err)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.t.fam.policyLocked(c.Name, id, true).name = displayName
	return nil
}

// SeedAssignments adds entries to a policy's set as if they had existed
// before the test (no request, no write limit, no ledger) and returns
// their ids. An entry without an id gets a new one; without a source it
// is direct, with the policy as its sourceId; give Source
// family.SourcePolicySets and a SourceID to seed a policy set's entry.
// The policy (any family, device configurations included) must exist.
func (t *Tenant) SeedAssignments(collection, id string, entries ...family.Entry) ([]string, error) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	ps, ok := t.t.setLocked(collection, id)
	if !ok {
		return nil, fmt.Errorf("graphsim: no policy %s in %s", id, collection)
	}
	set := ps.entries()
	ids := make([]string, len(entries))
	for i, e := range entries {
		if e.ID == "" {
			e.ID = newGUID()
		}
		if e.Source == "" {
			e.Source, e.SourceID = family.SourceDirect, ps.id
		}
		ids[i] = e.ID
		set = append(set, e)
	}
	ps.replace(set)
	return ids, nil
}

// PolicyAssignments returns a copy of a policy's live set, in order; nil
// for an unknown policy.
func (t *Tenant) PolicyAssignments(collection, id string) []family.Entry {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	ps, ok := t.t.setLocked(collection, id)
	if !ok {
		return nil
	}
	return ps.entries()
}

// EditBetweenReadAndWrite arms a concurrent editor on a policy of any
// family (a device configuration: its own assignments): right after the
// next GET that serves the last page of its assignments, edit is called
// with the live set and its result becomes the set (no request, no write
// limit, no ledger), once. Entries the edit adds without an id get one,
// and are direct unless they say otherwise.
func (t *Tenant) EditBetweenReadAndWrite(collection, id string, edit func([]family.Entry) []family.Entry) error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	ps, ok := t.t.setLocked(collection, id)
	if !ok {
		return fmt.Errorf("graphsim: no policy %s in %s", id, collection)
	}
	if t.t.fam.editors == nil {
		t.t.fam.editors = map[string]func([]family.Entry) []family.Entry{}
	}
	t.t.fam.editors[ps.coll.Name+"/"+ps.id] = edit
	return nil
}

// AssignLedger returns every write of a policy's set applied through the
// API in this tenant (/assign, and the per-assignment writes of apps),
// in order, including those answered 504 or by a reset.
func (t *Tenant) AssignLedger() []AssignRecord {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return append([]AssignRecord(nil), t.t.fam.ledger...)
}

// NamePolicy, SeedAssignments, PolicyAssignments, EditBetweenReadAndWrite
// and AssignLedger address the default tenant; see Tenant.

func (s *Server) NamePolicy(collection, id, displayName string) error {
	return s.DefaultTenant().NamePolicy(collection, id, displayName)
}

func (s *Server) SeedAssignments(collection, id string, entries ...family.Entry) ([]string, error) {
	return s.DefaultTenant().SeedAssignments(collection, id, entries...)
}

func (s *Server) PolicyAssignments(collection, id string) []family.Entry {
	return s.DefaultTenant().PolicyAssignments(collection, id)
}

func (s *Server) EditBetweenReadAndWrite(collection, id string, edit func([]family.Entry) []family.Entry) error {
	return s.DefaultTenant().EditBetweenReadAndWrite(collection, id, edit)
}

func (s *Server) AssignLedger() []AssignRecord { return s.DefaultTenant().AssignLedger() }

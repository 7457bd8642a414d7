package graphsim

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
)

const (
	graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
	graphAppID       = "00000003-0000-0000-c000-000000000000"
	assignmentType   = "#microsoft.graph.deviceConfigurationAssignment"
	// configurationType is the @odata.type of every simulated device
	// configuration (Graph's list is polymorphic; the simulator's is not).
	configurationType = "#microsoft.graph.windows10CustomConfiguration"
)

// graphCall is one Graph request in flight.
type graphCall struct {
	w        http.ResponseWriter
	r        *http.Request
	rid      string
	crid     string
	method   string // stats key
	clientID string
	ten      *tenantState // the token's tenant: whose data the request sees
	body     []byte       // read up front, so that a client hang-up cancels r.Context()
	bodyErr  error
}

type routeKind int

const (
	routeConfiguration routeKind = iota
	routeCollection
	routeItem
	routeOrganization
	routeConfigurations // the list of device configurations
	routePolicy         // one policy of another kind (PolicyCollections)
	routeGroups         // the list of groups (names.go)
	routeFilters        // the list of assignment filters (names.go)
	routeGroup          // one group (objects.go)
	routeFilter         // one assignment filter (objects.go)
)

type route struct {
	version string // "beta" or "v1.0"
	kind    routeKind
	cfgID   string // canonical
	path    assign.Path
	id      string // assignment id (routeItem), organization id (routeOrganization), policy id (routePolicy), group or filter id
	// collection is the policy's collection (routePolicy), as in
	// PolicyCollections.
	collection string
}

type graphErr struct {
	status  int
	code    string
	message string
}

func segmentErr(seg string) *graphErr {
	return &graphErr{http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", seg)}
}

// parseGraphPath maps a URL path below /beta or /v1.0 to a route.
func parseGraphPath(p string) (route, *graphErr) {
	var rt route
	switch {
	case strings.HasPrefix(p, "/beta"):
		rt.version, p = "beta", strings.TrimPrefix(p, "/beta")
	default:
		rt.version, p = "v1.0", strings.TrimPrefix(p, "/v1.0")
	}
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if segs[0] == "" {
		return rt, &graphErr{http.StatusBadRequest, "BadRequest", "Invalid request: graphsim serves only /organization, /groups and /deviceManagement/deviceConfigurations/{id}/.../assignments."}
	}
	if strings.EqualFold(segs[0], "groups") {
		switch {
		case len(segs) == 2 && segs[1] != "":
			rt.kind, rt.id = routeGroup, assign.CanonicalGUID(segs[1])
			return rt, nil
		case len(segs) > 1:
			return rt, &graphErr{http.StatusBadRequest, "BadRequest", "graphsim serves only GET /groups (with $filter=displayName eq '...') and GET /groups/{id}."}
		}
		rt.kind = routeGroups
		return rt, nil
	}
	if strings.EqualFold(segs[0], "organization") {
		switch len(segs) {
		case 1:
		case 2:
			rt.id = strings.ToLower(segs[1])
		default:
			return rt, segmentErr(segs[2])
		}
		rt.kind = routeOrganization
		return rt, nil
	}
	if !strings.EqualFold(segs[0], "deviceManagement") {
		return rt, segmentErr(segs[0])
	}
	if len(segs) < 2 {
		return rt, &graphErr{http.StatusBadRequest, "BadRequest", "graphsim serves only deviceManagement/deviceConfigurations."}
	}
	for _, c := range PolicyCollections {
		if strings.EqualFold(segs[1], c) {
			if len(segs) < 3 || segs[2] == "" {
				return rt, &graphErr{http.StatusBadRequest, "BadRequest", "graphsim serves only GET deviceManagement/" + c + "/{id}."}
			}
			if len(segs) > 3 {
				return rt, segmentErr(segs[3])
			}
			rt.kind, rt.collection, rt.id = routePolicy, c, assign.CanonicalGUID(segs[2])
			return rt, nil
		}
	}
	if strings.EqualFold(segs[1], "assignmentFilters") {
		if len(segs) == 3 && segs[2] != "" {
			rt.kind, rt.id = routeFilter, assign.CanonicalGUID(segs[2])
			return rt, nil
		}
		if len(segs) > 2 {
			return rt, &graphErr{http.StatusBadRequest, "BadRequest", "graphsim serves only GET deviceManagement/assignmentFilters (with $filter=displayName eq '...')."}
		}
		rt.kind = routeFilters
		return rt, nil
	}
	if !strings.EqualFold(segs[1], "deviceConfigurations") {
		return rt, segmentErr(segs[1])
	}
	if len(segs) < 3 || segs[2] == "" {
		rt.kind = routeConfigurations
		return rt, nil
	}
	rt.cfgID = assign.CanonicalGUID(segs[2])
	tail := segs[3:]
	n := len(tail)
	var mid []string
	switch {
	case n == 0:
		rt.kind = routeConfiguration
		return rt, nil
	case strings.EqualFold(tail[n-1], "assignments"):
		rt.kind, mid = routeCollection, tail[:n-1]
	case n >= 2 && strings.EqualFold(tail[n-2], "assignments"):
		rt.kind, mid, rt.id = routeItem, tail[:n-2], strings.ToLower(tail[n-1])
	default:
		return rt, segmentErr(tail[n-1])
	}
	joined := strings.Join(mid, "/")
	for _, ap := range assign.Paths {
		if strings.EqualFold(string(ap), joined) {
			rt.path = ap
			return rt, nil
		}
	}
	return rt, segmentErr(mid[0])
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	gc := &graphCall{w: w, r: r, rid: newGUID(), crid: r.Header.Get("client-request-id")}
	if gc.crid == "" {
		gc.crid = newGUID()
	}
	h := w.Header()
	h.Set("request-id", gc.rid)
	h.Set("client-request-id", gc.crid)
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"graphsim","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"graphsim-0"}}`)
	h.Set("Strict-Transport-Security", "max-age=31536000")
	gc.ten = s.tokenTenant(r.Header.Get("Authorization"))
	s.mu.Lock()
	switch r.Method {
	case http.MethodGet:
		gc.method = http.MethodGet
		gc.ten.stats.Reads++
	case http.MethodPost, http.MethodDelete:
		gc.method = r.Method
		gc.ten.stats.Writes++
	default:
		gc.method = "OTHER"
	}
	latency := s.faults.Latency
	s.mu.Unlock()
	// net/http notices a closed connection only once the body is consumed.
	gc.body, gc.bodyErr = io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if !sleepCtx(r.Context(), latency) {
		s.finish(gc, 0)
		// Never let net/http send an implicit 200 for a request that was
		// not processed: drop the connection instead.
		panic(http.ErrAbortHandler)
	}

	b := s.checkBearer(r.Header.Get("Authorization"), time.Now())
	if b.state != tokenOK {
		s.unauthorized(gc, b.state, b.revokedAt)
		return
	}
	gc.clientID = b.clientID

	rt, ge := parseGraphPath(r.URL.Path)
	if ge != nil {
		if fr, ok := parseFamilyPath(r.URL.Path); ok { // families.go
			s.serveFamily(gc, fr, b)
			return
		}
		s.graphError(gc, ge.status, ge.code, ge.message)
		return
	}
	s.countLookup(gc, rt)
	s.countObjectRead(gc, rt)
	// The organization and groups are directory objects, read only:
	// Intune's permission does not decide (for groups, Group.Read.All
	// does: TenantConfig.NoGroupRead).
	if rt.kind == routeOrganization || rt.kind == routeGroups || rt.kind == routeGroup {
		switch {
		case r.Method != http.MethodGet:
			s.noRoute(gc)
		case rt.kind == routeOrganization:
			s.organization(gc, rt)
		case rt.kind == routeGroup:
			s.getGroup(gc, rt)
		default:
			s.listGroups(gc, rt)
		}
		return
	}
	if b.app && !permitted(b.roles, r.Method) {
		s.forbidden(gc)
		return
	}
	switch {
	case rt.kind == routeConfigurations && r.Method == http.MethodGet:
		s.listConfigurations(gc, rt)
	case rt.kind == routeFilters && r.Method == http.MethodGet:
		s.listFilters(gc, rt)
	case rt.kind == routeFilter && r.Method == http.MethodGet:
		s.getFilter(gc, rt)
	case rt.kind == routeConfiguration && r.Method == http.MethodGet:
		s.getConfiguration(gc, rt)
	case rt.kind == routePolicy && r.Method == http.MethodGet:
		s.getPolicy(gc, rt)
	case rt.kind == routeCollection && r.Method == http.MethodGet:
		s.list(gc, rt)
	case rt.kind == routeCollection && r.Method == http.MethodPost:
		s.create(gc, rt)
	case rt.kind == routeItem && r.Method == http.MethodGet:
		s.get(gc, rt)
	case rt.kind == routeItem && r.Method == http.MethodDelete:
		s.delete(gc, rt)
	default:
		s.noRoute(gc)
	}
}

// finish counts a Graph answer (status 0: none was sent). Call it before
// writing so that a client that has its answer also sees it counted.
func (s *Server) finish(gc *graphCall, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := gc.ten.stats.Methods[gc.method]
	switch {
	case status == 0:
		c.NoResponse++
	case status == http.StatusTooManyRequests:
		c.S429++
	case status >= 200 && status < 300:
		c.S2xx++
	case status >= 400 && status < 500:
		c.S4xx++
	case status >= 500:
		c.S5xx++
	}
	gc.ten.stats.Methods[gc.method] = c
}

func (s *Server) writeGraph(gc *graphCall, status int, v any) {
	var b []byte
	if v != nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			s.graphError(gc, http.StatusInternalServerError, "InternalServerError", err.Error())
			return
		}
		gc.w.Header().Set("Content-Type", graphContentType)
	}
	gc.w.Header().Set("OData-Version", "4.0")
	gc.w.Header().Set("Cache-Control", "no-cache")
	s.finish(gc, status)
	gc.w.WriteHeader(status)
	_, _ = gc.w.Write(b)
}

// graphError writes Graph's error shape.
func (s *Server) graphError(gc *graphCall, status int, code, message string) {
	type inner struct {
		Date            string `json:"date"`
		RequestID       string `json:"request-id"`
		ClientRequestID string `json:"client-request-id"`
	}
	type body struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError inner  `json:"innerError"`
	}
	s.writeGraph(gc, status, map[string]body{"error": {
		Code: code, Message: message,
		InnerError: inner{Date: time.Now().UTC().Format("2006-01-02T15:04:05"), RequestID: gc.rid, ClientRequestID: gc.crid},
	}})
}

func (s *Server) unauthorized(gc *graphCall, state tokenState, revokedAt time.Time) {
	challenge := fmt.Sprintf(`Bearer realm="", authorization_uri="%s/%s/oauth2/authorize", client_id="%s"`, s.url, gc.ten.id, graphAppID)
	var msg string
	switch state {
	case tokenMissing:
		msg = "Access token is empty."
	case tokenUnknown:
		msg = "Access token validation failure. Invalid audience or unknown token."
	case tokenExpired:
		msg = "Lifetime validation failed, the token is expired."
	case tokenRevoked:
		claims := fmt.Sprintf(`{"access_token":{"nbf":{"essential":true, "value":"%d"}}}`, revokedAt.Unix())
		challenge += `, error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(claims)) + `"`
		msg = "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp"
	}
	s.mu.Lock()
	gc.ten.stats.Unauthorized++
	if state == tokenRevoked {
		gc.ten.stats.ClaimsChallenges++
	}
	s.mu.Unlock()
	gc.w.Header().Set("WWW-Authenticate", challenge)
	s.graphError(gc, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
}

// permitted reports whether application permissions roles allow method on
// device configurations.
func permitted(roles []string, method string) bool {
	for _, r := range roles {
		if r == PermissionReadWrite || (r == PermissionRead && method == http.MethodGet) {
			return true
		}
	}
	return false
}

// forbidden answers 403 to an app-only token without the permission, in
// Intune's words.
func (s *Server) forbidden(gc *graphCall) {
	s.mu.Lock()
	gc.ten.stats.Forbidden++
	s.mu.Unlock()
	need := PermissionReadWrite
	if gc.method == http.MethodGet {
		need = PermissionRead + ", " + PermissionReadWrite
	}
	s.graphError(gc, http.StatusForbidden, "Forbidden", fmt.Sprintf("Application is not authorized to perform this operation. Application must have one of the following scopes: %s - Operation ID (for customer support): %s", need, newGUID()))
}

// organization answers GET /organization[/{id}] with the token's tenant.
func (s *Server) organization(gc *graphCall, rt route) {
	s.mu.Lock()
	id, name := gc.ten.id, gc.ten.name
	s.mu.Unlock()
	if rt.id != "" && rt.id != id {
		s.notFound(gc, fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", rt.id))
		return
	}
	org := map[string]any{
		"id":              id,
		"displayName":     name,
		"tenantType":      "AAD",
		"verifiedDomains": []map[string]any{{"name": initialDomain(id, name), "type": "Managed", "isDefault": true, "isInitial": true, "capabilities": "Email, OfficeCommunicationsOnline"}},
	}
	ctx := s.url + "/" + rt.version + "/$metadata#organization"
	if rt.id != "" {
		org["@odata.context"] = ctx + "/$entity"
		s.writeGraph(gc, http.StatusOK, org)
		return
	}
	s.writeGraph(gc, http.StatusOK, map[string]any{"@odata.context": ctx, "value": []any{org}})
}

// initialDomain makes the tenant's <name>.onmicrosoft.com domain from its
// display name (letters and digits), or from its id.
func initialDomain(id, name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		h := strings.ReplaceAll(id, "-", "")
		b.WriteString("graphsim" + h[:min(8, len(h))])
	}
	return b.String() + ".onmicrosoft.com"
}

func (s *Server) notFound(gc *graphCall, what string) {
	s.graphError(gc, http.StatusNotFound, "ResourceNotFound", what)
}

// configOr404 returns the configuration, or answers 404 and returns nil.
func (s *Server) configOr404(gc *graphCall, id string) *configuration {
	s.mu.Lock()
	c := gc.ten.configLocked(id, false)
	s.mu.Unlock()
	if c == nil {
		s.noConfiguration(gc, id)
	}
	return c
}

// noConfiguration answers 404 for an unknown device configuration, in
// Graph's words.
func (s *Server) noConfiguration(gc *graphCall, id string) {
	s.notFound(gc, fmt.Sprintf("Resource not found: deviceConfiguration '%s'.", id))
}

func (s *Server) metadataBase(rt route) string {
	return s.url + "/" + rt.version + "/$metadata#deviceManagement/deviceConfigurations('" + rt.cfgID + "')"
}

func (s *Server) collectionContext(rt route) string {
	c := s.metadataBase(rt)
	if rt.path != "" {
		c += "/" + string(rt.path)
	}
	return c + "/assignments"
}

// wire shapes of Graph answers

type targetOut struct {
	ODataType    string  `json:"@odata.type"`
	FilterID     *string `json:"deviceAndAppManagementAssignmentFilterId"`
	FilterType   string  `json:"deviceAndAppManagementAssignmentFilterType"`
	GroupID      string  `json:"groupId,omitempty"`
	CollectionID string  `json:"collectionId,omitempty"`
}

type assignmentOut struct {
	Context   string    `json:"@odata.context,omitempty"`
	ODataType string    `json:"@odata.type"`
	ID        string    `json:"id"`
	Source    string    `json:"source,omitempty"`
	SourceID  string    `json:"sourceId,omitempty"`
	Intent    string    `json:"intent,omitempty"`
	Target    targetOut `json:"target"`
}

// toGraph writes an assignment as Graph does: a filter-less target has a
// null filter id and filter type "none"; source, sourceId and intent are
// beta-only.
func toGraph(a *Assignment, version string) assignmentOut {
	t := targetOut{ODataType: a.Target.Type.ODataType(), FilterType: "none", GroupID: a.Target.GroupID, CollectionID: a.Target.CollectionID}
	if a.Target.FilterID != "" {
		id := a.Target.FilterID
		t.FilterID, t.FilterType = &id, string(a.Target.FilterType)
	}
	out := assignmentOut{ODataType: assignmentType, ID: a.ID, Target: t}
	if version == "beta" {
		out.Source, out.SourceID, out.Intent = a.Source, a.SourceID, a.Intent
	}
	return out
}

func (s *Server) getConfiguration(gc *graphCall, rt route) {
	if s.maybeRead503(gc) {
		return
	}
	s.mu.Lock()
	c := gc.ten.configLocked(rt.cfgID, false)
	var name string
	if c != nil {
		name = c.displayName() // a test may rename it meanwhile
	}
	s.mu.Unlock()
	if c == nil {
		s.noConfiguration(gc, rt.cfgID)
		return
	}
	s.writeGraph(gc, http.StatusOK, map[string]any{
		"@odata.context": s.url + "/" + rt.version + "/$metadata#deviceManagement/deviceConfigurations/$entity",
		"@odata.type":    configurationType,
		"id":             c.id,
		"displayName":    name,
		"version":        1,
	})
}

// maybeRead503 injects a 503 into a GET with probability P503Read.
func (s *Server) maybeRead503(gc *graphCall) bool {
	s.mu.Lock()
	p := s.faults.P503Read
	hit, ra := false, false
	if p > 0 && s.rng.Float64() < p {
		hit, ra = true, s.rng.Float64() < 0.5
		gc.ten.stats.InjectedRead503++
	}
	s.mu.Unlock()
	if hit {
		if ra {
			gc.w.Header().Set("Retry-After", "1")
		}
		s.graphError(gc, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable. Please retry later.")
	}
	return hit
}

func encodeSkipToken(off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("gs:" + strconv.Itoa(off)))
}

func decodeSkipToken(t string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || !strings.HasPrefix(string(b), "gs:") {
		return 0, false
	}
	n, err := strconv.Atoi(string(b[3:]))
	return n, err == nil && n >= 0
}

// list answers GET .../assignments, at most PageSize (or $top if smaller)
// per page, with an absolute @odata.nextLink carrying $skiptoken.
func (s *Server) list(gc *graphCall, rt route) {
	if s.maybeRead503(gc) {
		return
	}
	page, off, ok := s.paging(gc)
	if !ok {
		return
	}
	s.mu.Lock()
	c := gc.ten.configLocked(rt.cfgID, false)
	var items []assignmentOut
	more := false
	if c != nil {
		all := c.lists[rt.path]
		off = min(off, len(all))
		end := min(off+page, len(all))
		items = make([]assignmentOut, 0, end-off)
		for _, a := range all[off:end] {
			items = append(items, toGraph(a, rt.version))
		}
		more = end < len(all)
		off = end
		if !more && rt.path == "" {
			gc.ten.runEditorLocked("deviceConfigurations", c.id) // families.go
		}
	}
	s.mu.Unlock()
	if c == nil {
		s.noConfiguration(gc, rt.cfgID)
		return
	}
	type listOut struct {
		Context  string          `json:"@odata.context"`
		NextLink string          `json:"@odata.nextLink,omitempty"`
		Value    []assignmentOut `json:"value"`
	}
	out := listOut{Context: s.collectionContext(rt), Value: items}
	if more {
		out.NextLink = s.nextLink(gc, page, off)
	}
	s.writeGraph(gc, http.StatusOK, out)
}

func find(ts *tenantState, rt route) (*configuration, *Assignment) {
	c := ts.configLocked(rt.cfgID, false)
	if c == nil {
		return nil, nil
	}
	for _, a := range c.lists[rt.path] {
		if a.ID == rt.id {
			return c, a
		}
	}
	return c, nil
}

func (s *Server) get(gc *graphCall, rt route) {
	if s.maybeRead503(gc) {
		return
	}
	s.mu.Lock()
	c, a := find(gc.ten, rt)
	var out assignmentOut
	if a != nil {
		out = toGraph(a, rt.version)
	}
	s.mu.Unlock()
	switch {
	case c == nil:
		s.noConfiguration(gc, rt.cfgID)
	case a == nil:
		s.notFound(gc, fmt.Sprintf("Resource not found: deviceConfigurationAssignment '%s'.", rt.id))
	default:
		out.Context = s.collectionContext(rt) + "/$entity"
		s.writeGraph(gc, http.StatusOK, out)
	}
}

func (s *Server) delete(gc *graphCall, rt route) {
	fault, ok := s.startWrite(gc)
	if !ok {
		return
	}
	s.mu.Lock()
	c, a := find(gc.ten, rt)
	if a != nil {
		list := c.lists[rt.path]
		for i := range list {
			if list[i] == a {
				c.lists[rt.path] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		gc.ten.stats.Deleted++
	}
	s.mu.Unlock()
	switch {
	case c == nil:
		s.noConfiguration(gc, rt.cfgID)
	case a == nil:
		s.notFound(gc, fmt.Sprintf("Resource not found: deviceConfigurationAssignment '%s'.", rt.id))
	case !s.answerFault(gc, fault):
		s.writeGraph(gc, http.StatusNoContent, nil)
	}
}

// admitWrite applies the write limit; on rejection it answers 429.
func (s *Server) admitWrite(gc *graphCall) bool {
	s.mu.Lock()
	ts := gc.ten
	ok, wait := ts.lim.take(time.Now())
	l := ts.limit
	omit := false
	if !ok {
		ts.stats.Throttled++
		omit = l.NoRetryAfter > 0 && s.rng.Float64() < l.NoRetryAfter
		if omit {
			ts.stats.RetryAfterOmit++
		} else {
			ts.stats.RetryAfterSent++
		}
	}
	s.mu.Unlock()
	if ok {
		return true
	}
	switch {
	case l.RetryAfter != "":
		gc.w.Header().Set("Retry-After", l.RetryAfter)
	case !omit:
		gc.w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
	}
	s.graphError(gc, http.StatusTooManyRequests, "TooManyRequests", "Too many requests: the tenant's write limit for Intune device configuration was exceeded. Retry later.")
	return false
}

// writeFault is the fault the mix (Config.Faults) drew for one write.
type writeFault int

const (
	faultNone writeFault = iota
	fault503
	fault504
	faultReset
)

// startWrite admits a write (a POST or a DELETE of an assignment) under
// the tenant's write limit and draws its fault: a throttled write is
// answered 429, and a 503 fault answered here, before anything applies;
// ok is false for both. The other faults let the write apply, and its
// handler answers them with answerFault.
func (s *Server) startWrite(gc *graphCall) (fault writeFault, ok bool) {
	if !s.admitWrite(gc) {
		return faultNone, false
	}
	fault, retryAfter := s.drawWriteFault(gc.ten)
	if fault == fault503 {
		if retryAfter {
			gc.w.Header().Set("Retry-After", "1")
		}
		s.graphError(gc, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable. Please retry later.")
		return fault, false
	}
	return fault, true
}

// answerFault answers a write that applied with its fault (a 504, or a
// reset connection) and reports whether it did; false leaves the answer to
// the handler.
func (s *Server) answerFault(gc *graphCall, fault writeFault) bool {
	switch fault {
	case fault504:
		s.graphError(gc, http.StatusGatewayTimeout, "GatewayTimeout", "The gateway did not receive a timely response from the upstream service.")
	case faultReset:
		s.reset(gc)
	default:
		return false
	}
	return true
}

func (s *Server) drawWriteFault(ts *tenantState) (writeFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if f.P503+f.PAppliedThen504+f.PAppliedThenReset <= 0 {
		return faultNone, false
	}
	u := s.rng.Float64()
	switch {
	case u < f.P503:
		ts.stats.Injected503++
		return fault503, s.rng.Float64() < 0.5
	case u < f.P503+f.PAppliedThen504:
		return fault504, false
	case u < f.P503+f.PAppliedThen504+f.PAppliedThenReset:
		return faultReset, false
	}
	return faultNone, false
}

// parseCreateBody validates a create body and returns the target and intent,
// or a message for a 400.
func parseCreateBody(b []byte) (assign.Target, string, string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return assign.Target{}, "", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
	}
	intent := "apply"
	var rawTarget json.RawMessage
	for k, v := range m {
		switch k {
		case "@odata.type":
			var t string
			if json.Unmarshal(v, &t) != nil || !strings.EqualFold(strings.TrimPrefix(t, "#"), strings.TrimPrefix(assignmentType, "#")) {
				return assign.Target{}, "", fmt.Sprintf("A type named '%s' could not be resolved by the model, or is not a deviceConfigurationAssignment.", strings.Trim(string(v), `"`))
			}
		case "id":
			return assign.Target{}, "", "The property 'id' is server-generated and must not be sent on create."
		case "target":
			rawTarget = v
		case "intent":
			var in string
			if json.Unmarshal(v, &in) != nil || (in != "apply" && in != "remove") {
				return assign.Target{}, "", fmt.Sprintf("Invalid value %s for property 'intent': expected 'apply' or 'remove'.", v)
			}
			intent = in
		case "source", "sourceId":
			// read-only, ignored as Graph does
		default:
			return assign.Target{}, "", fmt.Sprintf("The property '%s' does not exist on type 'microsoft.graph.deviceConfigurationAssignment'. Make sure to only use property names that are defined by the type or mark the type as open type.", k)
		}
	}
	if len(rawTarget) == 0 || string(rawTarget) == "null" {
		return assign.Target{}, "", "The property 'target' is required on create."
	}
	t, msg := parseTarget(rawTarget)
	return t, intent, msg
}

// parseTarget validates an assignment's target as Graph receives it, or
// returns a message for a 400.
func parseTarget(rawTarget json.RawMessage) (assign.Target, string) {
	var tm map[string]json.RawMessage
	if json.Unmarshal(rawTarget, &tm) != nil || tm == nil {
		return assign.Target{}, "The property 'target' must be an object."
	}
	if _, ok := tm["@odata.type"]; !ok {
		return assign.Target{}, "The target must carry '@odata.type': deviceAndAppManagementAssignmentTarget is abstract and cannot be created."
	}
	for k := range tm {
		switch k {
		case "@odata.type", "groupId", "collectionId", "deviceAndAppManagementAssignmentFilterId", "deviceAndAppManagementAssignmentFilterType":
		default:
			return assign.Target{}, fmt.Sprintf("The property '%s' does not exist on type 'microsoft.graph.deviceAndAppManagementAssignmentTarget'.", k)
		}
	}
	var w assign.Wire
	if err := json.Unmarshal(rawTarget, &w); err != nil {
		return assign.Target{}, "Invalid target: " + err.Error()
	}
	t, err := w.Target()
	if err != nil {
		return assign.Target{}, "Invalid target: " + err.Error()
	}
	if t.GroupID != "" {
		if _, err := assign.ParseGUID("groupId", t.GroupID); err != nil {
			return assign.Target{}, "Invalid target: " + err.Error()
		}
	}
	if t.CollectionID != "" {
		if _, err := assign.ParseCollectionID(t.CollectionID); err != nil {
			return assign.Target{}, "Invalid target: " + err.Error()
		}
	}
	if t.FilterID != "" {
		if _, err := assign.ParseGUID("deviceAndAppManagementAssignmentFilterId", t.FilterID); err != nil {
			return assign.Target{}, "Invalid target: " + err.Error()
		}
	}
	if err := t.Validate(); err != nil {
		return assign.Target{}, "Invalid target: " + err.Error()
	}
	return t, ""
}

// create answers POST .../assignments: throttle, injected 503, 404 for an
// unknown configuration, 400 for a bad body, then the create itself (which
// Graph does even for a duplicate) answered 201, 504 or by a reset.
func (s *Server) create(gc *graphCall, rt route) {
	fault, ok := s.startWrite(gc)
	if !ok {
		return
	}
	body, err := gc.body, gc.bodyErr
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.graphError(gc, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
			return
		}
		s.graphError(gc, http.StatusBadRequest, "BadRequest", "Unable to read the request body.")
		return
	}
	c := s.configOr404(gc, rt.cfgID)
	if c == nil {
		return
	}
	t, intent, msg := parseCreateBody(body)
	if msg != "" {
		s.graphError(gc, http.StatusBadRequest, "BadRequest", msg)
		return
	}
	if rej, ok := s.rejection(gc.ten, t); ok {
		s.graphError(gc, rej.status, rej.code, rej.message)
		return
	}
	now := time.Now().UTC()
	a := &Assignment{ID: newGUID(), Target: t, Source: "direct", SourceID: c.id, Intent: intent, Created: now}
	outcome := OutcomeCreated
	switch fault {
	case fault504:
		outcome = OutcomeAppliedThen504
	case faultReset:
		outcome = OutcomeAppliedThenReset
	}
	s.mu.Lock()
	ts := gc.ten
	c.lists[rt.path] = append(c.lists[rt.path], a)
	ts.ledger = append(ts.ledger, LedgerEntry{
		Seq: len(ts.ledger) + 1, ID: a.ID, ConfigurationID: c.id, Path: rt.path, Target: t, Time: now,
		ClientID: gc.clientID, RequestID: gc.rid, ClientRequestID: gc.crid,
		Outcome: outcome, Answered: fault == faultNone,
	})
	ts.stats.Created++
	switch fault {
	case fault504:
		ts.stats.AppliedThen504++
	case faultReset:
		ts.stats.AppliedThenReset++
	}
	out := toGraph(a, rt.version)
	s.mu.Unlock()

	if !s.answerFault(gc, fault) {
		out.Context = s.collectionContext(rt) + "/$entity"
		s.writeGraph(gc, http.StatusCreated, out)
	}
}

// reset drops the connection without an answer: it hijacks it and closes
// the TCP socket with SO_LINGER 0, so the client sees a reset.
func (s *Server) reset(gc *graphCall) {
	s.finish(gc, 0)
	conn, _, err := http.NewResponseController(gc.w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection without a response
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// noRoute answers a method a route does not serve, as Graph does.
func (s *Server) noRoute(gc *graphCall) {
	s.graphError(gc, http.StatusMethodNotAllowed, "BadRequest",
		fmt.Sprintf("No OData route exists that match template with http verb %s for request %s.", gc.r.Method, gc.r.URL.Path))
}

// paging reads a collection request's $top and $skiptoken: the page size
// (at most PageSize) and the offset to start at. A bad value is answered
// 400, as Graph does, and ok is false.
func (s *Server) paging(gc *graphCall) (page, off int, ok bool) {
	q := gc.r.URL.Query()
	page = s.pageSize
	if top := q.Get("$top"); top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n < 1 {
			s.graphError(gc, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid $top value '%s': it must be a positive integer.", top))
			return 0, 0, false
		}
		page = min(page, n)
	}
	if st := q.Get("$skiptoken"); st != "" {
		n, ok := decodeSkipToken(st)
		if !ok {
			s.graphError(gc, http.StatusBadRequest, "BadRequest", "Invalid $skiptoken value.")
			return 0, 0, false
		}
		off = n
	}
	return page, off, true
}

// nextLink is the absolute @odata.nextLink of the page that starts at
// off: the request's path, the query options named in keep, $top when the
// request gave one, and the $skiptoken.
func (s *Server) nextLink(gc *graphCall, page, off int, keep ...string) string {
	q := gc.r.URL.Query()
	next := s.url + gc.r.URL.EscapedPath() + "?"
	for _, k := range keep {
		if q.Has(k) {
			next += k + "=" + url.QueryEscape(q.Get(k)) + "&"
		}
	}
	if q.Get("$top") != "" {
		next += "$top=" + strconv.Itoa(page) + "&"
	}
	return next + "$skiptoken=" + encodeSkipToken(off)
}

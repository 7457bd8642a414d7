package graphsim

import (
	"fmt"
	"net/http"
	"strings"
)

// Objects read by id. bulkassign shows the display names of the ids a row
// gives: GET deviceManagement/deviceConfigurations/{id} (graph.go),
// groups/{id}, deviceManagement/assignmentFilters/{id} and /organization,
// each with $select=id,displayName. The simulator counts those reads
// (Stats.ObjectReads) so that a test can tell how often a batch read each.

// ObjectCounts counts the GETs of one object by id of each kind, and of
// the organization, one per request, counted once the token is accepted,
// whatever the answer. They are also in Reads.
type ObjectCounts struct {
	Configurations int64 `json:"configurations"` // deviceManagement/deviceConfigurations/{id}
	Groups         int64 `json:"groups"`         // groups/{id}
	Filters        int64 `json:"filters"`        // deviceManagement/assignmentFilters/{id}
	Organization   int64 `json:"organization"`   // organization, organization/{id}
}

// countObjectRead counts a GET of one object (Stats.ObjectReads).
func (s *Server) countObjectRead(gc *graphCall, rt route) {
	if gc.r.Method != http.MethodGet {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &gc.ten.stats.ObjectReads
	switch rt.kind {
	case routeConfiguration:
		n.Configurations++
	case routeGroup:
		n.Groups++
	case routeFilter:
		n.Filters++
	case routeOrganization:
		n.Organization++
	}
}

// getGroup answers GET groups/{id}: a group AddGroup registered, 404 for
// any other id, 403 for an app that may not read groups (NoGroupRead).
func (s *Server) getGroup(gc *graphCall, rt route) {
	s.mu.Lock()
	deny := gc.ten.noGroupRead
	if deny {
		gc.ten.stats.Forbidden++
	}
	name, ok := gc.ten.groups.names[rt.id]
	s.mu.Unlock()
	switch {
	case deny:
		s.graphError(gc, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	case s.maybeRead503(gc):
	case !ok:
		s.graphError(gc, http.StatusNotFound, "Request_ResourceNotFound",
			fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", rt.id))
	default:
		s.writeObject(gc, rt, "groups", map[string]any{"id": rt.id, "displayName": name, "securityEnabled": true,
			"mailEnabled": false, "groupTypes": []string{}})
	}
}

// getFilter answers GET deviceManagement/assignmentFilters/{id}: a filter
// AddFilter registered, else 404.
func (s *Server) getFilter(gc *graphCall, rt route) {
	if s.maybeRead503(gc) {
		return
	}
	s.mu.Lock()
	name, ok := gc.ten.filters.names[rt.id]
	s.mu.Unlock()
	if !ok {
		s.notFound(gc, fmt.Sprintf("Resource not found: deviceAndAppManagementAssignmentFilter '%s'.", rt.id))
		return
	}
	s.writeObject(gc, rt, "deviceManagement/assignmentFilters", map[string]any{
		"@odata.type": "#microsoft.graph.deviceAndAppManagementAssignmentFilter", "id": rt.id, "displayName": name,
		"platform": "windows10AndLater", "rule": `(device.deviceOwnership -eq "Corporate")`})
}

// writeObject answers with one object of collection, with $select applied.
func (s *Server) writeObject(gc *graphCall, rt route, collection string, fields map[string]any) {
	var sel []string
	for _, f := range strings.Split(gc.r.URL.Query().Get("$select"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			sel = append(sel, f)
		}
	}
	o := selectFields(fields, sel)
	o["@odata.context"] = s.url + "/" + rt.version + "/$metadata#" + collection + "/$entity"
	s.writeGraph(gc, http.StatusOK, o)
}

// Total is every read counted.
func (c ObjectCounts) Total() int64 { return c.Configurations + c.Groups + c.Filters + c.Organization }

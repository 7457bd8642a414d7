package graphsim

import (
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// rejection is a canned refusal of creates for one target id.
type rejection struct {
	status        int
	code, message string
}

// RejectTarget makes every create in the default tenant whose target
// names id fail; see Tenant.RejectTarget.
func (s *Server) RejectTarget(id string, status int, code, message string) {
	s.DefaultTenant().RejectTarget(id, status, code, message)
}

func (s *Server) rejection(ts *tenantState, t assign.Target) (rejection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range []string{t.GroupID, t.CollectionID} {
		if r, ok := ts.rejections[strings.ToLower(id)]; id != "" && ok {
			return r, true
		}
	}
	return rejection{}, false
}

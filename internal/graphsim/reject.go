package graphsim

import (
	"net/http"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// rejection is a canned refusal of creates for one target id.
type rejection struct {
	status        int
	code, message string
}

// RejectTarget makes every create whose target names id (a group or
// collection id) fail with status and Graph error code, without applying
// it: a group Intune does not accept (400), a target this app may not
// assign (403). Status must be 4xx.
func (s *Server) RejectTarget(id string, status int, code, message string) {
	if status < 400 || status > 499 {
		panic("graphsim: RejectTarget status must be 4xx")
	}
	if message == "" {
		message = http.StatusText(status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejections == nil {
		s.rejections = map[string]rejection{}
	}
	s.rejections[strings.ToLower(id)] = rejection{status, code, message}
}

func (s *Server) rejection(t assign.Target) (rejection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range []string{t.GroupID, t.CollectionID} {
		if r, ok := s.rejections[strings.ToLower(id)]; id != "" && ok {
			return r, true
		}
	}
	return rejection{}, false
}

package graphsim

import (
	"encoding/json"
	"net/http"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// serveSim serves the inspection endpoints under /_sim/. They exist so that
// tests driving other processes (worker, enqueue) can look inside the
// simulator; they have no authentication, as befits a simulator.
//
//	GET  /_sim/stats                                   Stats
//	GET  /_sim/ledger                                  []LedgerEntry
//	GET  /_sim/configurations                          []string
//	GET  /_sim/assignments?configurationId=ID&path=P   []Assignment (P as in assign.ParsePath; empty = the configuration's own)
//	GET  /_sim/tenants                                 [{"id","name","default","refuse"}], the default tenant first
//	GET  /_sim/assignLedger                            []AssignRecord (families.go)
//	GET  /_sim/policyAssignments?collection=C&id=ID    []family.Entry: a policy's set (C a collection of internal/family)
//	POST /_sim/approve?user_code=CODE                  204, or 404 for an unknown or expired code
//	POST /_sim/revoke                                  204; RevokeAll
//
// stats, ledger, configurations, assignments, assignLedger and
// policyAssignments take tenant=ID to look at another tenant than the
// default one (404 for an unknown tenant).
func (s *Server) serveSim(w http.ResponseWriter, r *http.Request) {
	want := http.MethodGet
	switch r.URL.Path {
	case "/_sim/approve", "/_sim/revoke":
		want = http.MethodPost
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	t := s.DefaultTenant()
	if id := r.URL.Query().Get("tenant"); id != "" {
		if t = s.Tenant(id); t == nil {
			http.Error(w, "unknown tenant "+id, http.StatusNotFound)
			return
		}
	}
	switch r.URL.Path {
	case "/_sim/stats":
		writeSimJSON(w, t.Stats())
	case "/_sim/ledger":
		simJSON(w, t.Ledger())
	case "/_sim/configurations":
		simJSON(w, t.Configurations())
	case "/_sim/tenants":
		type tenantOut struct {
			ID      string  `json:"id"`
			Name    string  `json:"name"`
			Default bool    `json:"default"`
			Refuse  Refusal `json:"refuse"`
		}
		s.mu.Lock()
		out := make([]tenantOut, len(s.tenantOrder))
		for i, ts := range s.tenantOrder {
			out[i] = tenantOut{ts.id, ts.name, ts == s.home, ts.refuse}
		}
		s.mu.Unlock()
		writeSimJSON(w, out)
	case "/_sim/assignments":
		q := r.URL.Query()
		id := q.Get("configurationId")
		if id == "" {
			http.Error(w, "configurationId is required", http.StatusBadRequest)
			return
		}
		p, err := assign.ParsePath(q.Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		simJSON(w, t.Assignments(id, p))
	case "/_sim/assignLedger":
		simJSON(w, t.AssignLedger())
	case "/_sim/policyAssignments":
		q := r.URL.Query()
		if !t.hasPolicy(q.Get("collection"), q.Get("id")) {
			http.Error(w, "no policy "+q.Get("id")+" in collection "+q.Get("collection"), http.StatusNotFound)
			return
		}
		simJSON(w, t.PolicyAssignments(q.Get("collection"), q.Get("id")))
	case "/_sim/approve":
		if err := s.ApproveDeviceCode(r.URL.Query().Get("user_code")); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/revoke":
		s.RevokeAll()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func simJSON[T any](w http.ResponseWriter, v []T) {
	if v == nil {
		v = []T{}
	}
	writeSimJSON(w, v)
}

func writeSimJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Unassign removes an assignment from the default tenant as an admin would
// in the portal; see Tenant.Unassign.
func (s *Server) Unassign(cfgID string, p assign.Path, id string) bool {
	return s.DefaultTenant().Unassign(cfgID, p, id)
}

package graphsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestInjected503(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Seed: 3, Faults: graphsim.Faults{P503: 1}})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	withRA := 0
	for _, r := range postN(t, s, tok, 20) {
		if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "ServiceUnavailable" {
			t.Fatalf("got %d %s, want 503 ServiceUnavailable", r.status, r.body)
		}
		switch ra := r.header.Get("Retry-After"); ra {
		case "1":
			withRA++
		case "":
		default:
			t.Fatalf("Retry-After = %q, want 1 or none", ra)
		}
	}
	if withRA == 0 || withRA == 20 {
		t.Fatalf("%d of 20 503s carried Retry-After, want about half", withRA)
	}
	if n := len(s.Ledger()); n != 0 || len(s.Assignments(cfgA, "")) != 0 {
		t.Fatalf("503s applied %d creates, want none", n)
	}
	if st := s.Stats(); st.Injected503 != 20 || st.Methods["POST"].S5xx != 20 {
		t.Fatalf("stats %+v: want 20 injected 503s", st)
	}
}

func TestAppliedThen504(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Faults: graphsim.Faults{PAppliedThen504: 1}})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	coll := s.GraphBaseURL() + assign.Path("identityCertificate").AssignmentsPath(cfgA)
	for range 2 { // a naive retry of the same create
		if r := call(t, http.MethodPost, coll, tok, groupBody(groupN(1))); r.status != http.StatusGatewayTimeout || r.errorCode(t) != "GatewayTimeout" {
			t.Fatalf("got %d %s, want 504 GatewayTimeout", r.status, r.body)
		}
	}
	led := s.Ledger()
	if len(led) != 2 {
		t.Fatalf("ledger has %d entries, want 2", len(led))
	}
	for _, e := range led {
		if e.Outcome != graphsim.OutcomeAppliedThen504 || e.Answered || e.Path != "identityCertificate" || e.Target.GroupID != groupN(1) {
			t.Fatalf("ledger entry %+v: want an unanswered applied_then_504 on identityCertificate", e)
		}
	}
	if d := s.Duplicates(); d != 1 {
		t.Fatalf("Duplicates = %d, want 1", d)
	}
	if st := s.Stats(); st.AppliedThen504 != 2 || st.Created != 2 {
		t.Fatalf("stats %+v: want 2 applied-then-504", st)
	}
}

func TestAppliedThenReset(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{Faults: graphsim.Faults{PAppliedThenReset: 1}})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)

	_, err := tryCall(context.Background(), http.MethodPost, coll, tok, groupBody(groupN(1)))
	if err == nil {
		t.Fatalf("POST answered, want a connection error")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("POST timed out (%v), want a reset", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("POST: got %v, want a connection reset", err)
	}
	led := s.Ledger()
	if len(led) != 1 || led[0].Outcome != graphsim.OutcomeAppliedThenReset || led[0].Answered {
		t.Fatalf("ledger %+v: want one unanswered applied_then_reset", led)
	}
	if st := s.Stats(); st.AppliedThenReset != 1 || st.Methods["POST"].NoResponse != 1 {
		t.Fatalf("stats %+v: want 1 reset, counted as no response", st)
	}

	// A client that retries blindly creates a duplicate.
	if err := s.SetFaults(graphsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if r := call(t, http.MethodPost, coll, tok, groupBody(groupN(1))); r.status != http.StatusCreated {
		t.Fatalf("retry: got %d, want 201", r.status)
	}
	if d := s.Duplicates(); d != 1 || len(s.Assignments(cfgA, "")) != 2 {
		t.Fatalf("Duplicates = %d, want 1 after the blind retry", d)
	}
	if err := s.SetFaults(graphsim.Faults{P503: 0.7, PAppliedThen504: 0.7}); err == nil {
		t.Fatalf("SetFaults with probabilities summing over 1: got nil error")
	}
}

func TestRead503AndLatency(t *testing.T) {
	t.Parallel()
	t.Run("P503Read", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, graphsim.Config{Faults: graphsim.Faults{P503Read: 1}})
		s.AddConfiguration(cfgA)
		tok := appToken(t, s)
		if r := graphGET(t, s, tok); r.status != http.StatusServiceUnavailable {
			t.Fatalf("GET: got %d, want 503", r.status)
		}
		if r := postN(t, s, tok, 1)[0]; r.status != http.StatusCreated {
			t.Fatalf("POST: got %d, want 201 (P503Read is for reads)", r.status)
		}
		if st := s.Stats(); st.InjectedRead503 != 1 || st.Injected503 != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("Latency", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, graphsim.Config{Faults: graphsim.Faults{Latency: 400 * time.Millisecond}})
		s.AddConfiguration(cfgA)
		tok := appToken(t, s)
		coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := tryCall(ctx, http.MethodPost, coll, tok, groupBody(groupN(1))); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("POST with a 100ms deadline: got %v, want deadline exceeded", err)
		}
		waitFor(t, "the abandoned request to be counted", func() bool { return s.Stats().Methods["POST"].NoResponse == 1 })
		if n := len(s.Ledger()); n != 0 {
			t.Fatalf("abandoned request was applied (%d ledger entries)", n)
		}
		start := time.Now()
		if r := call(t, http.MethodPost, coll, tok, groupBody(groupN(1))); r.status != http.StatusCreated {
			t.Fatalf("POST: got %d", r.status)
		}
		if d := time.Since(start); d < 400*time.Millisecond {
			t.Fatalf("answered in %v, want at least the 400ms latency", d)
		}
	})
}

func TestFaultsAreSeeded(t *testing.T) {
	t.Parallel()
	run := func() string {
		s := newServer(t, graphsim.Config{Seed: 42, Faults: graphsim.Faults{P503: 0.3, PAppliedThen504: 0.3}})
		s.AddConfiguration(cfgA)
		tok := appToken(t, s)
		var b strings.Builder
		for _, r := range postN(t, s, tok, 30) {
			b.WriteString(http.StatusText(r.status)[:3])
			b.WriteString(r.header.Get("Retry-After"))
			b.WriteByte(' ')
		}
		return b.String()
	}
	a, b := run(), run()
	if a != b {
		t.Fatalf("same seed, different outcomes:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "Cre") || !strings.Contains(a, "Ser") || !strings.Contains(a, "Gat") {
		t.Fatalf("outcomes %s: want a mix of 201, 503 and 504", a)
	}
}

func TestDuplicatesAndLedger(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	tok := appToken(t, s)
	g := assign.Target{Type: assign.TargetGroup, GroupID: groupN(1)}
	pre := s.Preassign(cfgA, "", g)
	coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
	withFilter := groupBody(groupN(1))
	withFilter["target"].(map[string]any)["deviceAndAppManagementAssignmentFilterId"] = groupN(7)
	withFilter["target"].(map[string]any)["deviceAndAppManagementAssignmentFilterType"] = "include"
	steps := []struct {
		url  string
		body any
		dups int
	}{
		{coll, groupBody(strings.ToUpper(groupN(1))), 1}, // same group, other case
		{coll, withFilter, 1},                            // a filter makes it another assignment
		{s.GraphBaseURL() + assign.Path("rootCertificate").AssignmentsPath(cfgA), groupBody(groupN(1)), 1}, // other path
		{coll, groupBody(groupN(1)), 2},
	}
	for i, st := range steps {
		if r := call(t, http.MethodPost, st.url, tok, st.body); r.status != http.StatusCreated {
			t.Fatalf("step %d: got %d %s", i, r.status, r.body)
		}
		if d := s.Duplicates(); d != st.dups {
			t.Fatalf("step %d: Duplicates = %d, want %d", i, d, st.dups)
		}
	}
	live := s.Assignments(cfgA, "")
	if len(live) != 4 || live[0].ID != pre {
		t.Fatalf("live list %+v: want the preassigned one first and 4 in all", live)
	}
	led := s.Ledger()
	if len(led) != 4 {
		t.Fatalf("ledger has %d entries, want 4 (Preassign is not a create)", len(led))
	}
	for i, e := range led {
		if e.Seq != i+1 || !e.Answered || e.Outcome != graphsim.OutcomeCreated || e.ClientID != graphsim.DefaultClientID || e.RequestID == "" || e.ClientRequestID == "" || e.ConfigurationID != cfgA {
			t.Fatalf("ledger entry %d = %+v", i, e)
		}
	}
}

func TestSimEndpoints(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	s.AddConfiguration(cfgA, cfgB)
	tok := appToken(t, s)
	if r := call(t, http.MethodPost, s.GraphBaseURL()+assign.Path("rootCertificate").AssignmentsPath(cfgB), tok, groupBody(groupN(1))); r.status != http.StatusCreated {
		t.Fatalf("POST: %d", r.status)
	}
	get := func(path string, v any) int {
		r := call(t, http.MethodGet, s.URL()+path, "", nil)
		if r.status == http.StatusOK && v != nil {
			r.decode(t, v)
		}
		return r.status
	}
	var st graphsim.Stats
	if get("/_sim/stats", &st) != 200 || st.Writes != 1 || st.TokensIssued != 1 || st.Methods["POST"].S2xx != 1 {
		t.Fatalf("/_sim/stats = %+v", st)
	}
	var led []graphsim.LedgerEntry
	if get("/_sim/ledger", &led) != 200 || len(led) != 1 || led[0].Target.GroupID != groupN(1) || led[0].Path != "rootCertificate" {
		t.Fatalf("/_sim/ledger = %+v", led)
	}
	var as []graphsim.Assignment
	if get("/_sim/assignments?configurationId="+cfgB+"&path=rootCertificate", &as) != 200 || len(as) != 1 || as[0].ID != led[0].ID {
		t.Fatalf("/_sim/assignments = %+v", as)
	}
	if get("/_sim/assignments?configurationId="+cfgA+"&path=", &as) != 200 || len(as) != 0 {
		t.Fatalf("/_sim/assignments for an empty list = %+v", as)
	}
	var cfgs []string
	if get("/_sim/configurations", &cfgs) != 200 || len(cfgs) != 2 || cfgs[0] != cfgA || cfgs[1] != cfgB {
		t.Fatalf("/_sim/configurations = %v", cfgs)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/_sim/assignments?configurationId=" + cfgA + "&path=leaf", 400},
		{"GET", "/_sim/assignments", 400},
		{"GET", "/_sim/approve", 405},
		{"POST", "/_sim/approve?user_code=NOPE", 404},
		{"GET", "/_sim/nothing", 404},
		{"POST", "/_sim/revoke", 204},
	} {
		if r := call(t, tt.method, s.URL()+tt.path, "", nil); r.status != tt.want {
			t.Fatalf("%s %s: got %d, want %d", tt.method, tt.path, r.status, tt.want)
		}
	}
	challengeClaims(t, graphGET(t, s, tok)) // revoked by /_sim/revoke
	b, _ := json.Marshal(st)
	if strings.Contains(string(b), tok) {
		t.Fatalf("stats leak the token")
	}
}

func TestLogsCarryNoCredentials(t *testing.T) {
	t.Parallel()
	var logs testenv.LogBuffer
	s := newServer(t, graphsim.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	if r := postN(t, s, tok, 1)[0]; r.status != http.StatusCreated {
		t.Fatalf("POST: %d", r.status)
	}
	waitFor(t, "the POST to be logged", func() bool { return strings.Contains(logs.String(), "method=POST path=/beta/") })
	out := logs.String()
	for _, secret := range []string{tok, graphsim.DefaultClientSecret} {
		if strings.Contains(out, secret) {
			t.Fatalf("logs contain a credential:\n%s", out)
		}
	}
	if !strings.Contains(out, "status=201") || !strings.Contains(out, "request-id=") {
		t.Fatalf("logs lack status or request-id:\n%s", out)
	}
}

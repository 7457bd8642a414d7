package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestUnsupportedPolicyType: a row whose id is not a device configuration
// but a policy of a kind bulkassign does not assign ends failed with
// UnsupportedPolicyType, naming the kind; an id that is nothing keeps
// Graph's 404. The probes read once per kind at most, after the 404 only,
// and a probe Graph fails is read again rather than taken for an answer.
func TestUnsupportedPolicyType(t *testing.T) {
	t.Parallel()

	type testBundle struct{ h *testenv.Harness }
	// Config(0) is a device configuration; Config(1..3) a policy of each
	// unsupported kind, in graph.UnsupportedKinds order; Config(4) nothing.
	setup := func(t *testing.T, cfg graphsim.Config) *testBundle {
		t.Helper()
		h := testenv.New(t, cfg)
		h.Sim.AddConfiguration(testenv.Config(0))
		for i, kind := range graph.UnsupportedKinds {
			if err := h.Sim.AddPolicy(kind.Collection, testenv.Config(i+1)); err != nil {
				t.Fatal(err)
			}
		}
		return &testBundle{h: h}
	}
	kindOf := map[string]graph.PolicyKind{}
	for i, kind := range graph.UnsupportedKinds {
		kindOf[testenv.Config(i+1)] = kind
	}
	check := func(t *testing.T, b *testBundle, batch string) {
		t.Helper()
		for _, r := range b.h.Results(t, batch) {
			switch r.ConfigurationID {
			case testenv.Config(0):
				if r.Status != assign.StatusCreated {
					t.Errorf("line %d: %s %s, want created", r.Line, r.Status, r.ErrorMessage)
				}
			case testenv.Config(4):
				if r.Status != assign.StatusFailed || r.HTTPStatus != 404 || r.ErrorCode != "ResourceNotFound" || r.Attempts != 0 {
					t.Errorf("line %d: %+v, want failed 404 ResourceNotFound", r.Line, r)
				}
			default:
				kind := kindOf[r.ConfigurationID]
				want := r.ConfigurationID + " is " + kind.Name + " (" + kind.Collection + "), not a device configuration"
				if r.Status != assign.StatusFailed || r.ErrorCode != assign.CodeUnsupportedPolicyType || r.HTTPStatus != 404 ||
					!strings.HasPrefix(r.ErrorMessage, want) || r.Attempts != 0 {
					t.Errorf("line %d: %+v, want failed %s %q without a create attempt", r.Line, r, assign.CodeUnsupportedPolicyType, want)
				}
			}
		}
	}
	worker := testenv.WorkerOptions{Extra: map[string]string{"GRAPH_WRITE_RATE": "100", "WORKER_CONCURRENCY": "5", "GRAPH_MAX_ERRORS": "50"}}
	worker.Settings.RetryBase = 20 * time.Millisecond
	worker.Settings.RetryMax = 200 * time.Millisecond

	t.Run("OneProbePerKindAfterThe404", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{})
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(15, 5))
		b.h.StartWorker(t, worker)
		b.h.WaitFinal(t, batch, time.Minute)
		check(t, b, batch)
		// 5 lists; then Config(1) 1 probe, Config(2) 2, Config(3) 3 and
		// Config(4) 3; Config(0), found, none.
		// (Display names are read apart: Stats.ObjectReads.)
		if st := b.h.Sim.Stats(); st.Reads-st.ObjectReads.Total() != 5+1+2+3+3 {
			reads := st.Reads - st.ObjectReads.Total()
			t.Errorf("the tenant served %d GETs, want 14: one list per configuration, one probe per kind at most", reads)
		}
	})

	t.Run("FailedProbesAreReadAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, graphsim.Config{Seed: 7, Faults: graphsim.Faults{P503Read: 0.3}})
		batch := b.h.Enqueue(t, "in.csv", testenv.GroupCSV(15, 5))
		b.h.StartWorker(t, worker)
		b.h.WaitFinal(t, batch, 2*time.Minute)
		if st := b.h.Sim.Stats(); st.InjectedRead503 == 0 {
			t.Fatalf("no read failed: the test proves little: %+v", st)
		}
		check(t, b, batch)
	})
}

package graph

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

// TestListNamedPages reads each collection whole through pages of 7: every
// object once, in order, with its display name.
func TestListNamedPages(t *testing.T) {
	t.Parallel()
	sim, c := simClient(t, graphsim.Config{PageSize: 7}, "")
	const n = 30
	want := map[NameKind][]Named{}
	for i := range n {
		g := Named{fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("SG-%02d", i)}
		f := Named{fmt.Sprintf("00000000-0000-4000-9000-%012d", i), fmt.Sprintf("Filter %02d", i)}
		cfg := Named{fmt.Sprintf("00000000-0000-4000-a000-%012d", i), fmt.Sprintf("Profile %02d", i)}
		sim.AddGroup(g.ID, g.DisplayName)
		sim.AddFilter(f.ID, f.DisplayName)
		sim.NameConfiguration(cfg.ID, cfg.DisplayName)
		want[NameGroup] = append(want[NameGroup], g)
		want[NameFilter] = append(want[NameFilter], f)
		want[NameConfiguration] = append(want[NameConfiguration], cfg)
	}
	for _, kind := range []NameKind{NameConfiguration, NameGroup, NameFilter} {
		before := sim.Stats().Reads
		waits := 0
		var got []Named
		resp := c.ListNamed(context.Background(), kind, func(context.Context) error { waits++; return nil }, func(o Named) error {
			got = append(got, o)
			return nil
		})
		if resp.Err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v", kind, resp.Error())
		}
		if fmt.Sprint(got) != fmt.Sprint(want[kind]) {
			t.Errorf("%s: got %v\nwant %v", kind, got, want[kind])
		}
		if reads := sim.Stats().Reads - before; reads != 5 || waits != 5 {
			t.Errorf("%s: %d reads, %d waits; want 5 pages of at most 7, each after a wait", kind, reads, waits)
		}
	}
}

// TestFindGroups: one read of up to MaxIDsPerFilter ids says which are
// groups; more ids is refused before a request, and the simulator refuses
// them as Graph does.
func TestFindGroups(t *testing.T) {
	t.Parallel()
	sim, c := simClient(t, graphsim.Config{PageSize: 4}, "")
	var ids []string
	for i := range MaxIDsPerFilter {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		if i%2 == 0 {
			sim.AddGroup(id, fmt.Sprintf("SG-%d", i))
		}
	}
	sim.AddGroup("00000000-0000-4000-8000-999999999999", "not asked for")
	before := sim.Stats().Reads
	found, resp := c.FindGroups(context.Background(), ids, nil)
	if resp.Err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Error())
	}
	for i, id := range ids {
		name, ok := found[id]
		if ok != (i%2 == 0) || ok && name != fmt.Sprintf("SG-%d", i) {
			t.Errorf("%s: found %v (%q), want %v (SG-%d)", id, ok, name, i%2 == 0, i)
		}
	}
	if len(found) != 8 {
		t.Errorf("found %d groups, want 8: %v", len(found), found)
	}
	if reads := sim.Stats().Reads - before; reads != 2 { // 8 groups in pages of 4
		t.Errorf("%d reads, want 2", reads)
	}
	if _, resp := c.FindGroups(context.Background(), append(ids, ids[0]), nil); resp.Err == nil {
		t.Errorf("16 ids: no error")
	}
}

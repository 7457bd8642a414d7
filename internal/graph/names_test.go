package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

// simTokens gets a client-credentials token for the simulator's default
// client in one tenant, afresh for every request.
type simTokens struct {
	sim    *graphsim.Server
	tenant string
	hc     *http.Client
}

func (s simTokens) Token(ctx context.Context, _ TokenOptions) (string, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {graphsim.DefaultClientID},
		"client_secret": {graphsim.DefaultClientSecret},
		"scope":         {s.sim.Scope()},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.sim.AuthorityHost()+"/"+s.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token: HTTP %d, %v", resp.StatusCode, err)
	}
	return tr.AccessToken, nil
}

// simClient starts a simulator and returns it with a Client signed in to
// tenant (the default tenant when empty).
func simClient(t *testing.T, cfg graphsim.Config, tenant string) (*graphsim.Server, *Client) {
	t.Helper()
	sim, err := graphsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	hc, err := graphsim.NewHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	if tenant == "" {
		tenant = sim.TenantID()
	}
	c, err := New(Options{BaseURL: sim.GraphBaseURL(), Tokens: simTokens{sim, tenant, hc}, HTTPClient: hc, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c
}

func guid(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// TestFindByName resolves names of each kind against the simulator over
// HTTPS: one match, none, two (a name Entra lets two groups share), names
// with quotes and characters a URL must escape, compared as Graph does.
func TestFindByName(t *testing.T) {
	t.Parallel()
	sim, c := simClient(t, graphsim.Config{}, "")
	awkward := "O'Brien's & Co #1 + 50% – Été?/=;"
	sim.NameConfiguration(strings.ToUpper("abcdef00-0000-4000-8000-000000000001"), "Win11 – BitLocker")
	sim.AddConfiguration(guid(2)) // named "Configuration 00000000"
	sim.AddGroup(guid(10), "Pilot devices")
	sim.AddGroup(guid(11), "PILOT DEVICES")
	sim.AddGroup(guid(12), "Pilot devices (old)")
	sim.AddGroup(guid(13), awkward)
	sim.AddFilter(guid(20), "Corporate")
	sim.AddFilter(guid(21), awkward)

	for _, tc := range []struct {
		kind NameKind
		name string
		want []Named
	}{
		{NameConfiguration, "win11 – bitlocker", []Named{{"abcdef00-0000-4000-8000-000000000001", "Win11 – BitLocker"}}},
		{NameConfiguration, "Win11", nil},
		{NameConfiguration, "Configuration 00000000", []Named{{guid(2), "Configuration 00000000"}}},
		{NameGroup, "Pilot devices", []Named{{guid(10), "Pilot devices"}, {guid(11), "PILOT DEVICES"}}},
		{NameGroup, "Pilot devices ", nil},
		{NameGroup, awkward, []Named{{guid(13), awkward}}},
		{NameGroup, strings.ToUpper(awkward), []Named{{guid(13), awkward}}},
		{NameGroup, "Corporate", nil}, // a filter's name
		{NameFilter, "corporate", []Named{{guid(20), "Corporate"}}},
		{NameFilter, awkward, []Named{{guid(21), awkward}}},
	} {
		got, resp := c.FindByName(context.Background(), tc.kind, tc.name, nil)
		if resp == nil || resp.StatusCode != http.StatusOK || resp.Err != nil || resp.Op != OpResolve {
			t.Errorf("%s %q: resp %+v", tc.kind, tc.name, resp)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s %q = %v, want %v", tc.kind, tc.name, got, tc.want)
		}
		if d := Classify(resp); d.Action != Succeed || d.Why != "found by name" {
			t.Errorf("%s %q: Classify = %+v", tc.kind, tc.name, d)
		}
	}
	want := graphsim.LookupCounts{Configurations: 3, Groups: 5, Filters: 2}
	if got := sim.Stats().NameLookups; got != want {
		t.Errorf("NameLookups = %+v, want %+v", got, want)
	}
}

// TestFindByNamePages: a name shared by more objects than a page holds is
// read through @odata.nextLink, with wait before every request, and the
// lookup stops at MaxNamed matches instead of reading every page; a wait
// that declines sends nothing.
func TestFindByNamePages(t *testing.T) {
	t.Parallel()
	sim, c := simClient(t, graphsim.Config{PageSize: 2}, "")
	for i := range 5 {
		sim.AddGroup(guid(100+i), "Five")
	}
	for i := range MaxNamed + 5 {
		sim.AddGroup(guid(200+i), "Many")
	}
	var waits atomic.Int64
	wait := func(context.Context) error { waits.Add(1); return nil }

	got, resp := c.FindByName(context.Background(), NameGroup, "five", wait)
	if len(got) != 5 || got[0].ID != guid(100) || got[4].ID != guid(104) || resp.StatusCode != http.StatusOK {
		t.Fatalf("five groups, pages of 2: %v, %+v", got, resp)
	}
	if n, lookups := waits.Load(), sim.Stats().NameLookups.Groups; n != 3 || lookups != 3 {
		t.Errorf("waits %d, lookups %d; want 3 pages", n, lookups)
	}

	got, resp = c.FindByName(context.Background(), NameGroup, "Many", wait)
	if len(got) != MaxNamed || got[MaxNamed-1].ID != guid(200+MaxNamed-1) || resp.StatusCode != http.StatusOK || resp.Err != nil {
		t.Fatalf("%d groups: %d found, %+v", MaxNamed+5, len(got), resp)
	}
	if lookups := sim.Stats().NameLookups.Groups; lookups != 3+MaxNamed/2 {
		t.Errorf("lookups %d: want the read to stop after %d pages", lookups-3, MaxNamed/2)
	}

	before := sim.Stats().Reads
	held := errors.New("the read limit is spent")
	got, resp = c.FindByName(context.Background(), NameConfiguration, "x", func(context.Context) error { return held })
	if got != nil || resp.Sent || !errors.Is(resp.Err, held) || resp.Op != OpResolve {
		t.Fatalf("held back: %v, %+v", got, resp)
	}
	if d := Classify(resp); d.Action != Wait {
		t.Errorf("held back: Classify = %+v, want Wait", d)
	}
	if sim.Stats().Reads != before {
		t.Errorf("a held-back lookup reached Graph")
	}
}

// TestFindByNameRefused: Graph's refusals classified as op resolve: a
// tenant whose app may not read groups fails with the permission it
// needs, an injected 503 is retried.
func TestFindByNameRefused(t *testing.T) {
	t.Parallel()
	const tenant = "bbbbbbbb-0000-4000-8000-00000000000b"
	sim, c := simClient(t, graphsim.Config{Tenants: []graphsim.TenantConfig{{ID: tenant, NoGroupRead: true}}}, tenant)
	sim.Tenant(tenant).AddGroup(guid(1), "Pilot")
	got, resp := c.FindByName(context.Background(), NameGroup, "Pilot", nil)
	if got != nil || resp.StatusCode != http.StatusForbidden || resp.ErrorCode != "Authorization_RequestDenied" {
		t.Fatalf("group read denied: %v, %+v", got, resp)
	}
	d := Classify(resp)
	if d.Action != Fail || !strings.Contains(d.Why, "Group.Read.All") || !strings.Contains(d.Why, "DeviceManagementConfiguration.Read.All") {
		t.Errorf("403: Classify = %+v, want Fail naming Group.Read.All and DeviceManagementConfiguration.Read.All", d)
	}

	if err := sim.SetFaults(graphsim.Faults{P503Read: 1}); err != nil {
		t.Fatal(err)
	}
	_, resp = c.FindByName(context.Background(), NameConfiguration, "Baseline", nil)
	if d := Classify(resp); resp.StatusCode != http.StatusServiceUnavailable || d.Action != Retry {
		t.Errorf("503: %+v, Classify = %+v", resp, d)
	}
}

// TestFindByNameRequests pins the requests (collection, an OData literal
// with quotes doubled, every reserved character escaped), and what is done
// with answers the simulator never gives: a 429 throttles, an object of
// another name is dropped, an id in upper case is canonicalised, an id
// that is not a GUID fails the lookup.
func TestFindByNameRequests(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		seen   []string
		answer = `{"value":[]}`
	)
	setAnswer := func(a string) {
		mu.Lock()
		answer = a
		mu.Unlock()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path+"?"+r.URL.RawQuery)
		body := answer
		mu.Unlock()
		switch {
		case strings.Contains(r.URL.RawQuery, "throttle"):
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"code":"TooManyRequests","message":"slow down"}}`)
		default:
			fmt.Fprint(w, body)
		}
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/beta", Tokens: staticTokens{}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, kind := range []NameKind{NameConfiguration, NameGroup, NameFilter} {
		if got, resp := c.FindByName(ctx, kind, "O'Brien & Co #1 + x/y?=;% – é", nil); got != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v, %+v", kind, got, resp)
		}
	}
	const q = "?$filter=displayName%20eq%20%27O%27%27Brien%20%26%20Co%20%231%20%2B%20x%2Fy%3F%3D%3B%25%20%E2%80%93%20%C3%A9%27&$select=id,displayName"
	want := []string{
		"/beta/deviceManagement/deviceConfigurations" + q,
		"/beta/groups" + q,
		"/beta/deviceManagement/assignmentFilters" + q,
	}
	mu.Lock()
	sent := seen
	mu.Unlock()
	if fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(sent, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range sent {
		u, _ := url.Parse(r)
		if f := u.Query().Get("$filter"); f != "displayName eq 'O''Brien & Co #1 + x/y?=;% – é'" {
			t.Errorf("$filter decodes to %q", f)
		}
	}

	_, resp := c.FindByName(ctx, NameGroup, "throttle", nil)
	if d := Classify(resp); d.Action != Throttle || resp.RetryAfter != 7*time.Second {
		t.Errorf("429: %+v, Classify = %+v", resp, d)
	}

	setAnswer(`{"value":[{"id":"ABCDEF00-0000-4000-8000-000000000001","displayName":"PILOT"},{"id":"` + guid(2) + `","displayName":"Pilot devices"},{"id":"` + guid(3) + `","displayName":"pilot"}]}`)
	got, resp := c.FindByName(ctx, NameGroup, "Pilot", nil)
	if want := []Named{{"abcdef00-0000-4000-8000-000000000001", "PILOT"}, {guid(3), "pilot"}}; fmt.Sprint(got) != fmt.Sprint(want) || resp.Err != nil {
		t.Errorf("loose server: %v (%v), want %v", got, resp.Err, want)
	}

	setAnswer(`{"value":[{"id":"not-a-guid","displayName":"Pilot"}]}`)
	got, resp = c.FindByName(ctx, NameGroup, "Pilot", nil)
	if d := Classify(resp); got != nil || resp.Err == nil || !strings.Contains(resp.Err.Error(), "not a GUID") || d.Action != Retry {
		t.Errorf("bad id: %v, %+v, Classify = %+v", got, resp, d)
	}
}

func TestNameKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[NameKind]string{NameConfiguration: "configuration", NameGroup: "group", NameFilter: "filter", NameKind(7): "NameKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}

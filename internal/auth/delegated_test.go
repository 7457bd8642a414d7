package auth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

type delegatedBundle struct {
	sim *graphsim.Server
	db  *testdb.DB
	key []byte
}

func setupDelegated(t *testing.T, cfg graphsim.Config) *delegatedBundle {
	t.Helper()
	sim, err := graphsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return &delegatedBundle{sim: sim, db: testdb.New(t, 10), key: newKey(t)}
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(testenv.NewTokenCacheKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// process is a token source as one worker process has it: its own pool and
// its own MSAL client, sharing only the database with the others.
func (b *delegatedBundle) process(t *testing.T, key []byte) *auth.Delegated {
	t.Helper()
	pool, err := store.Open(context.Background(), b.db.URL, "", 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	d, err := auth.NewDelegated(auth.DelegatedConfig{
		AuthorityHost: b.sim.AuthorityHost(), TenantID: b.sim.TenantID(), ClientID: graphsim.DefaultClientID,
		Scopes: []string{b.sim.URL() + "/" + auth.DelegatedPermission}, Key: key, Pool: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// login signs the simulated user in, approving the code as soon as it is
// shown.
func (b *delegatedBundle) login(t *testing.T) *auth.Delegated {
	t.Helper()
	d := b.process(t, b.key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	user, err := d.Login(ctx, func(p auth.DeviceCodePrompt) {
		if p.VerificationURL == "" || p.UserCode == "" {
			t.Errorf("prompt %+v lacks the URL or the code", p)
		}
		if err := b.sim.ApproveDeviceCode(p.UserCode); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if user == "" {
		t.Fatal("Login returned no user name")
	}
	return d
}

func (b *delegatedBundle) storedRow(t *testing.T) *store.TokenCache {
	t.Helper()
	c, err := store.GetTokenCache(context.Background(), b.db.Pool, auth.CacheName(b.sim.TenantID(), graphsim.DefaultClientID))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDelegatedSignInIsSharedSilently(t *testing.T) {
	t.Parallel()
	b := setupDelegated(t, graphsim.Config{})
	ctx := context.Background()
	first := b.login(t)
	tok, err := first.Token(ctx, graph.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issued := b.sim.Stats().TokensIssued

	// Two more processes (a restart, a second worker) use the stored
	// sign-in: the access token still has most of its hour, so neither
	// needs the authority, let alone a new device code.
	for i := range 2 {
		got, err := b.process(t, b.key).Token(ctx, graph.TokenOptions{})
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		if got != tok {
			t.Fatalf("process %d got another token than the stored one", i)
		}
	}
	st := b.sim.Stats()
	if st.DeviceCodes != 1 || st.TokensIssued != issued {
		t.Fatalf("device codes %d, tokens issued %d (was %d): want 1 device code and no new token", st.DeviceCodes, st.TokensIssued, issued)
	}

	row := b.storedRow(t)
	if len(row.Ciphertext) < 100 {
		t.Fatalf("stored cache is %d bytes, want a sealed MSAL cache", len(row.Ciphertext))
	}
	rows, err := store.RowsAsText(ctx, b.db.Pool, "token_caches")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for _, word := range []string{"RefreshToken", "AccessToken", "operator@", "gs1.", "gsr1."} {
			if strings.Contains(r, word) {
				t.Fatalf("token_caches row holds plaintext %q", word)
			}
		}
		checkNoSecret(t, r, b.sim.IssuedSecrets()...)
	}
}

func TestDelegatedFailuresNeedAPerson(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		sim   graphsim.Config
		setup func(t *testing.T, b *delegatedBundle) *auth.Delegated
		is    error  // besides graph.ErrSignInAgain
		want  string // in the message
	}{
		{
			name:  "never signed in",
			setup: func(t *testing.T, b *delegatedBundle) *auth.Delegated { return b.process(t, b.key) },
			is:    auth.ErrNotSignedIn,
			want:  "no delegated sign-in is stored for app " + graphsim.DefaultClientID,
		},
		{
			name: "wrong key",
			setup: func(t *testing.T, b *delegatedBundle) *auth.Delegated {
				b.login(t)
				return b.process(t, newKey(t))
			},
			is:   auth.ErrWrongKey,
			want: "BULKASSIGN_TOKEN_CACHE_KEY is not the key",
		},
		{
			name: "signed out",
			setup: func(t *testing.T, b *delegatedBundle) *auth.Delegated {
				b.login(t)
				for i, want := range []bool{true, false} {
					got, err := auth.Logout(ctx, b.db.Pool, b.sim.TenantID(), graphsim.DefaultClientID)
					if err != nil || got != want {
						t.Fatalf("Logout #%d = %v, %v; want %v", i+1, got, err, want)
					}
				}
				return b.process(t, b.key)
			},
			is:   auth.ErrNotSignedIn,
			want: "run `worker login`",
		},
		{
			// A worker that holds a valid token stops using it once
			// `worker logout` deleted the stored sign-in (within the 5 s
			// between checks), instead of creating until it expires.
			name: "signed out while a worker runs",
			setup: func(t *testing.T, b *delegatedBundle) *auth.Delegated {
				b.login(t)
				d := b.process(t, b.key)
				if _, err := d.Token(ctx, graph.TokenOptions{}); err != nil {
					t.Fatalf("before logout: %v", err)
				}
				if ok, err := auth.Logout(ctx, b.db.Pool, b.sim.TenantID(), graphsim.DefaultClientID); err != nil || !ok {
					t.Fatalf("Logout = %v, %v", ok, err)
				}
				time.Sleep(5*time.Second + 200*time.Millisecond)
				return d
			},
			is:   auth.ErrNotSignedIn,
			want: "run `worker login`",
		},
		{
			// Tokens shorter than MSAL's five-minute margin make every
			// request renew through the refresh token.
			name: "refresh token revoked",
			sim:  graphsim.Config{TokenLifetime: 4 * time.Minute},
			setup: func(t *testing.T, b *delegatedBundle) *auth.Delegated {
				d := b.login(t)
				if _, err := d.Token(ctx, graph.TokenOptions{}); err != nil {
					t.Fatalf("before revocation: %v", err)
				}
				b.sim.RevokeRefreshTokens()
				return d
			},
			want: "sign in again: the stored sign-in has expired or was revoked (run `worker login`): AADSTS50173",
		},
		{
			name: "refresh token expired",
			sim:  graphsim.Config{TokenLifetime: 4 * time.Minute, RefreshTokenLifetime: time.Second},
			setup: func(t *testing.T, b *delegatedBundle) *auth.Delegated {
				b.login(t)
				time.Sleep(1500 * time.Millisecond)
				return b.process(t, b.key)
			},
			want: "AADSTS70043",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupDelegated(t, tt.sim)
			d := tt.setup(t, b)
			_, err := d.Token(ctx, graph.TokenOptions{})
			if err == nil {
				t.Fatal("Token succeeded, want a sign-in error")
			}
			if !errors.Is(err, graph.ErrSignInAgain) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Token: %v; want it to wrap graph.ErrSignInAgain and %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Token: %q, want one line containing %q", err, tt.want)
			}
			checkNoSecret(t, err.Error(), b.sim.IssuedSecrets()...)
		})
	}
}

func TestDelegatedFreshRenewsOnceForAChallenge(t *testing.T) {
	t.Parallel()
	b := setupDelegated(t, graphsim.Config{})
	ctx := context.Background()
	d := b.login(t)
	old, err := d.Token(ctx, graph.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.sim.RevokeAll()
	claims := `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	var wg sync.WaitGroup
	got := make([]string, 4)
	for i := range got {
		wg.Go(func() {
			tok, err := d.Token(ctx, graph.TokenOptions{Fresh: true, Claims: claims})
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		})
	}
	wg.Wait()
	for i, tok := range got {
		if tok == old || tok != got[0] {
			t.Fatalf("caller %d got a %s token, want the one new token all callers share", i, map[bool]string{true: "revoked", false: "different"}[tok == old])
		}
	}
	if st := b.sim.Stats(); st.TokenClaimsRequests != 1 {
		t.Fatalf("%d token requests carried claims, want 1 renewal for 4 callers", st.TokenClaimsRequests)
	}
	// Without a challenge a fresh token is still a new one.
	time.Sleep(1100 * time.Millisecond)
	again, err := d.Token(ctx, graph.TokenOptions{Fresh: true})
	if err != nil || again == got[0] {
		t.Fatalf("Fresh without claims: err %v, same token %v; want a new token", err, again == got[0])
	}
}

func TestDelegatedConcurrentRenewalsAcrossProcesses(t *testing.T) {
	t.Parallel()
	b := setupDelegated(t, graphsim.Config{TokenLifetime: 4 * time.Minute})
	ctx := context.Background()
	b.login(t)
	procs := []*auth.Delegated{b.process(t, b.key), b.process(t, b.key)}
	var wg sync.WaitGroup
	for _, d := range procs {
		for range 6 {
			wg.Go(func() {
				for range 3 {
					if _, err := d.Token(ctx, graph.TokenOptions{}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	// Every token the authority issued (the sign-in and each renewal) was
	// written back exactly once: no renewal was lost or overwritten.
	if row, st := b.storedRow(t), b.sim.Stats(); row.Version != st.TokensIssued {
		t.Fatalf("stored cache version %d, authority issued %d tokens: want one write per token", row.Version, st.TokensIssued)
	}
	if _, err := b.process(t, b.key).Token(ctx, graph.TokenOptions{}); err != nil {
		t.Fatalf("a new process after the renewals: %v", err)
	}
}

func TestDelegatedLoginThatDoesNotFinishStoresNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sim  graphsim.Config
		// prompt is what the person does with the code.
		prompt func(cancel context.CancelFunc)
		want   string
	}{
		{"abandoned", graphsim.Config{}, func(cancel context.CancelFunc) { cancel() }, "sign-in abandoned: nothing was stored"},
		{"code expired", graphsim.Config{DeviceCodeLifetime: time.Second}, func(context.CancelFunc) {}, "the code expired before the sign-in was completed: nothing was stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupDelegated(t, tt.sim)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := b.process(t, b.key).Login(ctx, func(auth.DeviceCodePrompt) { tt.prompt(cancel) })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Login: %v, want %q", err, tt.want)
			}
			if _, err := store.GetTokenCache(context.Background(), b.db.Pool, auth.CacheName(b.sim.TenantID(), graphsim.DefaultClientID)); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("stored cache after a login that did not finish: %v, want none", err)
			}
		})
	}
}

// TestDelegatedForAnotherTenant: one partner admin's sign-in serves a
// customer tenant (GDAP) through silent renewal for that tenant, and a
// tenant that refuses the app refuses only its own rows.
func TestDelegatedForAnotherTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const (
		customer = "c1000000-0000-4000-8000-000000000001"
		refusing = "c1000000-0000-4000-8000-000000000002"
	)
	b := setupDelegated(t, graphsim.Config{Tenants: []graphsim.TenantConfig{
		{ID: customer, Name: "Customer"},
		{ID: refusing, Name: "Refusing", Refuse: graphsim.RefuseConsent},
	}})
	d := b.login(t)
	tok, err := d.ForTenant(customer).Token(ctx, graph.TokenOptions{})
	if err != nil {
		t.Fatalf("token for the customer tenant: %v", err)
	}
	c, err := auth.ReadClaims(tok)
	if err != nil || c.TenantID != customer {
		t.Fatalf("customer token claims = %+v, %v; want tid %s", c, err, customer)
	}
	_, err = d.ForTenant(refusing).Token(ctx, graph.TokenOptions{})
	if !errors.Is(err, graph.ErrSignInRefused) || errors.Is(err, graph.ErrSignInAgain) {
		t.Fatalf("refusing tenant: err = %v, want a refusal (not sign in again)", err)
	}
	if _, err := d.Token(ctx, graph.TokenOptions{}); err != nil {
		t.Fatalf("the signed-in tenant after a refusal elsewhere: %v", err)
	}
}

package graphsim_test

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graphsim"
)

func TestRevocationClaimsChallenge(t *testing.T) {
	t.Parallel()
	t.Run("RevokeAll with MSAL", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, graphsim.Config{})
		s.AddConfiguration(cfgA)
		ctx := t.Context()
		cred, _ := confidential.NewCredFromSecret(graphsim.DefaultClientSecret)
		app, err := confidential.New(s.Authority(), graphsim.DefaultClientID, cred, confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		scopes := []string{s.Scope()}
		first, err := app.AcquireTokenByCredential(ctx, scopes)
		if err != nil {
			t.Fatal(err)
		}
		if r := graphGET(t, s, first.AccessToken); r.status != http.StatusOK {
			t.Fatalf("before revocation: got %d %s", r.status, r.body)
		}
		s.RevokeAll()
		r := graphGET(t, s, first.AccessToken)
		claims := challengeClaims(t, r)
		if r.errorCode(t) != "InvalidAuthenticationToken" {
			t.Fatalf("revoked: error %s, want InvalidAuthenticationToken", r.body)
		}

		// MSAL serves its cache unless asked with the claims.
		cached, err := app.AcquireTokenByCredential(ctx, scopes)
		if err != nil || cached.AccessToken != first.AccessToken {
			t.Fatalf("without claims MSAL should return its cached token (err %v)", err)
		}
		fresh, err := app.AcquireTokenByCredential(ctx, scopes, confidential.WithClaims(claims))
		if err != nil {
			t.Fatalf("AcquireTokenByCredential with claims: %v", err)
		}
		if fresh.AccessToken == first.AccessToken {
			t.Fatalf("claims request returned the revoked token")
		}
		if r := graphGET(t, s, fresh.AccessToken); r.status != http.StatusOK {
			t.Fatalf("fresh token: got %d %s, want 200", r.status, r.body)
		}
		st := s.Stats()
		if st.ClaimsChallenges != 1 || st.Unauthorized != 1 || st.TokenClaimsRequests != 1 {
			t.Fatalf("stats: challenges %d, 401s %d, claims requests %d; want 1, 1, 1", st.ClaimsChallenges, st.Unauthorized, st.TokenClaimsRequests)
		}
	})
	t.Run("RevokeAfter", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, graphsim.Config{RevokeAfter: 500 * time.Millisecond})
		s.AddConfiguration(cfgA)
		tok := appToken(t, s)
		if r := graphGET(t, s, tok); r.status != http.StatusOK {
			t.Fatalf("fresh token: got %d %s", r.status, r.body)
		}
		time.Sleep(550 * time.Millisecond)
		claims := challengeClaims(t, graphGET(t, s, tok))
		tok2 := appTokenWith(t, s, url.Values{"claims": {claims}})
		if r := graphGET(t, s, tok2); r.status != http.StatusOK {
			t.Fatalf("token requested with claims: got %d %s, want 200", r.status, r.body)
		}
	})
}

// postN posts n distinct group assignments and returns the answers.
func postN(t *testing.T, s *graphsim.Server, tok string, n int) []result {
	t.Helper()
	coll := s.GraphBaseURL() + assign.Path("").AssignmentsPath(cfgA)
	out := make([]result, n)
	for i := range out {
		out[i] = call(t, http.MethodPost, coll, tok, groupBody(groupN(i)))
	}
	return out
}

func retryAfter(t *testing.T, r result) int {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q is not whole seconds", r.header.Get("Retry-After"))
	}
	return n
}

func TestFixedWindowThrottle(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{WriteLimit: graphsim.Limit{N: 5, Window: 10 * time.Second}})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	rs := postN(t, s, tok, 8)
	for i, r := range rs {
		want := http.StatusCreated
		if i >= 5 {
			want = http.StatusTooManyRequests
		}
		if r.status != want {
			t.Fatalf("POST %d: got %d %s, want %d", i, r.status, r.body, want)
		}
		if want == http.StatusTooManyRequests {
			if code := r.errorCode(t); code != "TooManyRequests" {
				t.Fatalf("429 code %q", code)
			}
			if ra := retryAfter(t, r); ra < 1 || ra > 10 {
				t.Fatalf("Retry-After = %d, want 1..10", ra)
			}
		}
	}
	var created struct {
		ID string `json:"id"`
	}
	rs[0].decode(t, &created)
	if r := call(t, http.MethodDelete, s.GraphBaseURL()+assign.Path("").AssignmentsPath(cfgA)+"/"+created.ID, tok, nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("DELETE in a full window: got %d, want 429", r.status)
	}
	if r := graphGET(t, s, tok); r.status != http.StatusOK {
		t.Fatalf("GET in a full window: got %d, want 200 (reads are not write-limited)", r.status)
	}
	st := s.Stats()
	if st.Throttled != 4 || st.RetryAfterSent != 4 || st.RetryAfterOmit != 0 || st.Methods["POST"].S429 != 3 || st.Methods["POST"].S2xx != 5 || st.Methods["DELETE"].S429 != 1 || st.Writes != 9 {
		t.Fatalf("stats %+v: want 4 throttled (3 POST, 1 DELETE), 5 POST 2xx, 9 writes", st)
	}
}

func TestTokenBucketThrottle(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{WriteLimit: graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 2, Burst: 3}})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	ok := 0
	for _, r := range postN(t, s, tok, 7) {
		switch r.status {
		case http.StatusCreated:
			ok++
		case http.StatusTooManyRequests:
			if ra := retryAfter(t, r); ra != 1 {
				t.Fatalf("Retry-After = %d, want 1 at 2 tokens/s", ra)
			}
		default:
			t.Fatalf("got %d %s", r.status, r.body)
		}
	}
	if ok < 3 || ok > 5 {
		t.Fatalf("admitted %d of 7 at once, want the burst of 3 (a little more if slow)", ok)
	}
	time.Sleep(600 * time.Millisecond)
	if r := postN(t, s, tok, 1)[0]; r.status != http.StatusCreated {
		t.Fatalf("after refilling: got %d, want 201", r.status)
	}
}

func TestCountRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		limit graphsim.Limit
		// first and last Retry-After of three 429s in a row, without and
		// with CountRejected; a fixed window's values may drop by one as
		// wall-clock seconds pass.
		light, heavy func(first, last int) bool
	}{
		{
			// The excess carries into the next window: the wait grows by a window.
			"fixed window", graphsim.Limit{N: 2, Window: 5 * time.Second},
			func(f, l int) bool { return f >= 4 && f <= 5 && l >= f-1 && l <= f },
			func(f, l int) bool { return f >= 4 && f <= 5 && l-f >= 4 && l-f <= 5 },
		},
		{
			// The bucket goes into debt from the first rejection on.
			"token bucket", graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 1, Burst: 1},
			func(f, l int) bool { return f == 1 && l == 1 },
			func(f, l int) bool { return f == 2 && l == 2 },
		},
	}
	for _, tt := range tests {
		for _, count := range []bool{false, true} {
			t.Run(tt.name+" count="+strconv.FormatBool(count), func(t *testing.T) {
				t.Parallel()
				l := tt.limit
				l.CountRejected = count
				s := newServer(t, graphsim.Config{WriteLimit: l})
				s.AddConfiguration(cfgA)
				tok := appToken(t, s)
				rs := postN(t, s, tok, l.N+l.Burst+3)
				var ras []int
				for _, r := range rs {
					if r.status == http.StatusTooManyRequests {
						ras = append(ras, retryAfter(t, r))
					}
				}
				ok := tt.light
				if count {
					ok = tt.heavy
				}
				if len(ras) != 3 || !ok(ras[0], ras[2]) {
					t.Fatalf("Retry-After of the 429s = %v (CountRejected %v)", ras, count)
				}
			})
		}
	}
}

func TestNoRetryAfterFraction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fraction float64
		min, max int
	}{
		{0, 0, 0},
		{0.5, 8, 32},
		{1, 40, 40},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatFloat(tt.fraction, 'f', -1, 64), func(t *testing.T) {
			t.Parallel()
			s := newServer(t, graphsim.Config{Seed: 7, WriteLimit: graphsim.Limit{N: 1, Window: time.Hour, NoRetryAfter: tt.fraction}})
			s.AddConfiguration(cfgA)
			tok := appToken(t, s)
			without := 0
			for _, r := range postN(t, s, tok, 41)[1:] {
				if r.status != http.StatusTooManyRequests {
					t.Fatalf("got %d, want 429", r.status)
				}
				if r.header.Get("Retry-After") == "" {
					without++
				} else if ra := retryAfter(t, r); ra < 3000 {
					t.Fatalf("Retry-After = %d, want about an hour", ra)
				}
			}
			st := s.Stats()
			if without < tt.min || without > tt.max || st.RetryAfterOmit != int64(without) || st.RetryAfterSent != int64(40-without) {
				t.Fatalf("%d of 40 without Retry-After (stats %d/%d), want %d..%d", without, st.RetryAfterOmit, st.RetryAfterSent, tt.min, tt.max)
			}
		})
	}
}

func TestSetWriteLimitAtRunTime(t *testing.T) {
	t.Parallel()
	s := newServer(t, graphsim.Config{})
	s.AddConfiguration(cfgA)
	tok := appToken(t, s)
	if err := s.SetWriteLimit(graphsim.Limit{N: 1, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rs := postN(t, s, tok, 2)
	if rs[0].status != http.StatusCreated || rs[1].status != http.StatusTooManyRequests {
		t.Fatalf("got %d, %d; want 201, 429", rs[0].status, rs[1].status)
	}
	if err := s.SetWriteLimit(graphsim.Limit{}); err != nil {
		t.Fatal(err)
	}
	if r := postN(t, s, tok, 1)[0]; r.status != http.StatusCreated {
		t.Fatalf("unlimited again: got %d", r.status)
	}
	for _, bad := range []graphsim.Limit{{N: 1}, {Mode: graphsim.TokenBucket}, {NoRetryAfter: 2}} {
		if err := s.SetWriteLimit(bad); err == nil {
			t.Fatalf("SetWriteLimit(%+v): got nil error", bad)
		}
	}
}

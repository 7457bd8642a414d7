package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// DelegatedPermission is the Graph permission a delegated sign-in asks for.
const DelegatedPermission = "DeviceManagementConfiguration.ReadWrite.All"

// renewBefore is how long before expiry a held access token is renewed;
// MSAL itself treats tokens this close to expiry as expired.
const renewBefore = 5 * time.Minute

// signOutCheck is how often a held token is checked against the stored
// sign-in: after `worker logout` deleted it, a running worker stops
// creating within this long instead of using its token until it expires.
const signOutCheck = 5 * time.Second

// refreshTimeout bounds one renewal (lock, cache read, token call, cache
// write) once it has started.
const refreshTimeout = time.Minute

// bypassClaims makes MSAL skip its cached access token and redeem the
// refresh token when Graph rejected a token without saying why: it is the
// claims request MSAL itself sends for a client that handles claims
// challenges (CP1), which this one does.
const bypassClaims = `{"access_token":{"xms_cc":{"values":["CP1"]}}}`

// DelegatedConfig is a delegated (signed-in user) sign-in through a public
// client app registration that allows public client flows.
type DelegatedConfig struct {
	AuthorityHost string
	TenantID      string
	ClientID      string
	// Scopes are what the sign-in asks for, e.g. Graph origin + "/" +
	// DelegatedPermission.
	Scopes []string
	// Key seals the stored sign-in (BULKASSIGN_TOKEN_CACHE_KEY, KeySize bytes).
	Key []byte
	// Pool holds the stored sign-in (table token_caches).
	Pool *pgxpool.Pool
	// HTTPClient defaults to NewHTTPClient(DefaultTimeout).
	HTTPClient *http.Client
}

// Delegated is a token source for a signed-in user. `worker login` stores
// the sign-in (MSAL's token cache, sealed) in Postgres; every worker
// process then renews tokens from it silently, one renewal at a time across
// the fleet.
type Delegated struct {
	cfg    DelegatedConfig
	name   string
	sealer *sealer
	cache  *pgCache
	client public.Client

	// held is the default tenant's token; ForTenant makes others.
	held *heldToken
	// renewMu admits one renewal at a time in this process (they share
	// the MSAL client and its cache's transaction).
	renewMu sync.Mutex
}

// NewDelegated builds the source. It does not contact the authority or the
// database; call Check to prove a sign-in is stored and still renews.
func NewDelegated(cfg DelegatedConfig) (*Delegated, error) {
	if cfg.Pool == nil {
		return nil, errors.New("delegated sign-in needs the database")
	}
	if len(cfg.Scopes) == 0 {
		return nil, errors.New("delegated sign-in needs a scope")
	}
	s, err := newSealer(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient(DefaultTimeout)
	}
	d := &Delegated{cfg: cfg, name: CacheName(cfg.TenantID, cfg.ClientID), sealer: s}
	d.held = &heldToken{d: d, sem: make(chan struct{}, 1)}
	d.cache = d.newCache(false)
	if d.client, err = d.newClient(d.cache); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Delegated) newCache(login bool) *pgCache {
	return &pgCache{pool: d.cfg.Pool, name: d.name, sealer: d.sealer, login: login}
}

func (d *Delegated) newClient(c *pgCache) (public.Client, error) {
	pc, err := public.New(d.cfg.ClientID,
		public.WithAuthority(Authority(d.cfg.AuthorityHost, d.cfg.TenantID)),
		public.WithInstanceDiscovery(KnownAuthorityHost(d.cfg.AuthorityHost)),
		public.WithHTTPClient(d.cfg.HTTPClient),
		public.WithCache(c))
	if err != nil {
		return public.Client{}, fmt.Errorf("error creating MSAL client: %w", err)
	}
	return pc, nil
}

// DeviceCodePrompt is what the person signing in must be told.
type DeviceCodePrompt struct {
	VerificationURL string
	UserCode        string
	ExpiresOn       time.Time
}

// Login runs the device code flow: prompt is called once with the code to
// enter, then Login waits until the person signed in (or ctx ends, or the
// code expires) and stores the sign-in, replacing any earlier one. It
// returns the signed-in user's name.
func (d *Delegated) Login(ctx context.Context, prompt func(DeviceCodePrompt)) (string, error) {
	lc, err := d.newClient(d.newCache(true))
	if err != nil {
		return "", err
	}
	dc, err := lc.AcquireTokenByDeviceCode(ctx, d.cfg.Scopes)
	if err != nil {
		return "", d.loginError(ctx, err)
	}
	prompt(DeviceCodePrompt{VerificationURL: dc.Result.VerificationURL, UserCode: dc.Result.UserCode, ExpiresOn: dc.Result.ExpiresOn})
	r, err := dc.AuthenticationResult(ctx)
	if err != nil {
		return "", d.loginError(ctx, err)
	}
	select {
	case d.held.sem <- struct{}{}:
		d.held.tok, d.held.exp = r.AccessToken, r.ExpiresOn
		<-d.held.sem
	default: // a renewal is running; it will read the new sign-in
	}
	return r.Account.PreferredUsername, nil
}

func (d *Delegated) loginError(ctx context.Context, err error) error {
	codeExpired := errors.New("the code expired before the sign-in was completed: nothing was stored; run `worker login` again")
	switch {
	case ctx.Err() != nil:
		return errors.New("sign-in abandoned: nothing was stored")
	case errors.Is(err, context.DeadlineExceeded):
		// MSAL stops polling when the code expires.
		return codeExpired
	}
	if errors.As(err, new(*cacheError)) {
		return fmt.Errorf("signed in, but the sign-in could not be stored: %w", err)
	}
	if e, ok := parseOAuthError(err); ok {
		switch e.Code {
		case "expired_token":
			return codeExpired
		case "authorization_declined", "access_denied":
			return fmt.Errorf("the sign-in was declined: nothing was stored (%s)", e.summary())
		case "invalid_client", "unauthorized_client":
			return fmt.Errorf("cannot sign in to %s (tenant %s, app %s): %w (delegated sign-in needs an app registration that allows public client flows)",
				d.cfg.AuthorityHost, d.cfg.TenantID, d.cfg.ClientID, sanitize(err))
		}
	}
	return fmt.Errorf("cannot sign in to %s (tenant %s, app %s): %w", d.cfg.AuthorityHost, d.cfg.TenantID, d.cfg.ClientID, sanitize(err))
}

// cacheError is a failure of the stored cache itself (database, key), kept
// apart from the platform's answers.
type cacheError struct{ err error }

func (e *cacheError) Error() string { return e.err.Error() }
func (e *cacheError) Unwrap() error { return e.err }

// Token implements graph.TokenSource for the signed-in tenant. It hands
// out the held access token until it nears expiry; then, holding the
// stored sign-in's lock, it lets MSAL read the stored cache (which another
// worker may have renewed already), renew through the refresh token if
// still needed, and write the cache back. Fresh (Graph rejected the token)
// always renews, with Graph's claims challenge when there was one; fresh
// requests within a second share one renewal.
func (d *Delegated) Token(ctx context.Context, opts graph.TokenOptions) (string, error) {
	return d.held.Token(ctx, opts)
}

// ForTenant is a token source for another tenant the signed-in person may
// manage (a partner admin's GDAP relationship with a customer tenant): the
// same stored sign-in, renewed silently for that tenant.
func (d *Delegated) ForTenant(tenant string) graph.TokenSource {
	return &heldToken{d: d, tenant: tenant, sem: make(chan struct{}, 1)}
}

// heldToken is one tenant's access token, held between renewals.
type heldToken struct {
	d      *Delegated
	tenant string // "" is the signed-in tenant
	// sem admits one caller at a time to the held token and to renewals;
	// unlike a mutex, waiting for it honours the caller's context.
	sem       chan struct{}
	tok       string
	exp       time.Time
	freshAt   time.Time
	checkedAt time.Time // when the stored sign-in was last seen
}

// Token implements graph.TokenSource.
func (h *heldToken) Token(ctx context.Context, opts graph.TokenOptions) (string, error) {
	d := h.d
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-h.sem }()
	now := time.Now()
	if h.tok != "" && now.Sub(h.checkedAt) > signOutCheck {
		ok, err := store.TokenCacheExists(ctx, d.cfg.Pool, d.name)
		if err != nil {
			return "", fmt.Errorf("stored sign-in: %w", err)
		}
		if !ok {
			h.tok = "" // signed out: renew, which says so
		}
		h.checkedAt = now
	}
	switch {
	case h.tok == "":
	case opts.Fresh && now.Sub(h.freshAt) < time.Second:
		return h.tok, nil
	case !opts.Fresh && h.exp.Sub(now) > renewBefore:
		return h.tok, nil
	}
	r, err := d.renew(ctx, opts, h.tenant)
	if err != nil {
		return "", err
	}
	h.tok, h.exp, h.checkedAt = r.AccessToken, r.ExpiresOn, now
	if opts.Fresh {
		h.freshAt = now
	}
	return h.tok, nil
}

func (d *Delegated) renew(ctx context.Context, opts graph.TokenOptions, tenant string) (public.AuthResult, error) {
	d.renewMu.Lock()
	defer d.renewMu.Unlock()
	var r public.AuthResult
	tx, err := d.cfg.Pool.Begin(ctx)
	if err != nil {
		return r, fmt.Errorf("error reading the stored sign-in: %w", err)
	}
	// Once the lock is held, the renewal finishes even if the caller gives
	// up: a new refresh token must reach the database.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	defer tx.Rollback(rctx) //nolint:errcheck // after Commit, a no-op
	if err := store.LockTokenCache(ctx, tx, d.name); err != nil {
		return r, err
	}
	d.cache.tx = tx
	defer func() { d.cache.tx = nil }()
	accounts, err := d.client.Accounts(rctx)
	if err == nil && len(accounts) == 0 {
		err = ErrNotSignedIn
	}
	if err == nil {
		sopts := []public.AcquireSilentOption{public.WithSilentAccount(accounts[0])}
		if tenant != "" {
			sopts = append(sopts, public.WithTenantID(tenant))
		}
		if opts.Fresh {
			claims := opts.Claims
			if claims == "" {
				claims = bypassClaims
			}
			sopts = append(sopts, public.WithClaims(claims))
		}
		r, err = d.client.AcquireTokenSilent(rctx, d.cfg.Scopes, sopts...)
	}
	if err != nil {
		return r, d.renewError(err)
	}
	// If the commit fails, the renewed cache is lost but nothing breaks:
	// the token is good, and the stored refresh token, though older, still
	// renews (the platform does not retire a refresh token when it is used).
	_ = tx.Commit(rctx)
	return r, nil
}

// renewError sorts a failed renewal: what only a person can fix wraps
// graph.ErrSignInAgain; anything else (network, a 5xx) stays retryable.
func (d *Delegated) renewError(err error) error {
	who := fmt.Sprintf("app %s in tenant %s", d.cfg.ClientID, d.cfg.TenantID)
	switch {
	case errors.Is(err, ErrNotSignedIn):
		return &SignInError{Msg: fmt.Sprintf("no delegated sign-in is stored for %s: run `worker login`", who), Cause: ErrNotSignedIn}
	case errors.Is(err, ErrWrongKey):
		return &SignInError{Msg: ErrWrongKey.Error(), Cause: ErrWrongKey}
	case errors.Is(err, errDamaged):
		return &SignInError{Msg: errDamaged.Error(), Cause: errDamaged}
	case errors.As(err, new(*cacheError)):
		return fmt.Errorf("stored sign-in: %w", err)
	case err.Error() == "no token found":
		// MSAL: the account is there but its refresh token is not.
		return &SignInError{Msg: fmt.Sprintf("%s: the stored sign-in of %s holds no refresh token", graph.ErrSignInAgain, who)}
	}
	if refused := appError(err); errors.As(refused, new(*RefusedError)) {
		return refused // this tenant refuses; the sign-in itself is fine
	}
	if e, ok := parseOAuthError(err); ok && needsPerson[e.Code] {
		return &SignInError{Msg: fmt.Sprintf("%s: %s", graph.ErrSignInAgain, e.summary())}
	}
	return sanitize(err)
}

// Check renews (or reads) a token, proving that a sign-in is stored, that
// the key opens it and that it still renews.
func (d *Delegated) Check(ctx context.Context) error {
	_, err := d.Token(ctx, graph.TokenOptions{})
	return err
}

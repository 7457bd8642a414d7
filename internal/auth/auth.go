// Package auth signs bulkassign in to Microsoft Entra ID through MSAL for Go
// and hands Graph access tokens to the Graph client. Tokens and secrets are
// held only in memory and never appear in errors.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// AppConfig is an app registration's credential: a secret or a certificate.
type AppConfig struct {
	AuthorityHost string // e.g. https://login.microsoftonline.com
	TenantID      string
	ClientID      string
	Secret        string
	// CertificatePath is a PEM file (certificate and RSA key) or a PKCS#12
	// file (.pfx/.p12) opened with CertificatePassword. It wins over Secret.
	CertificatePath     string
	CertificatePassword string
	// Scope is the Graph origin + "/.default".
	Scope string
	// HTTPClient defaults to NewHTTPClient(DefaultTimeout).
	HTTPClient *http.Client
}

// App is a confidential-client token source.
type App struct {
	cfg  AppConfig
	cred confidential.Credential

	mu        sync.Mutex
	client    confidential.Client
	lastFresh time.Time
	freshTok  string
	// held is the token the last acquisition gave, used until heldUntil
	// without asking MSAL again: every Graph request asks for a token,
	// and MSAL's answer from its cache costs a worker a mutex and
	// microseconds of CPU per request (5 % of a worker's CPU in bench 5a).
	held      string
	heldUntil time.Time
	refused   error     // the tenant refused the app ...
	refusedAt time.Time // ... this recently: answer so without asking
	// acquire admits one acquisition at a time: rows that start together
	// would otherwise each miss MSAL's empty cache and each ask the
	// platform; after the first, the others are answered from the cache.
	acquire sync.Mutex
}

// refusalMemory is how long a tenant's refusal is answered from memory, so
// its rows end at once without each asking the platform again.
const refusalMemory = time.Minute

// NewApp builds the MSAL client. It does not contact the authority; call
// Check to prove the credential works.
func NewApp(cfg AppConfig) (*App, error) {
	var cred confidential.Credential
	var err error
	switch {
	case cfg.CertificatePath != "":
		cred, err = certCredential(cfg.CertificatePath, cfg.CertificatePassword)
	case cfg.Secret != "":
		cred, err = confidential.NewCredFromSecret(cfg.Secret)
	default:
		err = errors.New("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH is required")
	}
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient(DefaultTimeout)
	}
	a := &App{cfg: cfg, cred: cred}
	if a.client, err = a.newClient(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *App) newClient() (confidential.Client, error) {
	c, err := confidential.New(Authority(a.cfg.AuthorityHost, a.cfg.TenantID), a.cfg.ClientID, a.cred,
		confidential.WithInstanceDiscovery(KnownAuthorityHost(a.cfg.AuthorityHost)), confidential.WithHTTPClient(a.cfg.HTTPClient))
	if err != nil {
		return confidential.Client{}, fmt.Errorf("error creating MSAL client: %w", err)
	}
	return c, nil
}

// Authority joins host and tenant.
func Authority(host, tenant string) string {
	return strings.TrimSuffix(host, "/") + "/" + tenant
}

// KnownAuthorityHost reports whether host is one of Microsoft's public
// authority hosts, for which MSAL's instance discovery works. For any other
// host (the simulator, a private authority) discovery is turned off.
func KnownAuthorityHost(host string) bool {
	switch strings.TrimSuffix(strings.ToLower(host), "/") {
	case "https://login.microsoftonline.com", "https://login.microsoftonline.us", "https://login.chinacloudapi.cn":
		return true
	}
	return false
}

// Token implements graph.TokenSource. MSAL caches and renews tokens; Fresh
// bypasses its cache (with claims when Graph sent a challenge). Concurrent
// fresh requests within a second share one new token.
func (a *App) Token(ctx context.Context, opts graph.TokenOptions) (string, error) {
	a.mu.Lock()
	if a.refused != nil && time.Since(a.refusedAt) < refusalMemory {
		err := a.refused
		a.mu.Unlock()
		return "", err
	}
	client := a.client
	if opts.Fresh {
		if time.Since(a.lastFresh) < time.Second && a.freshTok != "" {
			tok := a.freshTok
			a.mu.Unlock()
			return tok, nil
		}
		defer a.mu.Unlock()
		var copts []confidential.AcquireByCredentialOption
		if opts.Claims != "" {
			copts = append(copts, confidential.WithClaims(opts.Claims))
		} else {
			// MSAL would answer from its cache: start from an empty one.
			c, err := a.newClient()
			if err != nil {
				return "", err
			}
			a.client, client = c, c
		}
		r, err := client.AcquireTokenByCredential(ctx, []string{a.cfg.Scope}, copts...)
		if err != nil {
			return "", a.failed(err)
		}
		a.lastFresh, a.freshTok = time.Now(), r.AccessToken
		a.hold(r.AccessToken, r.ExpiresOn)
		return r.AccessToken, nil
	}
	if a.held != "" && time.Now().Before(a.heldUntil) {
		tok := a.held
		a.mu.Unlock()
		return tok, nil
	}
	a.mu.Unlock()
	a.acquire.Lock()
	r, err := client.AcquireTokenByCredential(ctx, []string{a.cfg.Scope})
	a.acquire.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		return "", a.failed(err)
	}
	a.hold(r.AccessToken, r.ExpiresOn)
	return r.AccessToken, nil
}

// heldMargin is how long before its expiry a held token is given up for
// MSAL's answer (which renews it by then): as MSAL's own margin, so a
// request never leaves with a token about to expire.
const heldMargin = 5 * time.Minute

// hold keeps tok, which expires at exp, for the requests to come; a.mu is
// held.
func (a *App) hold(tok string, exp time.Time) {
	a.held, a.heldUntil = tok, exp.Add(-heldMargin)
}

// failed sorts a sign-in error and remembers a refusal; a.mu is held.
func (a *App) failed(err error) error {
	err = appError(err)
	var refused *RefusedError
	if errors.As(err, &refused) {
		a.refused, a.refusedAt = err, time.Now()
	}
	return err
}

// Check acquires a token, proving the credential, authority and scope work.
func (a *App) Check(ctx context.Context) error {
	_, err := a.Token(ctx, graph.TokenOptions{})
	return err
}

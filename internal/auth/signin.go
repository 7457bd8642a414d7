package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// This file turns the settings (AZURE_SIGNIN and the credentials) into a
// sign-in: every command that calls Graph or manages the stored sign-in
// starts here. Errors that are the settings' fault are
// config.UnusableError.

// signInCheckTimeout bounds the token acquired at start.
const signInCheckTimeout = 30 * time.Second

// NewTokenSource builds the token source the settings describe (the app's
// own credential, or the delegated sign-in stored in db) and proves it
// works by acquiring one token, so a wrong credential or a missing sign-in
// stops a command at start with one line instead of failing every row.
func NewTokenSource(ctx context.Context, gcfg config.Graph, db *store.DB) (graph.TokenSource, error) {
	checkCtx, cancel := context.WithTimeout(ctx, signInCheckTimeout)
	defer cancel()
	if gcfg.SignIn == config.SignInDelegated {
		d, err := NewDelegatedSignIn(gcfg, db)
		if err != nil {
			return nil, err
		}
		if err := d.Check(checkCtx); err != nil {
			switch {
			case errors.Is(err, ErrWrongKey):
				return nil, config.Unusable(err)
			case errors.Is(err, graph.ErrSignInAgain):
				return nil, err // says what to do, and names app and tenant
			}
			return nil, fmt.Errorf("cannot renew the delegated sign-in at %s (app %s, tenant %s): %w", gcfg.AuthorityHost, gcfg.ClientID, gcfg.TenantID, err)
		}
		return d, nil
	}
	tokens, err := NewApp(AppConfigFor(gcfg, gcfg.TenantID))
	if err != nil {
		return nil, config.Unusable(err)
	}
	if err := tokens.Check(checkCtx); err != nil {
		return nil, fmt.Errorf("cannot sign in to %s as app %s in tenant %s: %w", gcfg.AuthorityHost, gcfg.ClientID, gcfg.TenantID, err)
	}
	return tokens, nil
}

// AppConfigFor is the settings' app sign-in (AZURE_CLIENT_ID and its
// credential) at tenant's authority.
func AppConfigFor(gcfg config.Graph, tenant string) AppConfig {
	return AppConfig{AuthorityHost: gcfg.AuthorityHost, TenantID: tenant, ClientID: gcfg.ClientID,
		Secret: gcfg.ClientSecret, CertificatePath: gcfg.CertificatePath, CertificatePassword: gcfg.CertificatePassword,
		Scope: gcfg.Scope(), HTTPClient: NewHTTPClient(gcfg.Timeout)}
}

// NewDelegatedSignIn is the delegated sign-in of the settings' app and
// tenant, stored in db (`worker login` writes it, workers renew it).
func NewDelegatedSignIn(gcfg config.Graph, db *store.DB) (*Delegated, error) {
	d, err := NewDelegated(DelegatedConfig{
		AuthorityHost: gcfg.AuthorityHost,
		TenantID:      gcfg.TenantID,
		ClientID:      gcfg.ClientID,
		Scopes:        []string{gcfg.Origin() + "/" + DelegatedPermission},
		Key:           gcfg.TokenCacheKey,
		Pool:          db.Pool(),
		HTTPClient:    NewHTTPClient(gcfg.Timeout),
	})
	if err != nil {
		return nil, config.Unusable(err)
	}
	return d, nil
}

// SignOut deletes the settings' app's stored sign-in in its tenant, and
// reports whether there was one.
func SignOut(ctx context.Context, gcfg config.Graph, db *store.DB) (bool, error) {
	return Logout(ctx, db.Pool(), gcfg.TenantID, gcfg.ClientID)
}

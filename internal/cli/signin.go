package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
)

// signInCheckTimeout bounds the token acquired at start.
const signInCheckTimeout = 30 * time.Second

// newTokenSource builds the token source the settings describe (AZURE_SIGNIN:
// the app's own credential, or the delegated sign-in stored in pool) and
// proves it works by acquiring one token, so a wrong credential or a
// missing sign-in stops a command at start with one line instead of
// failing every row.
func newTokenSource(ctx context.Context, gcfg config.Graph, pool *pgxpool.Pool) (graph.TokenSource, error) {
	checkCtx, cancel := context.WithTimeout(ctx, signInCheckTimeout)
	defer cancel()
	if gcfg.SignIn == config.SignInDelegated {
		d, err := newDelegated(gcfg, pool)
		if err != nil {
			return nil, settingError(err)
		}
		if err := d.Check(checkCtx); err != nil {
			switch {
			case errors.Is(err, auth.ErrWrongKey):
				return nil, settingError(err)
			case errors.Is(err, graph.ErrSignInAgain):
				return nil, err // says what to do, and names app and tenant
			}
			return nil, fmt.Errorf("cannot renew the delegated sign-in at %s (app %s, tenant %s): %w", gcfg.AuthorityHost, gcfg.ClientID, gcfg.TenantID, err)
		}
		return d, nil
	}
	tokens, err := auth.NewApp(auth.AppConfig{AuthorityHost: gcfg.AuthorityHost, TenantID: gcfg.TenantID, ClientID: gcfg.ClientID,
		Secret: gcfg.ClientSecret, CertificatePath: gcfg.CertificatePath, CertificatePassword: gcfg.CertificatePassword,
		Scope: gcfg.Scope(), HTTPClient: auth.NewHTTPClient(gcfg.Timeout)})
	if err != nil {
		return nil, settingError(err)
	}
	if err := tokens.Check(checkCtx); err != nil {
		return nil, fmt.Errorf("cannot sign in to %s as app %s in tenant %s: %w", gcfg.AuthorityHost, gcfg.ClientID, gcfg.TenantID, err)
	}
	return tokens, nil
}

// newDelegated builds the delegated token source of the settings.
func newDelegated(gcfg config.Graph, pool *pgxpool.Pool) (*auth.Delegated, error) {
	return auth.NewDelegated(auth.DelegatedConfig{
		AuthorityHost: gcfg.AuthorityHost,
		TenantID:      gcfg.TenantID,
		ClientID:      gcfg.ClientID,
		Scopes:        []string{gcfg.Origin() + "/" + auth.DelegatedPermission},
		Key:           gcfg.TokenCacheKey,
		Pool:          pool,
		HTTPClient:    auth.NewHTTPClient(gcfg.Timeout),
	})
}

package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
)

// newTokenSource builds the token source the settings describe and proves
// it works by acquiring one token, so a wrong credential stops a command at
// start with one line instead of failing every row.
func newTokenSource(ctx context.Context, gcfg config.Graph) (graph.TokenSource, error) {
	tokens, err := auth.NewApp(auth.AppConfig{AuthorityHost: gcfg.AuthorityHost, TenantID: gcfg.TenantID, ClientID: gcfg.ClientID,
		Secret: gcfg.ClientSecret, CertificatePath: gcfg.CertificatePath, CertificatePassword: gcfg.CertificatePassword, Scope: gcfg.Scope()})
	if err != nil {
		return nil, settingError(err)
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tokens.Check(checkCtx); err != nil {
		return nil, fmt.Errorf("cannot sign in to %s as app %s in tenant %s: %w", gcfg.AuthorityHost, gcfg.ClientID, gcfg.TenantID, err)
	}
	return tokens, nil
}

package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
)

const loginUsage = `usage: worker login

Signs in as yourself (device code: open the page shown and enter the code)
and stores the sign-in in the database, encrypted with
BULKASSIGN_TOKEN_CACHE_KEY, for every worker with AZURE_SIGNIN=delegated.
Needs AZURE_TENANT_ID, AZURE_CLIENT_ID (an app registration that allows
public client flows) and BULKASSIGN_TOKEN_CACHE_KEY. Replaces any stored
sign-in of that app in that tenant.
`

const logoutUsage = `usage: worker logout

Deletes the stored sign-in of AZURE_CLIENT_ID in AZURE_TENANT_ID. Workers
using it stop renewing tokens; the refresh token itself stays valid at
Microsoft Entra until it expires or the user's sessions are revoked.
`

func workerLogin(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "worker login", loginUsage)
	if err := parseNoArgs(fs, args, "login"); err != nil {
		return err
	}
	gcfg, err := config.LoadDelegated(env.Getenv, true)
	if err != nil {
		return err
	}
	db, err := openMigrated(ctx, env, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	d, err := auth.NewDelegatedSignIn(gcfg, db)
	if err != nil {
		return err
	}
	user, err := d.Login(ctx, func(p auth.DeviceCodePrompt) {
		fmt.Fprintf(env.Stderr, "To sign in, open %s and enter the code %s (valid until %s). Waiting...\n",
			p.VerificationURL, p.UserCode, p.ExpiresOn.Local().Format(time.Kitchen))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "signed in as %s (app %s, tenant %s); the sign-in is stored encrypted in the database\n", user, gcfg.ClientID, gcfg.TenantID)
	if gcfg.SignIn != config.SignInDelegated {
		fmt.Fprintln(env.Stderr, "note: workers use it only with AZURE_SIGNIN=delegated")
	}
	return nil
}

func workerLogout(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "worker logout", logoutUsage)
	if err := parseNoArgs(fs, args, "logout"); err != nil {
		return err
	}
	gcfg, err := config.LoadDelegated(env.Getenv, false)
	if err != nil {
		return err
	}
	db, err := openMigrated(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	deleted, err := auth.SignOut(ctx, gcfg, db)
	if err != nil {
		return err
	}
	if deleted {
		fmt.Fprintf(env.Stdout, "signed out: the stored sign-in of app %s in tenant %s is deleted\n", gcfg.ClientID, gcfg.TenantID)
	} else {
		fmt.Fprintf(env.Stdout, "no sign-in was stored for app %s in tenant %s\n", gcfg.ClientID, gcfg.TenantID)
	}
	return nil
}

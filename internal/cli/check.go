package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/worker"
)

const checkUsage = `usage: worker check [--tenant TENANT]

Reads and checks every setting as the worker does (exit 2 on the first it
would refuse), then signs in to the tenant (default AZURE_TENANT_ID) as the settings say,
prints the tenant's name, the app, the permissions the token carries
(and whether they let rows name groups by display name) and the answer to
one read of the tenant's device configurations. Exits 1 when
the token lacks DeviceManagementConfiguration.ReadWrite.All or the read
fails: fix that before running workers for the tenant.

flags:
`

func workerCheck(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "worker check", checkUsage)
	tenant := fs.String("tenant", "", "the tenant to check (a GUID); default AZURE_TENANT_ID")
	if err := parseNoArgs(fs, args, "check"); err != nil {
		return err
	}
	// The worker's own loader: a setting the worker refuses fails the
	// check too, before any sign-in.
	_, gcfg, err := loadWorkerSettings(env)
	if err != nil {
		return err
	}
	db, err := openMigrated(ctx, env, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := worker.Check(ctx, db, gcfg, *tenant)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	name := p.TenantName
	if name == "" {
		name = "(name not readable)"
	}
	fmt.Fprintf(tw, "tenant\t%s\t%s\n", p.TenantID, name)
	fmt.Fprintf(tw, "app\t%s\tsign-in %s\n", p.AppID, p.SignIn)
	perms := strings.Join(p.Permissions, " ")
	if perms == "" {
		perms = "(none)"
	}
	mark := "ok"
	if !p.Granted {
		mark = "MISSING " + auth.DelegatedPermission
	}
	fmt.Fprintf(tw, "permissions\t%s\t%s\n", perms, mark)
	// Lists may name groups by display name; reading them takes more than
	// the write permission. Not needed for lists of ids: told, not failed.
	groups := "ok"
	if !slices.ContainsFunc(p.Permissions, func(s string) bool { return slices.Contains(groupReaders, s) }) {
		groups = "MISSING Group.Read.All: rows that give group_name will fail (403) and --dry-run cannot check group ids; lists of group ids work"
	}
	fmt.Fprintf(tw, "group names\t%s\n", groups)
	read := "ok"
	if r := p.Read; r.Err != nil || r.StatusCode != 200 {
		read = "FAILED"
	}
	fmt.Fprintf(tw, "read\t%s\t%s\n", readLine(p), read)
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case !p.Granted:
		return errors.New("the token lacks " + auth.DelegatedPermission + ": grant it to the app (application permission) and give admin consent in this tenant")
	case !p.OK():
		return errors.New("the read failed: " + p.Read.Error())
	}
	return nil
}

// groupReaders are the permissions that let a token read groups, for
// rows that name a group by display name.
var groupReaders = []string{"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}

func readLine(p *worker.Preflight) string {
	r := p.Read
	if r.Err != nil {
		return r.Error()
	}
	s := fmt.Sprintf("GET deviceConfigurations: HTTP %d", r.StatusCode)
	if r.RequestID != "" {
		s += " (request-id " + r.RequestID + ")"
	}
	return s
}

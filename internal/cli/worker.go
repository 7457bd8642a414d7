package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/worker"
)

const workerUsage = `usage: worker            work queued rows until SIGINT or SIGTERM
       worker migrate    apply River's and bulkassign's migrations (idempotent)
       worker login      sign in as yourself (device code) for AZURE_SIGNIN=delegated
       worker logout     delete the stored sign-in

Settings come from the environment; see the README.

flags:
`

// workerCommands are the subcommands of worker, by name.
var workerCommands = map[string]func(ctx context.Context, env *Env, args []string) error{
	"migrate": workerMigrate,
}

// Worker runs the worker command and returns its exit code. ctx ending is
// the signal to stop: in-flight rows finish (up to the job timeout), then
// the worker exits.
func Worker(ctx context.Context, env *Env, args []string) int {
	return finish(env, "worker", runWorker(ctx, env, args))
}

func runWorker(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		if cmd, ok := workerCommands[args[0]]; ok {
			return cmd(ctx, env, args[1:])
		}
	}
	fs := newFlagSet(env, "worker", workerUsage)
	verbose := fs.Bool("v", false, "log every Graph call (debug level)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unknown command %q", pos[0])
	}
	wcfg, err := config.LoadWorker(env.Getenv)
	if err != nil {
		return err
	}
	if wcfg.HTTPAddr != "" {
		if err := httpapi.CheckExposure(wcfg.HTTPAddr, wcfg.HTTPUser, wcfg.HTTPPassword); err != nil {
			return err
		}
	}
	gcfg, err := config.LoadGraph(env.Getenv, true)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := newLogger(env, level)

	db, err := openMigrated(ctx, env, int32(wcfg.Concurrency+10))
	if err != nil {
		return err
	}
	defer db.Close()
	w, err := worker.Open(ctx, db, gcfg, wcfg, logger)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

func workerMigrate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "worker migrate", "usage: worker migrate\n")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	db, err := openDB(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(res.RiverVersions) == 0 && len(res.Ours) == 0 {
		fmt.Fprintln(env.Stdout, "migrations: already current")
		return nil
	}
	if len(res.RiverVersions) > 0 {
		fmt.Fprintf(env.Stdout, "migrations: applied River versions %v\n", res.RiverVersions)
	}
	for _, m := range res.Ours {
		fmt.Fprintf(env.Stdout, "migrations: applied %s\n", m)
	}
	return nil
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/console"
	"github.com/bulkassign/bulkassign/internal/httpapi"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// runWorker is worker without a subcommand: it works rows until ctx ends.
func runWorker(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	verbose := fs.Bool("v", false, "log every Graph call (debug level)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("unknown command %q", pos[0])
	}
	wcfg, gcfg, err := loadWorkerSettings(env)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := newLogger(env, level)

	db, err := openMigrated(ctx, env, worker.PoolSize(wcfg))
	if err != nil {
		return err
	}
	defer db.Close()
	w, err := worker.Open(ctx, db, gcfg, wcfg, logger)
	if err != nil {
		return err
	}
	// A scheduled run puts rows that name no tenant in the worker's.
	w.Schedule.DefaultTenant = gcfg.TenantID
	console.Attach(w)
	return w.Run(ctx)
}

// loadWorkerSettings reads and checks every setting a worker process runs
// on. The worker and `worker check` both call it, so check refuses what the
// worker would refuse, with the same line.
func loadWorkerSettings(env *Env) (config.Worker, config.Graph, error) {
	wcfg, err := config.LoadWorker(env.Getenv)
	if err != nil {
		return wcfg, config.Graph{}, err
	}
	if wcfg.HTTPAddr != "" {
		if err := httpapi.CheckSettings(wcfg); err != nil {
			return wcfg, config.Graph{}, err
		}
	}
	gcfg, err := config.LoadGraph(env.Getenv, true)
	return wcfg, gcfg, err
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

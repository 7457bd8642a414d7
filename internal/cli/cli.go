// Package cli holds the worker and enqueue commands as importable code:
// cmd/*/main.go only call Worker or Enqueue, so every command runs
// in-process in tests with its own environment and output.
//
// A command parses its flags and settings, calls the package that owns
// the work and prints the result; every subcommand is listed in
// commands.go. The work lives elsewhere: the worker runtime in
// internal/worker, enqueue, retry, cancel and revert in internal/batchop,
// the dry run's reading in internal/dryrun, signing in in internal/auth,
// and every query in internal/store. Commands hold the database as a
// *store.DB and never touch pgx, River or Graph themselves.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailed  = 1 // invalid input, rows failed, a command failed
	ExitSetting = 2 // a missing or invalid setting or flag
)

// Env is a command's world: arguments aside, everything it reads and writes.
type Env struct {
	Getenv config.Env
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// StderrIsTerminal chooses text logs and the live progress bar.
	StderrIsTerminal bool
}

// OSEnv is the process's real environment.
func OSEnv() *Env {
	return &Env{Getenv: os.LookupEnv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, StderrIsTerminal: isTerminal(os.Stderr)}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// exitError carries an exit code to the top of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{ExitSetting, fmt.Errorf(format, args...)}
}

// finish turns an error into an exit code, printing it as one line.
func finish(env *Env, prog string, err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	code := ExitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	var ce *config.Error
	var ue *config.UnusableError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		code = ExitSetting
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(env.Stderr, "%s: %s\n", prog, msg)
	}
	return code
}

// newLogger logs JSON when stderr is not a terminal, text when it is.
func newLogger(env *Env, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	if env.StderrIsTerminal {
		return slog.New(slog.NewTextHandler(env.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(env.Stderr, opts))
}

// durationText writes a duration as "9s": the JSON handler would write its
// nanoseconds (9000000000), which no reader of a log line can take in.
// Handlers call it for every attribute, inside groups too.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// openDB reads DATABASE_URL and connects.
func openDB(ctx context.Context, env *Env, maxConns int32) (*store.DB, error) {
	dbcfg, err := config.LoadDatabase(env.Getenv)
	if err != nil {
		return nil, err
	}
	return store.Connect(ctx, dbcfg.URL, maxConns)
}

// openMigrated is openDB for commands that need our tables: it refuses a
// database that lacks them.
func openMigrated(ctx context.Context, env *Env, maxConns int32) (*store.DB, error) {
	dbcfg, err := config.LoadDatabase(env.Getenv)
	if err != nil {
		return nil, err
	}
	return store.ConnectMigrated(ctx, dbcfg.URL, maxConns)
}

// openBatch opens the database with open (openDB or openMigrated) and
// looks up the batch named by pos, a command's positional arguments, which
// must be that one id. The caller closes the database.
func openBatch(ctx context.Context, env *Env, cmd string, pos []string,
	open func(context.Context, *Env, int32) (*store.DB, error), maxConns int32) (*store.DB, *store.Batch, error) {
	if len(pos) != 1 {
		return nil, nil, usageError("%s takes one batch id", cmd)
	}
	db, err := open(ctx, env, maxConns)
	if err != nil {
		return nil, nil, err
	}
	b, err := store.GetBatch(ctx, db, pos[0])
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, b, nil
}

func newFlagSet(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseNoArgs is parseFlags for a command that takes no positional
// arguments.
func parseNoArgs(fs *flag.FlagSet, args []string, cmd string) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("%s takes no arguments", cmd)
	}
	return nil
}

// parseFlags parses flags anywhere among the arguments (`enqueue in.csv
// --wait` works) and returns the positional ones. Flag errors exit 2.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &exitError{ExitSetting, errors.New("")}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

package cli

import (
	"context"
	"flag"
	"strings"
)

// The programs and every subcommand they have, in one place: a command is
// added here or nowhere, and -h lists what this table holds.

// Enqueue runs the enqueue command and returns its exit code.
func Enqueue(ctx context.Context, env *Env, args []string) int {
	return enqueueProgram().main(ctx, env, args)
}

// Worker runs the worker command and returns its exit code. ctx ending is
// the signal to stop: in-flight rows finish (up to the job timeout), then
// the worker exits.
func Worker(ctx context.Context, env *Env, args []string) int {
	return workerProgram().main(ctx, env, args)
}

func enqueueProgram() *program {
	return &program{
		name: "enqueue",
		forms: []form{
			{"[flags] FILE...", `enqueue lists (CSV, JSON, NDJSON; "-" is stdin) as batches`},
			{"--dry-run FILE...", "report what enqueueing would do; writes nothing"},
		},
		commands: []command{
			{"status", "BATCH [--wait]", "counts of a batch's rows by status (and by tenant)", enqueueStatus},
			{"results", "BATCH", "one line per row (--format table|csv|json, --status S,..., --tenant T)", enqueueResults},
			{"batches", "[--limit N]", "recent batches with their counts", enqueueBatches},
			{"retry", "BATCH [--wait]", "run the failed and canceled rows again", enqueueRetry},
			{"cancel", "BATCH", "stop the rows not yet final", enqueueCancel},
			{"revert", "BATCH [--wait]", "delete the assignments the batch created", enqueueRevert},
			{"prune", "--older-than AGE", "remove finished batches enqueued longer ago than AGE (90d, 12h, 0s)", enqueuePrune},
			{"schedule", "add|list|remove", "enqueue a list at cron times (enqueue schedule -h)", enqueueSchedule},
			{"list", "KIND", "the tenant's configurations, groups or filters, in the input's columns", enqueueList},
		},
		notes: `BATCH is a batch id or its first 8 or more characters.

Every file is validated whole before anything is written; one invalid row
rejects them all (exit 1). Rows that name no tenant_id go to the default
tenant, AZURE_TENANT_ID, which must then be a GUID. On success each batch id
is printed on its own line of stdout, the last line being the last file's
batch.
`,
		run: enqueueLists,
	}
}

func workerProgram() *program {
	return &program{
		name: "worker",
		forms: []form{
			{"", "work queued rows until SIGINT or SIGTERM"},
		},
		commands: []command{
			{"migrate", "", "apply River's and bulkassign's migrations (idempotent)", workerMigrate},
			{"check", "[--tenant T]", "sign in, print the tenant, the app and its permissions, do one read", workerCheck},
			{"login", "", "sign in as yourself (device code) for AZURE_SIGNIN=delegated", workerLogin},
			{"logout", "", "delete the stored sign-in", workerLogout},
		},
		notes: "Settings come from the environment; see the README.\n",
		run:   runWorker,
	}
}

// program is one of our commands.
type program struct {
	name string
	// forms are the ways to run the program without a subcommand.
	forms    []form
	commands []command
	// notes follow the list of forms and commands in the usage.
	notes string
	// run is the program without a subcommand; fs is its flag set, whose
	// usage is the program's.
	run func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
}

// form is a way to run a program: its arguments and what it does, in one
// line each.
type form struct {
	args, about string
}

// command is a subcommand: its name, its arguments and what it does in one
// line, and its body, which gets the arguments after its name.
type command struct {
	name, args, about string
	run               func(ctx context.Context, env *Env, args []string) error
}

func (p *program) main(ctx context.Context, env *Env, args []string) int {
	return finish(env, p.name, p.dispatch(ctx, env, args))
}

func (p *program) dispatch(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		for _, c := range p.commands {
			if c.name == args[0] {
				return c.run(ctx, env, args[1:])
			}
		}
	}
	return p.run(ctx, env, newFlagSet(env, p.name, p.usage()), args)
}

// usage lists the forms and commands, aligned, then the notes.
func (p *program) usage() string {
	var lines [][2]string
	for _, f := range p.forms {
		lines = append(lines, [2]string{strings.TrimSpace(p.name + " " + f.args), f.about})
	}
	for _, c := range p.commands {
		lines = append(lines, [2]string{strings.TrimSpace(p.name + " " + c.name + " " + c.args), c.about})
	}
	width := 0
	for _, l := range lines {
		width = max(width, len(l[0]))
	}
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString("usage: ")
		} else {
			b.WriteString("       ")
		}
		b.WriteString(l[0])
		b.WriteString(strings.Repeat(" ", width-len(l[0])+2))
		b.WriteString(l[1])
		b.WriteByte('\n')
	}
	b.WriteString("\n" + p.notes + "\nflags:\n")
	return b.String()
}

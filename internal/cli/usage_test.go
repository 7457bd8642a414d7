package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/config"
)

// help runs a program with -h and returns what it printed.
func help(t *testing.T, p *program) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Getenv: config.MapEnv(nil), Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}
	if code := p.main(context.Background(), env, []string{"-h"}); code != ExitOK {
		t.Fatalf("%s -h exited %d, want %d; stderr:\n%s", p.name, code, ExitOK, &stderr)
	}
	return stderr.String()
}

// TestUsageListsEverySubcommand keeps -h in step with the command table.
func TestUsageListsEverySubcommand(t *testing.T) {
	t.Parallel()
	for _, p := range []*program{enqueueProgram(), workerProgram()} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			usage := help(t, p)
			if len(p.commands) == 0 {
				t.Fatalf("no %s subcommands listed", p.name)
			}
			seen := map[string]bool{}
			for _, c := range p.commands {
				if seen[c.name] || c.run == nil || c.about == "" {
					t.Errorf("%s %s: listed twice, or without a body or a line of usage", p.name, c.name)
				}
				seen[c.name] = true
				line := regexp.MustCompile(`(?m)^(usage: | {7})` + p.name + ` ` + regexp.QuoteMeta(c.name) + `\b.*  ` + regexp.QuoteMeta(c.about) + `$`)
				if !line.MatchString(usage) {
					t.Errorf("%s -h has no line for %q; got:\n%s", p.name, c.name, usage)
				}
			}
		})
	}
}

func TestUsageText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    *program
		want string
	}{
		{enqueueProgram(), `usage: enqueue [flags] FILE...           enqueue lists (CSV, JSON, NDJSON; "-" is stdin) as batches
       enqueue --dry-run FILE...         report what enqueueing would do; writes nothing
       enqueue status BATCH [--wait]     counts of a batch's rows by status (and by tenant)
       enqueue results BATCH             one line per row (--format table|csv|json, --status S,..., --tenant T)
       enqueue batches [--limit N]       recent batches with their counts
       enqueue retry BATCH [--wait]      run the failed and canceled rows again
       enqueue cancel BATCH              stop the rows not yet final
       enqueue revert BATCH [--wait]     delete the assignments the batch created
       enqueue prune --older-than AGE    remove finished batches enqueued longer ago than AGE (90d, 12h, 0s)
       enqueue schedule add|list|remove  enqueue a list at cron times (enqueue schedule -h)
       enqueue list KIND                 the tenant's configurations, groups or filters, in the input's columns

BATCH is a batch id or its first 8 or more characters.

Every file is validated whole before anything is written; one invalid row
rejects them all (exit 1). Rows that name no tenant_id go to the default
tenant, AZURE_TENANT_ID, which must then be a GUID. On success each batch id
is printed on its own line of stdout, the last line being the last file's
batch.

flags:
`},
		{workerProgram(), `usage: worker                     work queued rows until SIGINT or SIGTERM
       worker migrate             apply River's and bulkassign's migrations (idempotent)
       worker check [--tenant T]  sign in, print the tenant, the app and its permissions, do one read
       worker login               sign in as yourself (device code) for AZURE_SIGNIN=delegated
       worker logout              delete the stored sign-in

Settings come from the environment; see the README.

flags:
`},
	}
	for _, tt := range tests {
		if got := tt.p.usage(); got != tt.want {
			t.Errorf("%s usage:\n%s\nwant:\n%s", tt.p.name, got, tt.want)
		}
		if got := help(t, tt.p); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s -h:\n%s\nwant it to start with the usage", tt.p.name, got)
		}
	}
}

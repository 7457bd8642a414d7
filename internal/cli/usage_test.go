package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/config"
)

// TestUsageListsEverySubcommand keeps -h in step with the registered
// subcommands: a command added in its own file's init must be named in
// the usage too.
func TestUsageListsEverySubcommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prog     string
		main     func(context.Context, *Env, []string) int
		commands map[string]func(context.Context, *Env, []string) error
	}{
		{"enqueue", Enqueue, enqueueCommands},
		{"worker", Worker, workerCommands},
	}
	for _, tt := range tests {
		t.Run(tt.prog, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			env := &Env{Getenv: config.MapEnv(nil), Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}
			if code := tt.main(context.Background(), env, []string{"-h"}); code != ExitOK {
				t.Fatalf("%s -h exited %d, want %d; stderr:\n%s", tt.prog, code, ExitOK, &stderr)
			}
			usage := stderr.String()
			if len(tt.commands) == 0 {
				t.Fatalf("no %s subcommands registered", tt.prog)
			}
			for name := range tt.commands {
				line := regexp.MustCompile(`(?m)^(usage: | {7})` + tt.prog + ` ` + regexp.QuoteMeta(name) + `\b`)
				if !line.MatchString(usage) {
					t.Errorf("%s -h has no line for %q; got:\n%s", tt.prog, name, usage)
				}
			}
		})
	}
}

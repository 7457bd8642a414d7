package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestWaitSaysWhyWithoutWorker: with no worker running, --wait says so
// (stall.Why) instead of printing 0.0 rows/s in silence.
func TestWaitSaysWhyWithoutWorker(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	path := testenv.WriteFile(t, "a.csv", testenv.GroupCSV(4, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	env := &cli.Env{Getenv: h.Env(nil), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code := cli.Enqueue(ctx, env, []string{path, "--wait", "--progress-interval", "1s"})
	if code == cli.ExitOK || !strings.Contains(errb.String(), "no worker is running: 4 rows wait for one (start one with `worker`)") {
		t.Fatalf("exit %d, stderr:\n%s\nwant the reason that no worker runs", code, errb.String())
	}
}

// Command worker: see the README, or run `worker -h`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulkassign/bulkassign/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Worker(ctx, cli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}

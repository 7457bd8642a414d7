package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/batchop"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/store"
)

const pruneUsage = `usage: enqueue prune --older-than AGE [--dry-run] [--format table|csv|json]

Removes the finished batches enqueued more than AGE ago (90d, 12h, 0s):
their rows, history and River jobs go too, and every command and the
assignment_results view behave as if they had never existed. A batch with a
row or revert not final, a job still running, or that is the latest run of
a schedule is kept. Rows are deleted a few thousand per transaction, so
workers of other batches never wait on a prune. One line per removed batch
on stdout; what was kept, on stderr. BULKASSIGN_RETENTION has the workers'
leader do this once a day.

flags:
`

var pruneColumns = []string{"batch_id", "source", "enqueued_at", "rows", "jobs"}

func enqueuePrune(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue prune", pruneUsage)
	olderThan := fs.String("older-than", "", "remove finished batches enqueued longer ago than this (required; e.g. 90d, 12h, 0s)")
	dryRun := fs.Bool("dry-run", false, "list what would be removed; remove nothing")
	format := fs.String("format", "table", "output format: table, csv or json")
	if err := parseNoArgs(fs, args, "prune"); err != nil {
		return err
	}
	if *olderThan == "" {
		return usageError("-older-than is required: give an age such as 90d, 12h or 0s")
	}
	age, err := config.ParseAge(*olderThan)
	if err != nil {
		return usageError("-older-than: %v", err)
	}
	if err := checkFormat("-format", *format); err != nil {
		return err
	}
	db, err := openMigrated(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()

	var write func(store.PrunedBatch) error
	var flush func() error
	if *format == "table" {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BATCH\tENQUEUED\tROWS\tJOBS\tSOURCE")
		write = func(b store.PrunedBatch) error {
			_, err := fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", b.ID, b.EnqueuedAt.Local().Format("2006-01-02 15:04:05"),
				b.Items, b.Jobs, oneLine(b.Source))
			return err
		}
		flush = tw.Flush
	} else {
		rw := newRecordWriter(env.Stdout, *format, pruneColumns)
		write = func(b store.PrunedBatch) error {
			return rw.write([]any{b.ID, b.Source, b.EnqueuedAt.UTC(), b.Items, b.Jobs})
		}
		flush = rw.close
	}
	var writeErr error
	rep, err := batchop.Prune(ctx, db, age, *dryRun, func(b store.PrunedBatch) {
		if writeErr == nil {
			writeErr = write(b)
		}
	})
	if ferr := flush(); writeErr == nil {
		writeErr = ferr
	}
	if err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(env.Stderr, "enqueue: prune: %s %d batches (%d rows, %d River jobs) enqueued before %s (older than %s)\n",
		verb, len(rep.Removed), rep.Items(), rep.Jobs(), rep.Cutoff.Local().Format("2006-01-02 15:04:05"), *olderThan)
	if kept := rep.Unfinished + rep.LatestRuns + rep.JobsRunning; kept > 0 {
		fmt.Fprintf(env.Stderr, "enqueue: prune: kept %d older batches: %d not finished, %d the latest run of a schedule, %d with jobs still running\n",
			kept, rep.Unfinished, rep.LatestRuns, rep.JobsRunning)
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/store"
)

var batchColumns = []string{"batch_id", "source", "enqueued_at", "rows", "duplicate_rows", "queued", "running", "retrying",
	"created", "already_assigned", "failed", "canceled", "revert_pending", "reverted", "revert_failed", "revert_canceled", "tenants", "created_by",
	"removed", "not_assigned", "waiting", "cancelling"}

// finalColumns are the final statuses the tables count, as headed there:
// the one list behind `batches` and the per-tenant counts of `status`.
var finalColumns = []struct {
	head   string
	status assign.Status
}{
	{"CREATED", assign.StatusCreated}, {"ALREADY", assign.StatusAlreadyAssigned}, {"REMOVED", assign.StatusRemoved},
	{"NOT_ASSIGNED", assign.StatusNotAssigned}, {"FAILED", assign.StatusFailed}, {"CANCELED", assign.StatusCanceled},
}

// finalHeads is the tables' headings of finalColumns, tab-separated.
func finalHeads() string {
	h := make([]string, len(finalColumns))
	for i, c := range finalColumns {
		h[i] = c.head
	}
	return strings.Join(h, "\t")
}

// finalCells is c's counts of finalColumns, tab-separated.
func finalCells(c store.StatusCounts) string {
	v := make([]string, len(finalColumns))
	for i, col := range finalColumns {
		v[i] = strconv.Itoa(c[col.status])
	}
	return strings.Join(v, "\t")
}

const batchesUsage = `usage: enqueue batches [--limit N] [--format table|csv|json]

Recent batches, newest first, with their rows counted by status. In the
table, a batch of more than one tenant is followed by a line per tenant;
csv and json count its tenants (enqueue status BATCH splits the counts).

flags:
`

func enqueueBatches(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue batches", batchesUsage)
	limit := fs.Int("limit", 20, "how many batches to list")
	format := fs.String("format", "table", "output format: table, csv or json")
	if err := parseNoArgs(fs, args, "batches"); err != nil {
		return err
	}
	if *limit <= 0 {
		return usageError("-limit %d: must be a positive number", *limit)
	}
	if err := checkFormat("-format", *format); err != nil {
		return err
	}
	db, err := openDB(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := store.ListBatches(ctx, db, *limit)
	if err != nil {
		return err
	}
	if *format != "table" {
		rw := newRecordWriter(env.Stdout, *format, batchColumns)
		for _, s := range list {
			c, r := s.Counts, s.Reverts
			pending := r.Total() - r.Final()
			err := rw.write([]any{s.ID, s.Source, s.CreatedAt.UTC(), s.RowCount, s.DuplicateRows,
				c[assign.StatusQueued], c[assign.StatusRunning], c[assign.StatusRetrying], c[assign.StatusCreated],
				c[assign.StatusAlreadyAssigned], c[assign.StatusFailed], c[assign.StatusCanceled],
				pending, r[assign.RevertReverted], r[assign.RevertFailed], r[assign.RevertCanceled], len(s.Tenants), optional(s.CreatedBy),
				c[assign.StatusRemoved], c[assign.StatusNotAssigned], c[assign.StatusWaiting], c[assign.StatusCancelling]})
			if err != nil {
				return err
			}
		}
		return rw.close()
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tENQUEUED\tROWS\tPENDING\t"+finalHeads()+"\tREVERTED\tBY\tSOURCE")
	for _, s := range list {
		c := s.Counts
		pending := c.Total() - c.Final()
		reverted := "-"
		if s.Reverts.Total() > 0 {
			reverted = fmt.Sprintf("%d/%d", s.Reverts[assign.RevertReverted], s.Reverts.Total())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.CreatedAt.Local().Format("2006-01-02 15:04:05"),
			s.RowCount, pending, finalCells(c), reverted, orDash(oneLine(s.CreatedBy)), oneLine(s.Source))
		if len(s.Tenants) < 2 {
			continue
		}
		for _, t := range s.Tenants.Tenants() {
			c := s.Tenants[t]
			fmt.Fprintf(tw, "  tenant %s\t\t%d\t%d\t%s\n", orDash(t), c.Total(), c.Total()-c.Final(), finalCells(c))
		}
	}
	return tw.Flush()
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/batchop"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// enqueueLists is enqueue without a subcommand: it enqueues lists, or with
// --dry-run reports what enqueueing them would do.
func enqueueLists(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	format := fs.String("format", "", "input format for every file: csv, json, ndjson (default: by extension; stdin is sniffed)")
	wf := addWaitFlags(fs, "the batches")
	dryRun := fs.Bool("dry-run", false, "validate, read the existing assignments and report per row what would happen; write nothing")
	output := fs.String("output", "table", "with -dry-run: report format, table, csv or json")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wf.check(); err != nil {
		return err
	}
	if *dryRun && *wf.wait {
		return usageError("-dry-run and -wait do not go together: a dry run enqueues nothing")
	}
	if err := checkFormat("-output", *output); err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return usageError("no input file given")
	}
	// Rows that name no tenant go to AZURE_TENANT_ID, which must then be
	// a GUID; rows that name theirs do not need it.
	gcfg, err := config.LoadGraph(env.Getenv, false)
	if err != nil {
		return err
	}
	var inputs []jobs.Input
	stdinUsed := false
	creator := cliCreator(env)
	for _, name := range files {
		f, err := intake.DetectFormat(name, *format)
		if err != nil {
			return usageError("%v", err)
		}
		in := jobs.Input{Name: name, Format: f, DefaultTenant: gcfg.TenantID, CreatedBy: creator}
		if name == "-" {
			if stdinUsed {
				return usageError("stdin (-) given twice")
			}
			stdinUsed = true
			in.Reader = env.Stdin
		} else {
			fh, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("%s: %w", name, errors.Unwrap(err))
			}
			defer fh.Close()
			in.Reader = fh
		}
		inputs = append(inputs, in)
	}
	if *dryRun {
		return enqueueDryRun(ctx, env, inputs, *output)
	}

	db, err := openMigrated(ctx, env, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	out, err := batchop.Enqueue(ctx, db, inputs)
	var invalid *jobs.InvalidInputError
	if errors.As(err, &invalid) {
		for _, r := range invalid.Results {
			printWarnings(env.Stderr, r)
			if e := r.Err(); e != nil {
				fmt.Fprintln(env.Stderr, e.Error())
			}
		}
		return &exitError{ExitFailed, errors.New("nothing was enqueued: fix the rows above and run again")}
	}
	var noTenant *jobs.NoTenantError
	if errors.As(err, &noTenant) {
		return defaultTenantError(noTenant, "nothing was enqueued")
	}
	if err != nil {
		return err
	}
	for _, e := range out {
		printWarnings(env.Stderr, e.Intake)
		fmt.Fprintf(env.Stderr, "enqueue: %s: %d rows enqueued as batch %s", e.Batch.Source, e.Batch.RowCount, e.Batch.ID)
		if e.Batch.DuplicateRows > 0 {
			fmt.Fprintf(env.Stderr, " (%d duplicate rows skipped)", e.Batch.DuplicateRows)
		}
		fmt.Fprintln(env.Stderr)
	}
	for _, e := range out {
		fmt.Fprintln(env.Stdout, e.Batch.ID)
	}
	if *wf.wait {
		batches := make([]*store.Batch, len(out))
		for i, e := range out {
			batches[i] = e.Batch
		}
		return waitForBatches(ctx, env, db, batches, *wf.interval)
	}
	return nil
}

// defaultTenantError is the one line (exit 2) for a row that names no
// tenant when AZURE_TENANT_ID is not a tenant id to put it in.
func defaultTenantError(e *jobs.NoTenantError, outcome string) error {
	row := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.DefaultTenant == "" {
		return &config.Error{Var: "AZURE_TENANT_ID", Msg: fmt.Sprintf(
			"is not set, and %s names no tenant: rows without a tenant_id (tenantId in JSON) go to the default tenant, AZURE_TENANT_ID; set it to that tenant's id (a GUID), or give every row a tenant; %s",
			row, outcome)}
	}
	return &config.Error{Var: "AZURE_TENANT_ID", Msg: fmt.Sprintf(
		"%q is not a tenant id (a GUID), and %s names no tenant: rows without a tenant_id (tenantId in JSON) go to the default tenant, AZURE_TENANT_ID, which must then be the tenant's GUID, not a domain name; set it so, or give every row a tenant; %s",
		e.DefaultTenant, row, outcome)}
}

func printWarnings(w io.Writer, r *intake.Summary) {
	for _, l := range r.WarningLines() {
		fmt.Fprintln(w, l)
	}
}

func enqueueStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue status", "usage: enqueue status BATCH [--wait]\n")
	wf := addWaitFlags(fs, "the batch")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wf.check(); err != nil {
		return err
	}
	db, b, err := openBatch(ctx, env, "status", pos, openDB, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if *wf.wait {
		return statusWait(ctx, env, db, b, *wf.interval)
	}
	tenants, err := store.CountByTenant(ctx, db, b.ID)
	if err != nil {
		return err
	}
	return printStatus(ctx, env, db, b, tenants)
}

// writeCounts prints one line per status, then the total and how many are final.
func writeCounts(w io.Writer, counts store.StatusCounts) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range assign.Statuses {
		fmt.Fprintf(tw, "%s\t%d\t\n", s, counts[s])
	}
	fmt.Fprintf(tw, "%s\t%d\t\n", strings.Repeat("-", 16), counts.Total())
	fmt.Fprintf(tw, "final\t%d\t\n", counts.Final())
	tw.Flush()
}

// writeTenantCounts prints a batch's rows counted by tenant, one line a
// tenant, when they are of more than one tenant (a batch of one tenant
// says nothing more than writeCounts). Rows enqueued before rows named a
// tenant are counted under "-".
func writeTenantCounts(w io.Writer, tc store.TenantCounts) {
	if len(tc) < 2 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tROWS\tPENDING\t"+finalHeads())
	for _, t := range tc.Tenants() {
		c := tc[t]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", orDash(t), c.Total(), c.Total()-c.Final(), finalCells(c))
	}
	tw.Flush()
}

// cliCreator is the created_by of the batches this command enqueues: the
// OS user and host, user@host ($USER, else the account's name).
func cliCreator(env *Env) string {
	name, _ := env.Getenv("USER")
	if name = strings.TrimSpace(name); name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	if name == "" {
		name = "unknown-user"
	}
	return name + "@" + host
}

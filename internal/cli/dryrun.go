package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/dryrun"
	"github.com/bulkassign/bulkassign/internal/jobs"
)

var dryRunColumns = []string{"source", "line", "configuration_id", "path", "target_type", "group_id", "collection_id",
	"filter_id", "filter_type", "result", "assignment_id", "error", "action", "configuration_name", "group_name", "filter_name"}

// enqueueDryRun validates inputs, has package dryrun read the existing
// assignments of every configuration path they name and reports per row
// what enqueueing would do. It writes nothing: not to Graph, not to the
// queue (the read limit's row aside).
func enqueueDryRun(ctx context.Context, env *Env, inputs []jobs.Input, output string) error {
	plan, err := dryrun.NewPlan(inputs)
	if err != nil {
		return err
	}
	plan.CheckGroups = true
	for _, r := range plan.Intake {
		printWarnings(env.Stderr, r)
		if e := r.Err(); e != nil {
			fmt.Fprintln(env.Stderr, e.Error())
		}
	}
	if plan.Invalid() {
		return &exitError{ExitFailed, errors.New("dry run stopped: fix the rows above and run again")}
	}
	if plan.NoTenant != nil {
		return defaultTenantError(plan.NoTenant, "enqueue would refuse the list, and the dry run stopped")
	}

	wcfg, err := config.LoadWorker(env.Getenv)
	if err != nil {
		return err
	}
	gcfg, err := config.LoadGraph(env.Getenv, true)
	if err != nil {
		return err
	}
	// The database holds the fleet's read limit, which a dry run shares
	// with the workers.
	db, err := openMigrated(ctx, env, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := dryrun.Run(ctx, db, gcfg, wcfg, plan)
	if err != nil {
		return err
	}
	// The tenant is shown when some row is not the default tenant's.
	def := inputs[0].DefaultTenantID()
	tenants := slices.ContainsFunc(rep.Rows, func(o dryrun.Outcome) bool { return o.TenantID != def })
	return reportDryRun(env, rep, len(inputs) > 1, tenants, output)
}

func reportDryRun(env *Env, rep *dryrun.Report, manyFiles, tenants bool, output string) error {
	if output == "table" {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		header := "LINE\tCONFIGURATION\tPATH\tTARGET\tRESULT\tASSIGNMENT\tERROR"
		if tenants {
			header = "TENANT\t" + header
		}
		if manyFiles {
			header = "FILE\t" + header
		}
		fmt.Fprintln(tw, header)
		for i := range rep.Rows {
			r := &rep.Rows[i]
			shown := r.Shown() // with Graph's names beside the ids
			line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s", r.Line, oneLine(shown.ConfigurationLabel()), orDash(string(r.Spec.Path)),
				oneLine(shown.Label()), r.Result, orDash(r.AssignmentID), orDash(oneLine(r.Why)))
			if tenants {
				line = oneLine(r.TenantLabel()) + "\t" + line
			}
			if manyFiles {
				line = oneLine(r.Source) + "\t" + line
			}
			fmt.Fprintln(tw, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		cols := dryRunColumns
		if tenants {
			cols = slices.Concat(cols[:2], []string{"tenant_id"}, cols[2:])
		}
		rw := newRecordWriter(env.Stdout, output, cols)
		for i := range rep.Rows {
			r := &rep.Rows[i]
			t := r.Spec.Target
			vals := []any{r.Source, r.Line, r.Spec.ConfigurationID, optional(string(r.Spec.Path)), string(t.Type),
				optional(t.GroupID), optional(t.CollectionID), optional(t.FilterID), optional(string(t.FilterType)),
				string(r.Result), optional(r.AssignmentID), optional(r.Why), r.Spec.Action.String(), optional(r.Spec.Names.Configuration),
				optional(r.Spec.Names.Group), optional(r.Spec.Names.Filter)}
			if tenants {
				vals = slices.Concat(vals[:2], []any{r.TenantID}, vals[2:])
			}
			if err := rw.write(vals); err != nil {
				return err
			}
		}
		if err := rw.close(); err != nil {
			return err
		}
	}
	c := rep.Counts
	unsupported := ""
	if n := c[dryrun.UnsupportedPolicyType]; n > 0 {
		unsupported = fmt.Sprintf(", %d on policies that are not device configurations (not supported)", n)
	}
	// Results a list without names or removals never has are told only
	// when counted.
	more := ""
	for _, m := range []struct {
		r    dryrun.Result
		what string
	}{{dryrun.WouldRemove, "would be removed"}, {dryrun.NotAssigned, "to remove but not assigned"},
		{dryrun.Conflict, "conflict with what the tenant holds (see ERROR)"},
		{dryrun.NameNotFound, "name something that does not exist"}, {dryrun.NameAmbiguous, "give an ambiguous name"},
		{dryrun.GroupNotFound, "give a group id the tenant does not have"}} {
		if n := c[m.r]; n > 0 {
			more += fmt.Sprintf(", %d %s", n, m.what)
		}
	}
	names := ""
	if rep.Names > 0 {
		names = fmt.Sprintf(", %d names looked up", rep.Names)
	}
	if rep.GroupReads > 0 {
		reads := "reads"
		if rep.GroupReads == 1 {
			reads = "read"
		}
		names += fmt.Sprintf(", %d %s of group ids", rep.GroupReads, reads)
	}
	for _, why := range rep.GroupsNotChecked {
		fmt.Fprintf(env.Stderr, "enqueue: dry run: group ids not checked in %s\n", oneLine(why))
	}
	fmt.Fprintf(env.Stderr, "enqueue: dry run: %d rows: %d would be created, %d already assigned%s, %d on configurations that do not exist%s, %d not checked; %d assignment lists read%s, nothing written\n",
		len(rep.Rows), c[dryrun.WouldCreate], c[dryrun.AlreadyAssigned], more, c[dryrun.ConfigurationNotFound], unsupported, c[dryrun.ReadFailed], rep.Lists, names)
	if n := c[dryrun.ReadFailed]; n > 0 {
		return fmt.Errorf("dry run: %d rows could not be checked: their assignment lists or names could not be read (see ERROR)", n)
	}
	return nil
}

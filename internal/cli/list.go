package cli

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/dryrun"
)

const listUsage = `usage: enqueue list KIND [--tenant TENANT] [--format table|csv|json]

KIND is configurations, groups or filters.

Writes what the tenant (default AZURE_TENANT_ID) holds: its device
configurations, groups or assignment filters, id and display name, in
Graph's order, read within the tenant's read limit as the workers read.
csv and json use the input's own columns (configuration_id and
configuration_name, group_id and group_name, filter_id and filter_name,
and tenant_id with --tenant), so the rows paste into a list:

  enqueue list groups --format csv > groups.csv

Groups need Group.Read.All (see worker check).

flags:
`

// listColumns are the input columns (intake.Columns) each collection's
// id and name go in.
var listColumns = map[string][2]string{
	"configurations": {"configuration_id", "configuration_name"},
	"groups":         {"group_id", "group_name"},
	"filters":        {"filter_id", "filter_name"},
}

func enqueueList(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue list", listUsage)
	tenant := fs.String("tenant", "", "the tenant to read (its id, a GUID); default AZURE_TENANT_ID")
	format := fs.String("format", "table", "output format: table, csv or json")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("enqueue list takes one of configurations, groups, filters")
	}
	cols, ok := listColumns[pos[0]]
	if !ok {
		return usageError("enqueue list %q: want configurations, groups or filters", pos[0])
	}
	switch *format {
	case "table", "csv", "json":
	default:
		return usageError("-format %q: want table, csv or json", *format)
	}
	if *tenant != "" {
		if *tenant, err = assign.ParseGUID("-tenant", *tenant); err != nil {
			return usageError("%v: give the tenant's id", err)
		}
	}
	// As the dry run: the read limit's settings and the sign-in.
	wcfg, err := config.LoadWorker(env.Getenv)
	if err != nil {
		return err
	}
	gcfg, err := config.LoadGraph(env.Getenv, true)
	if err != nil {
		return err
	}
	db, err := openMigrated(ctx, env, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	objs, err := dryrun.List(ctx, db, gcfg, wcfg, *tenant, pos[0])
	if err != nil {
		return err
	}
	if *format == "table" {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME")
		for _, o := range objs {
			fmt.Fprintf(tw, "%s\t%s\n", o.ID, oneLine(o.DisplayName))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		header := cols[:]
		if *tenant != "" {
			header = append(slices.Clone(header), "tenant_id")
		}
		rw := newRecordWriter(env.Stdout, *format, header)
		for _, o := range objs {
			vals := []any{o.ID, o.DisplayName}
			if *tenant != "" {
				vals = append(vals, *tenant)
			}
			if err := rw.write(vals); err != nil {
				return err
			}
		}
		if err := rw.close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stderr, "enqueue: list %s: %d read\n", pos[0], len(objs))
	return nil
}

package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/export"
	"github.com/bulkassign/bulkassign/internal/store"
)

const resultsUsage = `usage: enqueue results BATCH [--format table|csv|json|input] [--status STATUS[,STATUS...]] [--tenant TENANT]

One line per row of the batch, in input order. csv and json carry every
column of the assignment_results view; csv cells that a spreadsheet would
run as a formula are prefixed with a single quote. The table has a TENANT
column when the batch spans more than one tenant. input writes the rows as
an input file (CSV with enqueue's columns, each row's tenant kept), which
enqueue reads unchanged:

  enqueue results BATCH --status failed --format input > failed.csv
  enqueue failed.csv

flags:
`

func enqueueResults(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue results", resultsUsage)
	format := fs.String("format", "table", "output format: table, csv, json or input")
	var statuses statusList
	fs.Var(&statuses, "status", "only rows with this status; comma-separated or repeated ("+joinStatuses()+")")
	tenant := fs.String("tenant", "", "only rows of this tenant: its id, or the first 8 or more characters of it (as BATCH)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch *format {
	case "table", "csv", "json", "input":
	default:
		return usageError("-format %q: want table, csv, json or input", *format)
	}
	filter := store.ResultFilter{Statuses: statuses}
	db, b, err := openBatch(ctx, env, "results", pos, openDB, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if *tenant != "" {
		tenants, err := store.CountByTenant(ctx, db, b.ID)
		if err != nil {
			return err
		}
		if filter.TenantID, err = tenantOf(*tenant, tenants.Tenants()); err != nil {
			return usageError("%v", err)
		}
	}
	switch *format {
	case "input":
		return export.Inputs(ctx, db, b.ID, filter, env.Stdout)
	case "csv", "json":
		return export.Results(ctx, db, b.ID, filter, env.Stdout, *format)
	}

	reverts, err := store.CountReverts(ctx, db, b.ID)
	if err != nil {
		return err
	}
	withRevert := reverts.Total() > 0
	tenants, err := store.CountByTenant(ctx, db, b.ID)
	if err != nil {
		return err
	}
	withTenant := len(tenants) > 1
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	header := "LINE\tCONFIGURATION\tPATH\tTARGET\tSTATUS\tHTTP\tASSIGNMENT\tERROR"
	if withTenant {
		header = "TENANT\t" + header
	}
	if withRevert {
		header += "\tREVERT"
	}
	fmt.Fprintln(tw, header)
	err = store.ExportResultsWhere(ctx, db, b.ID, filter, func(r *store.ExportRow) error {
		line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Line, oneLine(r.ConfigurationLabel()), orDash(r.Path),
			r.TargetLabel(), r.Status, httpLabel(r.HTTPStatus), orDash(r.AssignmentID), orDash(oneLine(r.ErrorLabel())))
		if withTenant {
			line = orDash(oneLine(r.TenantLabel())) + "\t" + line
		}
		if withRevert {
			line += "\t" + orDash(revertLabel(r))
		}
		_, err := fmt.Fprintln(tw, line)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

// statusList is the -status flag: statuses, comma-separated or repeated.
type statusList []assign.Status

func (l *statusList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = string(v)
	}
	return strings.Join(s, ",")
}

func (l *statusList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		st := assign.Status(strings.ToLower(strings.TrimSpace(f)))
		if !slices.Contains(assign.Statuses, st) {
			return fmt.Errorf("%q is not a status (%s)", f, joinStatuses())
		}
		if !slices.Contains(*l, st) {
			*l = append(*l, st)
		}
	}
	return nil
}

func joinStatuses() string {
	s := make([]string, len(assign.Statuses))
	for i, v := range assign.Statuses {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func checkFormat(flagName, f string) error {
	switch f {
	case "table", "csv", "json":
		return nil
	}
	return usageError("%s %q: want table, csv or json", flagName, f)
}

func revertLabel(r *store.ExportRow) string {
	if r.RevertStatus == assign.RevertNone {
		return ""
	}
	s := string(r.RevertStatus)
	if r.RevertHTTPStatus != 0 {
		s += " " + strconv.Itoa(r.RevertHTTPStatus)
	}
	switch {
	case r.RevertErrorCode != "" && r.RevertError != "":
		s += " " + r.RevertErrorCode + ": " + oneLine(r.RevertError)
	case r.RevertErrorCode != "":
		s += " " + r.RevertErrorCode
	case r.RevertError != "":
		s += " " + oneLine(r.RevertError)
	}
	return s
}

// oneLine keeps a table cell on its line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func httpLabel(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// tenantOf is the one of a batch's tenants that s names: its id, or a
// prefix of it (at least 8 characters, as a BATCH prefix) that names
// exactly one of them.
func tenantOf(s string, tenants []string) (string, error) {
	id, err := assign.ParseGUID("-tenant", s)
	if err == nil {
		return id, nil
	}
	p := strings.ToLower(strings.TrimSpace(s))
	if strings.Trim(p, "0123456789abcdef-") != "" {
		return "", fmt.Errorf("%v: give the tenant's id, or its first 8 or more characters", err)
	}
	if len(p) < 8 {
		return "", fmt.Errorf("-tenant %q: give the tenant's id, or its first 8 or more characters", s)
	}
	var match []string
	for _, t := range tenants {
		if strings.HasPrefix(t, p) {
			match = append(match, t)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return "", fmt.Errorf("-tenant %q starts no tenant id of this batch (its tenants: %s)", s, strings.Join(tenants, ", "))
	}
	return "", fmt.Errorf("-tenant %q starts %d tenant ids of this batch (%s): give more of it", s, len(match), strings.Join(match, ", "))
}

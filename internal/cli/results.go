package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/bulkassign/bulkassign/internal/store"
)

func init() {
	enqueueCommands["results"] = enqueueResults
}

func enqueueResults(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue results", "usage: enqueue results BATCH\n")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("results takes one batch id")
	}
	pool, err := openDB(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	b, err := store.GetBatch(ctx, pool, pos[0])
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tCONFIGURATION\tPATH\tTARGET\tSTATUS\tHTTP\tASSIGNMENT\tERROR")
	err = store.ListResults(ctx, pool, b.ID, nil, func(r *store.Result) error {
		_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Line, r.ConfigurationID, orDash(r.Path),
			targetLabel(r), r.Status, httpLabel(r.HTTPStatus), orDash(r.AssignmentID), orDash(errorLabel(r)))
		return err
	})
	if err != nil {
		return err
	}
	return tw.Flush()
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

// targetLabel is a compact target: type, id and filter.
func targetLabel(r *store.Result) string {
	s := r.TargetType
	switch {
	case r.GroupID != "":
		s += ":" + r.GroupID
	case r.CollectionID != "":
		s += ":" + r.CollectionID
	}
	if r.FilterID != "" {
		s += " (" + r.FilterType + " " + r.FilterID + ")"
	}
	return s
}

func errorLabel(r *store.Result) string {
	switch {
	case r.ErrorCode != "" && r.ErrorMessage != "":
		return r.ErrorCode + ": " + r.ErrorMessage
	case r.ErrorCode != "":
		return r.ErrorCode
	}
	return r.ErrorMessage
}

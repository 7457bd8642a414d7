package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/ratelimit"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// What a dry run finds for a row.
const (
	dryWouldCreate     = "would_create"
	dryAlreadyAssigned = "already_assigned"
	dryNoConfiguration = "configuration_not_found"
	dryReadFailed      = "read_failed"
)

// dryReaders is how many lists a dry run reads at once; the fleet's read
// limit (GRAPH_READ_RATE) paces them.
const dryReaders = 4

var dryRunColumns = []string{"source", "line", "configuration_id", "path", "target_type", "group_id", "collection_id",
	"filter_id", "filter_type", "result", "assignment_id", "error"}

type dryRow struct {
	source string
	line   int
	spec   assign.Spec
}

type dryKey struct {
	cfg  string
	path assign.Path
}

// dryList is what Graph said of one configuration path.
type dryList struct {
	found bool
	keys  map[string]string // target key → assignment id
	err   string            // the read failed: why
}

// enqueueDryRun validates inputs, reads the existing assignments of every
// configuration path they name (once each, within the fleet's read limit)
// and reports per row what enqueueing would do. It writes nothing: not to
// Graph, not to the queue (the read limit's row aside).
func enqueueDryRun(ctx context.Context, env *Env, inputs []jobs.Input, output string) error {
	var (
		rows    []dryRow
		keys    []dryKey
		seen    = map[dryKey]bool{}
		results []*intake.Result
		invalid bool
	)
	for _, in := range inputs {
		res, err := intake.Reader{Name: in.Name, Format: in.Format}.Read(in.Reader, func(r intake.Row) error {
			rows = append(rows, dryRow{source: in.Name, line: r.Line, spec: r.Spec})
			k := dryKey{r.Spec.ConfigurationID, r.Spec.Path}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		results = append(results, res)
		invalid = invalid || res.Err() != nil
	}
	for _, r := range results {
		printWarnings(env.Stderr, r)
		if e := r.Err(); e != nil {
			fmt.Fprintln(env.Stderr, e.Error())
		}
	}
	if invalid {
		return &exitError{ExitFailed, errors.New("dry run stopped: fix the rows above and run again")}
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
	// with the workers so that it never pushes the tenant into throttling.
	db, err := openMigrated(ctx, env, 4)
	if err != nil {
		return err
	}
	defer db.Close()
	tokens, err := auth.NewTokenSource(ctx, gcfg, db)
	if err != nil {
		return err
	}
	gc, err := worker.NewGraphClient(gcfg, tokens, nil)
	if err != nil {
		return err
	}
	lists, err := dryReadLists(ctx, gc, worker.NewReadLimiter(db.Pool(), wcfg), keys)
	if err != nil {
		return err
	}
	return reportDryRun(env, rows, lists, len(inputs) > 1, output)
}

// dryReadLists reads every list, dryReaders at a time.
func dryReadLists(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, keys []dryKey) (map[dryKey]*dryList, error) {
	out := make(map[dryKey]*dryList, len(keys))
	var mu sync.Mutex
	work := make(chan dryKey)
	var wg sync.WaitGroup
	for range min(dryReaders, len(keys)) {
		wg.Go(func() {
			for k := range work {
				l := dryReadList(ctx, gc, reads, k)
				mu.Lock()
				out[k] = l
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dry run interrupted: %w", err)
	}
	return out, nil
}

// dryReadList reads one list, waiting out throttling and retrying transient
// failures a few times (a dry run has no queue to come back later).
func dryReadList(ctx context.Context, gc *graph.Client, reads *ratelimit.Limiter, k dryKey) *dryList {
	const maxErrors, maxThrottles = 4, 20
	wait := func(ctx context.Context) error {
		_, err := reads.Wait(ctx, 5*time.Minute)
		return err
	}
	var errs, throttles int
	for {
		found, resp := gc.ListAssignments(ctx, k.cfg, k.path, wait)
		switch {
		case resp.Err == nil && resp.StatusCode == http.StatusOK:
			l := &dryList{found: true, keys: make(map[string]string, len(found))}
			for _, a := range found {
				l.keys[a.Target.Key()] = a.ID
			}
			return l
		case resp.StatusCode == http.StatusNotFound:
			return &dryList{err: fmt.Sprintf("HTTP 404 %s (request-id %s)", resp.ErrorCode, resp.RequestID)}
		case ctx.Err() != nil:
			return &dryList{found: true, err: ctx.Err().Error()}
		}
		var delay time.Duration
		switch dec := graph.Classify(resp); dec.Action {
		case graph.Throttle:
			if throttles++; throttles > maxThrottles {
				return &dryList{found: true, err: "still throttled after " + fmt.Sprint(maxThrottles) + " tries: " + resp.Error()}
			}
			pause, err := reads.Throttled(ctx, resp.RetryAfter)
			if err != nil {
				return &dryList{found: true, err: err.Error()}
			}
			delay = pause
		case graph.Retry, graph.Reconcile:
			if errs++; errs >= maxErrors {
				return &dryList{found: true, err: fmt.Sprintf("gave up after %d failed reads: %s", errs, resp.Error())}
			}
			delay = max(time.Second<<(errs-1), resp.RetryAfter)
		default:
			msg := resp.Error()
			if dec.SignInAgain || resp.StatusCode == http.StatusForbidden {
				msg += " (" + dec.Why + ")"
			}
			return &dryList{found: true, err: msg}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// dryOutcome is what a row would come to, given the lists.
func dryOutcome(r *dryRow, lists map[dryKey]*dryList) (result, assignmentID, why string) {
	l := lists[dryKey{r.spec.ConfigurationID, r.spec.Path}]
	switch {
	case l == nil:
		return dryReadFailed, "", "not read"
	case !l.found:
		return dryNoConfiguration, "", l.err
	case l.err != "":
		return dryReadFailed, "", l.err
	}
	if id, ok := l.keys[r.spec.Target.Key()]; ok {
		return dryAlreadyAssigned, id, ""
	}
	return dryWouldCreate, "", ""
}

func reportDryRun(env *Env, rows []dryRow, lists map[dryKey]*dryList, manyFiles bool, output string) error {
	counts := map[string]int{}
	if output == "table" {
		tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
		header := "LINE\tCONFIGURATION\tPATH\tTARGET\tRESULT\tASSIGNMENT\tERROR"
		if manyFiles {
			header = "FILE\t" + header
		}
		fmt.Fprintln(tw, header)
		for i := range rows {
			r := &rows[i]
			result, id, why := dryOutcome(r, lists)
			counts[result]++
			t := r.spec.Target
			line := fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s\t%s", r.line, r.spec.ConfigurationID, orDash(string(r.spec.Path)),
				targetText(string(t.Type), t.GroupID, t.CollectionID, t.FilterID, string(t.FilterType)), result, orDash(id), orDash(oneLine(why)))
			if manyFiles {
				line = oneLine(r.source) + "\t" + line
			}
			fmt.Fprintln(tw, line)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		rw := newRecordWriter(env.Stdout, output, dryRunColumns)
		for i := range rows {
			r := &rows[i]
			result, id, why := dryOutcome(r, lists)
			counts[result]++
			t := r.spec.Target
			err := rw.write([]any{r.source, r.line, r.spec.ConfigurationID, optional(string(r.spec.Path)), string(t.Type),
				optional(t.GroupID), optional(t.CollectionID), optional(t.FilterID), optional(string(t.FilterType)),
				result, optional(id), optional(why)})
			if err != nil {
				return err
			}
		}
		if err := rw.close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stderr, "enqueue: dry run: %d rows: %d would be created, %d already assigned, %d on configurations that do not exist, %d not checked; %d assignment lists read, nothing written\n",
		len(rows), counts[dryWouldCreate], counts[dryAlreadyAssigned], counts[dryNoConfiguration], counts[dryReadFailed], len(lists))
	if n := counts[dryReadFailed]; n > 0 {
		return fmt.Errorf("dry run: %d rows could not be checked: their assignment lists could not be read (see ERROR)", n)
	}
	return nil
}

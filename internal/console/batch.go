package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/batchop"
	"github.com/bulkassign/bulkassign/internal/export"
	"github.com/bulkassign/bulkassign/internal/stall"
	"github.com/bulkassign/bulkassign/internal/store"
)

// pageSize is how many result rows a page shows.
const pageSize = 100

// rateWindow is the span (seconds) the batch page's rate is measured over.
const rateWindow = 30

// batchRow is a batch in the list, as the page and its JSON show it.
type batchRow struct {
	ID        string         `json:"id"`
	Source    string         `json:"source"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by"`
	Rows      int            `json:"rows"`
	Done      int            `json:"done"`
	Counts    map[string]int `json:"counts"`
}

func toBatchRow(s store.BatchSummary) batchRow {
	b := batchRow{ID: s.ID, Source: s.Source, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy, Rows: s.Counts.Total(),
		Done: s.Counts.Final(), Counts: map[string]int{}}
	for _, st := range assign.Statuses {
		b.Counts[string(st)] = s.Counts[st]
	}
	return b
}

func (c *Console) listBatches(r *http.Request) ([]batchRow, error) {
	list, err := store.ListBatches(r.Context(), c.cfg.DB, 30)
	if err != nil {
		return nil, err
	}
	out := make([]batchRow, len(list))
	for i, s := range list {
		out[i] = toBatchRow(s)
	}
	return out, nil
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	list, err := c.listBatches(r)
	if err != nil {
		c.internal(w, r, "listing batches", err)
		return
	}
	c.render(w, r, http.StatusOK, "home.html", "Batches", map[string]any{"Batches": list, "Statuses": assign.Statuses})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Console) batchesJSON(w http.ResponseWriter, r *http.Request) {
	list, err := c.listBatches(r)
	if err != nil {
		c.cfg.Logger.Error("console: listing batches", "error", err)
		http.Error(w, "cannot list batches", http.StatusInternalServerError)
		return
	}
	writeJSON(w, list)
}

// getBatch reads the batch the path names, answering the request itself
// when it cannot.
func (c *Console) getBatch(w http.ResponseWriter, r *http.Request) *store.Batch {
	b, err := store.GetBatch(r.Context(), c.cfg.DB, r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrBadBatchID):
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no batch %q.", r.PathValue("id")))
		return nil
	case err != nil:
		c.internal(w, r, "reading the batch", err)
		return nil
	}
	return b
}

// status is where a batch stands, for its page and its JSON.
type status struct {
	Total   int            `json:"total"`
	Done    int            `json:"done"`
	Percent int            `json:"percent"`
	Counts  map[string]int `json:"counts"`
	Reverts map[string]int `json:"reverts"`
	Rate    float64        `json:"rate"` // rows per second, last 30 s
	ETA     string         `json:"eta"`
	Why     string         `json:"why"`
	WhyKind string         `json:"why_kind"`
}

func (c *Console) batchStatus(r *http.Request, id string) (status, error) {
	ctx := r.Context()
	counts, err := store.CountByStatus(ctx, c.cfg.DB, id)
	if err != nil {
		return status{}, err
	}
	reverts, err := store.CountReverts(ctx, c.cfg.DB, id)
	if err != nil {
		return status{}, err
	}
	rate, err := store.RecentRate(ctx, c.cfg.DB, id, rateWindow)
	if err != nil {
		return status{}, err
	}
	why, err := stall.Why(ctx, c.cfg.DB, id)
	if err != nil {
		return status{}, err
	}
	s := status{Total: counts.Total(), Done: counts.Final(), Counts: map[string]int{}, Reverts: map[string]int{}, Rate: rate,
		Why: why.Text, WhyKind: string(why.Kind)}
	for _, st := range assign.Statuses {
		s.Counts[string(st)] = counts[st]
	}
	for _, st := range assign.RevertStatuses {
		if n := reverts[st]; n > 0 {
			s.Reverts[string(st)] = n
		}
	}
	if s.Total > 0 {
		s.Percent = 100 * s.Done / s.Total
	}
	left := s.Total - s.Done
	switch {
	case left == 0:
		s.ETA = "done"
	case rate > 0:
		s.ETA = (time.Duration(float64(left)/rate) * time.Second).Round(time.Second).String()
	default:
		s.ETA = "unknown"
	}
	return s, nil
}

func (c *Console) statusJSON(w http.ResponseWriter, r *http.Request) {
	b, err := store.GetBatch(r.Context(), c.cfg.DB, r.PathValue("id"))
	if err != nil {
		http.Error(w, "no such batch", http.StatusNotFound)
		return
	}
	s, err := c.batchStatus(r, b.ID)
	if err != nil {
		c.cfg.Logger.Error("console: batch status", "error", err)
		http.Error(w, "cannot read the batch", http.StatusInternalServerError)
		return
	}
	writeJSON(w, s)
}

// filter is the results table's filter, from the query string.
type filter struct {
	Status, Tenant, Configuration string
	After                         int
}

func readFilter(r *http.Request) (filter, store.PageFilter, error) {
	q := r.URL.Query()
	f := filter{Status: q.Get("status"), Tenant: strings.TrimSpace(q.Get("tenant")), Configuration: strings.TrimSpace(q.Get("configuration"))}
	pf := store.PageFilter{Limit: pageSize}
	if f.Status != "" {
		st := assign.Status(f.Status)
		if !slices.Contains(assign.Statuses, st) {
			return f, pf, fmt.Errorf("status %q is not a status", f.Status)
		}
		pf.Statuses = []assign.Status{st}
	}
	if f.Tenant != "" {
		id, err := assign.ParseGUID("tenant", f.Tenant)
		if err != nil {
			return f, pf, err
		}
		pf.TenantID = id
	}
	if f.Configuration != "" {
		id, err := assign.ParseGUID("configuration", f.Configuration)
		if err != nil {
			return f, pf, err
		}
		pf.ConfigurationID = id
	}
	if a := q.Get("after"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 {
			return f, pf, fmt.Errorf("after %q is not a row number", a)
		}
		f.After, pf.After = n, n
	}
	return f, pf, nil
}

func (f filter) query(after int) string {
	v := url.Values{}
	if f.Status != "" {
		v.Set("status", f.Status)
	}
	if f.Tenant != "" {
		v.Set("tenant", f.Tenant)
	}
	if f.Configuration != "" {
		v.Set("configuration", f.Configuration)
	}
	if after > 0 {
		v.Set("after", strconv.Itoa(after))
	}
	return v.Encode()
}

func (c *Console) batchPage(w http.ResponseWriter, r *http.Request) {
	b := c.getBatch(w, r)
	if b == nil {
		return
	}
	f, pf, err := readFilter(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "The results filter is wrong: "+err.Error())
		return
	}
	st, err := c.batchStatus(r, b.ID)
	if err != nil {
		c.internal(w, r, "reading the batch", err)
		return
	}
	rows, more, err := store.PageResults(r.Context(), c.cfg.DB, b.ID, pf)
	if err == nil {
		err = store.PageNames(r.Context(), c.cfg.DB, b.ID, rows)
	}
	if err != nil {
		c.internal(w, r, "reading the results", err)
		return
	}
	state, err := batchop.ReadState(r.Context(), c.cfg.DB, b.ID)
	if err != nil {
		c.internal(w, r, "reading the batch", err)
		return
	}
	// The actions offered are those batchop allows now.
	allowed := map[string]bool{}
	for _, op := range []batchop.Op{batchop.OpRetry, batchop.OpCancel, batchop.OpRevert} {
		allowed[string(op)] = state.Allowed(op) == nil
	}
	tenants, err := store.CountByTenant(r.Context(), c.cfg.DB, b.ID)
	if err != nil {
		c.internal(w, r, "reading the batch's tenants", err)
		return
	}
	next := ""
	if more {
		next = f.query(rows[len(rows)-1].Row)
	}
	c.render(w, r, http.StatusOK, "batch.html", "Batch "+b.ID[:8], map[string]any{
		"Batch": b, "Status": st, "Rows": rows, "Filter": f, "Next": next, "Statuses": assign.Statuses,
		"Download": f.query(0), "First": f.After > 0, "FirstQuery": f.query(0), "Done": r.URL.Query().Get("done"),
		"Allowed":     allowed,
		"ManyTenants": len(tenants) > 1, // the tenant column only then, as in enqueue results
	})
}

// download streams the results the filter picks as CSV or JSON, through
// the export code of `enqueue results` (its formula-injection guard).
func (c *Console) download(w http.ResponseWriter, r *http.Request) {
	format := r.PathValue("format")
	if format != "csv" && format != "json" {
		http.NotFound(w, r)
		return
	}
	b := c.getBatch(w, r)
	if b == nil {
		return
	}
	_, pf, err := readFilter(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "The results filter is wrong: "+err.Error())
		return
	}
	if pf.ConfigurationID != "" {
		c.fail(w, r, http.StatusBadRequest, "Downloads filter by status and tenant; clear the configuration filter to download.")
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Minute))
	ctype := "text/csv; charset=utf-8"
	if format == "json" {
		ctype = "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="batch-%s.%s"`, b.ID[:8], format))
	if err := export.Results(r.Context(), c.cfg.DB, b.ID, pf.ResultFilter, w, format); err != nil {
		c.cfg.Logger.Error("console: download cut short", "batch", b.ID, "error", err)
	}
}

// operation is a confirmation page's content.
type operation struct {
	Op, Verb, What string
	Batch          *store.Batch
	Possible       bool
	// Why the batch does not allow the operation now, when not Possible.
	Why string
}

// confirm says what an operation will do before it is done, or why the
// batch does not allow it now (batchop's rule).
func (c *Console) confirm(w http.ResponseWriter, r *http.Request) {
	b := c.getBatch(w, r)
	if b == nil {
		return
	}
	ctx := r.Context()
	st, err := batchop.ReadState(ctx, c.cfg.DB, b.ID)
	if err != nil {
		c.internal(w, r, "reading the batch", err)
		return
	}
	counts := st.Counts
	op := operation{Op: r.PathValue("op"), Batch: b}
	switch batchop.Op(op.Op) {
	case batchop.OpRetry:
		rc, err := store.CountRetryable(ctx, c.cfg.DB, b.ID)
		if err != nil {
			c.internal(w, r, "counting the rows to retry", err)
			return
		}
		op.Verb = "Retry failed rows"
		op.What = fmt.Sprintf("Runs the %d failed and %d canceled rows again: each reads Graph afresh and creates its assignment if it is still missing.",
			counts[assign.StatusFailed], counts[assign.StatusCanceled])
		if rc.NotFound > 0 {
			op.What += fmt.Sprintf(" %d of them failed because their configuration does not exist (HTTP 404) and will fail the same way until the list is fixed.", rc.NotFound)
		}
	case batchop.OpCancel:
		open := counts.Total() - counts.Final() - counts[assign.StatusCancelling]
		op.Verb = "Cancel the batch"
		op.What = fmt.Sprintf("Stops the %d rows not final yet. A row with no write in flight ends canceled at once; one whose write may be in flight starts no new one and ends created if that write applied, canceled if not. Retry runs canceled rows again later.", open)
	case batchop.OpRevert:
		op.Verb = "Revert the batch"
		op.What = fmt.Sprintf("Deletes the %d assignments this batch created, and puts back the %d it removed, and only those; the %d rows that found their target already assigned are left alone.",
			counts[assign.StatusCreated], counts[assign.StatusRemoved], counts[assign.StatusAlreadyAssigned])
		if st.InDoubt > 0 {
			op.What += fmt.Sprintf(" %d rows ended while a write of theirs may have applied: their reverts read Graph first and undo only what applied.", st.InDoubt)
		}
		op.What += " After a revert, the batch cannot be retried."
	default:
		http.NotFound(w, r)
		return
	}
	if err := st.Allowed(batchop.Op(op.Op)); err != nil {
		op.Why = notAllowed(err)
	} else {
		op.Possible = true
	}
	c.render(w, r, http.StatusOK, "confirm.html", op.Verb+" of batch "+b.ID[:8], op)
}

// notAllowed says to a person why batchop refused an operation.
func notAllowed(err error) string {
	var nf *batchop.NotFinalError
	var inf *batchop.InFlightError
	switch {
	case errors.Is(err, batchop.ErrReverted):
		return "This batch was reverted: retrying would create again what the revert deleted. Revert again re-runs the reverts that failed or were canceled."
	case errors.As(err, &nf):
		return fmt.Sprintf("The batch is still running (%d rows not final): revert is offered once every row is final. Cancel the batch to stop it sooner.", nf.Open)
	case errors.As(err, &inf):
		return "The batch cannot be reverted yet: " + err.Error() + ". Wait a moment, then revert."
	}
	return "There is nothing to do: " + err.Error() + "."
}

// operate runs retry, cancel or revert through batchop and goes back to
// the batch page, saying what was done.
func (c *Console) operate(w http.ResponseWriter, r *http.Request) {
	b := c.getBatch(w, r)
	if b == nil {
		return
	}
	ctx := r.Context()
	var done string
	switch r.PathValue("op") {
	case "retry":
		res, err := batchop.Retry(ctx, c.cfg.DB, b.ID)
		if errors.Is(err, batchop.ErrReverted) {
			c.fail(w, r, http.StatusConflict, notAllowed(err))
			return
		}
		if err != nil {
			c.internal(w, r, "retrying the batch", err)
			return
		}
		done = fmt.Sprintf("Retry: %d rows queued again", len(res.Queued))
		if res.StillFinishing > 0 {
			done += fmt.Sprintf("; %d still finishing their last run (retry them once they end)", res.StillFinishing)
		}
	case "cancel":
		res, err := batchop.Cancel(ctx, c.cfg.DB, b.ID)
		if err != nil {
			c.internal(w, r, "canceling the batch", err)
			return
		}
		done = fmt.Sprintf("Cancel: %d rows and %d reverts canceled", res.Rows.Canceled, res.Reverts.Canceled)
		if n := res.Rows.Cancelling + res.Reverts.Cancelling; n > 0 {
			done += fmt.Sprintf("; %d are cancelling: a write of theirs may be in flight, and each ends created (or reverted) if it applied, canceled if not", n)
		}
	case "revert":
		res, err := batchop.Revert(ctx, c.cfg.DB, b.ID)
		var nf *batchop.NotFinalError
		var inf *batchop.InFlightError
		switch {
		case errors.As(err, &nf), errors.As(err, &inf):
			c.fail(w, r, http.StatusConflict, notAllowed(err))
			return
		case err != nil:
			c.internal(w, r, "reverting the batch", err)
			return
		}
		done = fmt.Sprintf("Revert: %d assignments queued for deletion; %d already-assigned rows left alone", len(res.Queued), res.AlreadyAssigned)
		if res.InDoubt > 0 {
			done += fmt.Sprintf("; %d rows whose write was in doubt are read first and undone only if it applied", res.InDoubt)
		}
	default:
		http.NotFound(w, r)
		return
	}
	c.cfg.Logger.Info("console: "+r.PathValue("op"), "batch", b.ID, "user", userOf(r), "result", done)
	http.Redirect(w, r, "/console/batches/"+b.ID+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

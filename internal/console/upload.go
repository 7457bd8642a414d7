package console

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/batchop"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/dryrun"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// spoolUpload streams the request's file part to a file in the spool
// (never whole in memory, within the spool's caps) and returns it with the
// file's name and format, held for p's use. Text fields before the file (a
// few KiB each) are kept in u.fields; the file must be the last part that
// matters. A schedule's list is bounded by BULKASSIGN_SCHEDULE_MAX, a
// review's by CONSOLE_MAX_UPLOAD. The caller holds it (spool.hold) once
// it is reviewed, or drops it.
func (c *Console) spoolUpload(w http.ResponseWriter, r *http.Request, p purpose) (*upload, error) {
	st := c.cfg.Settings
	limit, tooBig := st.MaxUpload, func() error {
		return fmt.Errorf("the file is larger than the console takes (%s, CONSOLE_MAX_UPLOAD): enqueue it with the enqueue command", config.FormatSize(st.MaxUpload))
	}
	if p == forSchedule {
		limit, tooBig = st.ScheduleMax, func() error {
			return fmt.Errorf("the list is larger than a schedule keeps (%s, %s: every run reads it whole): split it into several schedules", config.FormatSize(st.ScheduleMax), config.ScheduleMaxVar)
		}
	}
	fields := map[string]string{}
	r.Body = http.MaxBytesReader(w, r.Body, limit+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errors.New("the upload is not a form with a file: pick a CSV, JSON or NDJSON file")
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no file was uploaded: pick a CSV, JSON or NDJSON file")
		}
		var tooBigBody *http.MaxBytesError
		if errors.As(err, &tooBigBody) {
			return nil, tooBig()
		}
		if err != nil {
			return nil, fmt.Errorf("the upload was cut short: %w", err)
		}
		if part.FormName() != "file" {
			if part.FileName() == "" && len(fields) < 16 {
				b, _ := io.ReadAll(io.LimitReader(part, 4<<10))
				fields[part.FormName()] = string(b)
			}
			part.Close()
			continue
		}
		name := filepath.Base(part.FileName())
		if name == "." || name == "/" || name == "" {
			return nil, errors.New("no file was uploaded: pick a CSV, JSON or NDJSON file")
		}
		f, err := intake.DetectFormat(name, r.URL.Query().Get("format"))
		if err != nil {
			return nil, err
		}
		u, err := c.spool.begin(access.User(r), p)
		if err != nil {
			return nil, err
		}
		u.name, u.format, u.fields = name, f, fields
		err = c.spool.write(u, part, limit, tooBig)
		if errors.As(err, &tooBigBody) {
			err = tooBig()
		}
		if err != nil {
			c.spool.drop(u)
			return nil, err
		}
		return u, nil
	}
}

// reviewRow is one tenant and configuration of a review.
type reviewRow struct {
	Tenant, Configuration     string
	Create, Already, NotFound int
	Remove, NotAssigned       int
	ReadFailed                int
	// Reasons are why the rows that would fail or were not checked would,
	// each distinct reason once, in order of first row; MoreReasons
	// counts those past maxReasons.
	Reasons     []reason
	MoreReasons int
}

// reason is one distinct reason of a review's group, and its rows.
type reason struct {
	Result dryrun.Result
	Why    string
	Rows   int
}

// maxReasons bounds the reasons a review's row lists; the names table
// below it shows every name's resolution.
const maxReasons = 10

func (g *reviewRow) addReason(res dryrun.Result, why string) {
	for i := range g.Reasons {
		if g.Reasons[i].Result == res && g.Reasons[i].Why == why {
			g.Reasons[i].Rows++
			return
		}
	}
	if len(g.Reasons) == maxReasons {
		g.MoreReasons++
		return
	}
	g.Reasons = append(g.Reasons, reason{Result: res, Why: why, Rows: 1})
}

// review is what the review page shows.
type review struct {
	// Lookups is what each display name the list gives resolved to.
	Lookups  []dryrun.Lookup
	Token    string
	Name     string
	Rows     int
	Counts   map[string]int
	Groups   []reviewRow
	Warnings []string
	Lists    int
	// Nothing: no row would create or remove anything (and every row was
	// checked), so enqueueing is not the page's main action.
	Nothing bool
}

// invalid is what the page of a rejected upload shows.
type invalid struct {
	Name     string
	Problems []intake.Problem
	More     int
	Message  string
}

// uploadList spools the list, validates it with the intake parser and
// reviews it with the dry run; nothing is enqueued.
func (c *Console) uploadList(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(15 * time.Minute))
	_ = rc.SetWriteDeadline(time.Now().Add(20 * time.Minute))
	u, err := c.spoolUpload(w, r, forReview)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	keep := false
	defer func() {
		if !keep {
			c.spool.drop(u)
		}
	}()
	f, err := os.Open(u.path)
	if err != nil {
		c.internal(w, r, "reading the upload", err)
		return
	}
	plan, err := dryrun.NewPlan([]jobs.Input{{Name: u.name, Reader: f, Format: u.format, DefaultTenant: c.cfg.DefaultTenant}})
	f.Close()
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%s could not be read: %v", u.name, err))
		return
	}
	if plan.Invalid() {
		sum := plan.Intake[0]
		c.render(w, r, http.StatusUnprocessableEntity, "invalid.html", "Invalid rows", invalid{Name: u.name,
			Problems: sum.Problems, More: sum.Invalid - len(sum.Problems)})
		return
	}
	if plan.NoTenant != nil {
		c.render(w, r, http.StatusUnprocessableEntity, "invalid.html", "Invalid rows", invalid{Name: u.name,
			Message: plan.NoTenant.Error() + ": give the row a tenant_id, or set AZURE_TENANT_ID to the default tenant's GUID"})
		return
	}
	plan.CheckGroups = true // as `enqueue --dry-run` does: a group id the tenant lacks is a problem
	rep, err := plan.Read(r.Context(), c.cfg.Clients)
	if err != nil {
		c.internal(w, r, "reviewing the list", err)
		return
	}
	rv := review{Token: u.token, Name: u.name, Rows: len(rep.Rows), Counts: map[string]int{}, Lists: rep.Lists,
		Warnings: plan.Intake[0].WarningLines(), Lookups: rep.Lookups}
	for _, why := range rep.GroupsNotChecked {
		rv.Warnings = append(rv.Warnings, "Group ids not checked in "+why)
	}
	for k, v := range rep.Counts {
		rv.Counts[string(k)] = v
	}
	rv.Nothing = rep.Counts[dryrun.WouldCreate]+rep.Counts[dryrun.WouldRemove]+rep.Counts[dryrun.ReadFailed] == 0
	groups := map[[2]string]*reviewRow{}
	for _, o := range rep.Rows {
		k := [2]string{o.TenantID, o.Spec.ConfigurationLabel()}
		g := groups[k]
		if g == nil {
			g = &reviewRow{Tenant: o.TenantID, Configuration: o.Spec.ConfigurationLabel()}
			groups[k] = g
		}
		switch o.Result {
		case dryrun.WouldCreate:
			g.Create++
		case dryrun.AlreadyAssigned:
			g.Already++
		case dryrun.WouldRemove:
			g.Remove++
		case dryrun.NotAssigned:
			g.NotAssigned++
		case dryrun.ConfigurationNotFound, dryrun.UnsupportedPolicyType, dryrun.NameNotFound, dryrun.NameAmbiguous, dryrun.Conflict,
			dryrun.GroupNotFound:
			g.NotFound++
			g.addReason(o.Result, o.Why)
		case dryrun.ReadFailed:
			g.ReadFailed++
			g.addReason(o.Result, o.Why)
		}
	}
	for _, g := range groups {
		rv.Groups = append(rv.Groups, *g)
	}
	sort.Slice(rv.Groups, func(i, j int) bool {
		a, b := rv.Groups[i], rv.Groups[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		return a.Configuration < b.Configuration
	})
	if err := c.spool.hold(u); err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	keep = true
	c.render(w, r, http.StatusOK, "review.html", "Review "+u.name, rv)
}

// useFailed answers a token that cannot be used.
func (c *Console) useFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ue *useError
	if errors.As(err, &ue) {
		c.fail(w, r, ue.status, ue.msg)
		return
	}
	c.internal(w, r, "finding the upload", err)
}

// enqueue enqueues a reviewed upload once: the form's token is the
// batch's request key, so a double click or a resubmitted form finds the
// batch the first submit made (the database's unique index decides a race).
// Only a review's token enqueues, and only for the person who uploaded it.
func (c *Console) enqueue(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	if token == "" {
		c.fail(w, r, http.StatusBadRequest, "The form names no upload: upload the list again.")
		return
	}
	ctx := r.Context()
	if id, err := store.FindBatchByKey(ctx, c.cfg.DB, token); err != nil {
		c.internal(w, r, "finding the batch", err)
		return
	} else if id != "" {
		http.Redirect(w, r, "/console/batches/"+id, http.StatusSeeOther)
		return
	}
	u, err := c.spool.use(token, forReview, access.User(r), false)
	if err != nil {
		// A concurrent submit may have enqueued it and let it go.
		if id, ferr := store.FindBatchByKey(ctx, c.cfg.DB, token); ferr == nil && id != "" {
			http.Redirect(w, r, "/console/batches/"+id, http.StatusSeeOther)
			return
		}
		c.useFailed(w, r, err)
		return
	}
	enqueued := false
	defer func() { c.spool.done(u, enqueued) }()
	f, err := os.Open(u.path)
	if err != nil {
		c.internal(w, r, "reading the upload", err)
		return
	}
	defer f.Close()
	out, err := batchop.Enqueue(ctx, c.cfg.DB, []jobs.Input{{Name: u.name, Reader: f, Format: u.format,
		DefaultTenant: c.cfg.DefaultTenant, CreatedBy: access.User(r), RequestKey: token}})
	if store.IsDuplicateRequestKey(err) {
		id, ferr := store.FindBatchByKey(ctx, c.cfg.DB, token)
		if ferr == nil && id != "" {
			enqueued = true
			http.Redirect(w, r, "/console/batches/"+id, http.StatusSeeOther)
			return
		}
	}
	var inv *jobs.InvalidInputError
	if errors.As(err, &inv) {
		c.fail(w, r, http.StatusUnprocessableEntity, inv.Error())
		return
	}
	if err != nil {
		c.internal(w, r, "enqueueing the list", err)
		return
	}
	enqueued = true
	b := out[0].Batch
	c.cfg.Logger.Info("console: enqueued", "batch", b.ID, "rows", b.RowCount, "source", u.name, "created_by", b.CreatedBy)
	http.Redirect(w, r, "/console/batches/"+b.ID, http.StatusSeeOther)
}

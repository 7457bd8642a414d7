package console

import (
	"crypto/rand"
	"encoding/hex"
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
	"github.com/bulkassign/bulkassign/internal/dryrun"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

// upload is a list spooled to disk between its review and its enqueue.
type upload struct {
	token   string // the enqueue form's token: the batch's request key
	path    string
	name    string
	format  intake.Format
	user    string
	expires time.Time
	fields  map[string]string // the form's text fields before the file
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// spoolUpload streams the request's file part to a file in the spool
// directory (never whole in memory) and returns it with the file's name and
// format. Text fields before the file (a few KiB each) are kept in
// u.fields; the file must be the last part that matters.
func (c *Console) spoolUpload(w http.ResponseWriter, r *http.Request) (*upload, error) {
	fields := map[string]string{}
	r.Body = http.MaxBytesReader(w, r.Body, c.cfg.MaxUpload+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errors.New("the upload is not a form with a file: pick a CSV, JSON or NDJSON file")
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no file was uploaded: pick a CSV, JSON or NDJSON file")
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
		u := &upload{token: newToken(), name: name, format: f, user: access.User(r), expires: time.Now().Add(uploadTTL), fields: fields}
		u.path = filepath.Join(c.spool, u.token)
		out, err := os.OpenFile(u.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(out, part)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && n > c.cfg.MaxUpload {
			err = fmt.Errorf("the file is larger than the console takes (%d MiB): enqueue it with the enqueue command", c.cfg.MaxUpload>>20)
		}
		if err != nil {
			os.Remove(u.path)
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				err = fmt.Errorf("the file is larger than the console takes (%d MiB): enqueue it with the enqueue command", c.cfg.MaxUpload>>20)
			}
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
	Why                       string
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
	u, err := c.spoolUpload(w, r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(u.path)
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
	rep, err := plan.Read(r.Context(), c.cfg.Clients)
	if err != nil {
		c.internal(w, r, "reviewing the list", err)
		return
	}
	rv := review{Token: u.token, Name: u.name, Rows: len(rep.Rows), Counts: map[string]int{}, Lists: rep.Lists,
		Warnings: plan.Intake[0].WarningLines(), Lookups: rep.Lookups}
	for k, v := range rep.Counts {
		rv.Counts[string(k)] = v
	}
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
		case dryrun.ConfigurationNotFound, dryrun.UnsupportedPolicyType, dryrun.NameNotFound, dryrun.NameAmbiguous, dryrun.Conflict:
			g.NotFound++
			g.Why = o.Why
		case dryrun.ReadFailed:
			g.ReadFailed++
			g.Why = o.Why
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
	c.mu.Lock()
	c.dropExpiredLocked()
	c.uploads[u.token] = u
	c.mu.Unlock()
	keep = true
	c.render(w, r, http.StatusOK, "review.html", "Review "+u.name, rv)
}

func (c *Console) dropExpiredLocked() {
	now := time.Now()
	for k, u := range c.uploads {
		if now.After(u.expires) {
			os.Remove(u.path)
			delete(c.uploads, k)
		}
	}
}

// enqueue enqueues a reviewed upload once: the form's token is the
// batch's request key, so a double click or a resubmitted form finds the
// batch the first submit made (the database's unique index decides a race).
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
	c.mu.Lock()
	u := c.uploads[token]
	c.mu.Unlock()
	if u == nil {
		c.fail(w, r, http.StatusGone, "This review has expired (or the worker restarted): upload the list again.")
		return
	}
	f, err := os.Open(u.path)
	if err != nil {
		// A concurrent submit enqueued it and removed the file.
		if id, ferr := store.FindBatchByKey(ctx, c.cfg.DB, token); ferr == nil && id != "" {
			http.Redirect(w, r, "/console/batches/"+id, http.StatusSeeOther)
			return
		}
		c.fail(w, r, http.StatusGone, "This review has expired: upload the list again.")
		return
	}
	defer f.Close()
	out, err := batchop.Enqueue(ctx, c.cfg.DB, []jobs.Input{{Name: u.name, Reader: f, Format: u.format,
		DefaultTenant: c.cfg.DefaultTenant, CreatedBy: access.User(r), RequestKey: token}})
	if store.IsDuplicateRequestKey(err) {
		id, ferr := store.FindBatchByKey(ctx, c.cfg.DB, token)
		if ferr == nil && id != "" {
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
	c.mu.Lock()
	delete(c.uploads, token)
	c.mu.Unlock()
	os.Remove(u.path)
	b := out[0].Batch
	c.cfg.Logger.Info("console: enqueued", "batch", b.ID, "rows", b.RowCount, "source", u.name, "created_by", b.CreatedBy)
	http.Redirect(w, r, "/console/batches/"+b.ID, http.StatusSeeOther)
}

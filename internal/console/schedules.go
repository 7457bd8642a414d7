package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

func (c *Console) schedules(w http.ResponseWriter, r *http.Request) {
	list, err := store.ListSchedules(r.Context(), c.cfg.DB)
	if err != nil {
		c.internal(w, r, "listing schedules", err)
		return
	}
	c.render(w, r, http.StatusOK, "schedules.html", "Schedules", map[string]any{"Schedules": list})
}

// preview is the schedule page before saving: the list checked, and the
// cron's next three run times in its zone. Error, when set, is why a save
// failed; the preview stays to save again.
type preview struct {
	Token, Name, Cron, TimeZone, File string
	Rows                              int
	Next                              []string
	Error                             string
}

// previewOf is u's preview page; an error when its cron never fires.
func previewOf(u *upload, now time.Time) (preview, error) {
	sched, err := jobs.ParseSchedule(u.cron, u.tz)
	if err != nil {
		return preview{}, fmt.Errorf("Cron or time zone: %w", err)
	}
	p := preview{Token: u.token, Name: u.schedule, Cron: u.cron, TimeZone: u.tz, File: u.name, Rows: u.summary.Rows}
	for _, t := range jobs.NextRuns(sched, now, 3) {
		p.Next = append(p.Next, zoneTime(t, u.tz))
	}
	if len(p.Next) == 0 {
		return p, errors.New("The cron expression never fires.")
	}
	return p, nil
}

// schedulePreview takes the name, cron and zone (form fields before the
// file) and the list, checks the list with the intake parser and the cron
// with the scheduler's parser, and shows the next three runs before saving.
// The preview's token saves that list with that name, cron and zone, for
// the person who previewed it, and nothing else.
func (c *Console) schedulePreview(w http.ResponseWriter, r *http.Request) {
	u, err := c.spoolUpload(w, r, forSchedule)
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
	u.schedule, u.cron, u.tz = strings.TrimSpace(u.fields["name"]), strings.TrimSpace(u.fields["cron"]), strings.TrimSpace(u.fields["tz"])
	if err := jobs.CheckScheduleName(u.schedule); err != nil {
		c.fail(w, r, http.StatusBadRequest, "Schedule name: "+err.Error())
		return
	}
	if _, err := jobs.ParseSchedule(u.cron, u.tz); err != nil {
		c.fail(w, r, http.StatusBadRequest, "Cron or time zone: "+err.Error())
		return
	}
	f, err := os.Open(u.path)
	if err != nil {
		c.internal(w, r, "reading the upload", err)
		return
	}
	res, err := intake.Reader{Name: u.name, Format: u.format}.Read(f, func(intake.Row) error { return nil })
	f.Close()
	if err == nil && res.Err() != nil {
		c.render(w, r, http.StatusUnprocessableEntity, "invalid.html", "Invalid rows", invalid{Name: u.name,
			Problems: res.Problems, More: res.Invalid - len(res.Problems)})
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	u.summary = res
	p, err := previewOf(u, time.Now())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err := c.spool.hold(u); err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, err.Error())
		return
	}
	keep = true
	c.render(w, r, http.StatusOK, "schedule_preview.html", "New schedule "+u.schedule, p)
}

// scheduleSave stores a previewed schedule, its list streamed from the
// spool (a chunk in memory at a time). A save that fails shows the
// preview again, still savable.
func (c *Console) scheduleSave(w http.ResponseWriter, r *http.Request) {
	u, err := c.spool.use(r.PostFormValue("token"), forSchedule, access.User(r), true)
	if err != nil {
		c.useFailed(w, r, err)
		return
	}
	saved := false
	defer func() { c.spool.done(u, saved) }()
	// The form carries no cron or zone of its own: one that does must be
	// the one previewed.
	for _, f := range []struct{ field, previewed, what string }{{"cron", u.cron, "cron expression"}, {"tz", u.tz, "time zone"}} {
		if v, ok := r.PostForm[f.field]; ok && strings.TrimSpace(strings.Join(v, "")) != f.previewed {
			c.fail(w, r, http.StatusBadRequest, "The "+f.what+" differs from the one previewed: add the schedule again to preview the new one.")
			return
		}
	}
	now := time.Now()
	retry := func(status int, msg string) {
		p, err := previewOf(u, now)
		if err != nil {
			c.fail(w, r, status, msg)
			return
		}
		p.Error = msg
		c.render(w, r, status, "schedule_preview.html", "New schedule "+u.schedule, p)
	}
	s, err := jobs.NewSchedule(u.schedule, u.cron, u.tz, u.name, u.format, nil, u.summary, now)
	if err != nil {
		retry(http.StatusBadRequest, "Schedule: "+err.Error())
		return
	}
	f, err := os.Open(u.path)
	if err != nil {
		c.internal(w, r, "reading the upload", err)
		return
	}
	defer f.Close()
	err = store.PutScheduleList(r.Context(), c.cfg.DB, s, &unchanged{r: f, h: sha256.New(), want: u.summary.SHA256}, false)
	var changed *changedError
	switch {
	case errors.Is(err, store.ErrExists):
		retry(http.StatusConflict, "A schedule named "+u.schedule+" exists: remove it first (on the schedules page), then save this one again; or add it again under another name.")
		return
	case errors.As(err, &changed):
		c.fail(w, r, http.StatusConflict, changed.Error())
		return
	case err != nil:
		c.cfg.Logger.Error("console: saving the schedule", "schedule", u.schedule, "error", err)
		retry(http.StatusInternalServerError, "Saving the schedule failed (the worker's log says why): save it again.")
		return
	}
	saved = true
	c.cfg.Logger.Info("console: schedule added", "schedule", u.schedule, "user", userOf(r), "bytes", s.Bytes, "rows", s.RowCount)
	http.Redirect(w, r, "/console/schedules", http.StatusSeeOther)
}

// unchanged reads a spooled list and, at its end, fails unless it is the
// list previewed (its SHA-256): the store then keeps nothing.
type unchanged struct {
	r    io.Reader
	h    hash.Hash
	want string
}

type changedError struct{}

func (*changedError) Error() string {
	return "The list changed on the worker since its preview: add the schedule again."
}

func (u *unchanged) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.h.Write(p[:n])
	if errors.Is(err, io.EOF) && hex.EncodeToString(u.h.Sum(nil)) != u.want {
		return n, &changedError{}
	}
	return n, err
}

func (c *Console) scheduleRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := store.DeleteSchedule(r.Context(), c.cfg.DB, name); errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, "There is no schedule "+name+".")
		return
	} else if err != nil {
		c.internal(w, r, "removing the schedule", err)
		return
	}
	c.cfg.Logger.Info("console: schedule removed", "schedule", name, "user", userOf(r))
	http.Redirect(w, r, "/console/schedules", http.StatusSeeOther)
}

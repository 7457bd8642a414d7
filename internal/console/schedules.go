package console

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

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
// cron's next three run times.
type preview struct {
	Token, Name, Cron, TimeZone, File string
	Rows                              int
	Next                              []string
}

// schedulePreview takes the name, cron and zone (form fields before the
// file) and the list, checks the list with the intake parser and the cron
// with the scheduler's parser, and shows the next three runs before saving.
func (c *Console) schedulePreview(w http.ResponseWriter, r *http.Request) {
	u, err := c.spoolUpload(w, r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	name, spec, tz := strings.TrimSpace(u.fields["name"]), strings.TrimSpace(u.fields["cron"]), strings.TrimSpace(u.fields["tz"])
	if err := jobs.CheckScheduleName(name); err != nil {
		os.Remove(u.path)
		c.fail(w, r, http.StatusBadRequest, "Schedule name: "+err.Error())
		return
	}
	sched, err := jobs.ParseSchedule(spec, tz)
	if err != nil {
		os.Remove(u.path)
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
		os.Remove(u.path)
		c.render(w, r, http.StatusUnprocessableEntity, "invalid.html", "Invalid rows", invalid{Name: u.name,
			Problems: res.Problems, More: res.Invalid - len(res.Problems)})
		return
	}
	if err != nil {
		os.Remove(u.path)
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	p := preview{Token: u.token, Name: name, Cron: spec, TimeZone: tz, File: u.name, Rows: res.Rows}
	loc, _ := jobs.LoadTimeZone(tz)
	for _, t := range jobs.NextRuns(sched, time.Now(), 3) {
		p.Next = append(p.Next, t.In(loc).Format("Mon 2006-01-02 15:04 MST"))
	}
	if len(p.Next) == 0 {
		os.Remove(u.path)
		c.fail(w, r, http.StatusBadRequest, "The cron expression never fires.")
		return
	}
	u.name = name + "\x00" + u.name // the schedule's name travels with the upload
	c.mu.Lock()
	c.dropExpiredLocked()
	c.uploads[u.token] = u
	c.mu.Unlock()
	c.render(w, r, http.StatusOK, "schedule_preview.html", "New schedule "+name, p)
}

func (c *Console) scheduleSave(w http.ResponseWriter, r *http.Request) {
	token, spec, tz := r.PostFormValue("token"), r.PostFormValue("cron"), r.PostFormValue("tz")
	c.mu.Lock()
	u := c.uploads[token]
	delete(c.uploads, token)
	c.mu.Unlock()
	if u == nil {
		c.fail(w, r, http.StatusGone, "This preview has expired (or was saved already): add the schedule again.")
		return
	}
	defer os.Remove(u.path)
	name, file, _ := strings.Cut(u.name, "\x00")
	content, err := os.ReadFile(u.path)
	if err != nil {
		c.internal(w, r, "reading the upload", err)
		return
	}
	res, err := intake.Reader{Name: file, Format: u.format}.Read(bytes.NewReader(content), func(intake.Row) error { return nil })
	if err != nil || res.Err() != nil {
		c.fail(w, r, http.StatusBadRequest, "The list is not valid any more: add the schedule again.")
		return
	}
	s, err := jobs.NewSchedule(name, spec, tz, file, u.format, content, res, time.Now())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Schedule: "+err.Error())
		return
	}
	if err := store.PutSchedule(r.Context(), c.cfg.DB, s, false); errors.Is(err, store.ErrExists) {
		c.fail(w, r, http.StatusConflict, "A schedule named "+name+" exists: remove it first, or pick another name.")
		return
	} else if err != nil {
		c.internal(w, r, "saving the schedule", err)
		return
	}
	c.cfg.Logger.Info("console: schedule added", "schedule", name, "user", userOf(r))
	http.Redirect(w, r, "/console/schedules", http.StatusSeeOther)
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

package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/intake"
)

// purpose is what an upload's token is for: a review's token enqueues,
// a schedule preview's saves, and neither does the other's work.
type purpose int

const (
	forReview purpose = iota + 1
	forSchedule
)

// upload is a list spooled to disk between its review (or schedule
// preview) and its enqueue (or save). Its token is bound to its purpose,
// to the person who uploaded it and, for a schedule, to the name, cron and
// zone previewed.
type upload struct {
	token   string // the form's token; a review's is its batch's request key
	purpose purpose
	path    string
	name    string // the file's name
	format  intake.Format
	user    string
	created time.Time
	expires time.Time
	size    int64             // bytes held in the spool
	fields  map[string]string // the form's text fields before the file
	// A schedule preview's: what was previewed and saves unchanged.
	schedule, cron, tz string
	summary            *intake.Summary
	// inUse counts the requests reading the file: it is not evicted or
	// swept meanwhile. saving: a save holds it alone.
	inUse  int
	saving bool
	held   bool // in the spool's map: reviewed, not yet used up
	// removed: its file is gone and its bytes given back (path stays:
	// requests still reading it read it unlocked).
	removed bool
}

// quota is what one person's uploads hold.
type quota struct {
	bytes int64
	files int
}

// spool keeps uploads in a directory of the console's own within the
// caps of config.Console: per person (bytes and files; past them the
// person's oldest reviews are evicted, the way a new upload replaces an
// abandoned one) and in all (past it a new upload is refused: nobody's
// review is evicted for someone else's). Expired uploads are swept on a
// timer; Close removes the directory.
type spool struct {
	dir  string
	caps config.Console

	mu      sync.Mutex
	closed  bool
	total   int64
	users   map[string]*quota
	uploads map[string]*upload // held, by token
	stop    chan struct{}
	stopped chan struct{}
}

func newSpool(caps config.Console) (*spool, error) {
	dir, err := os.MkdirTemp(caps.SpoolDir, "bulkassign-console-")
	if err != nil {
		return nil, fmt.Errorf("console: cannot make its upload directory (CONSOLE_SPOOL_DIR): %w", err)
	}
	s := &spool{dir: dir, caps: caps, users: map[string]*quota{}, uploads: map[string]*upload{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.sweepEvery(min(caps.ReviewTTL/4, time.Minute))
	return s, nil
}

func (s *spool) sweepEvery(every time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep(time.Now())
		}
	}
}

// sweep removes the uploads expired at now that no request reads.
func (s *spool) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.uploads {
		if u.inUse == 0 && now.After(u.expires) {
			s.dropLocked(u)
		}
	}
}

// Close stops the sweep and removes the directory with every upload in
// it; uploads after it are refused.
func (s *spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.uploads = map[string]*upload{}
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("console: removing its upload directory: %w", err)
	}
	return nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errSpoolClosed: the worker is stopping.
var errSpoolClosed = errors.New("the worker is stopping: upload the list again once it is back")

// begin starts an upload of user's: it takes one of the person's files,
// evicting their oldest review when they hold SpoolUserFiles already.
func (s *spool) begin(user string, p purpose) (*upload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSpoolClosed
	}
	q := s.users[user]
	if q == nil {
		q = &quota{}
		s.users[user] = q
	}
	for q.files >= s.caps.SpoolUserFiles {
		if !s.evictOldestLocked(user) {
			return nil, fmt.Errorf("you have %d uploads in progress, as many as a person may (CONSOLE_SPOOL_USER_FILES): wait for them to finish, then upload again", q.files)
		}
	}
	q.files++
	now := time.Now()
	u := &upload{token: newToken(), purpose: p, user: user, created: now, expires: now.Add(s.caps.ReviewTTL)}
	u.path = filepath.Join(s.dir, u.token)
	return u, nil
}

// grow reserves n more bytes for u, evicting the person's oldest reviews
// to stay within their cap; limit bounds u itself (tooBig says so).
func (s *spool) grow(u *upload, n, limit int64, tooBig func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSpoolClosed
	}
	if u.size+n > limit {
		return tooBig()
	}
	q := s.users[u.user]
	for q.bytes+n > s.caps.SpoolUserBytes {
		if !s.evictOldestLocked(u.user) {
			return fmt.Errorf("your uploads in progress hold %s, and this one would pass the %s a person may keep waiting (CONSOLE_SPOOL_USER_MAX): wait for them to finish, then upload again",
				config.FormatSize(q.bytes), config.FormatSize(s.caps.SpoolUserBytes))
		}
	}
	for s.total+n > s.caps.SpoolBytes {
		if !s.evictOldestLocked(u.user) {
			return fmt.Errorf("the console's upload space is full: reviews not yet enqueued hold %s of the %s it keeps (CONSOLE_SPOOL_MAX). Try again once some are enqueued or expire (after %s), or enqueue the list with the enqueue command",
				config.FormatSize(s.total), config.FormatSize(s.caps.SpoolBytes), s.caps.ReviewTTL)
		}
	}
	u.size += n
	q.bytes += n
	s.total += n
	return nil
}

// evictOldestLocked drops user's oldest held upload that no request
// reads; false when there is none.
func (s *spool) evictOldestLocked(user string) bool {
	var oldest *upload
	for _, u := range s.uploads {
		if u.user == user && u.inUse == 0 && (oldest == nil || u.created.Before(oldest.created)) {
			oldest = u
		}
	}
	if oldest == nil {
		return false
	}
	s.dropLocked(oldest)
	return true
}

// dropLocked removes u's file and gives back what it held.
func (s *spool) dropLocked(u *upload) {
	if u.held {
		delete(s.uploads, u.token)
		u.held = false
	}
	if !u.removed {
		u.removed = true
		os.Remove(u.path)
		q := s.users[u.user]
		q.bytes -= u.size
		q.files--
		s.total -= u.size
		if q.files == 0 {
			delete(s.users, u.user)
		}
	}
}

// drop removes u (used up, or failed before it was held).
func (s *spool) drop(u *upload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked(u)
}

// hold keeps a finished upload for its token's use.
func (s *spool) hold(u *upload) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || u.removed {
		return errSpoolClosed
	}
	u.held = true
	s.uploads[u.token] = u
	return nil
}

// write streams r into u's file, reserving its bytes as they come.
func (s *spool) write(u *upload, r io.Reader, limit int64, tooBig func() error) error {
	f, err := os.OpenFile(u.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.TeeReader(r, reserver{s, u, limit, tooBig}))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// reserver reserves each piece of an upload before it is written.
type reserver struct {
	s      *spool
	u      *upload
	limit  int64
	tooBig func() error
}

func (r reserver) Write(p []byte) (int, error) {
	if err := r.s.grow(r.u, int64(len(p)), r.limit, r.tooBig); err != nil {
		return 0, err
	}
	return len(p), nil
}

// useError is why a token cannot be used, with its HTTP status.
type useError struct {
	status int
	msg    string
}

func (e *useError) Error() string { return e.msg }

// use finds the held upload of token for purpose p on user's behalf and
// keeps it from eviction until done; exclusive also keeps other requests
// from it (a save is done once).
func (s *spool) use(token string, p purpose, user string, exclusive bool) (*upload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.uploads[token]
	switch {
	case u == nil:
		what := "review"
		if p == forSchedule {
			what = "schedule preview"
		}
		return nil, &useError{410, fmt.Sprintf("This %s is no longer held: it was used already, expired (after %s), was replaced by newer uploads of yours (a person keeps at most %d), or the worker restarted. Upload the list again.",
			what, s.caps.ReviewTTL, s.caps.SpoolUserFiles)}
	case u.purpose != p && p == forReview:
		return nil, &useError{400, "This form's token is a schedule preview's, not a review's: it can only save that schedule (from its preview page). To enqueue the list, upload it on the batches page."}
	case u.purpose != p:
		return nil, &useError{400, "This form's token is a review's, not a schedule preview's: it can only enqueue that list. To schedule a list, add it on the schedules page."}
	case u.user != user:
		return nil, &useError{403, "This upload was made by someone else, and only they may use it: upload the list yourself."}
	case u.saving || (exclusive && u.inUse > 0):
		return nil, &useError{409, "This schedule is being saved already: see the schedules page."}
	}
	u.inUse++
	u.saving = exclusive
	return u, nil
}

// done ends a use; with drop the upload is used up and removed.
func (s *spool) done(u *upload, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.inUse--
	u.saving = false
	if drop {
		s.dropLocked(u)
	}
}

package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

func newSchedule(name string, next time.Time) *store.Schedule {
	return &store.Schedule{Name: name, Cron: "0 2 * * *", TimeZone: "UTC", Source: name + ".csv", Format: "csv",
		Content: []byte("configuration_id\n"), SHA256: strings.Repeat("0", 64), RowCount: 1,
		LastRunAt: next.Add(-24 * time.Hour), NextRunAt: next}
}

func TestSchedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	now := time.Now().UTC().Truncate(time.Microsecond)

	if err := store.PutSchedule(ctx, db.Pool, newSchedule("due", now.Add(-time.Minute)), false); err != nil {
		t.Fatal(err)
	}
	if err := store.PutSchedule(ctx, db.Pool, newSchedule("later", now.Add(time.Hour)), false); err != nil {
		t.Fatal(err)
	}
	if err := store.PutSchedule(ctx, db.Pool, newSchedule("due", now), false); !errors.Is(err, store.ErrExists) {
		t.Fatalf("adding a taken name: %v, want ErrExists", err)
	}

	// Two ticks at once: the first locks the due schedule, the second skips it.
	tx1, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx) //nolint:errcheck
	due, err := store.LockDueSchedules(ctx, tx1, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].Name != "due" || due[0].Bytes != int64(len("configuration_id\n")) {
		t.Fatalf("first tick locked %+v, want the one due schedule", due)
	}
	tx2, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(ctx) //nolint:errcheck
	if due2, err := store.LockDueSchedules(ctx, tx2, now); err != nil || len(due2) != 0 {
		t.Fatalf("second tick locked %d schedules (%v), want none while the first holds it", len(due2), err)
	}

	// The first records its run and commits: the schedule is no longer due.
	const batch = "0b000000-0000-4000-8000-000000000001"
	if err := store.FinishScheduleRun(ctx, tx1, "due", store.ScheduleRun{Slot: now.Add(-time.Minute), Next: now.Add(time.Hour), BatchID: batch}); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if due2, err := store.LockDueSchedules(ctx, tx2, now); err != nil || len(due2) != 0 {
		t.Fatalf("after the first committed, the second locked %d (%v), want none", len(due2), err)
	}
	_ = tx2.Rollback(ctx)

	// A failed run keeps the last batch and records the error.
	if err := store.FinishScheduleRun(ctx, db.Pool, "due", store.ScheduleRun{Slot: now, Next: now.Add(2 * time.Hour), Error: "in.csv:2: bad"}); err != nil {
		t.Fatal(err)
	}
	list, err := store.ListSchedules(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "due" || list[1].Name != "later" {
		t.Fatalf("list = %+v, want due and later by name", list)
	}
	if s := list[0]; s.LastBatchID != batch || s.LastError != "in.csv:2: bad" || !s.LastRunAt.Equal(now) || !s.NextRunAt.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("after a failed run: %+v, want last batch kept, the error, last run %s", s, now)
	}

	// Replacing starts afresh.
	repl := newSchedule("due", now.Add(3*time.Hour))
	repl.Cron, repl.Content = "0 3 * * *", []byte("configuration_id,group_id\n")
	if err := store.PutSchedule(ctx, db.Pool, repl, true); err != nil {
		t.Fatal(err)
	}
	content, err := store.ScheduleContent(ctx, db.Pool, "due")
	if err != nil || string(content) != string(repl.Content) {
		t.Fatalf("content after replace = %q (%v), want %q", content, err, repl.Content)
	}
	list, _ = store.ListSchedules(ctx, db.Pool)
	if s := list[0]; s.Cron != "0 3 * * *" || s.LastBatchID != "" || s.LastError != "" || !s.NextRunAt.Equal(repl.NextRunAt) {
		t.Fatalf("after replace: %+v, want the new cron and no run history", s)
	}

	if err := store.DeleteSchedule(ctx, db.Pool, "due"); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteSchedule(ctx, db.Pool, "due"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing twice: %v, want ErrNotFound", err)
	}
	if _, err := store.ScheduleContent(ctx, db.Pool, "due"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("content of a removed schedule: %v, want ErrNotFound", err)
	}
}

func TestQueueDepth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	rc, err := jobs.NewInsertClient(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	csv := "configuration_id,group_id\n"
	for i := range 7 {
		csv += "c0000000-0000-4000-8000-000000000001,90000000-0000-4000-8000-00000000000" + string(rune('0'+i)) + "\n"
	}
	out, err := jobs.Enqueue(ctx, db.Pool, rc, []jobs.Input{{Name: "q.csv", Reader: strings.NewReader(csv), Format: intake.FormatCSV, DefaultTenant: testTenant}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetBatchSchedule(ctx, db.Pool, out[0].Batch.ID, "nightly"); err != nil {
		t.Fatal(err)
	}
	if ids, err := store.ScheduleBatches(ctx, db.Pool, "nightly"); err != nil || len(ids) != 1 || ids[0] != out[0].Batch.ID {
		t.Fatalf("ScheduleBatches = %v, %v; want the one batch", ids, err)
	}
	// Move jobs through states as River would; a final one must not count.
	if _, err := db.Pool.Exec(ctx, `UPDATE river_job SET state = CASE
			WHEN id = (SELECT min(id) FROM river_job) THEN 'running'::river_job_state
			WHEN id = (SELECT max(id) FROM river_job) THEN 'completed'::river_job_state
			ELSE state END, finalized_at = CASE WHEN id = (SELECT max(id) FROM river_job) THEN now() END`); err != nil {
		t.Fatal(err)
	}
	got, err := store.QueueDepth(ctx, db.Pool, jobs.QueueAssign)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"available": 5, "running": 1, "scheduled": 0, "retryable": 0, "pending": 0}
	if len(got) != len(want) {
		t.Fatalf("QueueDepth = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("QueueDepth = %v, want %v", got, want)
		}
	}
	if other, err := store.QueueDepth(ctx, db.Pool, "another"); err != nil || other["available"] != 0 {
		t.Fatalf("another queue: %v, %v; want zeros", other, err)
	}
}

// failingAtEnd yields r, then fails instead of ending.
type failingAtEnd struct{ r io.Reader }

func (f failingAtEnd) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("the list changed since its check")
	}
	return n, err
}

// TestPutScheduleList: a list streamed in several chunks is stored whole
// and in order; a reader's error at the end stores nothing; two lists
// stored in one transaction do not collide.
func TestPutScheduleList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 4)
	now := time.Now().UTC().Truncate(time.Microsecond)
	list := make([]byte, 5<<20/2+17) // two and a half chunks
	for i := range list {
		list[i] = byte('a' + i%26)
	}
	s := newSchedule("big", now.Add(time.Hour))
	if err := store.PutScheduleList(ctx, store.Wrap(db.Pool), s, bytes.NewReader(list), false); err != nil {
		t.Fatal(err)
	}
	if s.Bytes != int64(len(list)) {
		t.Errorf("Bytes = %d, want %d", s.Bytes, len(list))
	}
	got, err := store.ScheduleContent(ctx, db.Pool, "big")
	if err != nil || !bytes.Equal(got, list) {
		t.Fatalf("content = %d bytes (%v), want the %d bytes streamed, in order", len(got), err, len(list))
	}

	bad := newSchedule("bad", now.Add(time.Hour))
	err = store.PutScheduleList(ctx, db.Pool, bad, failingAtEnd{bytes.NewReader(list)}, false)
	if err == nil || !strings.Contains(err.Error(), "changed since its check") {
		t.Fatalf("a list failing at its end: %v, want its error", err)
	}
	if _, err := store.ScheduleContent(ctx, db.Pool, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a list failing at its end was stored (%v)", err)
	}

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, name := range []string{"one", "two"} {
		if err := store.PutScheduleList(ctx, tx, newSchedule(name, now), strings.NewReader(name), false); err != nil {
			t.Fatalf("%s in one transaction: %v", name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two"} {
		if got, err := store.ScheduleContent(ctx, db.Pool, name); err != nil || string(got) != name {
			t.Errorf("content of %s = %q (%v)", name, got, err)
		}
	}
	empty := newSchedule("empty", now)
	if err := store.PutScheduleList(ctx, db.Pool, empty, strings.NewReader(""), false); err != nil {
		t.Fatal(err)
	}
	if got, err := store.ScheduleContent(ctx, db.Pool, "empty"); err != nil || len(got) != 0 {
		t.Errorf("an empty list reads back as %q (%v)", got, err)
	}
}

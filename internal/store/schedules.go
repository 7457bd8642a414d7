package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrExists is returned when adding something whose name is taken.
var ErrExists = errors.New("already exists")

// Schedule is a stored list with the cron schedule it is enqueued on.
type Schedule struct {
	Name     string
	Cron     string
	TimeZone string
	Source   string // the file name it was added from
	Format   string // intake.Format
	Content  []byte // only read by ScheduleContent
	SHA256   string
	Bytes    int64
	RowCount int
	// LastRunAt is the slot last run, or when the schedule was added;
	// NextRunAt is the first slot after it.
	LastRunAt   time.Time
	NextRunAt   time.Time
	LastBatchID string
	LastError   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// PutSchedule stores s with its list s.Content. With replace, an existing
// schedule of that name starts afresh with the new list, cron and times
// (its past runs stay in batches.schedule); without, a taken name is
// ErrExists.
func PutSchedule(ctx context.Context, q Querier, s *Schedule, replace bool) error {
	return PutScheduleList(ctx, q, s, bytes.NewReader(s.Content), replace)
}

// scheduleChunk is how much of a list PutScheduleList holds at once.
const scheduleChunk = 1 << 20

// PutScheduleList stores s as PutSchedule does, with its list read from
// list instead of s.Content: the list streams to Postgres a chunk at a
// time (COPY into a temporary table, joined there), so a list of any size
// costs the caller a chunk of memory. An error from list (a caller's
// check at its end, say) stores nothing. s.Bytes becomes the list's length.
func PutScheduleList(ctx context.Context, q Querier, s *Schedule, list io.Reader, replace bool) error {
	var db interface {
		Begin(context.Context) (pgx.Tx, error)
	}
	switch v := q.(type) {
	case *DB:
		db = v.pool
	case interface {
		Begin(context.Context) (pgx.Tx, error)
	}:
		db = v
	default:
		return fmt.Errorf("error storing schedule %q: %T cannot begin a transaction", s.Name, q)
	}
	sql := `INSERT INTO schedules (name, cron, timezone, source, format, content, sha256, row_count, last_run_at, next_run_at)
		SELECT $1, $2, $3, $4, $5, coalesce((SELECT string_agg(data, ''::bytea ORDER BY seq) FROM schedule_list_chunks), ''::bytea),
			$6, $7, $8, $9`
	if replace {
		sql += ` ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, source = excluded.source,
			format = excluded.format, content = excluded.content, sha256 = excluded.sha256, row_count = excluded.row_count,
			last_run_at = excluded.last_run_at, next_run_at = excluded.next_run_at, last_batch_id = NULL, last_error = NULL,
			updated_at = now()`
	}
	chunks := &listChunks{r: list, buf: make([]byte, scheduleChunk)}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE schedule_list_chunks (seq integer, data bytea) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"schedule_list_chunks"}, []string{"seq", "data"}, chunks); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sql, s.Name, s.Cron, s.TimeZone, s.Source, s.Format, s.SHA256, s.RowCount, s.LastRunAt, s.NextRunAt); err != nil {
			return err
		}
		// Dropped now, not at commit: an outer transaction may store another.
		_, err := tx.Exec(ctx, `DROP TABLE schedule_list_chunks`)
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("schedule %q: %w", s.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("error storing schedule %q: %w", s.Name, err)
	}
	s.Bytes = chunks.n
	return nil
}

// listChunks is a list as COPY rows of (seq, data), read a chunk at a time
// into one buffer: COPY encodes each row before it asks for the next.
type listChunks struct {
	r   io.Reader
	buf []byte
	cur []byte
	seq int
	n   int64
	err error
}

func (c *listChunks) Next() bool {
	if c.err != nil {
		return false
	}
	n, err := io.ReadFull(c.r, c.buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		c.err = io.EOF
	case err != nil:
		c.err = err
		return false
	}
	if n == 0 {
		return false
	}
	c.cur, c.n = c.buf[:n], c.n+int64(n)
	c.seq++
	return true
}

func (c *listChunks) Values() ([]any, error) { return []any{c.seq, c.cur}, nil }

func (c *listChunks) Err() error {
	if errors.Is(c.err, io.EOF) {
		return nil
	}
	return c.err
}

const scheduleColumns = `name, cron, timezone, source, format, sha256, octet_length(content), row_count,
	last_run_at, next_run_at, coalesce(last_batch_id::text, ''), coalesce(last_error, ''), created_at, updated_at`

func scanSchedules(rows pgx.Rows) ([]*Schedule, error) {
	defer rows.Close()
	var out []*Schedule
	for rows.Next() {
		s := &Schedule{}
		if err := rows.Scan(&s.Name, &s.Cron, &s.TimeZone, &s.Source, &s.Format, &s.SHA256, &s.Bytes, &s.RowCount,
			&s.LastRunAt, &s.NextRunAt, &s.LastBatchID, &s.LastError, &s.CreatedAt, &s.UpdatedAt); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ListSchedules returns every schedule by name, without its content.
func ListSchedules(ctx context.Context, q Querier) ([]*Schedule, error) {
	rows, err := q.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("error listing schedules: %w", err)
	}
	return scanSchedules(rows)
}

// DeleteSchedule removes a schedule; the batches it enqueued stay.
func DeleteSchedule(ctx context.Context, q Querier, name string) error {
	tag, err := q.Exec(ctx, `DELETE FROM schedules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("error removing schedule %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	return nil
}

// LockDueSchedules locks, until tx ends, the schedules whose next run is at
// or before now. Schedules locked by another transaction are skipped: that
// one is running them, and once it commits they are no longer due, so two
// callers can never run the same slot.
func LockDueSchedules(ctx context.Context, tx pgx.Tx, now time.Time) ([]*Schedule, error) {
	rows, err := tx.Query(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE next_run_at <= $1
		ORDER BY next_run_at, name FOR UPDATE SKIP LOCKED`, now)
	if err != nil {
		return nil, fmt.Errorf("error locking due schedules: %w", err)
	}
	return scanSchedules(rows)
}

// ScheduleContent reads a schedule's stored list.
func ScheduleContent(ctx context.Context, q Querier, name string) ([]byte, error) {
	var b []byte
	err := q.QueryRow(ctx, `SELECT content FROM schedules WHERE name = $1`, name).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("error reading schedule %q: %w", name, err)
	}
	return b, nil
}

// ScheduleRun is what one run of a schedule did.
type ScheduleRun struct {
	Slot    time.Time // the slot run; becomes LastRunAt
	Next    time.Time // the slot after it; becomes NextRunAt
	BatchID string    // empty when the run enqueued nothing
	Error   string    // why it enqueued nothing; empty on success
}

// FinishScheduleRun records a run. A failed run keeps the last batch id.
func FinishScheduleRun(ctx context.Context, q Querier, name string, r ScheduleRun) error {
	_, err := q.Exec(ctx, `UPDATE schedules SET last_run_at = $2, next_run_at = $3,
			last_batch_id = coalesce($4::uuid, last_batch_id), last_error = $5, updated_at = now()
		WHERE name = $1`, name, r.Slot, r.Next, nullable(r.BatchID), nullable(r.Error))
	if err != nil {
		return fmt.Errorf("error recording run of schedule %q: %w", name, err)
	}
	return nil
}

// SetBatchSchedule marks a batch as enqueued by a schedule.
func SetBatchSchedule(ctx context.Context, q Querier, batchID, schedule string) error {
	if _, err := q.Exec(ctx, `UPDATE batches SET schedule = $2 WHERE id = $1`, batchID, schedule); err != nil {
		return fmt.Errorf("error marking batch %s as run by schedule %q: %w", batchID, schedule, err)
	}
	return nil
}

// ScheduleBatches lists the ids of the batches a schedule enqueued, oldest
// first.
func ScheduleBatches(ctx context.Context, q Querier, schedule string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT id::text FROM batches WHERE schedule = $1 ORDER BY created_at, id`, schedule)
	if err != nil {
		return nil, fmt.Errorf("error listing batches of schedule %q: %w", schedule, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; workers must not depend on the host's zoneinfo

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/store"
)

// QueueSchedule is the River queue of schedule ticks. It is not the
// assignment queue so that a tick never waits behind a backlog of rows.
const QueueSchedule = "bulkassign_schedule"

// DefaultScheduleInterval is how often the leader looks for due schedules.
const DefaultScheduleInterval = 30 * time.Second

// scheduleName is what a schedule may be called: it names its batches
// (created_by schedule:NAME) and its commands' arguments.
var scheduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckScheduleName says why name cannot name a schedule, or nil.
func CheckScheduleName(name string) error {
	if !scheduleName.MatchString(name) {
		return fmt.Errorf("schedule name %q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", name)
	}
	return nil
}

// NewSchedule is the schedule to store for a list that has been read and
// found valid (res): its name checked, its first run the next time spec
// fires after now in zone tz. Both the command and the console add
// schedules through it.
func NewSchedule(name, spec, tz, source string, format intake.Format, content []byte, res *intake.Summary, now time.Time) (*store.Schedule, error) {
	if err := CheckScheduleName(name); err != nil {
		return nil, err
	}
	sched, err := ParseSchedule(spec, tz)
	if err != nil {
		return nil, err
	}
	next := sched.Next(now)
	if next.IsZero() {
		return nil, fmt.Errorf("cron expression %q never fires", spec)
	}
	return &store.Schedule{Name: name, Cron: strings.TrimSpace(spec), TimeZone: tz, Source: source, Format: string(format),
		Content: content, SHA256: res.SHA256, RowCount: res.Rows, LastRunAt: now, NextRunAt: next}, nil
}

// NextRuns are the next n times sched fires after t (fewer if it stops).
func NextRuns(sched cron.Schedule, t time.Time, n int) []time.Time {
	var out []time.Time
	for range n {
		if t = sched.Next(t); t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// ParseSchedule reads a standard 5-field cron expression (or a descriptor
// such as @daily) in an IANA time zone ("" is UTC). The zone is given apart
// so that it is stored, shown and checked on its own; @every is refused
// because it has no slots on the calendar to catch up on.
//
// Times are wall-clock times in the zone, and each runs once a day it
// occurs, as with cron(8): when clocks spring forward over it (02:00 in
// Europe/Berlin on the last Sunday of March) it runs at the first time
// after the gap, instead of not at all as robfig/cron would have it; when
// clocks fall back and it occurs twice, it runs at the second.
func ParseSchedule(spec, tz string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, errors.New("cron expression is empty")
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, fmt.Errorf("cron expression %q: give the time zone with --tz, not in the expression", spec)
	case strings.HasPrefix(spec, "@every"):
		return nil, fmt.Errorf("cron expression %q: @every is not supported; use a calendar expression such as \"0 2 * * *\"", spec)
	}
	loc, err := LoadTimeZone(tz)
	if err != nil {
		return nil, err
	}
	s, err := cron.ParseStandard("CRON_TZ=UTC " + spec)
	if err != nil {
		return nil, fmt.Errorf("cron expression %q: %v (the 5 fields are minute hour day-of-month month day-of-week)", spec, err)
	}
	return wallClock{s, loc}, nil
}

// wallClock evaluates a UTC cron schedule on the wall clock of loc, where
// no daylight saving time can skip or repeat a time.
type wallClock struct {
	utc cron.Schedule
	loc *time.Location
}

func (w wallClock) Next(t time.Time) time.Time {
	l := t.In(w.loc)
	wall := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
	// time.Date moves a time in a spring-forward gap past the gap, and
	// picks the later of a time that falls back; the loop only guards the
	// promise that Next is after t.
	for range 24 * 60 {
		n := w.utc.Next(wall)
		if n.IsZero() {
			return n
		}
		if r := time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), n.Minute(), n.Second(), 0, w.loc); r.After(t) {
			return r
		}
		wall = n
	}
	return time.Time{}
}

// LoadTimeZone loads an IANA zone by name; "" is UTC. "Local" is refused:
// a schedule runs on whichever worker leads, whose local zone may differ.
func LoadTimeZone(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	if tz == "Local" {
		return nil, errors.New(`time zone "Local" depends on the machine: name a zone such as Europe/Berlin or UTC`)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone %q is not an IANA zone name such as Europe/Berlin or UTC", tz)
	}
	return loc, nil
}

// LatestSlot returns the latest time s fires after after and no later than
// now, if any. Missed slots collapse into the latest: a worker fleet that
// was down for a week runs a nightly list once, not seven times.
func LatestSlot(s cron.Schedule, after, now time.Time) (time.Time, bool) {
	slot := s.Next(after)
	if slot.IsZero() || slot.After(now) {
		return time.Time{}, false
	}
	// Skip ahead over long downtimes instead of stepping through every
	// missed slot: start from a recent time that still has a slot before now.
	for _, back := range []time.Duration{time.Hour, 48 * time.Hour, 32 * 24 * time.Hour, 400 * 24 * time.Hour} {
		from := now.Add(-back)
		if !from.After(after) {
			break
		}
		if n := s.Next(from); !n.IsZero() && !n.After(now) {
			slot = n
			break
		}
	}
	for {
		n := s.Next(slot)
		if n.IsZero() || n.After(now) {
			return slot, true
		}
		slot = n
	}
}

// ScheduleConfig tunes the schedule tick. Zero values take the defaults.
type ScheduleConfig struct {
	// Interval is how often the leader enqueues a tick; default 30 s. River
	// advises no less than a second.
	Interval time.Duration
	// Now is the clock schedules are judged by; default time.Now. Tests
	// inject a fake one.
	Now func() time.Time
	// DefaultTenant is the tenant of a run's rows that name none: the
	// worker's AZURE_TENANT_ID, as enqueue's is for enqueue (see
	// Input.DefaultTenant). A run whose rows need it when it is not a
	// tenant id enqueues nothing and records why on its schedule.
	DefaultTenant string
}

func (c *ScheduleConfig) withDefaults() {
	if c.Interval <= 0 {
		c.Interval = DefaultScheduleInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ScheduleTickArgs is the periodic job that runs due schedules.
type ScheduleTickArgs struct{}

// Kind is the River job kind.
func (ScheduleTickArgs) Kind() string { return "bulkassign_schedule_tick" }

// InsertOpts: one attempt, since the next tick does whatever a failed one
// did not.
func (ScheduleTickArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSchedule, MaxAttempts: 1}
}

// NewScheduleTick is the periodic job for River's PeriodicJobs. River runs
// periodic jobs on the elected leader only, from memory, and does not catch
// up; the tick is therefore only a heartbeat, and what is due (and what was
// missed) is decided from the schedules table by RunDueSchedules.
func NewScheduleTick(cfg ScheduleConfig) *river.PeriodicJob {
	cfg.withDefaults()
	return leaderEvery(cfg.Interval, ScheduleTickArgs{})
}

// ScheduleWorker works schedule ticks.
type ScheduleWorker struct {
	river.WorkerDefaults[ScheduleTickArgs]
	pool   *pgxpool.Pool
	log    *slog.Logger
	now    func() time.Time
	tenant string // ScheduleConfig.DefaultTenant
}

// NewScheduleWorker returns the tick worker.
func NewScheduleWorker(pool *pgxpool.Pool, logger *slog.Logger, cfg ScheduleConfig) *ScheduleWorker {
	cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ScheduleWorker{pool: pool, log: logger, now: cfg.Now, tenant: cfg.DefaultTenant}
}

// Timeout leaves room to enqueue a large list (a million rows take tens of
// seconds), beyond the row jobs' timeout. A tick running past
// WORKER_RESCUE_AFTER is marked discarded by River's rescuer but goes on;
// its transaction still commits whole or not at all, and any other tick
// meanwhile finds its schedules locked and skips them.
func (w *ScheduleWorker) Timeout(*river.Job[ScheduleTickArgs]) time.Duration { return 10 * time.Minute }

// Work runs the due schedules.
func (w *ScheduleWorker) Work(ctx context.Context, _ *river.Job[ScheduleTickArgs]) error {
	rc, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	_, err = RunDueSchedules(ctx, w.pool, rc, w.now(), w.tenant, w.log)
	return err
}

// ScheduleCreator is the created_by of the batches a schedule's runs
// enqueue.
func ScheduleCreator(name string) string { return "schedule:" + name }

// ScheduleRun is one run made by RunDueSchedules.
type ScheduleRun struct {
	Schedule string
	store.ScheduleRun
	Rows int
}

// RunDueSchedules enqueues one batch for every schedule due at now, in one
// transaction that also records each run's slot: the row locks taken by
// store.LockDueSchedules and the slot bookkeeping make every slot run
// exactly once however many workers (or overlapping leaders) call this. A
// stored list that has become invalid (intake rules changed) records its
// error on the schedule, and the slot counts as run; so does a list whose
// rows rely on defaultTenant (ScheduleConfig.DefaultTenant) when it is not
// a tenant id.
func RunDueSchedules(ctx context.Context, pool *pgxpool.Pool, rc *river.Client[pgx.Tx], now time.Time, defaultTenant string,
	log *slog.Logger) ([]ScheduleRun, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	due, err := store.LockDueSchedules(ctx, tx, now)
	if err != nil {
		return nil, err
	}
	var runs []ScheduleRun
	for _, s := range due {
		run, ran, err := runSchedule(ctx, tx, rc, s, now, defaultTenant)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", s.Name, err)
		}
		if err := store.FinishScheduleRun(ctx, tx, s.Name, run.ScheduleRun); err != nil {
			return nil, err
		}
		if ran {
			runs = append(runs, run)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("error committing schedule runs: %w", err)
	}
	for _, r := range runs {
		if r.Error != "" {
			log.Error("scheduled run enqueued nothing: the stored list is invalid, or has rows for the default tenant and the worker's AZURE_TENANT_ID is not a tenant id; replace the list with `enqueue schedule add --replace`, or fix AZURE_TENANT_ID",
				"schedule", r.Schedule, "slot", r.Slot, "error", r.Error)
			continue
		}
		log.Info("scheduled run enqueued", "schedule", r.Schedule, "slot", r.Slot, "batch", r.BatchID, "rows", r.Rows, "next", r.Next)
	}
	return runs, nil
}

// maxRunError bounds the error kept on a schedule: the first problems of an
// invalid list say enough.
const maxRunError = 2000

// runSchedule enqueues s's list for its latest due slot within tx, rows
// that name no tenant in defaultTenant. ran is false when nothing was due
// after all.
func runSchedule(ctx context.Context, tx pgx.Tx, rc *river.Client[pgx.Tx], s *store.Schedule, now time.Time,
	defaultTenant string) (run ScheduleRun, ran bool, err error) {
	run = ScheduleRun{Schedule: s.Name}
	sched, err := ParseSchedule(s.Cron, s.TimeZone)
	if err != nil {
		// Stored by `schedule add`, which parsed it: only a change in the
		// parser can get here. Leave it due and fail loudly every tick.
		return run, false, err
	}
	slot, ok := LatestSlot(sched, s.LastRunAt, now)
	if !ok {
		// Due by next_run_at but not by the cron (the clocks disagree):
		// recompute when it is next due.
		run.Slot, run.Next, run.Error = s.LastRunAt, sched.Next(s.LastRunAt), s.LastError
		return run, false, nil
	}
	run.Slot, run.Next = slot, sched.Next(slot)
	content, err := store.ScheduleContent(ctx, tx, s.Name)
	if err != nil {
		return run, false, err
	}
	// A savepoint, so that an invalid list undoes its own rows and nothing
	// else.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return run, false, err
	}
	out, err := EnqueueTx(ctx, sp, rc, []Input{{Name: s.Source, Reader: bytes.NewReader(content), Format: intake.Format(s.Format),
		DefaultTenant: defaultTenant, CreatedBy: ScheduleCreator(s.Name)}})
	var invalid *InvalidInputError
	var noTenant *NoTenantError
	if errors.As(err, &invalid) || errors.As(err, &noTenant) {
		if err := sp.Rollback(ctx); err != nil {
			return run, false, err
		}
		run.Error = strings.TrimSpace(err.Error())
		if len(run.Error) > maxRunError {
			run.Error = strings.ToValidUTF8(run.Error[:maxRunError], "") + " …"
		}
		return run, true, nil
	}
	if err != nil {
		return run, false, err
	}
	b := out[0].Batch
	if err := store.SetBatchSchedule(ctx, sp, b.ID, s.Name); err != nil {
		return run, false, err
	}
	if err := sp.Commit(ctx); err != nil {
		return run, false, err
	}
	run.BatchID, run.Rows = b.ID, b.RowCount
	return run, true, nil
}

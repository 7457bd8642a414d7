package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
)

const scheduleUsage = `usage: enqueue schedule add NAME --cron "0 2 * * *" [--tz Europe/Berlin] FILE
       enqueue schedule list
       enqueue schedule remove NAME

add validates FILE as enqueue does and stores it: at every time the cron
expression (minute hour day-of-month month day-of-week, in --tz, default UTC)
names, the worker fleet enqueues it as a fresh batch, once. A time missed
while no worker ran is caught up once when one starts. --replace changes an
existing schedule's list or times; it keeps the schedule's time zone unless
--tz is given.
`

func enqueueSchedule(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, scheduleUsage)
		return usageError("schedule needs a command: add, list or remove")
	}
	switch args[0] {
	case "add":
		return scheduleAdd(ctx, env, args[1:])
	case "list":
		return scheduleList(ctx, env, args[1:])
	case "remove":
		return scheduleRemove(ctx, env, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, scheduleUsage)
		return nil
	}
	fmt.Fprint(env.Stderr, scheduleUsage)
	return usageError("unknown schedule command %q (want add, list or remove)", args[0])
}

func scheduleAdd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue schedule add", scheduleUsage+"\nflags:\n")
	spec := fs.String("cron", "", `when to run, as a 5-field cron expression, e.g. "0 2 * * *" (02:00 daily)`)
	tz := fs.String("tz", "UTC", "IANA time zone of the cron expression, e.g. Europe/Berlin (with --replace: default the replaced schedule's)")
	format := fs.String("format", "", "input format: csv, json, ndjson (default: by extension)")
	replace := fs.Bool("replace", false, "replace the schedule of that name if there is one")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("schedule add takes a name and a file (got %d arguments)", len(pos))
	}
	name, file := pos[0], pos[1]
	if err := jobs.CheckScheduleName(name); err != nil {
		return usageError("%v", err)
	}
	if _, err := jobs.LoadTimeZone(*tz); err != nil {
		return usageError("--tz: %v", err)
	}
	if *spec == "" {
		return usageError(`--cron is required, e.g. --cron "0 2 * * *"`)
	}
	sched, err := jobs.ParseSchedule(*spec, *tz)
	if err != nil {
		return usageError("--cron: %v", err)
	}
	if file == "-" {
		return usageError("schedule add needs a file: a schedule keeps the list, and stdin has no name to report it by")
	}
	f, err := intake.DetectFormat(file, *format)
	if err != nil {
		return usageError("%v", err)
	}
	limit, err := config.ScheduleMax(env.Getenv)
	if err != nil {
		return err
	}
	content, err := readList(file, limit)
	if err != nil {
		return err
	}
	res, err := intake.Reader{Name: file, Format: f}.Read(bytes.NewReader(content), func(intake.Row) error { return nil })
	if err != nil {
		return err
	}
	printWarnings(env.Stderr, res)
	if e := res.Err(); e != nil {
		fmt.Fprintln(env.Stderr, e.Error())
		return &exitError{ExitFailed, errors.New("nothing was stored: fix the rows above and run again")}
	}

	if next := sched.Next(time.Now()); next.IsZero() {
		return usageError("--cron %q never fires", *spec)
	}
	db, err := openMigrated(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	// A replaced schedule keeps its zone unless --tz says otherwise: its
	// times were meant there.
	zone, kept := *tz, false
	if *replace && !flagGiven(fs, "tz") {
		if zone, kept, err = scheduleZone(ctx, db, name, zone); err != nil {
			return err
		}
	}
	s, err := jobs.NewSchedule(name, *spec, zone, file, f, content, res, time.Now())
	if err != nil {
		return fmt.Errorf("schedule %q: %w", name, err)
	}
	next := s.NextRunAt
	err = store.PutSchedule(ctx, db, s, *replace)
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("schedule %q exists: add --replace to change it, or remove it first", name)
	}
	if err != nil {
		return err
	}
	verb := "added"
	if *replace {
		verb = "stored"
	}
	inZone := zone
	if kept {
		inZone += " (kept from the replaced schedule; --tz changes it)"
	}
	fmt.Fprintf(env.Stdout, "schedule %s %s: %d rows from %s, %q in %s; next run %s\n",
		name, verb, res.Rows, file, s.Cron, inZone, formatScheduleTime(next, zone))
	return nil
}

// scheduleZone is the time zone of the schedule called name, and whether
// there is one; def when there is none.
func scheduleZone(ctx context.Context, db *store.DB, name, def string) (string, bool, error) {
	list, err := store.ListSchedules(ctx, db)
	if err != nil {
		return "", false, err
	}
	for _, s := range list {
		if s.Name == name {
			return s.TimeZone, true, nil
		}
	}
	return def, false, nil
}

// flagGiven reports whether the flag called name was set on the command
// line (not left at its default).
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// readList reads a whole list file, refusing one larger than limit
// (BULKASSIGN_SCHEDULE_MAX: every run of the schedule reads it whole).
func readList(name string, limit int64) ([]byte, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, errors.Unwrap(err))
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %s (%s), too large to store as a schedule: split it into several", name, config.FormatSize(limit), config.ScheduleMaxVar)
	}
	return b, nil
}

func scheduleList(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue schedule list", "usage: enqueue schedule list\n")
	if err := parseNoArgs(fs, args, "schedule list"); err != nil {
		return err
	}
	db, err := openMigrated(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := store.ListSchedules(ctx, db)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(env.Stderr, `no schedules (add one with: enqueue schedule add NAME --cron "0 2 * * *" FILE)`)
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCRON\tTZ\tROWS\tSOURCE\tNEXT RUN\tLAST RUN\tLAST BATCH\tLAST RESULT\tLAST ERROR")
	for _, s := range list {
		last, result := "-", "-"
		if s.LastBatchID != "" || s.LastError != "" {
			last = formatScheduleTime(s.LastRunAt, s.TimeZone)
		}
		if s.LastBatchID != "" {
			c, err := store.CountByStatus(ctx, db, s.LastBatchID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			result = runResult(c)
		}
		errLine, _, _ := strings.Cut(s.LastError, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Cron, s.TimeZone, s.RowCount, s.Source,
			formatScheduleTime(s.NextRunAt, s.TimeZone), last, orDash(s.LastBatchID), result, orDash(errLine))
	}
	return tw.Flush()
}

// runResult is a schedule's last batch in a few words: how many rows
// failed or were canceled of how many, or whether it still runs (a pruned
// batch has no rows: "-").
func runResult(c store.StatusCounts) string {
	switch bad := c[assign.StatusFailed] + c[assign.StatusCanceled]; {
	case c.Total() == 0:
		return "-"
	case c.Final() < c.Total():
		return fmt.Sprintf("running (%d of %d final)", c.Final(), c.Total())
	case bad > 0:
		return fmt.Sprintf("%d failed, %d canceled of %d", c[assign.StatusFailed], c[assign.StatusCanceled], c.Total())
	}
	return fmt.Sprintf("ok (%d rows)", c.Total())
}

func scheduleRemove(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "enqueue schedule remove", "usage: enqueue schedule remove NAME\n")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("schedule remove takes one schedule name")
	}
	db, err := openMigrated(ctx, env, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := store.DeleteSchedule(ctx, db, pos[0]); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no schedule named %q (see enqueue schedule list)", pos[0])
		}
		return err
	}
	fmt.Fprintf(env.Stdout, "schedule %s removed; the batches it enqueued stay\n", pos[0])
	return nil
}

// formatScheduleTime shows t in the schedule's zone, with the zone's
// abbreviation so a reader in another zone is not misled.
func formatScheduleTime(t time.Time, tz string) string {
	loc, err := jobs.LoadTimeZone(tz)
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

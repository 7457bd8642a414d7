package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestScheduleReplaceKeepsTimeZone(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 0)
	file := testenv.WriteFile(t, "nightly.csv", testenv.GroupCSV(3, 1))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	stored := func(name string) *store.Schedule {
		t.Helper()
		list, err := store.ListSchedules(context.Background(), h.DB.Pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no schedule %q stored", name)
		return nil
	}
	const kept = "(kept from the replaced schedule; --tz changes it)"

	// Steps run in order on one schedule.
	for _, step := range []struct {
		name     string
		args     []string
		wantOut  string // substring of stdout
		wantZone string
		wantHour int // of the next run, in the zone
	}{
		{"Add", []string{"nightly", "--cron", "0 2 * * *", "--tz", "Europe/Berlin"}, `"0 2 * * *" in Europe/Berlin; next run`, "Europe/Berlin", 2},
		{"ReplaceKeepsZone", []string{"nightly", "--cron", "0 3 * * *", "--replace"}, `"0 3 * * *" in Europe/Berlin ` + kept, "Europe/Berlin", 3},
		{"ReplaceWithZone", []string{"nightly", "--cron", "0 4 * * *", "--replace", "--tz", "UTC"}, `"0 4 * * *" in UTC; next run`, "UTC", 4},
		{"ReplaceKeepsUTC", []string{"nightly", "--cron", "0 5 * * *", "--replace"}, `"0 5 * * *" in UTC ` + kept, "UTC", 5},
	} {
		r := enqueue(t, h, false, append(append([]string{"schedule", "add"}, step.args...), file)...)
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, step.wantOut) {
			t.Fatalf("%s: exit %d, stdout %q, want it to contain %q\nstderr: %s", step.name, r.code, r.stdout, step.wantOut, r.stderr)
		}
		s := stored("nightly")
		loc := time.UTC
		if step.wantZone == "Europe/Berlin" {
			loc = berlin
		}
		if next := s.NextRunAt.In(loc); s.TimeZone != step.wantZone || next.Hour() != step.wantHour || next.Minute() != 0 {
			t.Fatalf("%s: stored zone %s, next run %s; want %s and %02d:00 there", step.name, s.TimeZone, next, step.wantZone, step.wantHour)
		}
	}

	// Replacing a schedule that does not exist adds it, in UTC by default.
	r := enqueue(t, h, false, "schedule", "add", "fresh", "--cron", "0 6 * * *", "--replace", file)
	if r.code != cli.ExitOK || strings.Contains(r.stdout, "kept") || stored("fresh").TimeZone != "UTC" {
		t.Fatalf("replace of a new schedule: exit %d, stdout %q; want it stored in UTC without a note", r.code, r.stdout)
	}
}

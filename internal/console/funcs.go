package console

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/jobs"
)

func userOf(r *http.Request) string { return access.User(r) }

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 8 {
			return s[:8]
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
	},
	"dash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
	"statusOf": func(m map[string]int, s any) int { return m[fmt.Sprint(s)] },
	"zoneTime": zoneTime,
}

// zoneTime shows t in a schedule's zone, with the zone's abbreviation, as
// its cron reads it (and `enqueue schedule list` shows it).
func zoneTime(t time.Time, tz string) string {
	if t.IsZero() {
		return "-"
	}
	loc, err := jobs.LoadTimeZone(tz)
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2006-01-02 15:04 MST")
}

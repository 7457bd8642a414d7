package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogDurations: durations read "9s", not 9000000000 nanoseconds, in
// every attribute of both handlers, groups and logger attributes included.
func TestLogDurations(t *testing.T) {
	t.Parallel()
	log := func(tty bool) string {
		var buf bytes.Buffer
		l := newLogger(&Env{Stderr: &buf, StderrIsTerminal: tty}, slog.LevelInfo)
		l.With("job_timeout", 45*time.Second).WithGroup("row").Info("snoozed",
			"retry_after", 9*time.Second, slog.Group("wait", "limit", 1500*time.Millisecond), "attempt", 2)
		return buf.String()
	}

	var got struct {
		JobTimeout any `json:"job_timeout"`
		Row        struct {
			RetryAfter any `json:"retry_after"`
			Attempt    any `json:"attempt"`
			Wait       struct {
				Limit any `json:"limit"`
			} `json:"wait"`
		} `json:"row"`
	}
	line := log(false)
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("JSON log %q: %v", line, err)
	}
	if got.JobTimeout != "45s" || got.Row.RetryAfter != "9s" || got.Row.Wait.Limit != "1.5s" || got.Row.Attempt != float64(2) {
		t.Errorf("JSON log %q: want job_timeout \"45s\", retry_after \"9s\", wait.limit \"1.5s\" and attempt 2", line)
	}

	line = log(true)
	for _, want := range []string{"job_timeout=45s", "row.retry_after=9s", "row.wait.limit=1.5s", "row.attempt=2"} {
		if !strings.Contains(line, want) {
			t.Errorf("text log %q lacks %s", line, want)
		}
	}
}

package cli_test

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func readCSV(t *testing.T, s string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%s", err, s)
	}
	return recs
}

func TestResults(t *testing.T) {
	t.Parallel()
	// One finished batch, 24 rows on 4 configurations of which 3 exist:
	// 18 created, 6 failed.
	h := newTenant(t, 3)
	h.StartWorker(t, fastWorker)
	batch := h.Enqueue(t, "results.csv", testenv.GroupCSV(24, 4))
	h.WaitFinal(t, batch, 30*time.Second)

	t.Run("CSVWithHeaderAndStatusFilter", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			status string
			want   map[string]int
		}{
			{"", map[string]int{"created": 18, "failed": 6}},
			{"failed", map[string]int{"failed": 6}},
			{"created,failed", map[string]int{"created": 18, "failed": 6}},
			{"canceled", map[string]int{}},
		}
		for _, tc := range tests {
			args := []string{"results", batch[:8], "--format", "csv"}
			if tc.status != "" {
				args = append(args, "--status", tc.status)
			}
			r := enqueue(t, h, false, args...)
			if r.code != cli.ExitOK {
				t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
			}
			recs := readCSV(t, r.stdout)
			if !slices.Equal(recs[0], store.ExportColumns) {
				t.Fatalf("header %v, want %v", recs[0], store.ExportColumns)
			}
			got := map[string]int{}
			status := slices.Index(recs[0], "status")
			for _, rec := range recs[1:] {
				got[rec[status]]++
			}
			if len(got) != len(tc.want) || got["created"] != tc.want["created"] || got["failed"] != tc.want["failed"] {
				t.Fatalf("--status %q: rows by status %v, want %v", tc.status, got, tc.want)
			}
		}
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		r := enqueue(t, h, false, "results", batch, "--format", "json", "--status", "failed")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
			t.Fatalf("output is not a JSON array: %v\n%s", err, r.stdout)
		}
		if len(rows) != 6 {
			t.Fatalf("%d rows, want 6", len(rows))
		}
		for _, row := range rows {
			if row["status"] != "failed" || row["http_status"] != float64(404) || row["error_code"] == nil || row["assignment_id"] != nil ||
				row["configuration_id"] != testenv.Config(3) || len(row) != len(store.ExportColumns) {
				t.Fatalf("row %v: want failed, 404, an error code, null assignment, Config(3) and every column", row)
			}
		}
		r = enqueue(t, h, false, "results", batch, "--format", "json", "--status", "canceled")
		if strings.TrimSpace(r.stdout) != "[]" {
			t.Fatalf("no rows as JSON = %q, want []", r.stdout)
		}
	})

	t.Run("Table", func(t *testing.T) {
		t.Parallel()
		r := enqueue(t, h, false, "results", batch)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 25 || !strings.HasPrefix(lines[0], "LINE") || strings.Contains(lines[0], "REVERT") {
			t.Fatalf("table has %d lines, header %q; want 25 and no REVERT column before a revert", len(lines), lines[0])
		}
	})

	t.Run("BadFlags", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"results", batch, "--status", "done"}, `"done" is not a status`},
			{[]string{"results", batch, "--format", "xml"}, `-format "xml"`},
			{[]string{"results"}, "one batch id"},
			{[]string{"batches", "--limit", "0"}, "-limit 0"},
		}
		for _, tc := range tests {
			if r := enqueue(t, h, false, tc.args...); r.code != cli.ExitSetting || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
			}
		}
	})
}

func TestResultsCSVIsSafeInSpreadsheets(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	// File names end up in every row's source column; each of these would
	// run as a formula in a spreadsheet.
	for _, name := range []string{"=HYPERLINK(\"http://x\").csv", "+1+1.csv", "-2+3.csv", "@SUM(A1).csv", "\t=1.csv", "\r=1.csv", "plain.csv"} {
		batch := h.Enqueue(t, name, testenv.GroupCSV(2, 1))
		r := enqueue(t, h, false, "results", batch, "--format", "csv")
		recs := readCSV(t, r.stdout)
		source := slices.Index(recs[0], "source")
		want := name
		if name != "plain.csv" {
			want = "'" + name
		}
		for _, rec := range recs[1:] {
			if rec[source] != want {
				t.Errorf("source %q exported as %q, want %q", name, rec[source], want)
			}
		}
		// JSON carries the value as it is: no spreadsheet reads it.
		r = enqueue(t, h, false, "results", batch, "--format", "json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || rows[0]["source"] != name {
			t.Errorf("JSON source = %v (%v), want %q unchanged", rows[0]["source"], err, name)
		}
	}
}

func TestBatches(t *testing.T) {
	t.Parallel()
	h := newTenant(t, 1)
	var ids []string
	for i := range 3 {
		ids = append(ids, h.Enqueue(t, "list.csv", testenv.GroupCSV(i+2, 2)))
	}
	r := enqueue(t, h, false, "batches", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != cli.ExitOK || len(lines) != 3 || !strings.HasPrefix(lines[1], ids[2]) || !strings.HasPrefix(lines[2], ids[1]) {
		t.Fatalf("batches --limit 2: exit %d\n%s\nwant the header and the two newest batches", r.code, r.stdout)
	}
	r = enqueue(t, h, false, "batches", "--format", "csv")
	recs := readCSV(t, r.stdout)
	if len(recs) != 4 || recs[1][0] != ids[2] {
		t.Fatalf("batches --format csv:\n%s", r.stdout)
	}
	col := func(name string) int { return slices.Index(recs[0], name) }
	// The newest batch: 4 rows, 2 on a configuration that exists, none worked yet.
	if recs[1][col("rows")] != "4" || recs[1][col("queued")] != "4" || recs[1][col("created")] != "0" {
		t.Fatalf("newest batch %v, want 4 rows all queued", recs[1])
	}
	h.StartWorker(t, fastWorker)
	h.WaitFinal(t, ids[2], 30*time.Second)
	r = enqueue(t, h, false, "batches", "--format", "json", "--limit", "1")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	// The older batches name the same targets, so which batch creates
	// them and which finds them assigned depends on the worker's order.
	if len(list) != 1 || list[0]["created"].(float64)+list[0]["already_assigned"].(float64) != 2 || list[0]["failed"] != float64(2) || list[0]["queued"] != float64(0) {
		t.Fatalf("batches after work: %v, want 2 created or already assigned and 2 failed", list)
	}
}

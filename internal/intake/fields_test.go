package intake

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// TestTargetProblem goes through every combination of target fields that
// assign.Target.Validate refuses: in CSV words the message is Validate's
// own, word for word; in JSON words it names every field by its JSON key
// and never falls back to Validate's CSV wording.
func TestTargetProblem(t *testing.T) {
	invalid := 0
	for _, tt := range assign.TargetTypes {
		for _, group := range []string{"", g1} {
			for _, coll := range []string{"", "SMS00001"} {
				for _, filter := range []string{"", f1} {
					for _, ft := range []assign.FilterType{assign.FilterNone, inc, exc} {
						target := assign.Target{Type: tt, GroupID: group, CollectionID: coll, FilterID: filter, FilterType: ft}
						err := target.Validate()
						if err == nil {
							continue
						}
						invalid++
						if got := csvVocab.targetProblem(&target, err); got != err.Error() {
							t.Errorf("%+v: CSV message %q, Validate says %q", target, got, err)
						}
						got := jsonVocab.targetProblem(&target, err)
						if got == err.Error() || csvWords(got) != "" {
							t.Errorf("%+v: JSON message %q uses CSV words", target, got)
						}
					}
				}
			}
		}
	}
	if invalid < 100 {
		t.Errorf("only %d invalid combinations", invalid)
	}
}

// csvWords returns a CSV column name other than path found in msg, or "".
func csvWords(msg string) string {
	for _, c := range Columns {
		if c != "path" && strings.Contains(msg, c) {
			return c
		}
	}
	return ""
}

// TestJSONReportsUseJSONKeys checks every JSON golden report for CSV
// column names.
func TestJSONReportsUseJSONKeys(t *testing.T) {
	n := 0
	for _, pattern := range []string{"testdata/bad/*.json.golden", "testdata/bad/*.ndjson.golden"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			n++
			for i, line := range strings.Split(readString(t, f), "\n") {
				if w := csvWords(line); w != "" {
					t.Errorf("%s:%d names %s: %s", f, i+1, w, line)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d JSON golden files", n)
	}
}

// TestFieldNames checks the table against the keys Graph uses for a
// target, and the CSV columns against the documented order.
func TestFieldNames(t *testing.T) {
	b, err := json.Marshal(assign.Target{Type: grp, GroupID: g1, CollectionID: "SMS00001", FilterID: f1, FilterType: inc})
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	var graphKeys, ours []string
	for k := range wire {
		graphKeys = append(graphKeys, k)
	}
	for _, k := range targetKeys {
		ours = append(ours, k.name)
	}
	slices.Sort(graphKeys)
	slices.Sort(ours)
	if !slices.Equal(graphKeys, ours) {
		t.Errorf("target keys %v, Graph's %v", ours, graphKeys)
	}
	var row []string
	for _, k := range rowKeys {
		row = append(row, k.name)
	}
	if want := []string{"configurationId", "path", "tenantId", "target"}; !slices.Equal(row, want) {
		t.Errorf("row keys %v, want %v", row, want)
	}
	if want := []string{"configuration_id", "target_type", "group_id", "collection_id", "filter_id", "filter_type", "path", "tenant_id"}; !slices.Equal(Columns, want) {
		t.Errorf("Columns %v, want %v", Columns, want)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRecordReadsBack: every row of testdata/good, written as Record
// writes it under Columns, is read back as the same row in the same tenant.
func TestRecordReadsBack(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range files {
		rows, _ := readFile(t, path)
		var b strings.Builder
		w := csv.NewWriter(&b)
		w.Write(Columns)
		for _, r := range rows {
			w.Write(Record(r.Spec, r.TenantID))
		}
		w.Flush()
		var got []Row
		res, err := Reader{Name: "records.csv", Format: FormatCSV}.Read(strings.NewReader(b.String()), func(r Row) error {
			got = append(got, r)
			return nil
		})
		if err != nil || res.Err() != nil || res.Duplicates != 0 || len(got) != len(rows) {
			t.Fatalf("%s read back: %v, %v, %d duplicates, %d rows of %d", path, err, res.Err(), res.Duplicates, len(got), len(rows))
		}
		for i := range rows {
			if got[i].Spec != rows[i].Spec || got[i].TenantID != rows[i].TenantID {
				t.Errorf("%s: %s %s read back as %s %s", path, rows[i].TenantID, rows[i].Spec.Key(), got[i].TenantID, got[i].Spec.Key())
			}
		}
		n += len(rows)
	}
	if n < 20 {
		t.Fatalf("%d rows in testdata/good: the test proves little", n)
	}
}

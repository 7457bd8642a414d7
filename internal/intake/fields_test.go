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

// TestSpecProblem goes through every combination of the configuration's
// and the target's fields, by id, by name or both, that
// assign.Spec.Validate refuses: in CSV words the message is Validate's
// own, word for word; in JSON words it names every field by its JSON key
// and never falls back to Validate's CSV wording.
func TestSpecProblem(t *testing.T) {
	type byIDName struct{ id, name string }
	none, both := byIDName{}, byIDName{"x", "x"}
	invalid := 0
	for _, cfg := range []byIDName{{c1, ""}, {"", "Wi-Fi"}, none, both} {
		for _, tt := range append(assign.TargetTypes, "bogus") {
			for _, group := range []byIDName{none, {g1, ""}, {"", "Sales"}, both} {
				for _, coll := range []string{"", "SMS00001"} {
					for _, filter := range []byIDName{none, {f1, ""}, {"", "Windows 11"}, both} {
						for _, ft := range []assign.FilterType{assign.FilterNone, inc, exc} {
							s := assign.Spec{ConfigurationID: cfg.id,
								Target: assign.Target{Type: tt, GroupID: group.id, CollectionID: coll, FilterID: filter.id, FilterType: ft},
								Names:  assign.Names{Configuration: cfg.name, Group: group.name, Filter: filter.name}}
							err := s.Validate()
							if err == nil {
								continue
							}
							invalid++
							if got := csvVocab.specProblem(&s, err); got != err.Error() {
								t.Errorf("%+v: CSV message %q, Validate says %q", s, got, err)
							}
							got := jsonVocab.specProblem(&s, err)
							if got == err.Error() || csvWords(got) != "" {
								t.Errorf("%+v: JSON message %q uses CSV words", s, got)
							}
						}
					}
				}
			}
		}
	}
	if invalid < 2000 {
		t.Errorf("only %d invalid combinations", invalid)
	}
}

// csvWords returns a CSV column name found in msg that is not also a JSON
// key (as path and action are), or "".
func csvWords(msg string) string {
	for _, n := range fieldNames {
		if n.csv != n.json && strings.Contains(msg, n.csv) {
			return n.csv
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
// target (and the two names intake adds), and the CSV columns against the
// documented order.
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
	graphKeys = append(graphKeys, "groupName", "filterName")
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
	if want := []string{"configurationId", "path", "tenantId", "action", "configurationName", "target"}; !slices.Equal(row, want) {
		t.Errorf("row keys %v, want %v", row, want)
	}
	// New columns go after the old ones, so that the old keep their place.
	if want := []string{"configuration_id", "target_type", "group_id", "collection_id", "filter_id", "filter_type", "path", "tenant_id",
		"action", "configuration_name", "group_name", "filter_name"}; !slices.Equal(Columns, want) {
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

// TestRecord pins what Record writes: an empty action for assign,
// "remove" for remove, and a name rather than the id resolved from it.
func TestRecord(t *testing.T) {
	resolved := assign.Spec{ConfigurationID: c1, Action: assign.ActionRemove,
		Target: assign.Target{Type: grp, GroupID: g1, FilterID: f1, FilterType: inc},
		Names:  assign.Names{Configuration: "Wi-Fi", Group: "Sales, EMEA", Filter: "Win 11"}}
	for _, tc := range []struct {
		spec   assign.Spec
		tenant string
		want   string // the record as CSV
		read   assign.Spec
	}{
		{spec(c1, "", dev, "", "", "", ""), "", c1 + ",all_devices,,,,,,,,,,", spec(c1, "", dev, "", "", "", "")},
		{resolved, "", `,group,,,,include,,,remove,Wi-Fi,"Sales, EMEA",Win 11`,
			named(spec("", "", grp, "", "", "", inc), assign.ActionRemove, resolved.Names)},
		{assign.Spec{ConfigurationID: c2, Path: "rootCertificate", Target: assign.Target{Type: excl, GroupID: g2}, Names: assign.Names{Group: "Sales"}},
			t1, c2 + ",exclusion_group,,,,,rootCertificate," + t1 + ",,,Sales,",
			named(spec(c2, "rootCertificate", excl, "", "", "", ""), assign.ActionAssign, assign.Names{Group: "Sales"})},
	} {
		tenant := tc.tenant
		var b strings.Builder
		w := csv.NewWriter(&b)
		w.Write(Columns)
		w.Write(Record(tc.spec, tenant))
		w.Flush()
		if got := strings.SplitN(b.String(), "\n", 2)[1]; got != tc.want+"\n" {
			t.Errorf("Record(%s) = %q, want %q", tc.spec.Key(), got, tc.want)
		}
		var rows []Row
		res, err := Reader{Name: "record.csv"}.Read(strings.NewReader(b.String()), func(r Row) error { rows = append(rows, r); return nil })
		if err != nil || res.Err() != nil || len(rows) != 1 || rows[0].Spec != tc.read || rows[0].TenantID != tenant {
			t.Errorf("Record(%s) read back: %v, %v, %+v", tc.spec.Key(), err, res.Err(), rows)
		}
	}
}

// TestNameBehindFormulaGuard: a CSV name that starts like a formula comes
// back from a spreadsheet, or from `enqueue results --format input`, with
// a single quote before it (export.SpreadsheetSafe); intake reads the name
// without it. JSON has no such guard: its names are kept as given.
func TestNameBehindFormulaGuard(t *testing.T) {
	for _, tc := range []struct {
		in, format, want string
	}{
		{"'=Sales", "csv", "=Sales"}, {"'+1 Group", "csv", "+1 Group"}, {"'-Legacy", "csv", "-Legacy"}, {"'@Home", "csv", "@Home"},
		{"'Quoted'", "csv", "'Quoted'"}, {"'", "csv", "'"}, {"'=Sales", "json", "'=Sales"},
	} {
		var in string
		if tc.format == "csv" {
			in = "configuration_id,target_type,group_name\n" + c1 + ",group," + tc.in + "\n"
		} else {
			in = `[{"configurationId": "` + c1 + `", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupName": "` + tc.in + `"}}]`
		}
		var rows []Row
		res, err := Reader{Name: "in." + tc.format, Format: Format(tc.format)}.Read(strings.NewReader(in), func(r Row) error { rows = append(rows, r); return nil })
		if err != nil || res.Err() != nil || len(rows) != 1 || rows[0].Spec.Names.Group != tc.want {
			t.Errorf("%s name %q: %v %v %+v, want %q", tc.format, tc.in, err, res.Err(), rows, tc.want)
		}
	}
}

package intake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkassign/bulkassign/internal/assign"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden")

// readFile reads a testdata file the way the enqueue command would, under its
// base name, and returns the rows passed on and the result.
func readFile(t testing.TB, path string) ([]Row, *Summary) {
	t.Helper()
	f, err := DetectFormat(path, "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []Row
	res, err := Reader{Name: filepath.Base(path), Format: f}.Read(bytes.NewReader(data), func(r Row) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	sum := sha256.Sum256(data)
	if res.SHA256 != hex.EncodeToString(sum[:]) || res.Bytes != int64(len(data)) {
		t.Errorf("SHA256, Bytes = %s, %d; want %x, %d", res.SHA256, res.Bytes, sum, len(data))
	}
	if res.Rows != len(rows) {
		t.Errorf("Rows = %d, fn called %d times", res.Rows, len(rows))
	}
	return rows, res
}

// report is what the enqueue command prints for a result.
func report(res *Summary) string {
	var b strings.Builder
	if err := res.Err(); err != nil {
		b.WriteString(err.Error())
		b.WriteByte('\n')
	}
	for _, l := range res.WarningLines() {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestBad reads each testdata/bad file and compares the problem report with
// its .golden file. go test -run TestBad -update rewrites them.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range files {
		if strings.HasSuffix(path, ".golden") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			_, res := readFile(t, path)
			if res.Err() == nil {
				t.Fatalf("no error for a bad file")
			}
			var ie *InvalidError
			if !errors.As(res.Err(), &ie) || ie.Summary != res {
				t.Errorf("Err() is %T, want *InvalidError", res.Err())
			}
			got := report(res)
			golden := path + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("report differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
	if n < 20 {
		t.Errorf("only %d bad files", n)
	}
}

const (
	c1 = "3f2a9c1e-8b7d-4e6f-9a1b-2c3d4e5f6a7b"
	c2 = "7b6a5f4e-3d2c-4b1a-9f8e-7d6c5b4a3f2e"
	g1 = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
	g2 = "1e2d3c4b-5a69-4788-9a6b-5c4d3e2f1a0b"
	g3 = "4f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8"
	t1 = "2b7c4d9e-1a3f-4e5b-8c6d-7e8f9a0b1c2d"
	t2 = "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29180"
	f1 = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	f2 = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"

	ios   = "microsoft.graph.iosScepCertificateProfile/rootCertificate"
	macos = "microsoft.graph.macOSScepCertificateProfile/rootCertificate"
	win81 = "microsoft.graph.windows81SCEPCertificateProfile/rootCertificate"
	wp81  = "microsoft.graph.windowsPhone81VpnConfiguration/identityCertificate"
)

// spec builds a Spec from its Key fields.
func spec(cfg, path string, tt assign.TargetType, group, coll, filter string, ft assign.FilterType) assign.Spec {
	return assign.Spec{ConfigurationID: cfg, Path: assign.Path(path), Target: assign.Target{
		Type: tt, GroupID: group, CollectionID: coll, FilterID: filter, FilterType: ft}}
}

const (
	grp  = assign.TargetGroup
	excl = assign.TargetExclusionGroup
	dev  = assign.TargetAllDevices
	usr  = assign.TargetAllLicensedUsers
	col  = assign.TargetConfigMgrCollection
	inc  = assign.FilterInclude
	exc  = assign.FilterExclude
)

// named is s with action a and names n.
func named(s assign.Spec, a assign.Action, n assign.Names) assign.Spec {
	s.Action, s.Names = a, n
	return s
}

const (
	assigns = assign.ActionAssign
	removes = assign.ActionRemove
)

var goodFiles = map[string][]Row{
	"all.csv": {
		{Line: 2, Spec: spec(c1, "", grp, g1, "", "", "")},
		{Line: 3, Spec: spec(c1, "rootCertificate", grp, g1, "", f1, inc)},
		{Line: 4, Spec: spec(c1, "identityCertificate", excl, g2, "", "", "")},
		{Line: 5, Spec: spec(c1, "identityCertificate/rootCertificate", dev, "", "", f2, exc)},
		{Line: 6, Spec: spec(c1, ios, usr, "", "", "", "")},
		{Line: 7, Spec: spec(c1, macos, col, "", "SMS00001", f1, inc)},
		{Line: 8, Spec: spec(c1, win81, grp, g2, "", "", "")},
		{Line: 9, Spec: spec(c1, wp81, dev, "", "", "", "")},
		{Line: 10, Spec: spec(c2, "", grp, g1, "", f1, exc)},
		{Line: 11, Spec: spec(c2, "rootCertificate", col, "", "P0100023", "", "")},
		{Line: 12, Spec: spec(c2, "", usr, "", "", f2, inc)},
		{Line: 13, Spec: spec(c2, "", dev, "", "", "", "")},
		{Line: 14, Spec: spec(c2, "", excl, g3, "", "", "")}, // not g1: line 10 includes it
		{Line: 15, Spec: spec(c2, "", col, "", "SMS00001", "", "")},
		{Line: 16, Spec: spec(c2, "", grp, g2, "", f2, exc)},
	},
	"bom_crlf.csv": {
		{Line: 2, Spec: spec(c1, "", grp, g1, "", f1, inc)},
		{Line: 3, Spec: spec(c1, "rootCertificate", dev, "", "", "", "")},
		{Line: 4, Spec: spec(c2, "identityCertificate", col, "", "SMS0000A", "", "")},
	},
	"subset.csv": {
		{Line: 3, Spec: spec(c1, "", dev, "", "", "", "")},
		{Line: 5, Spec: spec(c2, "", usr, "", "", "", "")},
		{Line: 7, Spec: spec(c2, "", dev, "", "", "", "")},
	},
	"multiline.csv": {
		{Line: 2, Spec: spec(c1, "rootCertificate", grp, g1, "", "", "")},
		{Line: 5, Spec: spec(c2, "identityCertificate", grp, g2, "", "", "")},
		{Line: 7, Spec: spec(c1, "", grp, g2, "", "", "")},
	},
	"dup.csv": {
		{Line: 2, Spec: spec(c1, "", grp, g1, "", "", "")},
		{Line: 3, Spec: spec(c1, "", dev, "", "", "", "")},
		{Line: 4, Spec: spec(c1, "", grp, g1, "", f1, inc)},
		{Line: 6, Spec: spec(c1, "rootCertificate", dev, "", "", "", "")},
		{Line: 8, Spec: spec(c1, "", grp, g1, "", f1, exc)},
	},
	"array.json": {
		{Line: 2, Spec: spec(c1, "", grp, g1, "", f1, inc)},
		{Line: 12, Spec: spec(c1, "rootCertificate", excl, g2, "", "", "")},
		{Line: 13, Spec: spec(c2, "", dev, "", "", "", "")},
		{Line: 15, Spec: spec(c2, "identityCertificate/rootCertificate", usr, "", "", f2, exc)},
		{Line: 16, Spec: spec(c2, ios, col, "", "SMS00001", "", "")},
	},
	"stream.json": {
		{Line: 1, Spec: spec(c1, "identityCertificate", grp, g1, "", "", "")},
		{Line: 6, Spec: spec(c2, "", dev, "", "", "", "")},
		{Line: 9, Spec: spec(c1, "", dev, "", "", "", "")},
	},
	// The same row in two tenants, and without one, is three rows.
	"tenants.csv": {
		{Line: 2, Spec: spec(c1, "", grp, g1, "", "", ""), TenantID: t1},
		{Line: 3, Spec: spec(c1, "", grp, g1, "", "", ""), TenantID: t2},
		{Line: 4, Spec: spec(c1, "", grp, g1, "", "", "")},
		{Line: 5, Spec: spec(c2, "", dev, "", "", "", ""), TenantID: t1},
	},
	"tenants.ndjson": {
		{Line: 1, Spec: spec(c2, "", usr, "", "", "", ""), TenantID: t2},
		{Line: 2, Spec: spec(c2, "", usr, "", "", "", "")},
		{Line: 3, Spec: spec(c2, "", usr, "", "", "", ""), TenantID: t1},
	},
	// Names instead of ids, and actions; names are kept as given but
	// trimmed, so line 8 (another case) is not a duplicate of line 2.
	"names.csv": {
		{Line: 2, Spec: named(spec("", "", grp, "", "", "", ""), assigns, assign.Names{Configuration: "Wi-Fi corp", Group: "Sales"})},
		{Line: 3, Spec: named(spec(c1, "", grp, "", "", "", inc), removes, assign.Names{Group: "Sales, EMEA", Filter: "Win 11"})},
		{Line: 4, Spec: named(spec("", "rootCertificate", excl, "", "", "", ""), assigns, assign.Names{Configuration: "Wi-Fi corp", Group: "Sales | EU"})},
		{Line: 5, Spec: named(spec("", "", dev, "", "", "", exc), removes, assign.Names{Configuration: "Wi-Fi corp", Filter: `Corp "devices"`}), TenantID: t1},
		{Line: 6, Spec: spec(c2, "", usr, "", "", f1, inc)},
		{Line: 8, Spec: named(spec("", "", grp, "", "", "", ""), assigns, assign.Names{Configuration: "wi-fi corp", Group: "Sales"})},
		{Line: 9, Spec: named(spec("", "", grp, g1, "", "", ""), removes, assign.Names{Configuration: "Ünïcødé 名前"})},
		{Line: 10, Spec: named(spec("", "", grp, "", "", "", inc), assigns, assign.Names{Configuration: "Wi-Fi corp", Group: "Sales", Filter: "Win 11"})},
		{Line: 11, Spec: named(spec("", "", dev, "", "", "", ""), assigns, assign.Names{Configuration: strings.Repeat("é", 256)})},
	},
	// configuration_name is enough of a header.
	"names_only.csv": {
		{Line: 2, Spec: named(spec("", "", grp, "", "", "", ""), assigns, assign.Names{Configuration: "Wi-Fi corp", Group: "Sales"})},
		{Line: 3, Spec: named(spec("", "", dev, "", "", "", ""), assigns, assign.Names{Configuration: "Wi-Fi corp"})},
	},
	"names.ndjson": {
		{Line: 1, Spec: named(spec("", "", grp, "", "", "", ""), removes, assign.Names{Configuration: "Wi-Fi corp", Group: "Sales"})},
		{Line: 2, Spec: named(spec(c1, "", dev, "", "", "", inc), assigns, assign.Names{Filter: "Corp devices"})},
		{Line: 3, Spec: named(spec("", "", excl, "", "", "", ""), assigns, assign.Names{Configuration: `Wi-Fi "corp" é`, Group: "Sales"})},
		{Line: 4, Spec: named(spec(c2, "", grp, g2, "", "", exc), assigns, assign.Names{Filter: "Win 11"})},
		{Line: 5, Spec: named(spec("", "identityCertificate", grp, "", "", "", ""), assigns, assign.Names{Configuration: "Wi-Fi corp", Group: "Sales"})},
	},
	"rows.ndjson": {
		{Line: 1, Spec: spec(c1, macos, grp, g1, "", "", "")},
		{Line: 3, Spec: spec(c1, win81, usr, "", "", "", "")},
		{Line: 6, Spec: spec(c2, wp81, col, "", "P0100023", f1, exc)},
		{Line: 7, Spec: spec(c2, "", excl, g2, "", "", "")},
	},
}

var goodWarnings = map[string]string{
	"names.csv": "names.csv:7: warning: duplicate of line 2; enqueued once\n",
	"dup.csv": `dup.csv:5: warning: duplicate of line 2; enqueued once
dup.csv:7: warning: duplicate of line 3; enqueued once
`,
}

func TestGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(goodFiles) {
		t.Errorf("%d files in testdata/good, %d in goodFiles", len(files), len(goodFiles))
	}
	paths := map[assign.Path]bool{}
	types := map[assign.TargetType]map[assign.FilterType]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			want, ok := goodFiles[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			rows, res := readFile(t, path)
			if err := res.Err(); err != nil {
				t.Fatalf("unexpected problems:\n%v", err)
			}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("rows:\n%s\nwant:\n%s", dump(rows), dump(want))
			}
			if got := report(res); got != goodWarnings[name] {
				t.Errorf("warnings:\n%s\nwant:\n%s", got, goodWarnings[name])
			}
			if res.Duplicates != len(res.Warnings) {
				t.Errorf("Duplicates = %d, %d warnings", res.Duplicates, len(res.Warnings))
			}
			for _, r := range rows {
				if err := r.Spec.Validate(); err != nil {
					t.Errorf("line %d: %v", r.Line, err)
				}
				paths[r.Spec.Path] = true
				tt := r.Spec.Target.Type
				if types[tt] == nil {
					types[tt] = map[assign.FilterType]bool{}
				}
				types[tt][r.Spec.Target.FilterType] = true
			}
		})
	}
	for _, p := range assign.Paths {
		if !paths[p] {
			t.Errorf("path %q not covered by testdata/good", p)
		}
	}
	for _, tt := range assign.TargetTypes {
		if !types[tt][""] {
			t.Errorf("target type %s without filter not covered", tt)
		}
		if tt != excl && (!types[tt][inc] && !types[tt][exc]) {
			t.Errorf("target type %s with filter not covered", tt)
		}
	}
}

func dump(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%d: %s %s\n", r.Line, r.TenantID, r.Spec.Key())
	}
	return b.String()
}

// TestDefaultTenant: rows that name no tenant get the reader's default,
// and a row that names the default tenant then repeats one that names
// none; rows of other tenants stay apart.
func TestDefaultTenant(t *testing.T) {
	in := "configuration_id,target_type,tenant_id\n" +
		c1 + ",all_devices,\n" +
		c1 + ",all_devices," + strings.ToUpper(t1) + "\n" +
		c1 + ",all_devices," + t2 + "\n" +
		c2 + ",all_devices,\n"
	var rows []Row
	res, err := Reader{Name: "in.csv", Format: FormatCSV, DefaultTenant: t1}.Read(strings.NewReader(in), func(r Row) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil || res.Err() != nil {
		t.Fatalf("Read: %v, %v", err, res.Err())
	}
	want := []Row{
		{Line: 2, Spec: spec(c1, "", dev, "", "", "", ""), TenantID: t1},
		{Line: 4, Spec: spec(c1, "", dev, "", "", "", ""), TenantID: t2},
		{Line: 5, Spec: spec(c2, "", dev, "", "", "", ""), TenantID: t1},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", dump(rows), dump(want))
	}
	if got, want := report(res), "in.csv:3: warning: duplicate of line 2; enqueued once\n"; got != want {
		t.Errorf("warnings %q, want %q", got, want)
	}
}

// TestExamples parses the demo inputs in examples/.
func TestExamples(t *testing.T) {
	csvRows, res := readFile(t, "../../examples/assignments.csv")
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if len(csvRows) != 40 || res.Duplicates != 0 {
		t.Errorf("assignments.csv: %d rows, %d duplicates; want 40, 0", len(csvRows), res.Duplicates)
	}
	jsonRows, res := readFile(t, "../../examples/assignments.json")
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if len(jsonRows) < 8 || res.Duplicates != 0 {
		t.Errorf("assignments.json: %d rows, %d duplicates", len(jsonRows), res.Duplicates)
	}

	// The multi-tenant example: rows of two tenants named, and rows
	// without a tenant, which go to the default tenant.
	multiRows, res := readFile(t, "../../examples/multi-tenant.csv")
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	perTenant := map[string]int{}
	for _, r := range multiRows {
		perTenant[r.TenantID]++
	}
	if len(multiRows) != 8 || res.Duplicates != 0 || len(perTenant) != 3 || perTenant[""] != 2 {
		t.Errorf("multi-tenant.csv: %d rows, %d duplicates, rows by tenant %v; want 8, 0, and 2 tenants named beside 2 rows without",
			len(multiRows), res.Duplicates, perTenant)
	}

	// The tenant knows 8 configurations; exactly 2 CSV rows use another
	// (the demo's 404s). 3 existing assignments match CSV rows.
	data, err := os.ReadFile("../../examples/tenant.json")
	if err != nil {
		t.Fatal(err)
	}
	var tenant struct {
		Configurations []string
		Existing       []struct {
			ConfigurationID string `json:"configurationId"`
			Path            string `json:"path"`
			Target          assign.Target
		}
		// Policies of other kinds, for the demo's unsupported ids.
		ConfigurationPolicies, DeviceCompliancePolicies, GroupPolicyConfigurations []string
		// Display names, for examples/names.csv and removals.csv (the
		// simulator checks them when it loads the file).
		ConfigurationNames map[string]string
		Groups, Filters    []struct{ ID, DisplayName string }
		// The customer tenants of multi-tenant.csv (the simulator checks
		// them when it loads the file).
		Tenants []json.RawMessage
	}
	dec := jsonDecoder(data)
	if err := dec.Decode(&tenant); err != nil {
		t.Fatalf("tenant.json: %v", err)
	}
	known := map[string]bool{}
	for _, c := range tenant.Configurations {
		g, err := assign.ParseGUID("configurations", c)
		if err != nil || g != c {
			t.Errorf("tenant.json: configuration %q is not a canonical GUID", c)
		}
		known[c] = true
	}
	if len(known) != 8 {
		t.Errorf("tenant.json: %d configurations, want 8", len(known))
	}
	unknown, types, filters, paths := 0, map[assign.TargetType]bool{}, map[assign.FilterType]bool{}, map[assign.Path]bool{}
	keys := map[string]bool{}
	for _, r := range csvRows {
		if !known[r.Spec.ConfigurationID] {
			unknown++
			if r.Spec.ConfigurationID != "00000000-dead-beef-0000-000000000404" {
				t.Errorf("assignments.csv:%d: configuration %s is not in tenant.json", r.Line, r.Spec.ConfigurationID)
			}
		}
		types[r.Spec.Target.Type] = true
		filters[r.Spec.Target.FilterType] = true
		paths[r.Spec.Path] = true
		keys[r.Spec.Key()] = true
	}
	if unknown != 2 {
		t.Errorf("assignments.csv: %d rows with an unknown configuration, want 2", unknown)
	}
	if len(types) != 5 || !filters[inc] || !filters[exc] || len(paths) < 4 {
		t.Errorf("assignments.csv covers target types %v, filters %v, paths %v", types, filters, paths)
	}
	for _, r := range jsonRows {
		if !known[r.Spec.ConfigurationID] {
			t.Errorf("assignments.json:%d: configuration %s is not in tenant.json", r.Line, r.Spec.ConfigurationID)
		}
	}
	if len(tenant.Existing) != 3 {
		t.Errorf("tenant.json: %d existing assignments, want 3", len(tenant.Existing))
	}
	for _, e := range tenant.Existing {
		p, err := assign.ParsePath(e.Path)
		if err != nil {
			t.Error(err)
		}
		s := assign.Spec{ConfigurationID: e.ConfigurationID, Path: p, Target: e.Target}
		if err := s.Target.Validate(); err != nil {
			t.Errorf("tenant.json: existing %s: %v", s.Key(), err)
		}
		if !keys[s.Key()] {
			t.Errorf("tenant.json: existing %s matches no row of assignments.csv", s.Key())
		}
	}
}

func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct {
		name, override string
		want           Format
		err            string
	}{
		{"in.csv", "", FormatCSV, ""},
		{"IN.CSV", "", FormatCSV, ""},
		{"dir.json/in.json", "", FormatJSON, ""},
		{"in.ndjson", "", FormatNDJSON, ""},
		{"in.jsonl", "", FormatNDJSON, ""},
		{"-", "", FormatAuto, ""},
		{"-", "csv", FormatCSV, ""},
		{"in.txt", "JSON", FormatJSON, ""},
		{"in.csv", "jsonl", FormatNDJSON, ""},
		{"in.csv", "auto", FormatAuto, ""},
		{"in.txt", "", "", "in.txt: cannot tell the format from the file name (want .csv, .json, .ndjson or .jsonl, or give a format)"},
		{"in.csv", "xml", "", `unknown format "xml" (want csv, json, ndjson or auto)`},
	} {
		got, err := DetectFormat(tc.name, tc.override)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("DetectFormat(%q, %q) = %q, %v; want %q, %s", tc.name, tc.override, got, err, tc.want, tc.err)
		}
	}
}

// TestAuto reads stdin-like input of each kind with FormatAuto.
func TestAuto(t *testing.T) {
	ad := `{"@odata.type":"#microsoft.graph.allDevicesAssignmentTarget"}`
	for _, in := range []string{
		"configuration_id,target_type\n" + c1 + ",all_devices\n",
		"\ufeff\n configuration_id,target_type\n" + c1 + ",all_devices\n",
		"\n  [{\"configurationId\":\"" + c1 + "\",\"target\":" + ad + "}]",
		"\ufeff{\"configurationId\":\"" + c1 + "\",\"target\":" + ad + "}\n",
	} {
		var rows []Row
		res, err := Reader{Name: "-"}.Read(strings.NewReader(in), func(r Row) error { rows = append(rows, r); return nil })
		if err != nil || res.Err() != nil || len(rows) != 1 || rows[0].Spec != spec(c1, "", dev, "", "", "", "") {
			t.Errorf("%q: rows %v, %v, %v", in, rows, err, res.Err())
		}
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "in.csv", Line: 6, Msg: "m"}, "in.csv:6: m"},
		{Problem{File: "in.csv", Msg: "no rows"}, "in.csv: no rows"},
		{Problem{File: "in.csv", Line: 9, Msg: "d", Warning: true}, "in.csv:9: warning: d"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.p, got, tc.want)
		}
	}
}

// TestCaps checks the caps on listed errors and warnings, and that rows are
// still passed on when others are invalid.
func TestCaps(t *testing.T) {
	var b strings.Builder
	b.WriteString("configuration_id,target_type,group_id\n")
	for i := range 10 {
		fmt.Fprintf(&b, "%s,group,00000000-0000-0000-0000-%012d\n", c1, i)
		fmt.Fprintf(&b, "%s,group,00000000-0000-0000-0000-%012d\n", c1, i)
		fmt.Fprintf(&b, "bad%d,group,%s\n", i, g1)
	}
	var rows int
	res, err := Reader{Name: "in.csv", MaxProblems: 3}.Read(strings.NewReader(b.String()), func(Row) error { rows++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if rows != 10 || res.Rows != 10 || res.Duplicates != 10 || res.Invalid != 10 {
		t.Errorf("rows %d, Rows %d, Duplicates %d, Invalid %d", rows, res.Rows, res.Duplicates, res.Invalid)
	}
	want := `in.csv:4: configuration_id "bad0" is not a GUID
in.csv:7: configuration_id "bad1" is not a GUID
in.csv:10: configuration_id "bad2" is not a GUID
in.csv: ... and 7 more invalid rows
in.csv:3: warning: duplicate of line 2; enqueued once
in.csv:6: warning: duplicate of line 5; enqueued once
in.csv:9: warning: duplicate of line 8; enqueued once
in.csv: ... and 7 more duplicate rows
`
	if got := report(res); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMaxRows(t *testing.T) {
	in := "configuration_id,target_type\n" + c1 + ",all_devices\n" + c2 + ",all_devices\n" + c1 + ",all_licensed_users\n"
	res, err := Reader{Name: "in.csv", MaxRows: 2}.Read(strings.NewReader(in), func(Row) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := "in.csv:4: more than 2 rows; split the input into several files"
	if res.Err() == nil || res.Err().Error() != want {
		t.Errorf("Err() = %v, want %s", res.Err(), want)
	}
	if res.Bytes != int64(len(in)) {
		t.Errorf("Bytes = %d, want the whole input (%d)", res.Bytes, len(in))
	}
}

// TestAbort checks that errors from fn and from the reader stop Read.
func TestAbort(t *testing.T) {
	in := "configuration_id,target_type\n" + c1 + ",all_devices\n" + c2 + ",all_devices\n"
	boom := errors.New("boom")
	calls := 0
	_, err := Reader{Name: "in.csv"}.Read(strings.NewReader(in), func(Row) error { calls++; return boom })
	if !errors.Is(err, boom) || err.Error() != "in.csv:2: boom" || calls != 1 {
		t.Errorf("fn error: %v after %d calls", err, calls)
	}
	ad := `{"@odata.type":"#microsoft.graph.allDevicesAssignmentTarget"}`
	js := "[{\"configurationId\":\"" + c1 + "\",\"target\":" + ad + "}]"
	_, err = Reader{Name: "in.json", Format: FormatJSON}.Read(strings.NewReader(js), func(Row) error { return boom })
	if !errors.Is(err, boom) || err.Error() != "in.json:1: boom" {
		t.Errorf("fn error (JSON): %v", err)
	}
	for _, f := range []Format{FormatCSV, FormatJSON, FormatNDJSON} {
		src := in
		if f != FormatCSV {
			src = js
		}
		r := io.MultiReader(strings.NewReader(src[:40]), iotest.ErrReader(boom))
		_, err = Reader{Name: "in", Format: f}.Read(r, func(Row) error { return nil })
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "reading in: ") {
			t.Errorf("%s: read error: %v", f, err)
		}
	}
}

// FuzzRead checks that no input makes Read panic or pass on an invalid row.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil && !strings.HasSuffix(p, ".golden") {
			f.Add(data, string(filepath.Ext(p)[1:]))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		ft, err := DetectFormat("", format)
		if err != nil {
			return
		}
		tm := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("HANG %q %q", data, format)) })
		defer tm.Stop()
		res, err := Reader{Name: "in", Format: ft}.Read(bytes.NewReader(data), func(r Row) error {
			if err := r.Spec.Validate(); err != nil {
				t.Errorf("line %d: invalid row passed on: %v", r.Line, err)
			}
			if id := r.Spec.ConfigurationID; id != "" {
				if _, err := assign.ParseGUID("c", id); err != nil {
					t.Errorf("line %d: %v", r.Line, err)
				}
			}
			n := r.Spec.Names
			for _, name := range []string{n.Configuration, n.Group, n.Filter} {
				if name != strings.TrimSpace(name) || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLen ||
					strings.ContainsFunc(name, unicode.IsControl) {
					t.Errorf("line %d: invalid name %q passed on", r.Line, name)
				}
			}
			if r.Spec.Action != assign.ActionAssign && r.Spec.Action != assign.ActionRemove {
				t.Errorf("line %d: action %d", r.Line, r.Spec.Action)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Bytes != int64(len(data)) {
			t.Errorf("Bytes = %d, want %d", res.Bytes, len(data))
		}
	})
}

// TestAppendKey checks that the duplicate set hashes exactly Spec.Key.
func TestAppendKey(t *testing.T) {
	for _, rows := range goodFiles {
		for _, r := range rows {
			if got := string(appendKey(nil, &r.Spec)); got != r.Spec.Key() {
				t.Errorf("appendKey = %q, Key = %q", got, r.Spec.Key())
			}
		}
	}
	var zero assign.Spec
	if got := string(appendKey([]byte("x"), &zero)); got != "x"+zero.Key() {
		t.Errorf("appendKey(zero) = %q, Key = %q", got, zero.Key())
	}
}

// TestODataTypes checks the fast @odata.type lookup against assign's.
func TestODataTypes(t *testing.T) {
	for s, tt := range odataTypes {
		if want, ok := assign.TargetTypeFromOData(s); !ok || want != tt {
			t.Errorf("%s: %s, assign says %s", s, tt, want)
		}
	}
	if len(odataTypes) != 2*len(assign.TargetTypes) {
		t.Errorf("%d entries", len(odataTypes))
	}
}

// TestDupSet compares dupSet with a map on random and repeated hashes,
// including keys that differ only in the bits each part keeps, and on
// updates of values already added.
func TestDupSet(t *testing.T) {
	d := newDupSet(1000)
	if len(d.buckets) != 256 {
		t.Errorf("%d buckets for 1000 rows", len(d.buckets))
	}
	if n := len(newDupSet(DefaultMaxRows).buckets); n != 4096 {
		t.Errorf("%d buckets for %d rows", n, DefaultMaxRows)
	}
	type key struct{ h1, h2 uint64 }
	want := map[key]uint32{}
	seed := uint64(1)
	rnd := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	var keys []key
	for i := range 20000 {
		k := key{rnd(), rnd()}
		switch i % 7 {
		case 1: // same h1, different h2 in the bucket bits only
			k = key{keys[len(keys)-1].h1, keys[len(keys)-1].h2 ^ 1<<63}
		case 2: // same h1 and bucket, different low h2 bits
			k = key{keys[len(keys)-1].h1, keys[len(keys)-1].h2 ^ 1}
		case 3, 4: // a repeat
			k = keys[int(rnd()%uint64(len(keys)))]
		case 5: // a new value for a key added before
			k = keys[int(rnd()%uint64(len(keys)))]
			d.update(k.h1, k.h2, uint32(i)|1<<31)
			want[k] = uint32(i) | 1<<31
		}
		if v, ok := d.find(k.h1, k.h2); ok != (want[k] != 0) || v != want[k] {
			t.Fatalf("find #%d: %d, %v; want %d", i, v, ok, want[k])
		}
		keys = append(keys, k)
		old, dup := d.add(k.h1, k.h2, uint32(i+1))
		w, wdup := want[k]
		if dup != wdup || dup && old != w {
			t.Fatalf("add #%d: %d, %v; want %d, %v", i, old, dup, w, wdup)
		}
		if !wdup {
			want[k] = uint32(i + 1)
		}
	}
}

// TestHugeRow checks that a quote left open in a big file stops reading
// with a problem instead of reading the rest of the file into one record.
func TestHugeRow(t *testing.T) {
	var b strings.Builder
	b.WriteString("configuration_id,target_type,group_id\n")
	b.WriteString(c1 + ",all_devices,\n")
	b.WriteString(c1 + `,group,"` + g1 + "\n")
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "%s,all_devices,,swallowed by the open quote %d\n", c1, i)
	}
	res, err := Reader{Name: "in.csv", Format: FormatCSV}.Read(strings.NewReader(b.String()), func(Row) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := "in.csv: syntax error: a row after line 2 is longer than 1048576 bytes (a quote not closed?)"
	if res.Err() == nil || res.Err().Error() != want || res.Bytes != int64(b.Len()) {
		t.Errorf("Err() = %v, Bytes %d; want %s, %d", res.Err(), res.Bytes, want, b.Len())
	}
}

// entries counts the keys in st's duplicate set.
func entries(st *state) int {
	n := 0
	for _, b := range st.seen.buckets {
		n += len(b)
	}
	return n
}

// TestSides goes through testdata/bad/sides.csv and actions.csv (whose
// reports are their goldens) case by case: which rows are passed on, and
// how many entries the duplicate set holds for them.
func TestSides(t *testing.T) {
	for _, tc := range []struct {
		file    string
		lines   []int // passed on
		entries int
		invalid int
		dups    int
	}{
		// 2: filtered, its side new: its row key and a side-only entry
		// (2 entries). 3: filtered, another filter, side known (1). 4:
		// duplicate of 2. 5: excludes what 2 includes. 6: unfiltered,
		// takes over the side-only entry of 2 (0). 7: duplicate of 6, not
		// of 2. 8: excludes what 6 includes. 9: excluded first (1). 10,
		// 11: filtered and not, include what 9 excludes. 12: duplicate of
		// 9. 13: unfiltered first (1). 14: filtered, side known (1). 15:
		// duplicate of 14. 16: excludes what 13 includes. 17: not a group
		// (1). 18, 19: 2 and 5 the other way round in another tenant (1).
		{"sides.csv", []int{2, 3, 6, 9, 13, 14, 17, 18}, 8, 6, 4},
		// 2 (1), 3: removes what 2 assigns. 4: duplicate of 2. 5 (1), 6:
		// assigns what 5 removes. 7: duplicate of 5. 8 (1), 9: the same
		// for an unfiltered group. 10 (2), 11: and for a filtered one. 12:
		// removes another filter (1). 13: a filtered remove (2), 14: an
		// unfiltered assign takes over its side entry (0), 15: which
		// names 14. 16 (1), 17: includes what 16 removes the exclusion
		// of: a move in one batch. 18 (1), 19: the move the other way;
		// 20: both remove. 21 (2), 22: a move against a filtered row. 23:
		// a filtered row against 16. 24: against 8, whose assign (9) was
		// refused.
		{"actions.csv", []int{2, 5, 8, 10, 12, 13, 14, 16, 18, 21}, 12, 11, 2},
	} {
		data, err := os.ReadFile("testdata/bad/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		var lines []int
		res, st, err := Reader{Name: tc.file, Format: FormatCSV}.read(bytes.NewReader(data), func(r Row) error {
			lines = append(lines, r.Line)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(lines, tc.lines) {
			t.Errorf("%s: rows passed on: lines %v, want %v", tc.file, lines, tc.lines)
		}
		if n := entries(st); n != tc.entries {
			t.Errorf("%s: %d entries in the duplicate set, want %d", tc.file, n, tc.entries)
		}
		if res.Invalid != tc.invalid || res.Duplicates != tc.dups {
			t.Errorf("%s: Invalid %d, Duplicates %d; want %d, %d", tc.file, res.Invalid, res.Duplicates, tc.invalid, tc.dups)
		}
	}
}

// TestEntriesARow checks what the duplicate set holds: one entry a row,
// but for a filtered group row whose group's side is new, which takes two.
func TestEntriesARow(t *testing.T) {
	const n = 1000
	for _, tc := range []struct {
		name, row string // row: a format for the row of group i
		want      int
	}{
		{"group", c1 + ",group,00000000-0000-4000-8000-%012d,,", n},
		{"exclusion group", c1 + ",exclusion_group,00000000-0000-4000-8000-%012d,,", n},
		{"all devices", c1 + ",all_devices,,00000000-0000-4000-8000-%012d,include", n},
		{"filtered group, each its own", c1 + ",group,00000000-0000-4000-8000-%012d," + f1 + ",include", 2 * n},
		{"filtered group, all one", c1 + ",group," + g1 + ",00000000-0000-4000-8000-%012d,include", n + 1},
	} {
		var b strings.Builder
		b.WriteString("configuration_id,target_type,group_id,filter_id,filter_type\n")
		for i := range n {
			fmt.Fprintf(&b, tc.row+"\n", i)
		}
		res, st, err := Reader{Name: "in.csv", Format: FormatCSV}.read(strings.NewReader(b.String()), func(Row) error { return nil })
		if err != nil || res.Err() != nil || res.Rows != n {
			t.Fatalf("%s: %v, %v, %d rows", tc.name, err, res.Err(), res.Rows)
		}
		if got := entries(st); got != tc.want {
			t.Errorf("%s: %d entries for %d rows, want %d", tc.name, got, n, tc.want)
		}
	}
}

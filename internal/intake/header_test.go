package intake

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeaders reads each testdata/header file (separators, header
// spellings, empty files) and compares the rows it passes on and its
// problem report with the file's .golden. go test -run TestHeaders
// -update rewrites them.
func TestHeaders(t *testing.T) {
	files, err := filepath.Glob("testdata/header/*.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("only %d files in testdata/header", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			rows, res := readFile(t, path)
			got := "rows:\n" + dump(rows) + "report:\n" + report(res)
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
				t.Errorf("differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestSuggest is the "did you mean" rule JSON keys and CSV columns share.
func TestSuggest(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{"ConfigurationId", "configuration_id"},
		{"configuration-id", "configuration_id"},
		{"CONFIGURATION ID", "configuration_id"},
		{"configuraton_id", "configuration_id"},
		{"fliter_id", "filter_id"},
		{"group", ""},  // group_id or group_name: neither
		{"tenant", ""}, // two edits from tenant_id, a short name
		{"colour", ""}, // nothing near
		{strings.Repeat("a", maxKeyShown+1), ""},
	} {
		got, ok := suggest(tt.got, Columns)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("suggest(%q) = %q, %v; want %q", tt.got, got, ok, tt.want)
		}
	}
	keys := []string{"configurationId", "target", "path"}
	if got, _ := suggest("configuration_id", keys); got != "configurationId" {
		t.Errorf("suggest(configuration_id, JSON keys) = %q, want configurationId", got)
	}
}

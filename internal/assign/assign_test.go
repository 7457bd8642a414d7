package assign

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

const g1 = "4c7e2a91-3b5d-4f68-a2c4-9e1b7d3f5a80"

func TestParseGUID(t *testing.T) {
	t.Parallel()
	up := strings.ToUpper(g1)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{g1, g1, true},
		{up, g1, true},
		{"{" + g1 + "}", g1, true},
		{" {" + up + "} ", g1, true},
		{"\t" + g1 + "\n", g1, true},
		{"{" + g1, "", false},
		{g1 + "}", "", false},
		{"{{" + g1 + "}}", "", false},
		{"", "", false},
		{"{}", "", false},
		{g1[:35], "", false},
		{g1 + "0", "", false},
		{strings.ReplaceAll(g1, "-", ""), "", false},
		{strings.Replace(g1, "-", "_", 1), "", false},
		{g1[:35] + "g", "", false},
		{g1[:20] + "é" + g1[22:], "", false},
		{"not-a-guid", "", false},
	}
	for _, tt := range tests {
		got, err := ParseGUID("group_id", tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseGUID(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && err.Error() != `group_id "`+tt.in+`" is not a GUID` && !strings.Contains(err.Error(), "is not a GUID") {
			t.Errorf("ParseGUID(%q) error %q does not name the field and value", tt.in, err)
		}
	}
}

// guidOracle is the obvious definition ParseGUID must agree with.
var guidOracle = regexp.MustCompile(`^(\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)

func FuzzParseGUID(f *testing.F) {
	for _, s := range []string{g1, "{" + g1 + "}", "{" + g1, "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseGUID("f", s)
		if want := guidOracle.MatchString(strings.TrimSpace(s)); want != (err == nil) {
			t.Fatalf("ParseGUID(%q) err = %v, oracle says valid=%v", s, err, want)
		}
		if err == nil && (len(got) != 36 || got != strings.ToLower(got)) {
			t.Fatalf("ParseGUID(%q) = %q, not canonical", s, got)
		}
	})
}

func TestParsePath(t *testing.T) {
	t.Parallel()
	for _, p := range Paths {
		for _, in := range []string{string(p), "/" + string(p) + "/", strings.TrimPrefix(string(p)+"/assignments", "/")} {
			got, err := ParsePath(in)
			if err != nil || got != p {
				t.Errorf("ParsePath(%q) = %q, %v; want %q", in, got, err, p)
			}
		}
	}
	for _, bad := range []string{"rootCertificateassignments", "../../users", "RootCertificate", "assignments/x", "deviceConfigurations"} {
		if got, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) = %q, want an error", bad, got)
		}
	}
}

func TestTargetJSONRoundTrip(t *testing.T) {
	t.Parallel()
	targets := []Target{
		{Type: TargetGroup, GroupID: g1},
		{Type: TargetGroup, GroupID: g1, FilterID: g1, FilterType: FilterInclude},
		{Type: TargetExclusionGroup, GroupID: g1},
		{Type: TargetAllDevices, FilterID: g1, FilterType: FilterExclude},
		{Type: TargetAllLicensedUsers},
		{Type: TargetConfigMgrCollection, CollectionID: "SMS00001"},
	}
	for _, want := range targets {
		if err := want.Validate(); err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got Target
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got != want || got.Key() != want.Key() {
			t.Errorf("round trip of %+v through %s gave %+v", want, b, got)
		}
	}
	// Graph writes "no filter" several ways; all are the same target.
	for _, in := range []string{
		`{"@odata.type":"#microsoft.graph.groupAssignmentTarget","groupId":"` + strings.ToUpper(g1) + `","deviceAndAppManagementAssignmentFilterId":null,"deviceAndAppManagementAssignmentFilterType":"none"}`,
		`{"@odata.type":"microsoft.graph.groupAssignmentTarget","groupId":"` + g1 + `","deviceAndAppManagementAssignmentFilterId":"00000000-0000-0000-0000-000000000000","deviceAndAppManagementAssignmentFilterType":"include"}`,
	} {
		var got Target
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatal(err)
		}
		if got != targets[0] {
			t.Errorf("%s decoded to %+v, want %+v", in, got, targets[0])
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		t    Target
		want string
	}{
		{Target{Type: TargetGroup}, "group_id is required for target_type group"},
		{Target{Type: TargetAllDevices, GroupID: g1}, "group_id is not allowed for target_type all_devices"},
		{Target{Type: TargetConfigMgrCollection}, "collection_id is required for target_type configuration_manager_collection"},
		{Target{Type: TargetGroup, GroupID: g1, CollectionID: "SMS00001"}, "collection_id is not allowed for target_type group"},
		{Target{Type: TargetGroup, GroupID: g1, FilterID: g1}, "filter_id needs a filter_type (include or exclude)"},
		{Target{Type: TargetGroup, GroupID: g1, FilterType: FilterInclude}, "filter_type include needs a filter_id"},
		{Target{Type: TargetExclusionGroup, GroupID: g1, FilterID: g1, FilterType: FilterExclude}, "filter_id is not allowed for target_type exclusion_group"},
	}
	for _, tt := range tests {
		err := tt.t.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("Validate(%+v) = %v, want %q", tt.t, err, tt.want)
		}
	}
}

package family_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/family"
)

const (
	g1 = "11111111-1111-4111-8111-111111111111"
	g2 = "22222222-2222-4222-8222-222222222222"
	f1 = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	f2 = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

// TestTable: one row per family, its facts written out again by hand, so
// that a change to the table is a change to this test too.
func TestTable(t *testing.T) {
	t.Parallel()
	all4 := "group exclusion_group all_devices all_licensed_users"
	groups := "group exclusion_group"
	tests := []struct {
		name          family.Name
		collections   string // name=path, space separated
		bodyKey       string
		status        int
		perAssignment bool
		targets       string
		filters       bool
	}{
		{family.DeviceConfiguration, "deviceConfigurations=/deviceManagement/deviceConfigurations", "assignments", http.StatusOK, true, all4 + " configuration_manager_collection", true},
		{family.SettingsCatalog, "configurationPolicies=/deviceManagement/configurationPolicies", "assignments", http.StatusOK, false, all4, true},
		{family.Compliance, "deviceCompliancePolicies=/deviceManagement/deviceCompliancePolicies", "assignments", http.StatusOK, false, all4, true},
		{family.AdministrativeTemplate, "groupPolicyConfigurations=/deviceManagement/groupPolicyConfigurations", "assignments", http.StatusOK, false, all4, true},
		{family.Script, "deviceManagementScripts=/deviceManagement/deviceManagementScripts deviceShellScripts=/deviceManagement/deviceShellScripts", "deviceManagementScriptAssignments", http.StatusNoContent, false, all4, false},
		{family.Remediation, "deviceHealthScripts=/deviceManagement/deviceHealthScripts", "deviceHealthScriptAssignments", http.StatusNoContent, false, all4, true},
		{family.App, "mobileApps=/deviceAppManagement/mobileApps", "mobileAppAssignments", http.StatusNoContent, true, all4, true},
		{family.AppProtection, "iosManagedAppProtections=/deviceAppManagement/iosManagedAppProtections androidManagedAppProtections=/deviceAppManagement/androidManagedAppProtections windowsManagedAppProtections=/deviceAppManagement/windowsManagedAppProtections", "assignments", http.StatusNoContent, false, groups, true},
		{family.AppConfiguration, "mobileAppConfigurations=/deviceAppManagement/mobileAppConfigurations targetedManagedAppConfigurations=/deviceAppManagement/targetedManagedAppConfigurations", "assignments", http.StatusNoContent, false, groups, false},
		{family.UpdateProfile, "windowsFeatureUpdateProfiles=/deviceManagement/windowsFeatureUpdateProfiles windowsQualityUpdateProfiles=/deviceManagement/windowsQualityUpdateProfiles windowsDriverUpdateProfiles=/deviceManagement/windowsDriverUpdateProfiles", "assignments", http.StatusNoContent, false, groups, false},
	}
	if len(tests) != len(family.Families) {
		t.Fatalf("%d families in the table, %d in this test", len(family.Families), len(tests))
	}
	for i, tt := range tests {
		f := family.Families[i]
		if f.Name != tt.name {
			t.Fatalf("family %d is %s, want %s", i, f.Name, tt.name)
		}
		var colls []string
		for _, c := range f.Collections {
			colls = append(colls, c.Name+"="+c.Path)
			if !strings.HasPrefix(c.AssignmentType, "#microsoft.graph.") || !strings.HasSuffix(c.AssignmentType, "Assignment") {
				t.Errorf("%s/%s: assignment type %q", f.Name, c.Name, c.AssignmentType)
			}
			if gf, gc := family.ByCollection(strings.ToUpper(c.Name)); gf != f || gc.Name != c.Name {
				t.Errorf("ByCollection(%s) = %v, %v", c.Name, gf, gc)
			}
			if got, want := c.AssignPath("ID"), c.Path+"/ID/assign"; got != want {
				t.Errorf("AssignPath = %s, want %s", got, want)
			}
		}
		var targets []string
		for _, tt := range f.Targets {
			targets = append(targets, string(tt))
		}
		got := []any{strings.Join(colls, " "), f.BodyKey, f.AssignStatus, f.PerAssignment, strings.Join(targets, " "), f.Filters}
		want := []any{tt.collections, tt.bodyKey, tt.status, tt.perAssignment, tt.targets, tt.filters}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", f.Name, got, want)
		}
		if p, err := family.Parse(strings.ToUpper(string(tt.name))); err != nil || p != f {
			t.Errorf("Parse(%s) = %v, %v", tt.name, p, err)
		}
	}
	if p, err := family.Parse(""); err != nil || p.Name != family.DeviceConfiguration {
		t.Errorf("Parse(\"\") = %v, %v; want deviceConfiguration", p, err)
	}
	if _, err := family.Parse("intent"); err == nil || !strings.Contains(err.Error(), `kind "intent" is not one of deviceConfiguration, settingsCatalog`) {
		t.Errorf("Parse(intent): %v", err)
	}
	// An entry's JSON carries the target in Graph's shape and reads back.
	e := family.Entry{ID: "x", Source: family.SourcePolicySets, SourceID: "s", Assignment: family.Assignment{Target: group(g1),
		Schedule: &family.Schedule{Kind: family.ScheduleHourly, Interval: 2}, RunRemediationScript: true}}
	b, err := json.Marshal(e)
	var back family.Entry
	if err != nil || json.Unmarshal(b, &back) != nil || back.Target != e.Target || *back.Schedule != *e.Schedule || back.ID != "x" ||
		!strings.Contains(string(b), `"target":{"@odata.type":"#microsoft.graph.groupAssignmentTarget","groupId":"`+g1+`"}`) {
		t.Errorf("entry JSON %s (%v), read back %+v", b, err, back)
	}
	if f, c := family.ByCollection("deviceEnrollmentConfigurations"); f != nil || c != nil {
		t.Errorf("ByCollection of an unknown collection: %v %v", f, c)
	}
}

func group(id string) assign.Target { return assign.Target{Type: assign.TargetGroup, GroupID: id} }

func filtered(t assign.Target, id string, ft assign.FilterType) assign.Target {
	t.FilterID, t.FilterType = id, ft
	return t
}

var (
	exclusion  = assign.Target{Type: assign.TargetExclusionGroup, GroupID: g2}
	allUsers   = assign.Target{Type: assign.TargetAllLicensedUsers}
	allDevices = assign.Target{Type: assign.TargetAllDevices}
	collection = assign.Target{Type: assign.TargetConfigMgrCollection, CollectionID: "SMS00001"}
)

// TestValidate: one row per family per rule, with the exact message
// intake will put after FILE:LINE.
func TestValidate(t *testing.T) {
	t.Parallel()
	daily := &family.Schedule{Kind: family.ScheduleDaily, Interval: 1, Time: "01:00:00"}
	settings := json.RawMessage(`{"@odata.type":"#microsoft.graph.win32LobAppAssignmentSettings","notifications":"showAll"}`)
	tests := []struct {
		fam    family.Name
		a      family.Assignment
		action assign.Action
		want   string // "" for valid
	}{
		// targets
		{family.DeviceConfiguration, family.Assignment{Target: collection}, 0, ""},
		{family.SettingsCatalog, family.Assignment{Target: collection}, 0, "settingsCatalog cannot target configuration manager collection"},
		{family.SettingsCatalog, family.Assignment{Target: allUsers}, 0, ""},
		{family.Compliance, family.Assignment{Target: allDevices}, 0, ""},
		{family.AdministrativeTemplate, family.Assignment{Target: allUsers}, 0, ""},
		{family.Script, family.Assignment{Target: allDevices}, 0, ""},
		{family.Remediation, family.Assignment{Target: exclusion}, 0, ""},
		{family.App, family.Assignment{Target: allUsers, Intent: family.IntentAvailable}, 0, ""},
		{family.AppProtection, family.Assignment{Target: allUsers}, 0, "appProtection cannot target all licensed users"},
		{family.AppProtection, family.Assignment{Target: allUsers}, assign.ActionRemove, "appProtection cannot target all licensed users"},
		{family.AppProtection, family.Assignment{Target: exclusion}, 0, ""},
		{family.AppConfiguration, family.Assignment{Target: allDevices}, 0, "appConfiguration cannot target all devices"},
		{family.UpdateProfile, family.Assignment{Target: allDevices}, 0, "updateProfile cannot target all devices"},
		{family.UpdateProfile, family.Assignment{Target: group(g1)}, 0, ""},
		// filters
		{family.DeviceConfiguration, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, ""},
		{family.SettingsCatalog, family.Assignment{Target: filtered(allDevices, f1, assign.FilterExclude)}, 0, ""},
		{family.Compliance, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, ""},
		{family.AdministrativeTemplate, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, ""},
		{family.Script, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, "script takes no assignment filter"},
		{family.Remediation, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, ""},
		{family.App, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude), Intent: family.IntentRequired}, 0, ""},
		{family.AppProtection, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, ""},
		{family.AppConfiguration, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, "appConfiguration takes no assignment filter"},
		{family.UpdateProfile, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, 0, "updateProfile takes no assignment filter"},
		{family.UpdateProfile, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, assign.ActionRemove, "updateProfile takes no assignment filter"},
		// intent
		{family.App, family.Assignment{Target: group(g1)}, 0, "app needs an intent (required, available, uninstall or availableWithoutEnrollment)"},
		{family.App, family.Assignment{Target: group(g1), Intent: "install"}, 0, `intent "install" is not one of required, available, uninstall or availableWithoutEnrollment`},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentAvailableWithoutEnrollment}, 0, ""},
		{family.App, family.Assignment{Target: exclusion, Intent: family.IntentRequired}, 0, ""},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, assign.ActionRemove, "a remove takes no intent: it removes the target's assignment whatever its intent"},
		{family.App, family.Assignment{Target: group(g1)}, assign.ActionRemove, ""},
		{family.Compliance, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, 0, "compliance takes no intent"},
		{family.DeviceConfiguration, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, 0, "deviceConfiguration takes no intent"},
		// settings
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired, Settings: settings}, 0, ""},
		{family.App, family.Assignment{Target: exclusion, Intent: family.IntentRequired, Settings: settings}, 0, "an exclusion takes no settings"},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired, Settings: json.RawMessage(`{`)}, 0, "settings is not valid JSON"},
		{family.SettingsCatalog, family.Assignment{Target: group(g1), Settings: settings}, 0, "settingsCatalog takes no settings"},
		// remediation schedule
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: daily, RunRemediationScript: true}, 0, ""},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: &family.Schedule{Kind: family.ScheduleHourly, Interval: 4}}, 0, ""},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: &family.Schedule{Kind: family.ScheduleOnce, Date: "2026-12-24", Time: "08:30"}}, 0, ""},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: &family.Schedule{Kind: family.ScheduleOnce}}, 0, "a once run_schedule needs a date"},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: &family.Schedule{Kind: "weekly"}}, 0, `run_schedule "weekly" is not one of once, hourly, daily`},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: &family.Schedule{Kind: family.ScheduleHourly, Time: "01:00"}}, 0, "an hourly run_schedule takes no time or date"},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: &family.Schedule{Kind: family.ScheduleDaily, Time: "25:00"}}, 0, `run_schedule time "25:00" is not HH:MM or HH:MM:SS`},
		{family.Remediation, family.Assignment{Target: exclusion, Schedule: daily}, 0, "an exclusion takes no run_schedule"},
		{family.Remediation, family.Assignment{Target: exclusion, RunRemediationScript: true}, 0, "an exclusion takes no run_remediation_script"},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: daily}, assign.ActionRemove, "a remove takes no run_schedule"},
		{family.Script, family.Assignment{Target: group(g1), Schedule: daily}, 0, "script takes no run_schedule"},
		{family.Compliance, family.Assignment{Target: group(g1), RunRemediationScript: true}, 0, "compliance takes no run_remediation_script"},
	}
	for _, tt := range tests {
		err := family.Lookup(tt.fam).Validate(tt.a, tt.action)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s %s %s: got %q, want %q", tt.fam, tt.action, tt.a.Label(), got, tt.want)
		}
	}
}

// TestMatch: per family, how an entry answers an add: the target key
// decides everywhere; the intent for apps; the schedule for remediations
// where the row gives one.
func TestMatch(t *testing.T) {
	t.Parallel()
	have := func(a family.Assignment) family.Entry {
		return family.Entry{ID: "x", Source: family.SourceDirect, Assignment: a}
	}
	daily := &family.Schedule{Kind: family.ScheduleDaily, Interval: 1, Time: "01:00:00"}
	hourly := &family.Schedule{Kind: family.ScheduleHourly, Interval: 1}
	tests := []struct {
		fam  family.Name
		have family.Assignment
		want family.Assignment
		m    family.Match
	}{
		{family.DeviceConfiguration, family.Assignment{Target: group(g1)}, family.Assignment{Target: group(g1)}, family.Same},
		{family.DeviceConfiguration, family.Assignment{Target: group(g1)}, family.Assignment{Target: group(g2)}, family.Other},
		{family.SettingsCatalog, family.Assignment{Target: group(g1)}, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, family.Differs},
		{family.Compliance, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, family.Assignment{Target: filtered(group(g1), f1, assign.FilterExclude)}, family.Differs},
		{family.AdministrativeTemplate, family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude)}, family.Assignment{Target: filtered(group(g1), f2, assign.FilterInclude)}, family.Differs},
		{family.Script, family.Assignment{Target: allDevices}, family.Assignment{Target: allUsers}, family.Other},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: daily}, family.Assignment{Target: group(g1)}, family.Same},
		{family.Remediation, family.Assignment{Target: group(g1), Schedule: daily}, family.Assignment{Target: group(g1), Schedule: hourly}, family.Differs},
		{family.Remediation, family.Assignment{Target: group(g1)}, family.Assignment{Target: group(g1), RunRemediationScript: true}, family.Differs},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, family.Same},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, family.Assignment{Target: group(g1), Intent: family.IntentAvailable}, family.Differs},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired, Settings: json.RawMessage(`{"a": 1}`)}, family.Assignment{Target: group(g1), Intent: family.IntentRequired}, family.Same},
		{family.App, family.Assignment{Target: group(g1), Intent: family.IntentRequired, Settings: json.RawMessage(`{"a": 1}`)}, family.Assignment{Target: group(g1), Intent: family.IntentRequired, Settings: json.RawMessage(`{"a":2}`)}, family.Differs},
		{family.AppProtection, family.Assignment{Target: exclusion}, family.Assignment{Target: group(g2)}, family.Other},
		{family.AppConfiguration, family.Assignment{Target: group(g1)}, family.Assignment{Target: group(g1)}, family.Same},
		{family.UpdateProfile, family.Assignment{Target: group(g1)}, family.Assignment{Target: group(g1)}, family.Same},
	}
	for _, tt := range tests {
		if got := family.Lookup(tt.fam).Match(have(tt.have), tt.want); got != tt.m {
			t.Errorf("%s: Match(%s, %s) = %d, want %d", tt.fam, tt.have.Label(), tt.want.Label(), got, tt.m)
		}
	}
	if !family.MatchesRemove(have(family.Assignment{Target: filtered(group(g1), f1, assign.FilterInclude), Intent: family.IntentRequired}), filtered(group(g1), f1, assign.FilterInclude)) {
		t.Error("a remove of the exact target does not match an app entry with an intent")
	}
	if family.MatchesRemove(have(family.Assignment{Target: allDevices}), allUsers) {
		t.Error("removing all licensed users matches all devices")
	}
}

// Package family is the table of Intune's assignable policy families: for
// each, where Graph keeps its policies, how its /assign action is written,
// which targets and extra fields it accepts, and how an existing
// assignment is matched to what a row asks for. It also holds the pure
// merge a policy-level write starts from (merge.go): the union to post to
// a replace-all /assign, and the truthful outcome of every row.
//
// The package does no I/O. Facts come from Graph's documentation and
// the tools admins use; ../shared/POLICY_FAMILIES.md lists them. Targets
// are internal/assign's (assign.Target, assign.TargetType): one list of
// target types in one place.
package family

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Name is a family as a row's `kind` column (`policy_kind` in JSON)
// writes it.
type Name string

const (
	DeviceConfiguration    Name = "deviceConfiguration"
	SettingsCatalog        Name = "settingsCatalog"
	Compliance             Name = "compliance"
	AdministrativeTemplate Name = "administrativeTemplate"
	Script                 Name = "script"
	Remediation            Name = "remediation"
	App                    Name = "app"
	AppProtection          Name = "appProtection"
	AppConfiguration       Name = "appConfiguration"
	UpdateProfile          Name = "updateProfile"
)

// Collection is one Graph collection of a family's policies.
type Collection struct {
	// Name is the collection's last segment ("configurationPolicies"),
	// unique across families.
	Name string
	// Path is the collection below the Graph root (beta), without a
	// trailing slash: "/deviceManagement/configurationPolicies".
	Path string
	// AssignmentType is the @odata.type of one assignment of the
	// collection, with the leading '#'.
	AssignmentType string
}

// PolicyPath is the URL path of one policy below the Graph root.
func (c *Collection) PolicyPath(id string) string { return c.Path + "/" + id }

// AssignmentsPath is the URL path of a policy's assignments (GET, paged).
func (c *Collection) AssignmentsPath(id string) string { return c.PolicyPath(id) + "/assignments" }

// AssignPath is the URL path of a policy's /assign action.
func (c *Collection) AssignPath(id string) string { return c.PolicyPath(id) + "/assign" }

// Family is one assignable family: data, and the few rules below.
type Family struct {
	Name Name
	// Label names the family in messages ("a Settings Catalog policy").
	Label string
	// Collections are where the family's policies live. Most families
	// have one; scripts, app protections, app configurations and update
	// profiles have one per platform or kind, each read through itself
	// (never as a cast of another).
	Collections []Collection
	// BodyKey is the property of the /assign body that carries the whole
	// set: {"<BodyKey>": [ ... ]}.
	BodyKey string
	// AssignStatus is what Graph answers a successful /assign:
	// http.StatusOK with the new set as {"value": [...]}, or
	// http.StatusNoContent (the docs and the SDKs' response types; a
	// client should accept either and trust only a read-back).
	AssignStatus int
	// PerAssignment: POST …/assignments creates one assignment and
	// DELETE …/assignments/{id} removes one. Only device configurations
	// and apps have working routes; elsewhere POST answers 400 "No method
	// match route template", so the family is written through /assign.
	PerAssignment bool
	// Targets are the target types the family accepts.
	Targets []assign.TargetType
	// Filters: the family's targets may carry an assignment filter.
	Filters bool
	// Intents are the install intents an assignment takes (apps); none
	// is a default, an app row gives one. Empty: the family takes no
	// intent.
	Intents []Intent
	// Schedules are the run schedules an assignment may take
	// (remediations); empty: the family takes none, nor a
	// run_remediation_script.
	Schedules []ScheduleKind
	// Settings: the family's assignments may carry typed settings,
	// kept verbatim (apps); exclusions never do.
	Settings bool
}

// Intent is an app assignment's install intent.
type Intent string

const (
	IntentNone                       Intent = ""
	IntentRequired                   Intent = "required"
	IntentAvailable                  Intent = "available"
	IntentUninstall                  Intent = "uninstall"
	IntentAvailableWithoutEnrollment Intent = "availableWithoutEnrollment"
)

// ScheduleKind is how often a remediation runs.
type ScheduleKind string

const (
	ScheduleOnce   ScheduleKind = "once"
	ScheduleHourly ScheduleKind = "hourly"
	ScheduleDaily  ScheduleKind = "daily"
)

// scheduleTypes are the @odata.type of each kind of runSchedule.
var scheduleTypes = map[ScheduleKind]string{
	ScheduleOnce:   "#microsoft.graph.deviceHealthScriptRunOnceSchedule",
	ScheduleHourly: "#microsoft.graph.deviceHealthScriptHourlySchedule",
	ScheduleDaily:  "#microsoft.graph.deviceHealthScriptDailySchedule",
}

// ODataType is the runSchedule's @odata.type.
func (k ScheduleKind) ODataType() string { return scheduleTypes[k] }

// ScheduleKindFromOData maps a runSchedule @odata.type (with or without
// '#', any case) to its kind.
func ScheduleKindFromOData(s string) (ScheduleKind, bool) {
	s = strings.TrimPrefix(s, "#")
	for k, o := range scheduleTypes {
		if strings.EqualFold(s, strings.TrimPrefix(o, "#")) {
			return k, true
		}
	}
	return "", false
}

// Schedule is a remediation's runSchedule. Interval counts hours
// (hourly) or days (daily, once); Time is "HH:MM:SS" (daily, once), Date
// "YYYY-MM-DD" (once).
type Schedule struct {
	Kind     ScheduleKind `json:"kind"`
	Interval int          `json:"interval,omitempty"`
	Time     string       `json:"time,omitempty"`
	Date     string       `json:"date,omitempty"`
	UseUTC   bool         `json:"useUtc,omitempty"`
}

var (
	allTargets   = []assign.TargetType{assign.TargetGroup, assign.TargetExclusionGroup, assign.TargetAllDevices, assign.TargetAllLicensedUsers}
	groupTargets = []assign.TargetType{assign.TargetGroup, assign.TargetExclusionGroup}
)

// Families is the table, in documentation order. Nothing outside it can
// be addressed, so no input can steer a request to another resource.
var Families = []*Family{
	{
		Name: DeviceConfiguration, Label: "a device configuration",
		Collections:  []Collection{{"deviceConfigurations", "/deviceManagement/deviceConfigurations", "#microsoft.graph.deviceConfigurationAssignment"}},
		BodyKey:      "assignments",
		AssignStatus: http.StatusOK, PerAssignment: true,
		Targets: assign.TargetTypes, Filters: true,
	},
	{
		Name: SettingsCatalog, Label: "a Settings Catalog policy",
		Collections:  []Collection{{"configurationPolicies", "/deviceManagement/configurationPolicies", "#microsoft.graph.deviceManagementConfigurationPolicyAssignment"}},
		BodyKey:      "assignments",
		AssignStatus: http.StatusOK,
		Targets:      allTargets, Filters: true,
	},
	{
		Name: Compliance, Label: "a compliance policy",
		Collections:  []Collection{{"deviceCompliancePolicies", "/deviceManagement/deviceCompliancePolicies", "#microsoft.graph.deviceCompliancePolicyAssignment"}},
		BodyKey:      "assignments",
		AssignStatus: http.StatusOK,
		Targets:      allTargets, Filters: true,
	},
	{
		Name: AdministrativeTemplate, Label: "an administrative template",
		Collections:  []Collection{{"groupPolicyConfigurations", "/deviceManagement/groupPolicyConfigurations", "#microsoft.graph.groupPolicyConfigurationAssignment"}},
		BodyKey:      "assignments",
		AssignStatus: http.StatusOK,
		Targets:      allTargets, Filters: true,
	},
	{
		Name: Script, Label: "a platform script",
		Collections: []Collection{
			{"deviceManagementScripts", "/deviceManagement/deviceManagementScripts", "#microsoft.graph.deviceManagementScriptAssignment"},
			{"deviceShellScripts", "/deviceManagement/deviceShellScripts", "#microsoft.graph.deviceManagementScriptAssignment"},
		},
		BodyKey:      "deviceManagementScriptAssignments",
		AssignStatus: http.StatusNoContent,
		Targets:      allTargets,
	},
	{
		Name: Remediation, Label: "a remediation",
		Collections:  []Collection{{"deviceHealthScripts", "/deviceManagement/deviceHealthScripts", "#microsoft.graph.deviceHealthScriptAssignment"}},
		BodyKey:      "deviceHealthScriptAssignments",
		AssignStatus: http.StatusNoContent,
		Targets:      allTargets, Filters: true,
		Schedules: []ScheduleKind{ScheduleOnce, ScheduleHourly, ScheduleDaily},
	},
	{
		Name: App, Label: "an app",
		Collections:  []Collection{{"mobileApps", "/deviceAppManagement/mobileApps", "#microsoft.graph.mobileAppAssignment"}},
		BodyKey:      "mobileAppAssignments",
		AssignStatus: http.StatusNoContent, PerAssignment: true,
		Targets: allTargets, Filters: true,
		Intents:  []Intent{IntentRequired, IntentAvailable, IntentUninstall, IntentAvailableWithoutEnrollment},
		Settings: true,
	},
	{
		Name: AppProtection, Label: "an app protection policy",
		Collections: []Collection{
			{"iosManagedAppProtections", "/deviceAppManagement/iosManagedAppProtections", "#microsoft.graph.targetedManagedAppPolicyAssignment"},
			{"androidManagedAppProtections", "/deviceAppManagement/androidManagedAppProtections", "#microsoft.graph.targetedManagedAppPolicyAssignment"},
			{"windowsManagedAppProtections", "/deviceAppManagement/windowsManagedAppProtections", "#microsoft.graph.targetedManagedAppPolicyAssignment"},
		},
		BodyKey:      "assignments",
		AssignStatus: http.StatusNoContent,
		Targets:      groupTargets, Filters: true,
	},
	{
		Name: AppConfiguration, Label: "an app configuration policy",
		Collections: []Collection{
			{"mobileAppConfigurations", "/deviceAppManagement/mobileAppConfigurations", "#microsoft.graph.managedDeviceMobileAppConfigurationAssignment"},
			{"targetedManagedAppConfigurations", "/deviceAppManagement/targetedManagedAppConfigurations", "#microsoft.graph.targetedManagedAppPolicyAssignment"},
		},
		BodyKey:      "assignments",
		AssignStatus: http.StatusNoContent,
		Targets:      groupTargets,
	},
	{
		Name: UpdateProfile, Label: "a Windows update profile",
		Collections: []Collection{
			{"windowsFeatureUpdateProfiles", "/deviceManagement/windowsFeatureUpdateProfiles", "#microsoft.graph.windowsFeatureUpdateProfileAssignment"},
			{"windowsQualityUpdateProfiles", "/deviceManagement/windowsQualityUpdateProfiles", "#microsoft.graph.windowsQualityUpdateProfileAssignment"},
			{"windowsDriverUpdateProfiles", "/deviceManagement/windowsDriverUpdateProfiles", "#microsoft.graph.windowsDriverUpdateProfileAssignment"},
		},
		BodyKey:      "assignments",
		AssignStatus: http.StatusNoContent,
		Targets:      groupTargets,
	},
}

// Lookup returns the family named n (exact case), or nil.
func Lookup(n Name) *Family {
	for _, f := range Families {
		if f.Name == n {
			return f
		}
	}
	return nil
}

// Parse reads a `kind` column: a family name in any case; empty is the
// device configuration, as rows without the column have always been.
func Parse(s string) (*Family, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return Lookup(DeviceConfiguration), nil
	}
	for _, f := range Families {
		if strings.EqualFold(string(f.Name), v) {
			return f, nil
		}
	}
	names := make([]string, len(Families))
	for i, f := range Families {
		names[i] = string(f.Name)
	}
	return nil, fmt.Errorf("kind %q is not one of %s", s, strings.Join(names, ", "))
}

// ByCollection returns the family and collection whose Name is name
// (case-insensitive, as Graph matches segments), or nils.
func ByCollection(name string) (*Family, *Collection) {
	for _, f := range Families {
		for i := range f.Collections {
			if strings.EqualFold(f.Collections[i].Name, name) {
				return f, &f.Collections[i]
			}
		}
	}
	return nil, nil
}

// Collection returns the family's collection named name (exact case), or
// nil.
func (f *Family) Collection(name string) *Collection {
	for i := range f.Collections {
		if f.Collections[i].Name == name {
			return &f.Collections[i]
		}
	}
	return nil
}

// Accepts reports whether the family accepts target type t.
func (f *Family) Accepts(t assign.TargetType) bool {
	for _, a := range f.Targets {
		if a == t {
			return true
		}
	}
	return false
}

func (f *Family) takesIntent(i Intent) bool {
	for _, a := range f.Intents {
		if a == i {
			return true
		}
	}
	return false
}

func (f *Family) takesSchedule(k ScheduleKind) bool {
	for _, a := range f.Schedules {
		if a == k {
			return true
		}
	}
	return false
}

// targetWords is a target type in words, for messages.
func targetWords(t assign.TargetType) string { return strings.ReplaceAll(string(t), "_", " ") }

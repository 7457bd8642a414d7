// Package assign holds the domain of bulkassign: what one row of an input list
// asks for (a Spec: a device configuration, one of its assignment paths and a
// target), how a target is written in Microsoft Graph's own JSON shape, and the
// statuses a row moves through. Every other package speaks in these types.
package assign

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// TargetType is the kind of assignment target, in the short form used by the
// CSV input, the database and the results view.
type TargetType string

const (
	TargetGroup               TargetType = "group"
	TargetExclusionGroup      TargetType = "exclusion_group"
	TargetAllDevices          TargetType = "all_devices"
	TargetAllLicensedUsers    TargetType = "all_licensed_users"
	TargetConfigMgrCollection TargetType = "configuration_manager_collection"
)

// TargetTypes lists every target type in documentation order.
var TargetTypes = []TargetType{TargetGroup, TargetExclusionGroup, TargetAllDevices, TargetAllLicensedUsers, TargetConfigMgrCollection}

var odataTypes = map[TargetType]string{
	TargetGroup:               "#microsoft.graph.groupAssignmentTarget",
	TargetExclusionGroup:      "#microsoft.graph.exclusionGroupAssignmentTarget",
	TargetAllDevices:          "#microsoft.graph.allDevicesAssignmentTarget",
	TargetAllLicensedUsers:    "#microsoft.graph.allLicensedUsersAssignmentTarget",
	TargetConfigMgrCollection: "#microsoft.graph.configurationManagerCollectionAssignmentTarget",
}

// ODataType is the target's "@odata.type" as Graph expects it on create.
func (t TargetType) ODataType() string { return odataTypes[t] }

// Valid reports whether t is one of the known target types.
func (t TargetType) Valid() bool { _, ok := odataTypes[t]; return ok }

// ParseTargetType accepts the short form ("group") case-insensitively.
func ParseTargetType(s string) (TargetType, error) {
	t := TargetType(strings.ToLower(strings.TrimSpace(s)))
	if t == "" {
		return TargetGroup, nil
	}
	if !t.Valid() {
		return "", fmt.Errorf("target_type %q is not one of %s", s, joinTypes())
	}
	return t, nil
}

// TargetTypeFromOData maps a Graph "@odata.type" (with or without the leading
// '#', any case) to its TargetType.
func TargetTypeFromOData(s string) (TargetType, bool) {
	t, ok := fromOData[strings.ToLower(strings.TrimPrefix(s, "#"))]
	return t, ok
}

var fromOData = func() map[string]TargetType {
	m := map[string]TargetType{}
	for t, o := range odataTypes {
		m[strings.ToLower(strings.TrimPrefix(o, "#"))] = t
	}
	return m
}()

func joinTypes() string {
	s := make([]string, len(TargetTypes))
	for i, t := range TargetTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// FilterType says how an assignment filter applies. The zero value means no
// filter (Graph writes it "none").
type FilterType string

const (
	FilterNone    FilterType = ""
	FilterInclude FilterType = "include"
	FilterExclude FilterType = "exclude"
)

// ParseFilterType accepts include, exclude, and empty or "none" for no filter.
func ParseFilterType(s string) (FilterType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return FilterNone, nil
	case "include":
		return FilterInclude, nil
	case "exclude":
		return FilterExclude, nil
	}
	return "", fmt.Errorf("filter_type %q is not include or exclude", s)
}

// Target is one assignment target. IDs are canonical (GUIDs lower case,
// collection ids upper case) so that two targets compare with ==.
type Target struct {
	Type         TargetType
	GroupID      string
	CollectionID string
	FilterID     string
	FilterType   FilterType
}

// Validate checks the combination of fields, naming the offending field in
// the CSV vocabulary. It expects canonical values (see NewTarget).
func (t Target) Validate() error {
	return t.validate(given(t.GroupID, "group_id"), given(t.FilterID, "filter_id"), "group_id", "filter_id")
}

// given is column when v is not empty, else "".
func given(v, column string) string {
	if v == "" {
		return ""
	}
	return column
}

// validate is Validate where the group and the filter may be given by id
// or by name (Spec.Validate): group and filter are the columns that give
// them ("" for none), named where one is refused; needGroup and needFilter
// are what a message asks for where one is missing.
func (t Target) validate(group, filter, needGroup, needFilter string) error {
	if !t.Type.Valid() {
		return fmt.Errorf("target_type %q is not one of %s", string(t.Type), joinTypes())
	}
	switch t.Type {
	case TargetGroup, TargetExclusionGroup:
		if group == "" {
			return fmt.Errorf("%s is required for target_type %s", needGroup, t.Type)
		}
	default:
		if group != "" {
			return fmt.Errorf("%s is not allowed for target_type %s", group, t.Type)
		}
	}
	if t.Type == TargetConfigMgrCollection {
		if t.CollectionID == "" {
			return fmt.Errorf("collection_id is required for target_type %s", t.Type)
		}
	} else if t.CollectionID != "" {
		return fmt.Errorf("collection_id is not allowed for target_type %s", t.Type)
	}
	if (filter == "") != (t.FilterType == FilterNone) {
		if filter == "" {
			return fmt.Errorf("filter_type %s needs a %s", t.FilterType, needFilter)
		}
		return fmt.Errorf("%s needs a filter_type (include or exclude)", filter)
	}
	if filter != "" && t.Type == TargetExclusionGroup {
		return fmt.Errorf("%s is not allowed for target_type exclusion_group", filter)
	}
	return nil
}

// Key identifies the target for duplicate detection: two targets with the
// same key are the same assignment in Intune's eyes.
func (t Target) Key() string {
	return string(t.Type) + "|" + t.GroupID + "|" + t.CollectionID + "|" + t.FilterID + "|" + string(t.FilterType)
}

// TargetFromKey is the target whose Key is k.
func TargetFromKey(k string) (Target, bool) {
	p := strings.Split(k, "|")
	if len(p) != 5 {
		return Target{}, false
	}
	return Target{Type: TargetType(p[0]), GroupID: p[1], CollectionID: p[2], FilterID: p[3], FilterType: FilterType(p[4])}, true
}

// Wire is a target in Graph's shape (a deviceAndAppManagementAssignmentTarget),
// as it is sent and answered. A request or answer that embeds a Wire is
// encoded or decoded in one pass; Target's own MarshalJSON and
// UnmarshalJSON go through it too.
type Wire struct {
	ODataType    string `json:"@odata.type"`
	GroupID      string `json:"groupId,omitempty"`
	CollectionID string `json:"collectionId,omitempty"`
	FilterID     string `json:"deviceAndAppManagementAssignmentFilterId,omitempty"`
	FilterType   string `json:"deviceAndAppManagementAssignmentFilterType,omitempty"`
}

// Wire is t in Graph's shape.
func (t Target) Wire() Wire {
	w := Wire{ODataType: t.Type.ODataType(), GroupID: t.GroupID, CollectionID: t.CollectionID}
	if t.FilterID != "" {
		w.FilterID, w.FilterType = t.FilterID, string(t.FilterType)
	}
	return w
}

// Target reads a target in Graph's shape, as Graph returns it: "none"
// filters normalised away. It canonicalises ids but does not Validate;
// callers that accept user input must.
func (w Wire) Target() (Target, error) {
	tt, ok := TargetTypeFromOData(w.ODataType)
	if !ok {
		return Target{}, fmt.Errorf("target @odata.type %q is not a supported assignment target", w.ODataType)
	}
	t := Target{Type: tt, GroupID: CanonicalGUID(w.GroupID), CollectionID: strings.ToUpper(strings.TrimSpace(w.CollectionID)),
		FilterID: CanonicalGUID(w.FilterID)}
	ft, err := ParseFilterType(w.FilterType)
	if err != nil {
		return Target{}, err
	}
	t.FilterType = ft
	if t.FilterID == "00000000-0000-0000-0000-000000000000" {
		t.FilterID = ""
	}
	if t.FilterID == "" {
		// Graph may echo a filter type of "none" or even a stale type with a
		// null id; without an id there is no filter.
		t.FilterType = FilterNone
	}
	return t, nil
}

// MarshalJSON writes the target in Graph's shape.
func (t Target) MarshalJSON() ([]byte, error) { return json.Marshal(t.Wire()) }

// UnmarshalJSON reads a target in Graph's shape (Wire.Target); unknown
// properties are ignored.
func (t *Target) UnmarshalJSON(b []byte) error {
	var w Wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	v, err := w.Target()
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseGUID returns the canonical (lower case) form of a GUID, written
// plain or in braces, or an error naming field and value. It is on the hot
// path of intake (several GUIDs a row), so it avoids regular expressions.
func ParseGUID(field, s string) (string, error) {
	v := strings.TrimSpace(s)
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		v = v[1 : len(v)-1]
	}
	if len(v) != 36 {
		return "", fmt.Errorf("%s %q is not a GUID", field, s)
	}
	var class byte
	for i := 0; i < 36; i++ {
		c := hexClass[v[i]]
		switch i {
		case 8, 13, 18, 23:
			c = dashClass[v[i]]
		}
		if c == 0 {
			return "", fmt.Errorf("%s %q is not a GUID", field, s)
		}
		class |= c
	}
	if class&2 != 0 {
		return strings.ToLower(v), nil
	}
	return v, nil
}

// hexClass is 1 for 0-9 and a-f, 2 for A-F, 0 otherwise; dashClass is 1 for '-'.
var hexClass, dashClass = func() (h, d [256]byte) {
	for c := '0'; c <= '9'; c++ {
		h[c] = 1
	}
	for c := 'a'; c <= 'f'; c++ {
		h[c] = 1
		h[c-'a'+'A'] = 2
	}
	d['-'] = 1
	return
}()

// CanonicalGUID lower-cases a GUID from Graph without validating it.
func CanonicalGUID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// collectionRE matches a Configuration Manager collection id: a three
// character site code and five hexadecimal digits (SMS00001, P0100023).
var collectionRE = regexp.MustCompile(`^[A-Z0-9]{3}[0-9A-F]{5}$`)

// ParseCollectionID returns the canonical (upper case) collection id.
func ParseCollectionID(s string) (string, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	if !collectionRE.MatchString(v) {
		return "", fmt.Errorf("collection_id %q is not a Configuration Manager collection id (site code and 5 hex digits, e.g. SMS00001)", s)
	}
	return v, nil
}

// Path selects which assignments collection below a device configuration a
// row targets. The empty Path is the configuration's own assignments.
type Path string

// Paths lists every accepted path. Nothing outside this list can be sent, so
// no input can steer a request to another Graph resource.
var Paths = []Path{
	"",
	"rootCertificate",
	"identityCertificate",
	"identityCertificate/rootCertificate",
	"microsoft.graph.iosScepCertificateProfile/rootCertificate",
	"microsoft.graph.macOSScepCertificateProfile/rootCertificate",
	"microsoft.graph.windows81SCEPCertificateProfile/rootCertificate",
	"microsoft.graph.windowsPhone81VpnConfiguration/identityCertificate",
}

// ParsePath accepts one of Paths, with or without a trailing "/assignments"
// and surrounding slashes, in its exact case.
func ParsePath(s string) (Path, error) {
	v := strings.Trim(strings.TrimSpace(s), "/")
	if v == "assignments" {
		v = ""
	}
	v = strings.TrimSuffix(v, "/assignments")
	for _, p := range Paths {
		if string(p) == v {
			return p, nil
		}
	}
	return "", fmt.Errorf("path %q is not one of the assignment paths (empty, %s)", s, joinPaths())
}

func joinPaths() string {
	s := make([]string, 0, len(Paths)-1)
	for _, p := range Paths[1:] {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

// AssignmentsPath is the URL path of the assignments collection below
// /deviceManagement/deviceConfigurations/{configurationID}.
func (p Path) AssignmentsPath(configurationID string) string {
	base := "/deviceManagement/deviceConfigurations/" + configurationID + "/"
	if p != "" {
		base += string(p) + "/"
	}
	return base + "assignments"
}

// Spec is one row of input: create (or, with ActionRemove, delete) this
// target on this path of this configuration. The configuration, the group
// and the filter are each given by id or by display name (Names), not
// both; a worker resolves names to ids in the row's tenant before it
// reads or writes anything, and the row keeps both.
type Spec struct {
	ConfigurationID string
	Path            Path
	Target          Target
	Action          Action
	Names           Names
}

// Names are the display names a row gave instead of ids. A name is matched
// exactly as Graph compares displayName (case-insensitively).
type Names struct {
	Configuration string // instead of Spec.ConfigurationID
	Group         string // instead of Target.GroupID
	Filter        string // instead of Target.FilterID
}

// Any reports whether a name is given.
func (n Names) Any() bool { return n.Configuration != "" || n.Group != "" || n.Filter != "" }

// Unresolved reports whether some name of s has no id yet: the row must
// be resolved before its target can be compared or sent.
func (s Spec) Unresolved() bool {
	return s.Names.Configuration != "" && s.ConfigurationID == "" ||
		s.Names.Group != "" && s.Target.GroupID == "" ||
		s.Names.Filter != "" && s.Target.FilterID == ""
}

// Validate checks a spec as input gives it: the configuration, the group
// and the filter each by id or by name, not both, and the target's fields
// in a valid combination. Messages name CSV columns: the one a row filled
// where it is refused, both where neither is given.
func (s Spec) Validate() error {
	n, t := &s.Names, &s.Target
	switch {
	case s.ConfigurationID != "" && n.Configuration != "":
		return errors.New("give configuration_id or configuration_name, not both")
	case s.ConfigurationID == "" && n.Configuration == "":
		return errors.New("configuration_id or configuration_name is required")
	case t.GroupID != "" && n.Group != "":
		return errors.New("give group_id or group_name, not both")
	case t.FilterID != "" && n.Filter != "":
		return errors.New("give filter_id or filter_name, not both")
	}
	group, filter := given(t.GroupID, "group_id"), given(t.FilterID, "filter_id")
	if n.Group != "" {
		group = "group_name"
	}
	if n.Filter != "" {
		filter = "filter_name"
	}
	return t.validate(group, filter, "group_id or group_name", "filter_id or filter_name")
}

// ValidateStored checks a spec as the database holds it: like Validate,
// but a name may stand beside the id it resolved to.
func (s Spec) ValidateStored() error {
	if s.ConfigurationID != "" {
		s.Names.Configuration = ""
	}
	if s.Target.GroupID != "" {
		s.Names.Group = ""
	}
	if s.Target.FilterID != "" {
		s.Names.Filter = ""
	}
	return s.Validate()
}

// Key identifies the spec for de-duplication of input rows: its target on
// its configuration path, ids and names as given. The action is not part
// of it: one file may not both assign and remove a target (intake). Names
// are quoted (strconv.Quote), since a display name may hold the '|' that
// separates the parts: unquoted, names "a|b" and "c" gave the same key as
// "a" and "b|c".
func (s Spec) Key() string {
	k := s.ConfigurationID + "|" + string(s.Path) + "|" + s.Target.Key()
	if s.Names.Any() {
		k += "|" + strconv.Quote(s.Names.Configuration) + "|" + strconv.Quote(s.Names.Group) + "|" + strconv.Quote(s.Names.Filter)
	}
	return k
}

// Action is what a row does with its target. The zero value assigns.
type Action uint8

const (
	ActionAssign Action = iota // create the assignment (the default)
	ActionRemove               // delete the assignment of exactly this target
)

// Actions lists the actions in documentation order.
var Actions = []Action{ActionAssign, ActionRemove}

// String is the action as inputs, the database and the results write it.
func (a Action) String() string {
	if a == ActionRemove {
		return "remove"
	}
	return "assign"
}

// ParseAction accepts assign or remove in any case; empty is assign.
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "assign":
		return ActionAssign, nil
	case "remove":
		return ActionRemove, nil
	}
	return 0, fmt.Errorf("action %q is not assign or remove", s)
}

// NewID returns a random (version 4) GUID in canonical form: batch ids and
// client-request-ids.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// TargetLabel is a target as one compact line, for tables: its type, its
// group or collection id, and its filter.
func TargetLabel(typ, group, collection, filterID, filterType string) string {
	s := typ
	switch {
	case group != "":
		s += ":" + group
	case collection != "":
		s += ":" + collection
	}
	if filterID != "" {
		s += " (" + filterType + " " + filterID + ")"
	}
	return s
}

// NameLabel is an object a row gave by id or by display name, for tables:
// the id, the name quoted, or both once the name is resolved.
func NameLabel(id, name string) string {
	switch {
	case name == "":
		return id
	case id == "":
		return strconv.Quote(name)
	}
	return strconv.Quote(name) + "=" + id
}

// Label is the spec's target as one compact line (TargetLabel), a name
// beside the id it resolved to (NameLabel), a remove row's marked.
func (s Spec) Label() string {
	t := &s.Target
	l := TargetLabel(string(t.Type), NameLabel(t.GroupID, s.Names.Group), t.CollectionID,
		NameLabel(t.FilterID, s.Names.Filter), string(t.FilterType))
	if s.Action == ActionRemove {
		l = "remove " + l
	}
	return l
}

// ConfigurationLabel is the spec's configuration: id, name or both.
func (s Spec) ConfigurationLabel() string { return NameLabel(s.ConfigurationID, s.Names.Configuration) }

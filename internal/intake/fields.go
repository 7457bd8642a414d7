package intake

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// maxValueLen bounds a single value other than a name. No valid value
// comes close (the longest path is 65 bytes); the bound keeps messages
// short and, for JSON, memory flat.
const maxValueLen = 256

// maxNameLen is the most characters (runes) of a display name: 256,
// Entra's limit for a group's displayName, which intake applies to the
// names of configurations and filters too. maxNameBytes bounds its bytes
// first, so that a long value is refused before it is counted: 4 bytes a
// rune, the most UTF-8 takes, so that no name of maxNameLen characters is
// refused for its bytes.
const (
	maxNameLen   = 256
	maxNameBytes = 4 * maxNameLen
)

// zeroGUID is how Graph writes "no filter" in a filter id.
const zeroGUID = "00000000-0000-0000-0000-000000000000"

// field is one value of a row, whatever the syntax of the input.
type field uint8

const (
	fieldConfigurationID field = iota
	fieldTargetType
	fieldGroupID
	fieldCollectionID
	fieldFilterID
	fieldFilterType
	fieldPath
	fieldTenantID
	fieldAction
	fieldConfigurationName
	fieldGroupName
	fieldFilterName
	numFields
)

// fieldNames is the one table of what each field is called: its CSV
// column and its JSON key (the target's keys with "target."). The CSV
// columns are in documentation order. Every message names a field through
// it, so that a row is told about in the words of its own input.
var fieldNames = [numFields]struct{ csv, json string }{
	fieldConfigurationID: {"configuration_id", "configurationId"},
	fieldTargetType:      {"target_type", "target.@odata.type"},
	fieldGroupID:         {"group_id", "target.groupId"},
	fieldCollectionID:    {"collection_id", "target.collectionId"},
	fieldFilterID:        {"filter_id", "target.deviceAndAppManagementAssignmentFilterId"},
	fieldFilterType:      {"filter_type", "target.deviceAndAppManagementAssignmentFilterType"},
	fieldPath:            {"path", "path"},
	fieldTenantID:        {"tenant_id", "tenantId"},
	// Added later, so after the others: old inputs read the same.
	fieldAction:            {"action", "action"},
	fieldConfigurationName: {"configuration_name", "configurationName"},
	fieldGroupName:         {"group_name", "target.groupName"},
	fieldFilterName:        {"filter_name", "target.filterName"},
}

// fields is one row's raw values, trimmed, before validation. The empty
// string means absent.
type fields struct {
	v [numFields]string
	// typeErr marks a JSON value that was not a string (already reported).
	typeErr [numFields]bool
	target  targetState
}

// targetState says whether a JSON row had a usable target object.
type targetState uint8

const (
	targetObject  targetState = iota
	targetMissing             // absent or null
	targetBad                 // not an object (already reported)
)

// odataTypes maps the usual spellings of each target's @odata.type, with
// and without '#', to its type: a fast path for assign.TargetTypeFromOData,
// which lower-cases every candidate on every call.
var odataTypes = func() map[string]assign.TargetType {
	m := map[string]assign.TargetType{}
	for _, t := range assign.TargetTypes {
		m[t.ODataType()] = t
		m[strings.TrimPrefix(t.ODataType(), "#")] = t
	}
	return m
}()

// vocab is the words of one syntax: field names, and how a target type
// is written (CSV's short form or JSON's @odata.type).
type vocab struct {
	json  bool
	names [numFields]string
}

var csvVocab, jsonVocab = func() (c, j vocab) {
	j.json = true
	for f, n := range fieldNames {
		c.names[f], j.names[f] = n.csv, n.json
	}
	return
}()

func (v *vocab) name(f field) string { return v.names[f] }

// typeName is target type t as the input writes it.
func (v *vocab) typeName(t assign.TargetType) string {
	if v.json {
		return t.ODataType()
	}
	return string(t)
}

// badType is the message for a target type the input wrote as s.
func (v *vocab) badType(s string) string {
	if v.json {
		return fmt.Sprintf("%s %q is not a supported assignment target", v.name(fieldTargetType), s)
	}
	return fmt.Sprintf("%s %q is not one of %s", v.name(fieldTargetType), s, typeList)
}

var typeList, pathList = func() (types, paths string) {
	t := make([]string, len(assign.TargetTypes))
	for i, tt := range assign.TargetTypes {
		t[i] = string(tt)
	}
	p := make([]string, 0, len(assign.Paths))
	for _, pp := range assign.Paths[1:] {
		p = append(p, string(pp))
	}
	return strings.Join(t, ", "), strings.Join(p, ", ")
}()

// maxNamed is how many unknown or repeated keys of a JSON row, or problems
// with a CSV header, are listed; the rest are only counted, so that neither
// the messages nor the memory they take grow with the input.
const maxNamed = 5

// maxKeyShown bounds the bytes of a key or column name quoted in a message.
const maxKeyShown = 64

// shown quotes prefix+s for a message, s cut to maxKeyShown bytes (at the
// start of a character) and followed by its length when it is longer.
func shown[T string | []byte](prefix string, s T) string {
	if len(s) <= maxKeyShown {
		return strconv.Quote(prefix + string(s))
	}
	n := maxKeyShown
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%q... (%d bytes)", prefix+string(s[:n]), len(s))
}

// check accumulates the problems of one row; a row may have several, they
// are reported together on its line.
type check struct {
	msgs []string
	// keys counts the row's unknown and repeated keys; moreUnknown and
	// moreDup those past maxNamed, not listed.
	keys, moreUnknown, moreDup int
}

func (c *check) add(msg string)   { c.msgs = append(c.msgs, msg) }
func (c *check) addErr(err error) { c.msgs = append(c.msgs, err.Error()) }
func (c *check) ok() bool         { return len(c.msgs) == 0 }
func (c *check) String() string   { return strings.Join(c.msgs, "; ") }

func (c *check) reset() {
	c.msgs = c.msgs[:0]
	c.keys, c.moreUnknown, c.moreDup = 0, 0, 0
}

// listKey counts an unknown (dup false) or repeated key: true when it is
// among the first maxNamed, which the caller then adds a message for.
func (c *check) listKey(dup bool) bool {
	c.keys++
	if c.keys <= maxNamed {
		return true
	}
	if dup {
		c.moreDup++
	} else {
		c.moreUnknown++
	}
	return false
}

// endKeys adds a message counting the keys listKey did not list.
func (c *check) endKeys() {
	u, d := c.moreUnknown, c.moreDup
	switch {
	case u > 0 && d > 0:
		c.add("... and " + count(u, "more unknown key") + " and " + count(d, "more duplicate key"))
	case u > 0:
		c.add("... and " + count(u, "more unknown key"))
	case d > 0:
		c.add("... and " + count(d, "more duplicate key"))
	}
}

// count is "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// tooLong reports (and records) a value too long to be valid.
func (c *check) tooLong(v *vocab, f field, s string) bool {
	if len(s) > maxValueLen {
		c.add(fmt.Sprintf("%s is too long (%d bytes)", v.name(f), len(s)))
		return true
	}
	return false
}

// spec validates f, read in vocabulary v, and returns the canonical Spec;
// problems go to c. The assign parsers decide what is valid; the messages
// are intake's, in the input's words.
func (c *check) spec(f *fields, v *vocab) assign.Spec {
	var s assign.Spec
	var err error
	n, t := &s.Names, &s.Target
	cfg := f.v[fieldConfigurationID]
	switch {
	case cfg != "" && f.v[fieldConfigurationName] != "":
		c.add(v.both(fieldConfigurationID, fieldConfigurationName))
	case cfg == "" && f.v[fieldConfigurationName] == "":
		if !f.typeErr[fieldConfigurationID] && !f.typeErr[fieldConfigurationName] {
			c.add(v.either(fieldConfigurationID, fieldConfigurationName) + " is required")
		}
	}
	if cfg != "" && !c.tooLong(v, fieldConfigurationID, cfg) {
		if s.ConfigurationID, err = assign.ParseGUID(v.name(fieldConfigurationID), cfg); err != nil {
			c.addErr(err)
		}
	}
	n.Configuration = c.name(f, v, fieldConfigurationName)
	if p := f.v[fieldPath]; p != "" && !c.tooLong(v, fieldPath, p) {
		if s.Path, err = assign.ParsePath(p); err != nil {
			c.add(fmt.Sprintf("%s %q is not one of the assignment paths (empty, %s)", v.name(fieldPath), p, pathList))
		}
	}
	tt := f.v[fieldTargetType]
	if v.json {
		switch {
		case f.target == targetMissing:
			c.add("target is required")
		case f.target == targetBad || f.typeErr[fieldTargetType]:
			// reported by the JSON reader
		case tt == "":
			c.add(v.name(fieldTargetType) + " is required")
		case !c.tooLong(v, fieldTargetType, tt):
			typ, ok := odataTypes[tt]
			if !ok {
				typ, ok = assign.TargetTypeFromOData(tt)
			}
			if !ok {
				c.add(v.badType(tt))
			}
			t.Type = typ
		}
	} else if !c.tooLong(v, fieldTargetType, tt) {
		if t.Type, err = assign.ParseTargetType(tt); err != nil {
			c.add(v.badType(tt))
		}
	}
	if g := f.v[fieldGroupID]; g != "" {
		if f.v[fieldGroupName] != "" {
			c.add(v.both(fieldGroupID, fieldGroupName))
		}
		if !c.tooLong(v, fieldGroupID, g) {
			if t.GroupID, err = assign.ParseGUID(v.name(fieldGroupID), g); err != nil {
				c.addErr(err)
			}
		}
	}
	n.Group = c.name(f, v, fieldGroupName)
	if id := f.v[fieldCollectionID]; id != "" && !c.tooLong(v, fieldCollectionID, id) {
		if t.CollectionID, err = assign.ParseCollectionID(id); err != nil {
			c.add(fmt.Sprintf("%s %q is not a Configuration Manager collection id (site code and 5 hex digits, e.g. SMS00001)",
				v.name(fieldCollectionID), id))
		}
	}
	if id := f.v[fieldFilterID]; id != "" && !c.tooLong(v, fieldFilterID, id) {
		if t.FilterID, err = assign.ParseGUID(v.name(fieldFilterID), id); err != nil {
			c.addErr(err)
		}
		if t.FilterID == zeroGUID {
			t.FilterID = "" // no filter, as Graph writes it
		} else if f.v[fieldFilterName] != "" {
			c.add(v.both(fieldFilterID, fieldFilterName))
		}
	}
	n.Filter = c.name(f, v, fieldFilterName)
	if ft := f.v[fieldFilterType]; !c.tooLong(v, fieldFilterType, ft) {
		if t.FilterType, err = assign.ParseFilterType(ft); err != nil {
			c.add(fmt.Sprintf("%s %q is not include or exclude", v.name(fieldFilterType), ft))
		}
	}
	if a := f.v[fieldAction]; !c.tooLong(v, fieldAction, a) {
		if s.Action, err = assign.ParseAction(a); err != nil {
			c.add(fmt.Sprintf("%s %q is not assign or remove", v.name(fieldAction), a))
		}
	}
	if c.ok() {
		if err := s.Validate(); err != nil {
			c.add(v.specProblem(&s, err))
		}
	}
	return s
}

// name validates the display name in field fd of f: kept as given (but
// trimmed, as every value is), valid UTF-8, no control characters, at
// most maxNameLen characters. "" when it is absent or invalid.
func (c *check) name(f *fields, v *vocab, fd field) string {
	s := f.v[fd]
	if !v.json && len(s) > 1 && s[0] == '\'' && strings.IndexByte(formulaStarts, s[1]) >= 0 {
		// A CSV cell as bulkassign's exports (and spreadsheets) write a
		// name that starts like a formula: the quote only keeps it text.
		s = s[1:]
	}
	switch {
	case s == "":
	case len(s) > maxNameBytes:
		c.add(fmt.Sprintf("%s is too long (%d bytes; at most %d characters)", v.name(fd), len(s), maxNameLen))
	case !utf8.ValidString(s):
		c.add(fmt.Sprintf("%s %s is not valid UTF-8", v.name(fd), shown("", s)))
	default:
		runes := 0
		for _, r := range s {
			if unicode.IsControl(r) {
				c.add(fmt.Sprintf("%s %s has a control character (%U)", v.name(fd), shown("", s), r))
				return ""
			}
			runes++
		}
		if runes > maxNameLen {
			c.add(fmt.Sprintf("%s is too long (%d characters; at most %d)", v.name(fd), runes, maxNameLen))
			return ""
		}
		return s
	}
	return ""
}

// tenant validates the tenant of f, read in vocabulary v: "" when the row
// names none, else the canonical GUID; problems go to c.
func (c *check) tenant(f *fields, v *vocab) string {
	s := f.v[fieldTenantID]
	if s == "" || c.tooLong(v, fieldTenantID, s) {
		return ""
	}
	id, err := assign.ParseGUID(v.name(fieldTenantID), s)
	switch {
	case err != nil:
		c.addErr(err)
	case id == zeroGUID:
		c.add(fmt.Sprintf("%s %q is the nil GUID, not a tenant", v.name(fieldTenantID), s))
		return ""
	}
	return id
}

// formulaStarts are the first characters after which a CSV name's leading
// single quote is dropped: the quote that export.SpreadsheetSafe (and a
// spreadsheet) puts before a cell a spreadsheet would run as a formula.
const formulaStarts = "=+-@"

// both is the message for a row that gives both a and b.
func (v *vocab) both(a, b field) string { return "give " + v.either(a, b) + ", not both" }

// either is "a or b".
func (v *vocab) either(a, b field) string { return v.name(a) + " or " + v.name(b) }

// given is the field a row gave a thing in: idField when the thing's id
// is not empty, else name.
func given(id string, idField, name field) field {
	if id != "" {
		return idField
	}
	return name
}

// specProblem words what is wrong with s, which assign.Spec.Validate
// refused with err, in the vocabulary of v. Validate decides; this follows
// its order of checks to name the fields (TestSpecProblem keeps the CSV
// wording equal to Validate's), and falls back to err for a check it does
// not know.
func (v *vocab) specProblem(s *assign.Spec, err error) string {
	n, t := &s.Names, &s.Target
	typ := v.name(fieldTargetType) + " " + v.typeName(t.Type)
	grouped := t.Type == assign.TargetGroup || t.Type == assign.TargetExclusionGroup
	hasGroup, hasFilter := t.GroupID != "" || n.Group != "", t.FilterID != "" || n.Filter != ""
	group, filter := given(t.GroupID, fieldGroupID, fieldGroupName), given(t.FilterID, fieldFilterID, fieldFilterName)
	coll, filterType := v.name(fieldCollectionID), v.name(fieldFilterType)
	switch {
	case s.ConfigurationID != "" && n.Configuration != "":
		return v.both(fieldConfigurationID, fieldConfigurationName)
	case s.ConfigurationID == "" && n.Configuration == "":
		return v.either(fieldConfigurationID, fieldConfigurationName) + " is required"
	case t.GroupID != "" && n.Group != "":
		return v.both(fieldGroupID, fieldGroupName)
	case t.FilterID != "" && n.Filter != "":
		return v.both(fieldFilterID, fieldFilterName)
	case !t.Type.Valid():
		return v.badType(string(t.Type))
	case grouped && !hasGroup:
		return v.either(fieldGroupID, fieldGroupName) + " is required for " + typ
	case !grouped && hasGroup:
		return v.name(group) + " is not allowed for " + typ
	case t.Type == assign.TargetConfigMgrCollection && t.CollectionID == "":
		return coll + " is required for " + typ
	case t.Type != assign.TargetConfigMgrCollection && t.CollectionID != "":
		return coll + " is not allowed for " + typ
	case !hasFilter && t.FilterType != assign.FilterNone:
		return fmt.Sprintf("%s %s needs a %s", filterType, t.FilterType, v.either(fieldFilterID, fieldFilterName))
	case hasFilter && t.FilterType == assign.FilterNone:
		return fmt.Sprintf("%s needs a %s (include or exclude)", v.name(filter), filterType)
	case hasFilter && t.Type == assign.TargetExclusionGroup:
		return v.name(filter) + " is not allowed for " + typ
	}
	return err.Error()
}

// conflict is the message for a row spec whose group an earlier row, at
// line first, that does firstAction, puts on the other side (included
// against excluded) on the same configuration path in the same tenant. The
// group and the configuration are named as the row gives them, by id or
// by name.
func (v *vocab) conflict(spec *assign.Spec, first int, firstAction assign.Action) string {
	group, value := fieldGroupID, spec.Target.GroupID
	if value == "" {
		group, value = fieldGroupName, spec.Names.Group
	}
	same := fmt.Sprintf("(same %s, %s and %s)", v.name(given(spec.ConfigurationID, fieldConfigurationID, fieldConfigurationName)),
		v.name(fieldPath), v.name(fieldTenantID))
	included := spec.Target.Type == assign.TargetGroup // here; there is the other side
	side := func(included bool) string {
		if included {
			return "included"
		}
		return "excluded"
	}
	if spec.Action == assign.ActionAssign && firstAction == assign.ActionAssign {
		return fmt.Sprintf("%s %q is %s here and %s on line %d %s: Intune refuses a group both included and excluded on one configuration; keep one of the two lines",
			v.name(group), value, side(included), side(!included), first, same)
	}
	does := func(a assign.Action, included bool) string {
		switch {
		case a == assign.ActionRemove && included:
			return "removes its inclusion"
		case a == assign.ActionRemove:
			return "removes its exclusion"
		case included:
			return "includes it"
		}
		return "excludes it"
	}
	msg := fmt.Sprintf("%s %q: this row %s and line %d %s %s: ", v.name(group), value,
		does(spec.Action, included), first, does(firstAction, !included), same)
	if spec.Action == firstAction { // both remove
		return msg + "Intune never has a group both included and excluded on one configuration, so one of the two finds nothing to remove; keep one of the two lines"
	}
	// The row that removes says where the group was, the other where it goes.
	from := included == (spec.Action == assign.ActionRemove)
	return msg + fmt.Sprintf("Intune refuses a group both included and excluded on one configuration, and the rows of a batch may be done in any order; to move a group from %s to %s, remove in one batch and assign in the next",
		side(from), side(!from))
}

// undoes is the message for a row spec with the key of an earlier row, at
// line first, that does firstAction, the other action.
func (v *vocab) undoes(spec *assign.Spec, first int, firstAction assign.Action) string {
	return fmt.Sprintf("this row %ss what line %d %ss (same %s, %s, target and %s); keep one of the two lines",
		spec.Action, first, firstAction, v.name(given(spec.ConfigurationID, fieldConfigurationID, fieldConfigurationName)),
		v.name(fieldPath), v.name(fieldTenantID))
}

// Record is s in tenant as an input CSV row, its values in Columns order:
// what `enqueue results --format input` writes, read back by this package
// as the same Spec in the same tenant (tenant "" is the default tenant).
// An assign leaves action empty, as most inputs do; a remove writes
// "remove". Where s has both a name and the id resolved from it, the name
// is written, not the id: the row asks again for what it asked for, and
// an input may not give both.
func Record(s assign.Spec, tenant string) []string {
	var r [numFields]string
	t, n := &s.Target, &s.Names
	r[fieldConfigurationID] = s.ConfigurationID
	r[fieldTargetType] = string(t.Type)
	r[fieldGroupID] = t.GroupID
	r[fieldCollectionID] = t.CollectionID
	r[fieldFilterID] = t.FilterID
	r[fieldFilterType] = string(t.FilterType)
	r[fieldPath] = string(s.Path)
	r[fieldTenantID] = tenant
	if s.Action != assign.ActionAssign {
		r[fieldAction] = s.Action.String()
	}
	for _, p := range [...]struct {
		id, name field
		value    string
	}{{fieldConfigurationID, fieldConfigurationName, n.Configuration}, {fieldGroupID, fieldGroupName, n.Group}, {fieldFilterID, fieldFilterName, n.Filter}} {
		if p.value != "" {
			r[p.id], r[p.name] = "", p.value
		}
	}
	return r[:]
}

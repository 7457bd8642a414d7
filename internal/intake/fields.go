package intake

import (
	"fmt"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// maxValueLen bounds a single value. No valid value comes close (the longest
// path is 65 bytes); the bound keeps messages short and, for JSON, memory flat.
const maxValueLen = 256

// zeroGUID is how Graph writes "no filter" in a filter id.
const zeroGUID = "00000000-0000-0000-0000-000000000000"

// fields is one row's raw values, trimmed, before validation. The empty
// string means absent.
type fields struct {
	configurationID string
	path            string
	targetType      string // CSV short form ("group"); empty means group
	odataType       string // JSON "@odata.type"; used when odata is set
	odata           bool   // the target type comes from odataType
	target          targetState
	typeErr         bool // configurationId was not a string (already reported)
	odataTypeErr    bool // @odata.type was not a string (already reported)
	groupID         string
	collectionID    string
	filterID        string
	filterType      string
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

// names are the field names used in messages: the CSV column names or the
// JSON keys. The assign parsers name their own fields (path, target_type,
// collection_id, filter_type and the Validate messages) in CSV vocabulary.
type names struct {
	configurationID, groupID, filterID string
}

var (
	csvNames  = names{"configuration_id", "group_id", "filter_id"}
	jsonNames = names{"configurationId", "target.groupId", "target.deviceAndAppManagementAssignmentFilterId"}
)

// check accumulates the problems of one row; a row may have several, they
// are reported together on its line.
type check struct{ msgs []string }

func (c *check) add(msg string)   { c.msgs = append(c.msgs, msg) }
func (c *check) addErr(err error) { c.msgs = append(c.msgs, err.Error()) }
func (c *check) ok() bool         { return len(c.msgs) == 0 }
func (c *check) reset()           { c.msgs = c.msgs[:0] }
func (c *check) String() string   { return strings.Join(c.msgs, "; ") }

// tooLong reports (and records) a value too long to be valid.
func (c *check) tooLong(field, v string) bool {
	if len(v) > maxValueLen {
		c.add(fmt.Sprintf("%s is too long (%d bytes)", field, len(v)))
		return true
	}
	return false
}

// spec validates f and returns the canonical Spec; problems go to c.
func (c *check) spec(f *fields, n *names) assign.Spec {
	var s assign.Spec
	var err error
	if f.configurationID == "" {
		if !f.typeErr {
			c.add(n.configurationID + " is required")
		}
	} else if !c.tooLong(n.configurationID, f.configurationID) {
		if s.ConfigurationID, err = assign.ParseGUID(n.configurationID, f.configurationID); err != nil {
			c.addErr(err)
		}
	}
	if f.path != "" && !c.tooLong("path", f.path) {
		if s.Path, err = assign.ParsePath(f.path); err != nil {
			c.addErr(err)
		}
	}
	t := &s.Target
	if f.odata {
		switch {
		case f.target == targetMissing:
			c.add("target is required")
		case f.target == targetBad || f.odataTypeErr:
			// reported by the JSON reader
		case f.odataType == "":
			c.add("target.@odata.type is required")
		case !c.tooLong("target.@odata.type", f.odataType):
			tt, ok := odataTypes[f.odataType]
			if !ok {
				tt, ok = assign.TargetTypeFromOData(f.odataType)
			}
			if !ok {
				// Same wording as assign.Target.UnmarshalJSON.
				c.add(fmt.Sprintf("target @odata.type %q is not a supported assignment target", f.odataType))
			}
			t.Type = tt
		}
	} else if !c.tooLong("target_type", f.targetType) {
		if t.Type, err = assign.ParseTargetType(f.targetType); err != nil {
			c.addErr(err)
		}
	}
	if f.groupID != "" && !c.tooLong(n.groupID, f.groupID) {
		if t.GroupID, err = assign.ParseGUID(n.groupID, f.groupID); err != nil {
			c.addErr(err)
		}
	}
	if f.collectionID != "" && !c.tooLong("collection_id", f.collectionID) {
		if t.CollectionID, err = assign.ParseCollectionID(f.collectionID); err != nil {
			c.addErr(err)
		}
	}
	if f.filterID != "" && !c.tooLong(n.filterID, f.filterID) {
		if t.FilterID, err = assign.ParseGUID(n.filterID, f.filterID); err != nil {
			c.addErr(err)
		}
		if t.FilterID == zeroGUID {
			t.FilterID = ""
		}
	}
	if !c.tooLong("filter_type", f.filterType) {
		if t.FilterType, err = assign.ParseFilterType(f.filterType); err != nil {
			c.addErr(err)
		}
	}
	if c.ok() {
		if err := t.Validate(); err != nil {
			c.addErr(err)
		}
	}
	return s
}

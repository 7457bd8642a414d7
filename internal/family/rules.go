package family

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Assignment is what one assignment of a policy carries beyond Graph's
// bookkeeping: its target and the family's extra fields. A row asks for
// one; an Entry holds one.
//
// Its JSON (the simulator's /_sim views; a stored snapshot of a set) has
// the target in Graph's shape (assign.Target.MarshalJSON).
type Assignment struct {
	Target assign.Target `json:"target"`
	// Intent is an app's install intent (IntentNone elsewhere).
	Intent Intent `json:"intent,omitempty"`
	// Settings are an app assignment's typed settings, kept verbatim
	// (with their @odata.type); nil for none.
	Settings json.RawMessage `json:"settings,omitempty"`
	// Schedule is a remediation's runSchedule; nil for none (Intune's
	// default).
	Schedule *Schedule `json:"runSchedule,omitempty"`
	// RunRemediationScript: a remediation runs its remediation script,
	// not only its detection.
	RunRemediationScript bool `json:"runRemediationScript,omitempty"`
}

// Source says who owns an assignment.
type Source string

const (
	// SourceDirect: assigned on the policy itself ("" reads as direct:
	// v1.0 and several families do not write source).
	SourceDirect Source = "direct"
	// SourcePolicySets: assigned through a policy set (SourceID): the set
	// owns it, and a writer keeps it untouched.
	SourcePolicySets Source = "policySets"
)

// Entry is one assignment as a policy's current set holds it.
type Entry struct {
	// ID is Graph's id of the assignment; "" for one not yet posted.
	ID       string `json:"id,omitempty"`
	Source   Source `json:"source,omitempty"`
	SourceID string `json:"sourceId,omitempty"`
	Assignment
}

// PolicySet reports whether the entry belongs to a policy set.
func (e Entry) PolicySet() bool { return e.Source == SourcePolicySets }

// Validate checks an assignment a row asks for against the family: its
// target type, filter, intent, settings and schedule. action is the row's;
// a remove names only a target. It expects a target that already passed
// assign.Spec.Validate (the combination of its own fields); messages name
// the row's columns, for intake's FILE:LINE errors.
func (f *Family) Validate(a Assignment, action assign.Action) error {
	t := a.Target
	if !f.Accepts(t.Type) {
		return fmt.Errorf("%s cannot target %s", f.Name, targetWords(t.Type))
	}
	if t.FilterID != "" && !f.Filters {
		return fmt.Errorf("%s takes no assignment filter", f.Name)
	}
	exclusion := t.Type == assign.TargetExclusionGroup
	if action == assign.ActionRemove {
		switch {
		case a.Intent != IntentNone:
			return errors.New("a remove takes no intent: it removes the target's assignment whatever its intent")
		case a.Settings != nil:
			return errors.New("a remove takes no settings")
		case a.Schedule != nil:
			return errors.New("a remove takes no run_schedule")
		case a.RunRemediationScript:
			return errors.New("a remove takes no run_remediation_script")
		}
		return nil
	}
	switch {
	case len(f.Intents) == 0 && a.Intent != IntentNone:
		return fmt.Errorf("%s takes no intent", f.Name)
	case len(f.Intents) > 0 && a.Intent == IntentNone:
		return fmt.Errorf("%s needs an intent (%s)", f.Name, f.intentList())
	case len(f.Intents) > 0 && !f.takesIntent(a.Intent):
		return fmt.Errorf("intent %q is not one of %s", string(a.Intent), f.intentList())
	case a.Settings != nil && !f.Settings:
		return fmt.Errorf("%s takes no settings", f.Name)
	case a.Settings != nil && exclusion:
		return errors.New("an exclusion takes no settings")
	case a.Settings != nil && !json.Valid(a.Settings):
		return errors.New("settings is not valid JSON")
	case (a.Schedule != nil || a.RunRemediationScript) && len(f.Schedules) == 0:
		if a.Schedule != nil {
			return fmt.Errorf("%s takes no run_schedule", f.Name)
		}
		return fmt.Errorf("%s takes no run_remediation_script", f.Name)
	case a.Schedule != nil && exclusion:
		return errors.New("an exclusion takes no run_schedule")
	case a.RunRemediationScript && exclusion:
		return errors.New("an exclusion takes no run_remediation_script")
	}
	if a.Schedule != nil {
		return f.validateSchedule(*a.Schedule)
	}
	return nil
}

var (
	timeRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$`)
	dateRE = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`)
)

func (f *Family) validateSchedule(s Schedule) error {
	if !f.takesSchedule(s.Kind) {
		return fmt.Errorf("run_schedule %q is not one of once, hourly, daily", string(s.Kind))
	}
	switch {
	case s.Interval < 0:
		return fmt.Errorf("run_schedule interval %d is negative", s.Interval)
	case s.Time != "" && !timeRE.MatchString(s.Time):
		return fmt.Errorf("run_schedule time %q is not HH:MM or HH:MM:SS", s.Time)
	case s.Date != "" && !dateRE.MatchString(s.Date):
		return fmt.Errorf("run_schedule date %q is not YYYY-MM-DD", s.Date)
	case s.Kind == ScheduleHourly && (s.Time != "" || s.Date != ""):
		return errors.New("an hourly run_schedule takes no time or date")
	case s.Kind == ScheduleDaily && s.Date != "":
		return errors.New("a daily run_schedule takes no date")
	case s.Kind == ScheduleOnce && s.Date == "":
		return errors.New("a once run_schedule needs a date")
	}
	return nil
}

func (f *Family) intentList() string {
	s := ""
	for i, in := range f.Intents {
		switch {
		case i == 0:
		case i == len(f.Intents)-1:
			s += " or "
		default:
			s += ", "
		}
		s += string(in)
	}
	return s
}

// Slot is the part of an assignment Intune holds once per policy: the
// target's type and its group or collection, without its filter. Two
// direct entries in one slot are one target assigned twice; a row that
// asks for an occupied slot with another filter, intent or schedule
// replaces the entry in it.
func Slot(t assign.Target) string {
	return string(t.Type) + "|" + t.GroupID + "|" + t.CollectionID
}

// Match is how an existing entry answers a row's add: Other (another
// slot), Same (the row's assignment is there as asked), Differs (the slot
// is held with another filter, intent, schedule or run_remediation_script:
// the row replaces the entry).
type Match int

const (
	Other Match = iota
	Same
	Differs
)

// Match compares an existing entry with an assignment a row asks for.
// The target compares by its key (type, id and filter); the extra fields
// compare only where the family takes them and the row gives them: a row
// without a run_schedule accepts the entry's, and settings, which rows
// do not carry, never make a difference unless given.
func (f *Family) Match(have Entry, want Assignment) Match {
	if Slot(have.Target) != Slot(want.Target) {
		return Other
	}
	if have.Target.Key() != want.Target.Key() {
		return Differs
	}
	if len(f.Intents) > 0 && have.Intent != want.Intent {
		return Differs
	}
	if len(f.Schedules) > 0 {
		if want.Schedule != nil && (have.Schedule == nil || *have.Schedule != *want.Schedule) {
			return Differs
		}
		if want.RunRemediationScript != have.RunRemediationScript {
			return Differs
		}
	}
	if f.Settings && want.Settings != nil && !bytes.Equal(compact(have.Settings), compact(want.Settings)) {
		return Differs
	}
	return Same
}

// MatchesRemove reports whether an existing entry is the target a remove
// row names: exactly its key (type, id, filter), whatever its intent or
// schedule. Removing all licensed users never touches all devices: they
// are two slots.
func MatchesRemove(have Entry, target assign.Target) bool {
	return have.Target.Key() == target.Key()
}

func compact(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// Label is the assignment as one compact line: its target
// (assign.TargetLabel) and the extra fields it carries.
func (a Assignment) Label() string {
	t := a.Target
	s := assign.TargetLabel(string(t.Type), t.GroupID, t.CollectionID, t.FilterID, string(t.FilterType))
	if a.Intent != IntentNone {
		s += " intent=" + string(a.Intent)
	}
	if a.Schedule != nil {
		s += " run_schedule=" + string(a.Schedule.Kind)
		if a.Schedule.Interval > 0 {
			s += "/" + strconv.Itoa(a.Schedule.Interval)
		}
	}
	if a.RunRemediationScript {
		s += " run_remediation_script"
	}
	return s
}

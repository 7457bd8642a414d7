package family

import (
	"errors"
	"fmt"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Current is a policy's assignment set as a read found it.
type Current struct {
	Entries []Entry
	// Complete: the read got every page and understood every entry. The
	// zero value is false, so a set nobody vouched for is never merged:
	// a replace-all write that starts from a short read wipes a policy.
	Complete bool
	// Why says, when not Complete, what went wrong ("page 3 failed").
	Why string
}

// ErrIncomplete is returned (wrapped) by Merge for a current set that is
// not Complete or does not hold together; ErrRefused for a merge that
// would drop an entry no row asked to drop. Neither may lead to a write.
var (
	ErrIncomplete = errors.New("the policy's current assignments are not known in full")
	ErrRefused    = errors.New("merge refused")
)

// Outcome is what a merge does with one row's request, or with one
// current entry no row names.
type Outcome string

const (
	// Added: the row's assignment is new in the set.
	Added Outcome = "added"
	// Replaced: the row's target held its slot with another filter,
	// intent or schedule; that entry is dropped for the row's.
	Replaced Outcome = "replaced"
	// AlreadyThere: the set holds the row's assignment as asked.
	AlreadyThere Outcome = "already_there"
	// Removed: the row's target is dropped from the set.
	Removed Outcome = "removed"
	// NotThere: the row asked to remove a target the set does not hold.
	NotThere Outcome = "not_there"
	// PolicySet: the row asked to remove a target the set holds only
	// through a policy set: it is kept, and the row cannot be done here.
	PolicySet Outcome = "policy_set"
	// Conflict: another request of the same merge asks otherwise for the
	// same slot (an add with another filter or intent, or an add beside
	// this remove); the earlier add wins, and this request is not done.
	Conflict Outcome = "conflict"
	// Kept: a current entry no row names, carried over unchanged.
	Kept Outcome = "kept"
)

// Status is the row status an outcome ends a row with once the merged
// set is written and read back; ok is false for the outcomes that fail
// the row (PolicySet, Conflict) and for Kept, which no row has.
func (o Outcome) Status() (s assign.Status, ok bool) {
	switch o {
	case Added, Replaced:
		return assign.StatusCreated, true
	case AlreadyThere:
		return assign.StatusAlreadyAssigned, true
	case Removed:
		return assign.StatusRemoved, true
	case NotThere:
		return assign.StatusNotAssigned, true
	}
	return "", false
}

// Step is the outcome of one request.
type Step struct {
	Outcome Outcome
	// Entry is the row's entry in the next set (Added, Replaced,
	// AlreadyThere), the entry dropped (Removed; the first, when the set
	// held the target twice), or the policy-set entry that holds the
	// target (PolicySet).
	Entry Entry
	// Replaced are the entries a Replaced step drops.
	Replaced []Entry
	// Of is, for a request that repeats an earlier one of its list (a
	// duplicate, or a Conflict), the index of that one; -1 otherwise.
	Of int
}

// Plan says, for each request, what the merge does, and which current
// entries it keeps untouched.
type Plan struct {
	Adds    []Step  // Adds[i] answers adds[i]
	Removes []Step  // Removes[i] answers removes[i]
	Kept    []Entry // current entries no request names, policy-set entries among them
	// Changed: the next set differs from the current one; when false no
	// write is needed.
	Changed bool
}

// Merge computes the set to post to the policy's replace-all /assign:
// the current set, with each add put in (an occupied slot with another
// filter, intent or schedule is replaced, Family.Match) and each remove
// taken out (MatchesRemove), every policy-set entry kept untouched and
// never matched by a row. It refuses (ErrIncomplete) a current set that
// is not Complete, lists an id twice or holds an entry without a known
// target, and refuses (ErrRefused) to return a set that drops an entry no
// request accounts for; the check is made on the result, independently
// of how it was built.
//
// Requests repeated within adds or removes share the first one's step
// (Of names it). An add and a remove of one slot conflict: the add wins
// (a merge never removes what a row asks to keep), the remove is
// Conflict. The adds and removes are expected valid for the family
// (Family.Validate).
func (f *Family) Merge(cur Current, adds []Assignment, removes []assign.Target) (next []Entry, plan Plan, err error) {
	if err := checkCurrent(cur); err != nil {
		return nil, Plan{}, err
	}
	dropped := make([]bool, len(cur.Entries)) // by index into cur.Entries
	plan.Adds, plan.Removes = make([]Step, len(adds)), make([]Step, len(removes))
	addSlots := map[string]int{} // slot -> first add in it
	for i, a := range adds {
		if _, ok := addSlots[Slot(a.Target)]; !ok {
			addSlots[Slot(a.Target)] = i
		}
	}

	named := make([]bool, len(cur.Entries)) // an entry some request names
	firstRemove := map[string]int{}
	for i, t := range removes {
		st := Step{Of: -1}
		if j, ok := firstRemove[t.Key()]; ok {
			st = plan.Removes[j]
			st.Of = j
			plan.Removes[i] = st
			continue
		}
		firstRemove[t.Key()] = i
		if j, ok := addSlots[Slot(t)]; ok {
			plan.Removes[i] = Step{Outcome: Conflict, Of: j}
			continue
		}
		st.Outcome = NotThere
		for k, e := range cur.Entries {
			if !MatchesRemove(e, t) {
				continue
			}
			named[k] = true
			switch {
			case e.PolicySet():
				if st.Outcome == NotThere {
					st.Outcome, st.Entry = PolicySet, e
				}
			case st.Outcome != Removed:
				st.Outcome, st.Entry = Removed, e
				dropped[k] = true
			default:
				dropped[k] = true // the same target held twice: drop both
			}
		}
		plan.Removes[i] = st
	}

	var fresh []Entry // entries the adds bring, in add order
	for i, a := range adds {
		if j := addSlots[Slot(a.Target)]; j != i {
			if f.Match(Entry{Assignment: adds[j]}, a) == Same && f.Match(Entry{Assignment: a}, adds[j]) == Same {
				st := plan.Adds[j]
				st.Of = j
				plan.Adds[i] = st
			} else {
				plan.Adds[i] = Step{Outcome: Conflict, Of: j}
			}
			continue
		}
		st := Step{Outcome: Added, Of: -1}
		var differ []int
		for k, e := range cur.Entries {
			if e.PolicySet() || dropped[k] {
				continue
			}
			switch f.Match(e, a) {
			case Same:
				if st.Outcome != AlreadyThere {
					st.Outcome, st.Entry = AlreadyThere, e
				}
				named[k] = true
			case Differs:
				differ = append(differ, k)
			}
		}
		if st.Outcome == Added {
			e := Entry{Source: SourceDirect, Assignment: a}
			if len(differ) > 0 {
				st.Outcome = Replaced
				for _, k := range differ {
					old := cur.Entries[k]
					dropped[k], named[k] = true, true
					st.Replaced = append(st.Replaced, old)
					if e.Settings == nil && old.Intent == a.Intent {
						e.Settings = old.Settings // a new filter keeps the app's settings
					}
				}
			}
			st.Entry = e
			fresh = append(fresh, e)
		}
		plan.Adds[i] = st
	}

	for k, e := range cur.Entries {
		if dropped[k] {
			plan.Changed = true
			continue
		}
		next = append(next, e)
		if !named[k] {
			plan.Kept = append(plan.Kept, e)
		}
	}
	next = append(next, fresh...)
	plan.Changed = plan.Changed || len(fresh) > 0
	if err := f.check(cur, next, adds, removes); err != nil {
		return nil, Plan{}, err
	}
	return next, plan, nil
}

// checkCurrent refuses a set that is not vouched for or does not hold
// together.
func checkCurrent(cur Current) error {
	if !cur.Complete {
		why := cur.Why
		if why == "" {
			why = "the read was not marked complete"
		}
		return fmt.Errorf("%w: %s", ErrIncomplete, why)
	}
	ids := make(map[string]bool, len(cur.Entries))
	for _, e := range cur.Entries {
		switch {
		case !e.Target.Type.Valid():
			return fmt.Errorf("%w: assignment %q has no known target type", ErrIncomplete, e.ID)
		case e.ID == "":
			return fmt.Errorf("%w: an assignment (%s) has no id", ErrIncomplete, e.Label())
		case ids[e.ID]:
			return fmt.Errorf("%w: assignment %s is listed twice (pages overlap)", ErrIncomplete, e.ID)
		}
		ids[e.ID] = true
	}
	return nil
}

// check verifies a merge's result against its inputs alone: every
// policy-set entry is there unchanged; every current entry missing from
// next is a remove's target or sits in the slot of an add; every add is
// held as asked unless it lost to an earlier add of its slot; no removed
// target is left among the direct entries, unless an add keeps its slot.
func (f *Family) check(cur Current, next []Entry, adds []Assignment, removes []assign.Target) error {
	inNext := make(map[string]bool, len(next))
	for _, e := range next {
		if e.ID != "" {
			inNext[e.ID] = true
		}
	}
	addSlots := map[string]bool{}
	for _, a := range adds {
		addSlots[Slot(a.Target)] = true
	}
	removeKeys := map[string]bool{}
	for _, t := range removes {
		removeKeys[t.Key()] = true
	}
	for _, e := range cur.Entries {
		if inNext[e.ID] {
			continue
		}
		switch {
		case e.PolicySet():
			return fmt.Errorf("%w: it would drop assignment %s (%s) of policy set %s", ErrRefused, e.ID, e.Label(), e.SourceID)
		case removeKeys[e.Target.Key()] && !addSlots[Slot(e.Target)]:
		case addSlots[Slot(e.Target)]:
		default:
			return fmt.Errorf("%w: it would remove assignment %s (%s), which no row asked to remove", ErrRefused, e.ID, e.Label())
		}
	}
	first := map[string]Assignment{}
	for _, a := range adds {
		if _, ok := first[Slot(a.Target)]; !ok {
			first[Slot(a.Target)] = a
		}
	}
	for _, a := range first {
		held := false
		for _, e := range next {
			if !e.PolicySet() && f.Match(e, a) == Same {
				held = true
				break
			}
		}
		if !held {
			return fmt.Errorf("%w: the result does not hold %s", ErrRefused, a.Label())
		}
	}
	for _, e := range next {
		if !e.PolicySet() && removeKeys[e.Target.Key()] && !addSlots[Slot(e.Target)] {
			return fmt.Errorf("%w: the result still holds %s, which a row asked to remove", ErrRefused, e.Label())
		}
	}
	return nil
}

package family

import "github.com/bulkassign/bulkassign/internal/assign"

// Check exposes the result check to the tests, which feed it results no
// correct merge builds.
func (f *Family) Check(cur Current, next []Entry, adds []Assignment, removes []assign.Target) error {
	return f.check(cur, next, adds, removes)
}

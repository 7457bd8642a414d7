package store_test

import (
	"context"
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

// The statuses are listed once in Go (assign.Statuses, Status.Final) and
// their SQL copies must agree: the items CHECK accepts exactly the
// statuses Go knows, and bulkassign_final() says final for exactly those
// Go calls final.
func TestStatusesMatchSQL(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, 2)
	ctx := context.Background()
	for _, st := range append(assign.Statuses, "bogus") {
		var final bool
		if err := db.Pool.QueryRow(ctx, `SELECT bulkassign_final($1)`, string(st)).Scan(&final); err != nil {
			t.Fatal(err)
		}
		if want := st.Final(); final != want {
			t.Errorf("bulkassign_final(%q) = %v, Go says %v", st, final, want)
		}
		var accepted bool
		err := db.Pool.QueryRow(ctx, `SELECT pg_catalog.pg_get_constraintdef(c.oid) LIKE '%''' || $1 || '''%'
			FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname = $2 AND c.conname = 'items_status_check'`, string(st), db.Schema).Scan(&accepted)
		if err != nil {
			t.Fatal(err)
		}
		if want := st != "bogus"; accepted != want {
			t.Errorf("items_status_check accepts %q: %v, want %v", st, accepted, want)
		}
		var mayWrite bool
		if err := db.Pool.QueryRow(ctx, `SELECT bulkassign_may_write($1)`, string(st)).Scan(&mayWrite); err != nil {
			t.Fatal(err)
		}
		if want := st.MayWrite(); mayWrite != want {
			t.Errorf("bulkassign_may_write(%q) = %v, Go says %v", st, mayWrite, want)
		}
	}
	for _, st := range append(assign.RevertStatuses, "bogus") {
		var final, accepted bool
		err := db.Pool.QueryRow(ctx, `SELECT bulkassign_revert_final($1), pg_catalog.pg_get_constraintdef(c.oid) LIKE '%''' || $1 || '''%'
			FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname = $2 AND c.conname = 'items_revert_status_check'`, string(st), db.Schema).Scan(&final, &accepted)
		if err != nil {
			t.Fatal(err)
		}
		if want := st.Final(); final != want {
			t.Errorf("bulkassign_revert_final(%q) = %v, Go says %v", st, final, want)
		}
		if want := st != "bogus"; accepted != want {
			t.Errorf("items_revert_status_check accepts %q: %v, want %v", st, accepted, want)
		}
	}
}

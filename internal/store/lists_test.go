package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// TestListLease covers the lease that lets one worker read a batch's list
// from Graph while the others wait, with no connection held meanwhile.
func TestListLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		db  *testdb.DB
		key store.ListKey
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		db := testdb.New(t, 2)
		b := &store.Batch{ID: assign.NewID(), Source: "lists.csv"}
		if err := store.InsertBatch(ctx, db.Pool, b); err != nil {
			t.Fatal(err)
		}
		return &testBundle{db: db, key: store.ListKey{BatchID: b.ID, ConfigurationID: testenv.Config(0)}}
	}
	lease := func(t *testing.T, b *testBundle, reader string, d time.Duration) (time.Time, bool) {
		t.Helper()
		at, ok, err := store.LeaseList(ctx, b.db.Pool, b.key, reader, d)
		if err != nil {
			t.Fatal(err)
		}
		return at, ok
	}
	get := func(t *testing.T, b *testBundle) *store.AssignmentList {
		t.Helper()
		l, err := store.GetList(ctx, b.db.Pool, b.key)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	stored := func(t *testing.T, b *testBundle, reader string, l *store.AssignmentList) bool {
		t.Helper()
		ok, err := store.StoreLeasedList(ctx, b.db.Pool, b.key, reader, l)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	list := func(id string, readAt time.Time) *store.AssignmentList {
		return &store.AssignmentList{Found: true, RequestID: "req-" + id, Keys: map[string]string{"group:" + id: id}, ReadAt: readAt}
	}
	now := func(t *testing.T, b *testBundle) time.Time {
		t.Helper()
		n, err := store.Now(ctx, b.db.Pool)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("OneReaderTheOthersWaitForItsList", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, c := assign.NewID(), assign.NewID()
		before := now(t, b)
		readAt, ok := lease(t, b, a, time.Minute)
		if !ok || readAt.Before(before) {
			t.Fatalf("first lease: %v at %v, want it taken at or after %v", ok, readAt, before)
		}
		if _, ok := lease(t, b, c, time.Minute); ok {
			t.Fatal("a second reader took a live lease")
		}
		if l := get(t, b); l != nil {
			t.Fatalf("GetList during the read = %+v, want none", l)
		}
		if !stored(t, b, a, list("a", readAt)) {
			t.Fatal("the lease holder could not store its list")
		}
		l := get(t, b)
		if l == nil || !l.Found || l.Keys["group:a"] != "a" || l.RequestID != "req-a" || !l.ReadAt.Equal(readAt) {
			t.Fatalf("stored list = %+v, want reader a's, read at the lease's start %v", l, readAt)
		}
		if _, ok := lease(t, b, c, time.Minute); ok {
			t.Fatal("a stored list was leased again")
		}
		if stored(t, b, c, list("c", readAt)) {
			t.Fatal("a reader without the lease stored its list")
		}
	})

	t.Run("AnExpiredLeaseIsTakenOver", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		dead, next := assign.NewID(), assign.NewID()
		first, _ := lease(t, b, dead, time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		readAt, ok := lease(t, b, next, time.Minute)
		if !ok || !readAt.After(first) {
			t.Fatalf("lease after expiry: %v at %v, want taken after %v", ok, readAt, first)
		}
		if stored(t, b, dead, list("dead", first)) {
			t.Fatal("the reader whose lease was taken over stored its list")
		}
		if !stored(t, b, next, list("next", readAt)) {
			t.Fatal("the new reader could not store its list")
		}
		if l := get(t, b); l == nil || l.Keys["group:next"] != "next" {
			t.Fatalf("stored list = %+v, want the new reader's", l)
		}
	})

	t.Run("AFailedReadGivesTheLeaseBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, c := assign.NewID(), assign.NewID()
		lease(t, b, a, time.Minute)
		// Only the holder can give it back.
		if err := store.ReleaseList(ctx, b.db.Pool, b.key, c); err != nil {
			t.Fatal(err)
		}
		if _, ok := lease(t, b, c, time.Minute); ok {
			t.Fatal("a lease given back by another reader was taken")
		}
		if err := store.ReleaseList(ctx, b.db.Pool, b.key, a); err != nil {
			t.Fatal(err)
		}
		if _, ok := lease(t, b, c, time.Minute); !ok {
			t.Fatal("the lease given back was not free")
		}
	})

	t.Run("AFreshReadReplacesOnlyOlderLists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := assign.NewID()
		t0 := now(t, b)
		readAt, _ := lease(t, b, a, time.Minute)
		// A fresh read that began later replaces the read in progress...
		if err := store.PutList(ctx, b.db.Pool, b.key, list("fresh", now(t, b))); err != nil {
			t.Fatal(err)
		}
		if l := get(t, b); l == nil || l.Keys["group:fresh"] != "fresh" {
			t.Fatalf("after a fresh read: %+v, want it stored", l)
		}
		// ...whose holder then keeps its own list to itself.
		if stored(t, b, a, list("a", readAt)) {
			t.Fatal("a lease holder overwrote a fresher list")
		}
		// A fresh read that began earlier than the stored one is not kept.
		if err := store.PutList(ctx, b.db.Pool, b.key, list("stale", t0)); err != nil {
			t.Fatal(err)
		}
		if l := get(t, b); l == nil || l.Keys["group:fresh"] != "fresh" {
			t.Fatalf("after a stale read: %+v, want the fresher list kept", l)
		}
	})

	t.Run("AMissingConfigurationIsStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := assign.NewID()
		readAt, _ := lease(t, b, a, time.Minute)
		gone := &store.AssignmentList{HTTPStatus: 404, ErrorCode: "ResourceNotFound", ErrorMessage: "no such configuration", ReadAt: readAt}
		if !stored(t, b, a, gone) {
			t.Fatal("could not store a not-found list")
		}
		if l := get(t, b); l == nil || l.Found || l.HTTPStatus != 404 || l.ErrorCode != "ResourceNotFound" {
			t.Fatalf("stored list = %+v, want not found with 404", l)
		}
	})
}

package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkassign/bulkassign/internal/testdb"
)

// Ids held as strings reach uuid and uuid[] parameters in binary, scalars,
// arrays, pointers and NULLs alike, and come back unchanged; text that is
// no uuid is still refused.
func TestUUIDStringsInBinary(t *testing.T) {
	t.Parallel()
	db := testdb.New(t, 2)
	ctx := context.Background()
	const a, b = "5f0e0b4e-8a6f-4e43-9d1b-2f1e5f0e0b4e", "00000000-0000-0000-0000-0000000000ff"
	upper := strings.ToUpper(a)
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := conn.Conn().TypeMap()
	bv := b
	bp := &bv
	for name, c := range map[string]struct {
		oid uint32
		v   any
	}{
		"string": {pgtype.UUIDOID, a}, "*string": {pgtype.UUIDOID, bp},
		"[]string": {pgtype.UUIDArrayOID, []string{a, b}}, "[]*string": {pgtype.UUIDArrayOID, []*string{bp, nil}},
	} {
		if _, err := m.Encode(c.oid, pgtype.BinaryFormatCode, c.v, nil); err != nil {
			t.Errorf("%s: no binary encoding: %v", name, err)
		}
	}
	conn.Release()

	var one, null *string
	var arr []*string
	err = db.Pool.QueryRow(ctx, `SELECT $1::uuid::text, $2::uuid::text, $3::uuid[]::text[]`, upper, (*string)(nil), []*string{bp, nil, &upper}).
		Scan(&one, &null, &arr)
	if err != nil {
		t.Fatal(err)
	}
	if one == nil || *one != a || null != nil {
		t.Errorf("scalars came back %v, %v; want %s and NULL", deref(one), deref(null), a)
	}
	if len(arr) != 3 || deref(arr[0]) != b || arr[1] != nil || deref(arr[2]) != a {
		t.Errorf("array came back %v; want [%s NULL %s]", arr, b, a)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT cardinality($1::uuid[])`, []string{a, b, a}).Scan(&n); err != nil || n != 3 {
		t.Errorf("[]string: %d, %v", n, err)
	}
	for _, bad := range []any{"not-a-uuid", []string{a, ""}} {
		if err := db.Pool.QueryRow(ctx, `SELECT $1::uuid[] IS NULL`, wrapArray(bad)).Scan(new(bool)); err == nil {
			t.Errorf("%#v was accepted as a uuid", bad)
		}
	}
}

func wrapArray(v any) any {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	return v
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

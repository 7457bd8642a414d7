package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// registerUUIDStrings lets a connection send an id held as a Go string (as
// bulkassign holds every id) to a uuid or uuid[] parameter in binary. pgx's
// own uuid codec has no binary plan for a string: for each such parameter
// pgx searched every wrapper plan, built an error that formats the whole
// value (a round's arrays of ids included), then encoded it again as text;
// in the worker's rounds that was most of the process's time in pgx
// (bench 5d's profile).
func registerUUIDStrings(_ context.Context, c *pgx.Conn) error {
	m := c.TypeMap()
	t := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}}
	m.RegisterType(t)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
	return nil
}

// uuidCodec is pgx's uuid codec with a binary plan for strings.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return encodeUUIDString{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

// encodeUUIDString writes a uuid given in its text form as its 16 bytes;
// text that is no uuid is an error, as Postgres's own parse would be.
type encodeUUIDString struct{}

func (encodeUUIDString) Encode(value any, buf []byte) ([]byte, error) {
	var u pgtype.UUID
	if err := u.Scan(value.(string)); err != nil {
		return nil, err
	}
	return append(buf, u.Bytes[:]...), nil
}

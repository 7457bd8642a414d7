// Package store is bulkassign's Postgres layer: batches, items (the truth
// about every row), the per-batch assignment lists, and the migrations. All
// SQL outside migrations/ lives here, in named functions.
package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Querier is what both a pool and a transaction offer.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNotFound is returned when a batch or item does not exist.
var ErrNotFound = errors.New("not found")

// Open connects a pool. schema, when set, becomes the search_path of every
// connection (tests use one schema each).
func Open(ctx context.Context, databaseURL, schema string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid Postgres URL: %w", redact(err))
	}
	Configure(cfg)
	if schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("error creating database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to database %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, redact(err))
	}
	return pool, nil
}

// Configure readies a pool's settings as every pool of bulkassign needs
// them: its session settings (setSessionParams) and ids sent as strings
// (registerUUIDStrings).
func Configure(cfg *pgxpool.Config) {
	setSessionParams(cfg.ConnConfig.RuntimeParams)
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if err := registerUUIDStrings(ctx, c); err != nil {
			return err
		}
		if after != nil {
			return after(ctx, c)
		}
		return nil
	}
}

// setSessionParams sets the session settings every connection of
// bulkassign uses, where DATABASE_URL does not set them: jit off, because
// bulkassign's queries are short index reads and writes, yet on a store of
// millions of rows their cost estimates pass Postgres's JIT threshold and
// compiling them costs more than it saves (tens of milliseconds for a
// 100,000-row batch's results).
func setSessionParams(params map[string]string) {
	if _, ok := params["jit"]; !ok {
		params["jit"] = "off"
	}
}

// redact keeps a parse error from echoing a password back: pgx quotes the
// whole connection string in some messages.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the connection string")
	}
	return err
}

// Batch is one enqueued list.
type Batch struct {
	ID            string
	Source        string
	SHA256        string
	Bytes         int64
	RowCount      int
	DuplicateRows int
	CreatedAt     time.Time
	// CreatedBy is who started the batch: a console user's UPN, the OS
	// user@host of the enqueue command, or schedule:<name>; "" for batches
	// enqueued before it was recorded.
	CreatedBy string
	// RequestKey, when set, is the console's enqueue token: a second batch
	// with the same key is refused by the database (see FindBatchByKey).
	RequestKey string
}

// InsertBatch writes the batch row. Counts may be zero and set later in the
// same transaction with FinishBatchInsert, so items can stream in first.
func InsertBatch(ctx context.Context, q Querier, b *Batch) error {
	_, err := q.Exec(ctx, `INSERT INTO batches (id, source, sha256, bytes, row_count, duplicate_rows, created_by, request_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, b.ID, b.Source, b.SHA256, b.Bytes, b.RowCount, b.DuplicateRows,
		nullable(b.CreatedBy), nullable(b.RequestKey))
	if err != nil {
		return fmt.Errorf("error inserting batch: %w", err)
	}
	return nil
}

// FinishBatchInsert records what was known only after the whole input was read.
func FinishBatchInsert(ctx context.Context, q Querier, b *Batch) error {
	_, err := q.Exec(ctx, `UPDATE batches SET sha256 = $2, bytes = $3, row_count = $4, duplicate_rows = $5 WHERE id = $1`,
		b.ID, b.SHA256, b.Bytes, b.RowCount, b.DuplicateRows)
	if err != nil {
		return fmt.Errorf("error updating batch: %w", err)
	}
	return nil
}

// ErrBadBatchID is returned, before any query, for a batch id that is
// neither an id nor a prefix of one GetBatch accepts.
var ErrBadBatchID = errors.New("not a batch id")

// minBatchPrefix is the shortest prefix of a batch id GetBatch accepts.
const minBatchPrefix = 8

// GetBatch reads one batch. id may be a unique prefix of at least 8
// characters: hex digits (either case) and dashes, checked before the query.
func GetBatch(ctx context.Context, q Querier, id string) (*Batch, error) {
	if !validBatchPrefix(id) {
		return nil, fmt.Errorf("batch %q: %w: give the id or its first %d or more characters (hex digits and dashes)",
			id, ErrBadBatchID, minBatchPrefix)
	}
	rows, err := q.Query(ctx, `SELECT id::text, source, sha256, bytes, row_count, duplicate_rows, created_at,
			coalesce(created_by, '')
		FROM batches WHERE id::text LIKE $1 ESCAPE '!' ORDER BY created_at DESC LIMIT 2`, likePrefix(strings.ToLower(id)))
	if err != nil {
		return nil, fmt.Errorf("error reading batch: %w", err)
	}
	defer rows.Close()
	var out []*Batch
	for rows.Next() {
		b := &Batch{}
		if err := rows.Scan(&b.ID, &b.Source, &b.SHA256, &b.Bytes, &b.RowCount, &b.DuplicateRows, &b.CreatedAt, &b.CreatedBy); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("batch %q: %w", id, ErrNotFound)
	case len(out) > 1:
		return nil, fmt.Errorf("batch %q is ambiguous: more than one batch id starts with it", id)
	}
	return out[0], nil
}

// validBatchPrefix reports whether id can name a batch: 8 to 36 hex digits
// and dashes.
func validBatchPrefix(id string) bool {
	if len(id) < minBatchPrefix || len(id) > 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

// likePrefix is a LIKE pattern (escape character '!') matching what starts
// with s. After validBatchPrefix nothing is left to escape; it escapes
// anyway, so that the pattern never rests on that check alone.
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

func likePrefix(s string) string { return likeEscaper.Replace(s) + "%" }

// ItemRow is one input row to be written by CopyItems.
type ItemRow struct {
	Row      int
	Line     int
	TenantID string // a canonical GUID
	Spec     assign.Spec
}

var itemColumns = []string{"batch_id", "row", "line", "configuration_id", "path", "target_type", "group_id", "collection_id",
	"filter_id", "filter_type", "tenant_id", "action", "configuration_name", "group_name", "filter_name"}

// CopyItems writes items with COPY, and adds them to the batch's kept
// counts. It is the only way rows enter items.
func CopyItems(ctx context.Context, tx pgx.Tx, batchID string, items []ItemRow) error {
	batch, err := uuidValue(batchID)
	if err != nil {
		return err
	}
	vals := make([]any, len(itemColumns))
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"items"}, itemColumns, pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
		it := &items[i]
		t := it.Spec.Target
		cfg, err := uuidValue(it.Spec.ConfigurationID)
		if err != nil {
			return nil, err
		}
		group, err := uuidValue(t.GroupID)
		if err != nil {
			return nil, err
		}
		filter, err := uuidValue(t.FilterID)
		if err != nil {
			return nil, err
		}
		vals[0], vals[1], vals[2], vals[3], vals[4], vals[5] = batch, int32(it.Row), int32(it.Line), cfg, string(it.Spec.Path), string(t.Type)
		vals[6], vals[7], vals[8], vals[9], vals[10] = group, nullable(t.CollectionID), filter, nullable(string(t.FilterType)), nullable(it.TenantID)
		vals[11] = nil // assign: NULL, as in every row before actions
		if it.Spec.Action != assign.ActionAssign {
			vals[11] = it.Spec.Action.String()
		}
		n := &it.Spec.Names
		vals[12], vals[13], vals[14] = nullable(n.Configuration), nullable(n.Group), nullable(n.Filter)
		return vals, nil
	}))
	if err != nil {
		return fmt.Errorf("error copying items: %w", err)
	}
	if int(n) != len(items) {
		return fmt.Errorf("error copying items: wrote %d of %d", n, len(items))
	}
	// The batch's kept counts (migration 009): every copied row is queued.
	byTenant := map[string]int{}
	for i := range items {
		byTenant[items[i].TenantID]++
	}
	tenants, counts := make([]string, 0, len(byTenant)), make([]int64, 0, len(byTenant))
	for tenant, c := range byTenant {
		tenants, counts = append(tenants, tenant), append(counts, int64(c))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
		SELECT $1, t, $4, '', c FROM unnest($2::text[], $3::bigint[]) AS u(t, c)`, batch, tenants, counts, string(assign.StatusQueued)); err != nil {
		return fmt.Errorf("error counting copied items: %w", err)
	}
	return nil
}

// uuidValue encodes a canonical GUID for COPY's binary format (pgx would
// otherwise try, fail and fall back per value); "" is NULL.
func uuidValue(s string) (pgtype.UUID, error) {
	var u pgtype.UUID
	if s == "" {
		return u, nil
	}
	if len(s) != 36 {
		return u, fmt.Errorf("%q is not a canonical GUID", s)
	}
	var hexDigits [32]byte
	copy(hexDigits[0:8], s[0:8])
	copy(hexDigits[8:12], s[9:13])
	copy(hexDigits[12:16], s[14:18])
	copy(hexDigits[16:20], s[19:23])
	copy(hexDigits[20:32], s[24:36])
	if _, err := hex.Decode(u.Bytes[:], hexDigits[:]); err != nil {
		return u, fmt.Errorf("%q is not a canonical GUID", s)
	}
	u.Valid = true
	return u, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// StatusCounts counts a batch's items by status.
type StatusCounts map[assign.Status]int

// Total is the number of items counted.
func (c StatusCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Final is the number of items in a final status.
func (c StatusCounts) Final() int {
	n := 0
	for s, v := range c {
		if s.Final() {
			n += v
		}
	}
	return n
}

// CountByStatus counts a batch's items by status. It reads the batch's
// kept counts (batch_counts), not its rows: its cost does not grow with the
// batch or the store.
func CountByStatus(ctx context.Context, q Querier, batchID string) (StatusCounts, error) {
	tc, err := CountByTenant(ctx, q, batchID)
	if err != nil {
		return nil, err
	}
	return tc.Sum(), nil
}

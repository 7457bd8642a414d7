package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/bulkassign/bulkassign/migrations"
)

// migrateLockID is the advisory lock that serialises concurrent migrators
// (two workers started together both run `worker migrate`).
const migrateLockID = 0x62756c6b61 // "bulka"

// Migration is one of our numbered SQL files.
type Migration struct {
	Version int
	Name    string
	SQL     string
	// NoTransaction: the file is marked NoTransactionMarker and holds only
	// Indexes, each built outside any transaction.
	NoTransaction bool
	Indexes       []ConcurrentIndex
}

// NoTransactionMarker, as a line of its own in a migration, runs it
// outside a transaction: for CREATE INDEX CONCURRENTLY, which builds an
// index on a big table (items) while writers go on, and cannot run in a
// transaction block. Such a file holds only statements of the form
//
//	CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON ...;
//
// (comments aside), one step of its own: Migrate commits the migrations
// before it, builds each index in turn, and records the file once all are
// built. An interrupted build leaves an INVALID index, which IF NOT
// EXISTS would take for done: Migrate drops such an index (DROP INDEX
// CONCURRENTLY) and builds it again, so running it again repairs it.
const NoTransactionMarker = "-- bulkassign:no-transaction"

// ConcurrentIndex is one statement of a NoTransactionMarker migration.
type ConcurrentIndex struct {
	Name string // the index, in the migrated schema
	SQL  string
}

var concurrentIndexRE = regexp.MustCompile(`(?is)^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)\s+ON\s`)

// parseNoTransaction reads the statements of a NoTransactionMarker file
// (name, body sql), or says why the file may not run outside a
// transaction.
func parseNoTransaction(name, sql string) ([]ConcurrentIndex, error) {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if t := strings.TrimSpace(line); !strings.HasPrefix(t, "--") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	var out []ConcurrentIndex
	for _, stmt := range strings.Split(b.String(), ";") {
		stmt = strings.TrimSpace(stmt)
		if stmt == "" {
			continue
		}
		m := concurrentIndexRE.FindStringSubmatch(stmt)
		if m == nil {
			return nil, fmt.Errorf("migration %s: a %s file holds only CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON ... statements; not %.60q",
				name, NoTransactionMarker, stmt)
		}
		out = append(out, ConcurrentIndex{Name: strings.ToLower(m[1]), SQL: stmt})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("migration %s: a %s file with no statement", name, NoTransactionMarker)
	}
	return out, nil
}

// ParseMigration reads one migration file called name.
func ParseMigration(name string, body []byte) (Migration, error) {
	num, _, ok := strings.Cut(name, "_")
	v, err := strconv.Atoi(num)
	if !ok || err != nil {
		return Migration{}, fmt.Errorf("migration %s: name must start with a number and '_'", name)
	}
	m := Migration{Version: v, Name: name, SQL: string(body)}
	for _, line := range strings.Split(m.SQL, "\n") {
		if strings.TrimSpace(line) == NoTransactionMarker {
			m.NoTransaction = true
		}
	}
	if m.NoTransaction {
		if m.Indexes, err = parseNoTransaction(name, m.SQL); err != nil {
			return Migration{}, err
		}
	}
	return m, nil
}

// Migrations lists our embedded migrations in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range entries {
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return nil, err
		}
		m, err := ParseMigration(name, b)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// migrateLockPoll is how often a migrator waiting for another's lock
// tries again.
const migrateLockPoll = 100 * time.Millisecond

// lockMigrations takes the migration lock on conn, trying again until it
// is free. It does not wait in pg_advisory_lock: a statement waiting there
// holds a snapshot, which a CREATE INDEX CONCURRENTLY under the lock
// (NoTransactionMarker) waits out, so the two would deadlock.
func lockMigrations(ctx context.Context, conn *pgx.Conn) error {
	for {
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", migrateLockID).Scan(&got); err != nil {
			return fmt.Errorf("error taking the migration lock: %w", err)
		}
		if got {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("error taking the migration lock: %w", ctx.Err())
		case <-time.After(migrateLockPoll):
		}
	}
}

// MigrateResult says what Migrate applied.
type MigrateResult struct {
	RiverVersions []int
	Ours          []string
}

// Migrate applies River's migrations and ours to schema (empty: the
// connection's search_path, normally public). It holds an advisory lock for
// the whole run, so concurrent callers apply each migration exactly once, and
// it is a no-op when everything is current.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (*MigrateResult, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return MigrateWith(ctx, pool, schema, ms)
}

// MigrateWith is Migrate with the migrations ms (in order) instead of the
// embedded ones: for tests of the migration steps themselves.
func MigrateWith(ctx context.Context, pool *pgxpool.Pool, schema string, ms []Migration) (*MigrateResult, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error connecting to migrate: %w", err)
	}
	defer conn.Release()
	if err := lockMigrations(ctx, conn.Conn()); err != nil {
		return nil, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockID) //nolint:errcheck

	res := &MigrateResult{}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema})
	if err != nil {
		return nil, fmt.Errorf("error creating River migrator: %w", err)
	}
	rres, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("error applying River migrations: %w", err)
	}
	for _, v := range rres.Versions {
		res.RiverVersions = append(res.RiverVersions, v.Version)
	}

	begin := func() (pgx.Tx, error) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, err
		}
		if schema != "" {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
				tx.Rollback(ctx) //nolint:errcheck
				return nil, err
			}
		}
		return tx, nil
	}
	tx, err := begin()
	if err != nil {
		return nil, err
	}
	defer func() { tx.Rollback(context.WithoutCancel(ctx)) }() //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS bulkassign_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("error creating migrations table: %w", err)
	}
	applied := map[int]bool{}
	rows, err := tx.Query(ctx, "SELECT version FROM bulkassign_migrations")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if m.NoTransaction {
			// A step of its own: what came before is committed first.
			if err := tx.Commit(ctx); err != nil {
				return nil, fmt.Errorf("error committing migrations: %w", err)
			}
			if err := buildConcurrently(ctx, conn.Conn(), schema, m); err != nil {
				return nil, err
			}
			res.Ours = append(res.Ours, m.Name)
			if tx, err = begin(); err != nil {
				return nil, err
			}
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("error applying migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO bulkassign_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return nil, err
		}
		res.Ours = append(res.Ours, m.Name)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("error committing migrations: %w", err)
	}
	return res, nil
}

// buildConcurrently runs the NoTransactionMarker migration m on conn,
// outside any transaction: each index in turn, an INVALID one left by an
// interrupted build dropped and built again, then the migration recorded.
func buildConcurrently(ctx context.Context, conn *pgx.Conn, schema string, m Migration) error {
	if schema != "" {
		if _, err := conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		defer conn.Exec(context.WithoutCancel(ctx), "RESET search_path") //nolint:errcheck
	}
	for _, ix := range m.Indexes {
		var valid bool
		err := conn.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = $1 AND n.nspname = current_schema()`, ix.Name).Scan(&valid)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("migration %s: error looking up index %s: %w", m.Name, ix.Name, err)
		case !valid:
			// Left INVALID by an interrupted build: IF NOT EXISTS would
			// keep it as it is.
			if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+pgx.Identifier{ix.Name}.Sanitize()); err != nil {
				return fmt.Errorf("migration %s: error dropping the invalid index %s: %w", m.Name, ix.Name, err)
			}
		}
		if _, err := conn.Exec(ctx, ix.SQL); err != nil {
			return fmt.Errorf("error applying migration %s (index %s): %w", m.Name, ix.Name, err)
		}
	}
	if _, err := conn.Exec(ctx, "INSERT INTO bulkassign_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
		return fmt.Errorf("error recording migration %s: %w", m.Name, err)
	}
	return nil
}

// MigrationsCurrent reports whether every embedded migration has been
// applied (for /readyz).
func MigrationsCurrent(ctx context.Context, q Querier) (bool, error) {
	ms, err := Migrations()
	if err != nil {
		return false, err
	}
	var n int
	if err := q.QueryRow(ctx, "SELECT count(*) FROM bulkassign_migrations WHERE version = ANY($1)", versions(ms)).Scan(&n); err != nil {
		return false, err
	}
	return n == len(ms), nil
}

func versions(ms []Migration) []int {
	v := make([]int, len(ms))
	for i, m := range ms {
		v[i] = m.Version
	}
	return v
}

package store

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

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
}

// Migrations lists our embedded migrations in order.
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range entries {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and '_'", name)
		}
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
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
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("error connecting to migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockID); err != nil {
		return nil, fmt.Errorf("error taking the migration lock: %w", err)
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

	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if schema != "" {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return nil, err
		}
	}
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

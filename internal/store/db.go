package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the database as a command holds it: an open pool it never touches
// itself. Queries take DB as their Querier; the packages that need the
// pool (River, transactions, the token cache) take Pool.
type DB struct {
	pool *pgxpool.Pool
}

// ErrNotMigrated is returned by ConnectMigrated for a database that lacks
// some of our tables.
var ErrNotMigrated = errors.New("the database is not migrated: run `worker migrate` first")

// Connect opens a pool of at most maxConns connections to the database at
// url (DATABASE_URL) and checks that it answers.
func Connect(ctx context.Context, url string, maxConns int32) (*DB, error) {
	pool, err := Open(ctx, url, "", maxConns)
	if err != nil {
		return nil, err
	}
	return &DB{pool: pool}, nil
}

// ConnectMigrated is Connect for commands that need our tables: it refuses
// a database that lacks some (ErrNotMigrated).
func ConnectMigrated(ctx context.Context, url string, maxConns int32) (*DB, error) {
	db, err := Connect(ctx, url, maxConns)
	if err != nil {
		return nil, err
	}
	if ok, err := MigrationsCurrent(ctx, db.pool); err != nil || !ok {
		db.Close()
		return nil, ErrNotMigrated
	}
	return db, nil
}

// Pool is the pool itself, for the packages that adapt it.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool.
func (db *DB) Close() { db.pool.Close() }

// Migrate applies River's migrations and ours (see Migrate).
func (db *DB) Migrate(ctx context.Context) (*MigrateResult, error) { return Migrate(ctx, db.pool, "") }

// Exec, Query and QueryRow make DB a Querier.

func (db *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return db.pool.Exec(ctx, sql, args...)
}

func (db *DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return db.pool.Query(ctx, sql, args...)
}

func (db *DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return db.pool.QueryRow(ctx, sql, args...)
}

// Wrap holds an open pool as a DB (the worker runtime's, for the console);
// closing the DB closes the pool.
func Wrap(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

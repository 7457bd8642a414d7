package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

// schema is one scenario's own migrated schema, dropped when it ends, so
// every measurement starts from empty tables and indexes.
type schema struct {
	base string // database URL without search_path
	name string
	url  string // with search_path, for child processes
	pool *pgxpool.Pool
}

// newSchema creates and migrates a schema named after tag. River names its
// LISTEN channels after the schema, and Postgres caps those at 63 bytes, so
// names stay short.
func newSchema(ctx context.Context, tag string) (*schema, error) {
	base := testdb.URL()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "bench_" + tag + "_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w (set TEST_DATABASE_URL or DATABASE_URL)", redactURL(base), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("creating schema %s: %w", name, err)
	}
	s := &schema{base: base, name: name, url: testdb.URLWithSchema(base, name)}
	s.pool, err = store.Open(ctx, base, name, 8)
	if err != nil {
		s.drop()
		return nil, err
	}
	if _, err := store.Migrate(ctx, s.pool, name); err != nil {
		s.drop()
		return nil, fmt.Errorf("migrating %s: %w", name, err)
	}
	return s, nil
}

func (s *schema) drop() {
	if s.pool != nil {
		s.pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.base)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: could not drop schema %s: %v\n", s.name, err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{s.name}.Sanitize()+" CASCADE"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: could not drop schema %s: %v\n", s.name, err)
	}
}

// openPool opens a pool on the schema as a worker process would (store.Open
// does the same), with an application name that finds its backends and an
// optional tracer.
func (s *schema) openPool(ctx context.Context, app string, maxConns int32, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(s.base)
	if err != nil {
		return nil, err
	}
	store.Configure(cfg)
	cfg.ConnConfig.RuntimeParams["search_path"] = s.name
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	cfg.MaxConns = maxConns
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// settle checkpoints the database before a timed run: Postgres starts a
// checkpoint whenever max_wal_size of WAL has been written, and the
// sections before write gigabytes, so without it one run of a side-by-side
// pair could pay for a checkpoint (and the full-page writes after it) that
// its partner did not. Both runs of a pair now start just after one. A
// role that may not checkpoint measures without (said once).
func settle(ctx context.Context, pool *pgxpool.Pool) {
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		settleOnce.Do(func() { progress("cannot checkpoint before timed runs (%v); measuring without", err) })
	}
}

var settleOnce sync.Once

// backendCPU sums the CPU time of the Postgres backends serving app, read
// from /proc. It works when Postgres runs on this machine (the bench's
// case) and returns 0 otherwise; call it before the pool closes.
func backendCPU(ctx context.Context, pool *pgxpool.Pool, app string) time.Duration {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	if err != nil {
		return 0
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, pid := range pids {
		total += procCPU(int(pid))
	}
	return total
}

// procCPU is utime+stime of a process, from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}

// queryStats is a pgx tracer that counts statements and their latency, to
// say which queries a worked row costs.
type queryStats struct {
	mu sync.Mutex
	m  map[string]*queryStat
}

type queryStat struct {
	n     int
	total time.Duration
}

type traceKey struct{}

type traceStart struct {
	sql string
	at  time.Time
}

func newQueryStats() *queryStats { return &queryStats{m: map[string]*queryStat{}} }

func (q *queryStats) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{sql: d.SQL, at: time.Now()})
}

func (q *queryStats) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	st, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	d := time.Since(st.at)
	label := statementLabel(st.sql)
	q.mu.Lock()
	s := q.m[label]
	if s == nil {
		s = &queryStat{}
		q.m[label] = s
	}
	s.n++
	s.total += d
	q.mu.Unlock()
}

// statementLabel shortens a statement to its first words, which name it
// well enough (UPDATE items SET status = CASE …).
func statementLabel(sql string) string {
	f := strings.Fields(sql)
	if len(f) > 7 {
		f = f[:7]
	}
	s := strings.Join(f, " ")
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

type labeledStat struct {
	label string
	queryStat
}

func (q *queryStats) snapshot() []labeledStat {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]labeledStat, 0, len(q.m))
	for k, v := range q.m {
		out = append(out, labeledStat{k, *v})
	}
	return out
}

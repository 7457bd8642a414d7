package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/cli"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// Section 6: the results store after a long time of nightly runs. A store
// of storeBatches nightly batches (the newest storeRunning still running)
// of the same size each, written straight in SQL (INSERT ... SELECT
// generate_series, through the count triggers, not through the workers),
// is read by the commands and queries that must not slow down as it grows,
// side by side with a store that holds only the newest batch. Both stores'
// newest batch has the same shape, so every measure reads the same rows,
// and the ratio says what the rest of the store costs.

// storeResult holds section 6.
type storeResult struct {
	batches, running, perBatch int
	bigFill                    time.Duration
	bytesPerRow, indexPerRow   float64
	measures                   []storeMeasure
}

type storeMeasure struct {
	name       string
	big, small time.Duration // medians
}

func benchStore(ctx context.Context, o options) (*storeResult, error) {
	res := &storeResult{batches: o.storeBatches, running: o.storeRunning, perBatch: o.storeRows / o.storeBatches}
	if res.perBatch < 1 || o.storeRunning > o.storeBatches {
		return nil, fmt.Errorf("-store-rows %d over -store-batches %d with -store-running %d: want at least one row a batch and no more running batches than batches",
			o.storeRows, o.storeBatches, o.storeRunning)
	}
	qs, err := testenv.READMEQueries(o.readme)
	if err != nil {
		return nil, err
	}
	if len(qs) != 3 {
		return nil, fmt.Errorf("%s: %d queries under \"Querying results\", want the 3 section 6 times", o.readme, len(qs))
	}
	queryFailuresByCode, queryPerConfiguration, queryLastNightlyRun := qs[0], qs[1], qs[2]
	small, err := newSchema(ctx, "sts")
	if err != nil {
		return nil, err
	}
	defer small.drop()
	progress("section 6: filling a store of the newest batch alone (%s rows)", num(res.perBatch))
	smallNewest, err := fillStore(ctx, small, 1, 1, res.perBatch)
	if err != nil {
		return nil, err
	}
	big, err := newSchema(ctx, "stb")
	if err != nil {
		return nil, err
	}
	defer big.drop()
	progress("section 6: filling a store of %s rows over %d batches (%d running)", num(res.perBatch*o.storeBatches), o.storeBatches, o.storeRunning)
	start := time.Now()
	bigNewest, err := fillStore(ctx, big, o.storeBatches, o.storeRunning, res.perBatch)
	if err != nil {
		return nil, err
	}
	res.bigFill = time.Since(start)
	var items, heap, total int64
	if err := big.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM items), pg_table_size('items'), pg_total_relation_size('items')`).Scan(&items, &heap, &total); err != nil {
		return nil, err
	}
	res.bytesPerRow, res.indexPerRow = float64(heap)/float64(items), float64(total-heap)/float64(items)
	progress("section 6: %s item rows filled in %s; %.0f bytes a row in the table, %.0f in its indexes", num(int(items)), res.bigFill.Round(time.Second), res.bytesPerRow, res.indexPerRow)

	type measure struct {
		name string
		run  func(ctx context.Context, s *schema, newest string) error
	}
	command := func(args ...string) func(context.Context, *schema, string) error {
		return func(ctx context.Context, s *schema, newest string) error {
			var errb bytes.Buffer
			a := slices.Clone(args)
			for i := range a {
				a[i] = strings.ReplaceAll(a[i], "NEWEST", newest)
			}
			env := &cli.Env{Getenv: func(k string) (string, bool) {
				if k == "DATABASE_URL" {
					return s.url, true
				}
				return "", false
			}, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb}
			if code := cli.Enqueue(ctx, env, a); code != cli.ExitOK {
				return fmt.Errorf("enqueue %s: exit %d: %s", strings.Join(a, " "), code, errb.String())
			}
			return nil
		}
	}
	query := func(sql string) func(context.Context, *schema, string) error {
		return func(ctx context.Context, s *schema, _ string) error {
			rows, err := s.pool.Query(ctx, sql)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			rows.Close()
			return rows.Err()
		}
	}
	measures := []measure{
		{"`enqueue batches` (the 20 newest, counted by tenant and status)", command("batches")},
		{"`enqueue status BATCH` (the newest batch, still running)", command("status", "NEWEST")},
		{"One poll of `--wait` (store.CountByStatus of the newest batch)", func(ctx context.Context, s *schema, newest string) error {
			_, err := store.CountByStatus(ctx, s.pool, newest)
			return err
		}},
		{"`enqueue results BATCH --status failed --format csv` (the newest batch)", command("results", "NEWEST", "--status", "failed", "--format", "csv")},
		{"README query: failures in the last day, by error code", query(queryFailuresByCode)},
		{"README query: per-configuration summary of the latest batch", query(queryPerConfiguration)},
		{"README query: last night's run of the nightly schedule", query(queryLastNightlyRun)},
	}
	timeIt := func(m measure, s *schema, newest string) (time.Duration, error) {
		if err := m.run(ctx, s, newest); err != nil { // warm-up
			return 0, err
		}
		var ds []time.Duration
		for range o.storeReps {
			start := time.Now()
			if err := m.run(ctx, s, newest); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2], nil
	}
	for _, m := range measures {
		// The two stores alternate, so that load on the machine falls on
		// both alike.
		b, err := timeIt(m, big, bigNewest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		sm, err := timeIt(m, small, smallNewest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		progress("section 6: %s: %s on the large store, %s on the small one", m.name, b.Round(100*time.Microsecond), sm.Round(100*time.Microsecond))
		res.measures = append(res.measures, storeMeasure{m.name, b, sm})
	}
	return res, nil
}

// fillStore writes batches nightly batches of perBatch rows, one a day, the
// newest first in time order; the newest running are half done. Rows of
// finished batches end created (95 %), already_assigned (3 %) or failed
// (2 %, over 3 error codes), on 50 configurations, in one tenant, updated
// during the night they ran. It returns the newest batch's id.
func fillStore(ctx context.Context, s *schema, batches, running, perBatch int) (string, error) {
	var newest string
	for i := range batches {
		id := assign.NewID()
		age := batches - 1 - i // days
		isRunning := i >= batches-running
		if _, err := s.pool.Exec(ctx, `INSERT INTO batches (id, source, sha256, bytes, row_count, created_at, schedule)
			VALUES ($1, 'nightly.csv', '', 0, $2, now() - make_interval(days => $3) - interval '1 hour', 'nightly')`, id, perBatch, age); err != nil {
			return "", err
		}
		// A running batch has its first half final; of the rest, one row
		// in a hundred is running and the others are queued.
		if _, err := s.pool.Exec(ctx, `INSERT INTO items (batch_id, row, line, configuration_id, target_type, group_id,
				status, http_status, assignment_id, error_code, error_message, request_id, attempts, tenant_id,
				started_at, finished_at, created_at, updated_at)
			SELECT $1, g, g + 1, ('c0000000-0000-4000-8000-' || lpad((g % 50)::text, 12, '0'))::uuid, 'group',
				('90000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
				st, CASE st WHEN 'created' THEN 201 WHEN 'already_assigned' THEN 200 WHEN 'failed' THEN (ARRAY[404, 403, 400])[g % 3 + 1] END,
				CASE WHEN st IN ('created', 'already_assigned') THEN 'a' || g END,
				CASE WHEN st = 'failed' THEN (ARRAY['ResourceNotFound', 'Forbidden', 'BadRequest'])[g % 3 + 1] END,
				CASE WHEN st = 'failed' THEN 'the request failed' END,
				CASE WHEN st <> 'queued' THEN md5(g::text) END,
				CASE WHEN st IN ('created', 'failed') THEN 1 ELSE 0 END, '5e0c9f3a-7d21-4b8e-a6f4-2c1d0e9b8a73',
				CASE WHEN st <> 'queued' THEN t END, CASE WHEN bulkassign_final(st) THEN t END,
				b.created_at, CASE WHEN st = 'queued' THEN b.created_at ELSE t END
			FROM batches b, generate_series(1, $2::int) g,
				LATERAL (SELECT CASE
					WHEN $3::boolean AND g > $2::int / 2 THEN CASE WHEN g % 100 = 0 THEN 'running' ELSE 'queued' END
					WHEN g % 50 = 0 THEN 'failed'
					WHEN g % 33 = 0 THEN 'already_assigned'
					ELSE 'created' END AS st,
					b.created_at + g * interval '30 minutes' / $2::int AS t) x
			WHERE b.id = $1`, id, perBatch, isRunning); err != nil {
			return "", err
		}
		// Counted as enqueue and the workers would have counted them
		// (migration 009's kept counts).
		if _, err := s.pool.Exec(ctx, `INSERT INTO batch_counts (batch_id, tenant_id, status, revert_status, n)
			SELECT batch_id, coalesce(tenant_id, ''), status, '', count(*) FROM items WHERE batch_id = $1
			GROUP BY batch_id, tenant_id, status`, id); err != nil {
			return "", err
		}
		newest = id
		if (i+1)%10 == 0 && batches > 10 {
			progress("section 6: %d of %d batches written", i+1, batches)
		}
	}
	// As autovacuum would leave a store that is not being filled this very
	// minute: statistics current, the visibility map set.
	if _, err := s.pool.Exec(ctx, `VACUUM (ANALYZE) items, batches, batch_counts`); err != nil {
		return "", err
	}
	if _, err := store.CompactCounts(ctx, s.pool); err != nil {
		return "", err
	}
	return newest, nil
}

// storeLines are section 6's.
func (r *results) storeLines() []line {
	st := r.store
	if st == nil {
		return nil
	}
	var ls []line
	for i, m := range st.measures {
		ratio := m.big.Seconds() / m.small.Seconds()
		met := atMost(ratio, 2)
		if m.big > 500*time.Millisecond {
			met = "**no**"
		}
		ls = append(ls, line{fmt.Sprintf("6%c", 'a'+i),
			fmt.Sprintf("%s on a store of %s item rows over %d nightly batches (%d still running) ÷ the same on a store of the newest batch alone (%s rows); median of %d",
				m.name, num(st.perBatch*st.batches), st.batches, st.running, num(st.perBatch), r.o.storeReps),
			ms3(m.big), "newest alone: " + ms3(m.small), f2(ratio), "≤ 2.00, and < 500 ms", met})
	}
	ls = append(ls, line{fmt.Sprintf("6%c", 'a'+len(st.measures)),
		fmt.Sprintf("Storage per item row on the large store: table (heap, TOAST) + its indexes (primary key, the two partial indexes); filled in %s with INSERT ... SELECT", st.bigFill.Round(time.Second)),
		fmt.Sprintf("%.0f + %.0f = %.0f bytes", st.bytesPerRow, st.indexPerRow, st.bytesPerRow+st.indexPerRow), "—", "—", "—", ""})
	return ls
}

func ms3(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

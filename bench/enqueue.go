package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/jobs"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// enqueueResult holds section 1. Rates are medians over all runs; the
// ratio is the median of each round's own ratio.
type enqueueResult struct {
	rows, rounds                    int
	ours, river, copyRate           float64 // rows/s
	parseRate, itemsRate            float64 // rows/s of the parts of ours
	ratio, copyRatio                float64
	rssRows                         int
	rssBytes, benchHWM, rssCSVBytes int64
	rssElapsed                      time.Duration
}

// benchEnqueue first runs the real enqueue command on o.rssRows rows as a
// child process and reads its peak RSS. Then, in o.rounds rounds of
// rotating order on one schema emptied before each run, it times a
// o.enqueueRows-row CSV through jobs.Enqueue; River's InsertManyFastTx of
// as many bare jobs; a raw COPY of the CSV into a plain table; and, to say
// where enqueue's time goes, its two other parts alone: parsing and
// validating the CSV (intake) and COPYing its items (store.CopyItems).
// benchTenant is the default tenant of the enqueued lists, whose rows name
// none.
const benchTenant = "5e0c9f3a-7d21-4b8e-a6f4-2c1d0e9b8a73"

func benchEnqueue(ctx context.Context, o options) (*enqueueResult, error) {
	s, err := newSchema(ctx, "enq")
	if err != nil {
		return nil, err
	}
	defer s.drop()
	res := &enqueueResult{rows: o.enqueueRows, rounds: o.rounds}
	// First, while this process is small: Linux folds the parent's peak
	// RSS into the child's ru_maxrss when the child execs from a vfork.
	if o.rssRows > 0 {
		if err := enqueueRSS(ctx, o, s, res); err != nil {
			return nil, err
		}
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE bench_raw (configuration_id uuid, target_type text, group_id uuid)`); err != nil {
		return nil, err
	}
	rc, err := jobs.NewInsertClient(s.pool)
	if err != nil {
		return nil, err
	}
	content := testenv.GroupCSV(o.enqueueRows, 500)
	var items []store.ItemRow
	if _, err := (intake.Reader{Name: "bench.csv", Format: intake.FormatCSV}).Read(strings.NewReader(content), func(r intake.Row) error {
		items = append(items, store.ItemRow{Row: len(items) + 1, Line: r.Line, TenantID: benchTenant, Spec: r.Spec})
		return nil
	}); err != nil {
		return nil, err
	}

	truncate := func() error {
		_, err := s.pool.Exec(ctx, `TRUNCATE items, batches, river_job, bench_raw CASCADE`)
		return err
	}
	ours := func() (time.Duration, error) {
		start := time.Now()
		out, err := jobs.Enqueue(ctx, s.pool, rc, []jobs.Input{{Name: "bench.csv", Reader: strings.NewReader(content), Format: intake.FormatCSV,
			DefaultTenant: benchTenant}})
		if err != nil {
			return 0, err
		}
		if out[0].Batch.RowCount != o.enqueueRows {
			return 0, fmt.Errorf("enqueue wrote %d rows, want %d", out[0].Batch.RowCount, o.enqueueRows)
		}
		return time.Since(start), nil
	}
	bare := func() (time.Duration, error) {
		batch := assign.NewID()
		params := make([]river.InsertManyParams, o.enqueueRows)
		for i := range params {
			params[i] = river.InsertManyParams{Args: jobs.AssignArgs{Batch: batch, Row: i + 1}}
		}
		start := time.Now()
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		n, err := rc.InsertManyFastTx(ctx, tx, params)
		if err != nil {
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
		if n != o.enqueueRows {
			return 0, fmt.Errorf("River inserted %d jobs, want %d", n, o.enqueueRows)
		}
		return time.Since(start), nil
	}
	rawCopy := func() (time.Duration, error) {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return 0, err
		}
		defer conn.Release()
		start := time.Now()
		tag, err := conn.Conn().PgConn().CopyFrom(ctx, strings.NewReader(content), `COPY bench_raw FROM STDIN (FORMAT csv, HEADER true)`)
		if err != nil {
			return 0, err
		}
		if int(tag.RowsAffected()) != o.enqueueRows {
			return 0, fmt.Errorf("COPY wrote %d rows, want %d", tag.RowsAffected(), o.enqueueRows)
		}
		return time.Since(start), nil
	}
	parse := func() (time.Duration, error) {
		start := time.Now()
		res, err := (intake.Reader{Name: "bench.csv", Format: intake.FormatCSV}).Read(strings.NewReader(content), func(intake.Row) error { return nil })
		if err != nil {
			return 0, err
		}
		if res.Rows != o.enqueueRows {
			return 0, fmt.Errorf("intake read %d rows, want %d", res.Rows, o.enqueueRows)
		}
		return time.Since(start), nil
	}
	copyItems := func() (time.Duration, error) {
		start := time.Now()
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		batch := assign.NewID()
		for i := 0; i < len(items); i += 5000 { // jobs.Enqueue's chunk
			if err := store.CopyItems(ctx, tx, batch, items[i:min(i+5000, len(items))]); err != nil {
				return 0, err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}

	// Each round times ours and River's insert in an ABBA order (BAAB on
	// odd rounds), so a drift in the machine's load during the round hits
	// both alike; the round's ratio compares their summed times. The parts
	// follow.
	kinds := []func() (time.Duration, error){ours, bare, rawCopy, parse, copyItems}
	rates := make([][]float64, len(kinds))
	var ratios, copyRatios []float64
	for r := range o.rounds {
		order := []int{0, 1, 1, 0, 2, 3, 4}
		if r%2 == 1 {
			order = []int{1, 0, 0, 1, 2, 3, 4}
		}
		took := make([]time.Duration, len(kinds))
		for _, i := range order {
			if err := truncate(); err != nil {
				return nil, err
			}
			d, err := kinds[i]()
			if err != nil {
				return nil, err
			}
			took[i] += d
			rates[i] = append(rates[i], float64(o.enqueueRows)/d.Seconds())
		}
		ratios = append(ratios, took[1].Seconds()/took[0].Seconds())
		copyRatios = append(copyRatios, 2*took[2].Seconds()/took[0].Seconds())
		progress("enqueue round %d/%d: ours %.0f rows/s, River %.0f jobs/s (ratio %.2f), COPY %.0f rows/s; parse %.0f rows/s, items COPY %.0f rows/s",
			r+1, o.rounds, 2*float64(o.enqueueRows)/took[0].Seconds(), 2*float64(o.enqueueRows)/took[1].Seconds(), ratios[r],
			float64(o.enqueueRows)/took[2].Seconds(), float64(o.enqueueRows)/took[3].Seconds(), float64(o.enqueueRows)/took[4].Seconds())
	}
	res.ours, res.river, res.copyRate = median(rates[0]), median(rates[1]), median(rates[2])
	res.parseRate, res.itemsRate = median(rates[3]), median(rates[4])
	res.ratio, res.copyRatio = median(ratios), median(copyRatios)
	return res, truncate()
}

// enqueueRSS runs the real enqueue command on a generated file and reads
// the child's peak resident set from its rusage.
func enqueueRSS(ctx context.Context, o options, s *schema, res *enqueueResult) error {
	dir, err := os.MkdirTemp("", "bulkassign-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "million.csv")
	size, err := writeGroupCSV(file, o.rssRows, 500)
	if err != nil {
		return err
	}
	progress("enqueue: %d rows (%.0f MB) through %s as a child process", o.rssRows, float64(size)/1e6, o.enqueueBin)
	res.benchHWM = selfHWM()
	cmd := exec.CommandContext(ctx, o.enqueueBin, file)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.url, "AZURE_TENANT_ID="+benchTenant)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("enqueue %d rows: %v\n%s", o.rssRows, err, stderr.String())
	}
	res.rssElapsed = time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return fmt.Errorf("no rusage for the enqueue child on this system")
	}
	res.rssRows, res.rssBytes, res.rssCSVBytes = o.rssRows, ru.Maxrss*1024, size // Maxrss is in KiB on Linux
	var items int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&items); err != nil {
		return err
	}
	if items != o.rssRows {
		return fmt.Errorf("enqueue child wrote %d items, want %d", items, o.rssRows)
	}
	_, err = s.pool.Exec(ctx, `TRUNCATE items, batches, river_job CASCADE`)
	return err
}

// writeGroupCSV writes the rows testenv.GroupCSV would build, streaming.
func writeGroupCSV(path string, rows, configs int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("configuration_id,target_type,group_id\n")
	for i := range rows {
		w.WriteString(testenv.Config(i % configs))
		w.WriteString(",group,")
		w.WriteString(testenv.Group(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return st.Size(), f.Close()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// selfHWM is this process's peak RSS so far (VmHWM), or 0 where /proc
// does not say.
func selfHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

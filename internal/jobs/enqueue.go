package jobs

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Input is one list to enqueue.
type Input struct {
	Name   string // file name as the user gave it ("-" for stdin); errors name it
	Reader io.Reader
	Format intake.Format
}

// Enqueued is the result for one input.
type Enqueued struct {
	Batch  *store.Batch
	Intake *intake.Summary
}

// InvalidInputError reports inputs that had invalid rows; nothing was
// enqueued. Results holds every input's intake result, for its problems.
type InvalidInputError struct {
	Results []*intake.Summary
}

func (e *InvalidInputError) Error() string {
	var msg string
	for _, r := range e.Results {
		if err := r.Err(); err != nil {
			msg += err.Error() + "\n"
		}
	}
	return msg
}

// chunkRows bounds memory: rows are written in chunks of this many.
const chunkRows = 5000

// Enqueue writes each input as a batch: a batch row, one item per unique
// row, and one River job per item — all in one transaction, so a set of files
// is enqueued whole or not at all. Memory stays flat: rows stream through in
// chunks written with COPY.
func Enqueue(ctx context.Context, pool *pgxpool.Pool, rc *river.Client[pgx.Tx], inputs []Input) ([]Enqueued, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("error beginning transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	out, err := EnqueueTx(ctx, tx, rc, inputs)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("error committing batch: %w", err)
	}
	return out, nil
}

// EnqueueTx is Enqueue within the caller's transaction (the scheduler runs
// a stored list in the transaction that marks its run done). On any error,
// an *InvalidInputError included, rows may already be written to tx: the
// caller must roll it back.
func EnqueueTx(ctx context.Context, tx pgx.Tx, rc *river.Client[pgx.Tx], inputs []Input) ([]Enqueued, error) {
	var (
		out     []Enqueued
		results []*intake.Summary
		invalid bool
	)
	for _, in := range inputs {
		e, err := enqueueOne(ctx, tx, rc, in, !invalid)
		if err != nil {
			return nil, err
		}
		results = append(results, e.Intake)
		if e.Intake.Err() != nil {
			invalid = true
		}
		out = append(out, e)
	}
	if invalid {
		return nil, &InvalidInputError{Results: results}
	}
	return out, nil
}

// enqueueOne reads one input into tx. When write is false (an earlier input
// was invalid, so the transaction will roll back) it only validates.
func enqueueOne(ctx context.Context, tx pgx.Tx, rc *river.Client[pgx.Tx], in Input, write bool) (Enqueued, error) {
	b := &store.Batch{ID: assign.NewID(), Source: in.Name}
	if write {
		if err := store.InsertBatch(ctx, tx, b); err != nil {
			return Enqueued{}, err
		}
	}
	chunk := make([]store.ItemRow, 0, chunkRows)
	n := 0
	flush := func() error {
		if len(chunk) == 0 || !write {
			chunk = chunk[:0]
			return nil
		}
		if err := store.CopyItems(ctx, tx, b.ID, chunk); err != nil {
			return err
		}
		err := InsertJobs(ctx, tx, rc, len(chunk), func(i int) river.JobArgs { return AssignArgs{Batch: b.ID, Row: chunk[i].Row} })
		if err != nil {
			return err
		}
		chunk = chunk[:0]
		return nil
	}
	res, err := intake.Reader{Name: in.Name, Format: in.Format}.Read(in.Reader, func(r intake.Row) error {
		n++
		chunk = append(chunk, store.ItemRow{Row: n, Line: r.Line, Spec: r.Spec})
		if len(chunk) == chunkRows {
			return flush()
		}
		return nil
	})
	if err != nil {
		return Enqueued{}, err
	}
	if res.Err() != nil {
		// Stop writing: the whole transaction rolls back.
		return Enqueued{Batch: b, Intake: res}, nil
	}
	if err := flush(); err != nil {
		return Enqueued{}, err
	}
	b.SHA256, b.Bytes, b.RowCount, b.DuplicateRows = res.SHA256, res.Bytes, res.Rows, res.Duplicates
	if write {
		if err := store.FinishBatchInsert(ctx, tx, b); err != nil {
			return Enqueued{}, err
		}
	}
	return Enqueued{Batch: b, Intake: res}, nil
}

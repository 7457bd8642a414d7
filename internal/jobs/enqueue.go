package jobs

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Input is one list to enqueue.
type Input struct {
	Name   string // file name as the user gave it ("-" for stdin); errors name it
	Reader io.Reader
	Format intake.Format
	// DefaultTenant is the tenant of rows that name none, as the caller
	// was given it (AZURE_TENANT_ID). It must be a tenant id (a GUID) when
	// some row names no tenant, and is not looked at otherwise: it may then
	// be empty, or a domain name, which signing in accepts but a row cannot
	// be keyed by.
	DefaultTenant string
	// CreatedBy is who starts the batch (store.Batch.CreatedBy): the
	// console's user, the command's OS user@host, or schedule:<name>.
	CreatedBy string
	// RequestKey, when set, makes the batch the only one of that key: the
	// console's token against a double submit (store.Batch.RequestKey).
	RequestKey string
	// Allowlist, when set, is which tenants may have rows; nil reads it
	// from this process's BULKASSIGN_TENANTS (config.LoadTenantAllowlist),
	// so the enqueue command, the console and the schedules all refuse a
	// row of a tenant the file does not list, at its line.
	Allowlist *config.TenantAllowlist
}

// allowlist is in.Allowlist, else the process's BULKASSIGN_TENANTS.
func (in Input) allowlist() (config.TenantAllowlist, error) {
	if in.Allowlist != nil {
		return *in.Allowlist, nil
	}
	return config.LoadTenantAllowlist(os.LookupEnv)
}

// DefaultTenantID is the canonical GUID of in.DefaultTenant, or "" when
// it is not a tenant id.
func (in Input) DefaultTenantID() string {
	id, err := assign.ParseGUID("default tenant", in.DefaultTenant)
	if err != nil || id == "00000000-0000-0000-0000-000000000000" {
		return ""
	}
	return id
}

// NoTenantError reports a row that names no tenant when Input.DefaultTenant
// is not a tenant id to put it in. Nothing was enqueued.
type NoTenantError struct {
	File string
	Line int // the first such row
	// DefaultTenant is Input.DefaultTenant as given: "" when not set.
	DefaultTenant string
}

func (e *NoTenantError) Error() string {
	if e.DefaultTenant == "" {
		return fmt.Sprintf("%s:%d: the row names no tenant, and no default tenant (AZURE_TENANT_ID) is set", e.File, e.Line)
	}
	return fmt.Sprintf("%s:%d: the row names no tenant, and the default tenant (AZURE_TENANT_ID) %q is not a tenant id (a GUID)",
		e.File, e.Line, e.DefaultTenant)
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
// chunks written with COPY. Every item names its tenant: the row's, else
// the input's default tenant. Invalid rows are an *InvalidInputError; in
// valid inputs, a row that names no tenant when the default tenant is not
// a tenant id is a *NoTenantError.
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
		out      []Enqueued
		results  []*intake.Summary
		invalid  bool
		noTenant *NoTenantError
	)
	for _, in := range inputs {
		e, nt, err := enqueueOne(ctx, tx, rc, in, !invalid && noTenant == nil)
		if err != nil {
			return nil, err
		}
		results = append(results, e.Intake)
		if e.Intake.Err() != nil {
			invalid = true
		}
		if noTenant == nil {
			noTenant = nt
		}
		out = append(out, e)
	}
	if invalid {
		return nil, &InvalidInputError{Results: results}
	}
	if noTenant != nil {
		return nil, noTenant
	}
	return out, nil
}

// enqueueOne reads one input into tx. When write is false (an earlier input
// was invalid, so the transaction will roll back) it only validates, and
// so it does once a row names no tenant and there is no default tenant to
// fill in (the *NoTenantError it returns names the first such row).
func enqueueOne(ctx context.Context, tx pgx.Tx, rc *river.Client[pgx.Tx], in Input, write bool) (Enqueued, *NoTenantError, error) {
	b := &store.Batch{ID: assign.NewID(), Source: in.Name, CreatedBy: in.CreatedBy, RequestKey: in.RequestKey}
	if write {
		if err := store.InsertBatch(ctx, tx, b); err != nil {
			return Enqueued{}, nil, err
		}
	}
	var noTenant *NoTenantError
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
		err := InsertJobs(ctx, tx, rc, len(chunk), func(i int) river.JobArgs {
			return AssignArgs{Batch: b.ID, Row: chunk[i].Row, Tenant: chunk[i].TenantID}
		})
		if err != nil {
			return err
		}
		chunk = chunk[:0]
		return nil
	}
	allow, err := in.allowlist()
	if err != nil {
		return Enqueued{}, nil, err
	}
	rd := intake.Reader{Name: in.Name, Format: in.Format, DefaultTenant: in.DefaultTenantID()}
	if allow.On() {
		rd.Refuse = func(tenant string) string { return allow.Refuses(tenant, in.DefaultTenant) }
	}
	res, err := rd.Read(in.Reader, func(r intake.Row) error {
		if r.TenantID == "" && noTenant == nil {
			noTenant = &NoTenantError{File: in.Name, Line: r.Line, DefaultTenant: in.DefaultTenant}
			write = false // the transaction rolls back
		}
		n++
		chunk = append(chunk, store.ItemRow{Row: n, Line: r.Line, TenantID: r.TenantID, Spec: r.Spec})
		if len(chunk) == chunkRows {
			return flush()
		}
		return nil
	})
	if err != nil {
		return Enqueued{}, nil, err
	}
	if res.Err() != nil || noTenant != nil {
		// Stop writing: the whole transaction rolls back.
		return Enqueued{Batch: b, Intake: res}, noTenant, nil
	}
	if err := flush(); err != nil {
		return Enqueued{}, nil, err
	}
	b.SHA256, b.Bytes, b.RowCount, b.DuplicateRows = res.SHA256, res.Bytes, res.Rows, res.Duplicates
	if write {
		if err := store.FinishBatchInsert(ctx, tx, b); err != nil {
			return Enqueued{}, nil, err
		}
	}
	return Enqueued{Batch: b, Intake: res}, nil, nil
}

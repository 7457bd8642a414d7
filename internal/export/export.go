// Package export writes a batch's results, and other records, as CSV or
// JSON: the one writer behind `enqueue results` and the console's
// downloads, with its guard against formula injection in CSV.
package export

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/intake"
	"github.com/bulkassign/bulkassign/internal/store"
)

// Results streams the rows of a batch that f picks, every column of the
// assignment_results view, to w as format (csv or json).
func Results(ctx context.Context, q store.Querier, batchID string, f store.ResultFilter, w io.Writer, format string) error {
	rw := NewWriter(w, format, store.ExportColumns)
	err := store.ExportResultsWhere(ctx, q, batchID, f, func(r *store.ExportRow) error {
		return rw.Write(ResultValues(r))
	})
	if err != nil {
		return err
	}
	return rw.Close()
}

// Inputs streams the rows of a batch that f picks to w as an input file
// (CSV with intake's columns), which `enqueue` reads unchanged: each row
// asks for what it asked for before, in its own tenant, in the words it
// used (a name where it gave a name: intake.Record). The writer's formula
// guard applies to every cell; ids, enums and paths never start with a
// character it defuses, and intake reads a display name it defused back
// without the quote it added.
func Inputs(ctx context.Context, q store.Querier, batchID string, f store.ResultFilter, w io.Writer) error {
	rw := NewWriter(w, "csv", intake.Columns)
	vals := make([]any, len(intake.Columns))
	err := store.ExportResultsWhere(ctx, q, batchID, f, func(r *store.ExportRow) error {
		for i, v := range intake.Record(r.Spec(), r.TenantID) {
			vals[i] = v
		}
		return rw.Write(vals)
	})
	if err != nil {
		return err
	}
	return rw.Close()
}

// ResultValues are r's cells in store.ExportColumns order; nil is absent.
func ResultValues(r *store.ExportRow) []any {
	n := r.Names()
	return []any{r.BatchID, r.Row, r.Line, r.Source, r.ConfigurationID, optional(r.Path), r.TargetType,
		optional(r.GroupID), optional(r.CollectionID), optional(r.FilterID), optional(r.FilterType), string(r.Status),
		optionalInt(r.HTTPStatus), optional(r.AssignmentID), r.Attempts, optional(r.ErrorCode), optional(r.ErrorMessage),
		optional(r.RequestID), r.CreatedAt.UTC(), r.UpdatedAt.UTC(), optionalTime(r.FinishedAt), r.Retries,
		optional(string(r.RevertStatus)), optionalInt(r.RevertHTTPStatus), optional(r.RevertErrorCode),
		optional(r.RevertError), optional(r.RevertRequestID), optionalTime(r.RevertedAt), optional(r.TenantID), optional(r.CreatedBy),
		r.Action.String(), optional(n.Configuration), optional(n.Group), optional(n.Filter), optional(r.RevertAssignmentID),
		optional(r.TenantName), given(r.ConfigurationName, n.Configuration), given(r.GroupName, n.Group),
		given(r.FilterName, n.Filter)}
}

// given is a *_name_given cell: whether the row gave the name shown (its
// own, else Graph's), absent when there is none.
func given(own, shown string) any {
	if shown == "" {
		return nil
	}
	return own != ""
}

func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func optionalInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func optionalTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

// Writer streams records as CSV (with a header) or as a JSON array of
// objects whose keys are the column names. CSV cells that a spreadsheet
// would run as a formula are defused (SpreadsheetSafe).
type Writer struct {
	w      io.Writer
	format string
	cols   []string
	csv    *csv.Writer
	keys   [][]byte // JSON-encoded column names
	n      int
	cells  []string
	buf    []byte
}

// NewWriter writes records of cols to w; format is csv or json.
func NewWriter(w io.Writer, format string, cols []string) *Writer {
	rw := &Writer{w: w, format: format, cols: cols}
	if format == "csv" {
		rw.csv = csv.NewWriter(w)
		rw.cells = make([]string, len(cols))
	} else {
		for _, c := range cols {
			k, _ := json.Marshal(c)
			rw.keys = append(rw.keys, k)
		}
	}
	return rw
}

// Write writes one record, vals in the order of the columns.
func (rw *Writer) Write(vals []any) error {
	if rw.csv != nil {
		if rw.n == 0 {
			if err := rw.csv.Write(rw.cols); err != nil {
				return err
			}
		}
		rw.n++
		for i, v := range vals {
			rw.cells[i] = csvCell(v)
		}
		return rw.csv.Write(rw.cells)
	}
	b := rw.buf[:0]
	if rw.n == 0 {
		b = append(b, "[\n"...)
	} else {
		b = append(b, ",\n"...)
	}
	rw.n++
	b = append(b, '{')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, rw.keys[i]...)
		b = append(b, ':')
		enc, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(b, enc...)
	}
	b = append(b, '}')
	rw.buf = b
	_, err := rw.w.Write(b)
	return err
}

// Close ends the output (an empty CSV still has its header, an empty
// JSON array is []).
func (rw *Writer) Close() error {
	if rw.csv != nil {
		if rw.n == 0 {
			if err := rw.csv.Write(rw.cols); err != nil {
				return err
			}
		}
		rw.csv.Flush()
		return rw.csv.Error()
	}
	end := "\n]\n"
	if rw.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(rw.w, end)
	return err
}

func csvCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return SpreadsheetSafe(v)
	case int:
		return strconv.Itoa(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case bool:
		return strconv.FormatBool(v)
	}
	return SpreadsheetSafe(fmt.Sprint(v))
}

// SpreadsheetSafe defuses formula injection: spreadsheets run a cell that
// starts with = + - @ (or a tab or carriage return before one) as a
// formula, so such cells get a leading single quote, which makes them text.
// Error messages and file names come from outside: they could be crafted.
func SpreadsheetSafe(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

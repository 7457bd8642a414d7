package cli

import (
	"io"

	"github.com/bulkassign/bulkassign/internal/export"
)

// newRecordWriter is export's writer, for the commands' csv and json.
func newRecordWriter(w io.Writer, format string, cols []string) *recordWriter {
	return &recordWriter{export.NewWriter(w, format, cols)}
}

type recordWriter struct{ w *export.Writer }

func (rw *recordWriter) write(vals []any) error { return rw.w.Write(vals) }
func (rw *recordWriter) close() error           { return rw.w.Close() }

// optional is a cell that is absent when empty.
func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

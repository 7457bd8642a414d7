package intake

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Columns are the CSV column names, in documentation order.
var Columns = func() []string {
	c := make([]string, numFields)
	for f, n := range fieldNames {
		c[f] = n.csv
	}
	return c
}()

// maxRecord bounds the bytes of one CSV record: encoding/csv holds a whole
// record in memory, and a stray quote would make the rest of the file one.
const maxRecord = 1 << 20

var errRecordTooLong = errors.New("record too long")

// recordLimit fails a read once n bytes have been read since the last reset.
type recordLimit struct {
	r io.Reader
	n int
}

func (l *recordLimit) Read(p []byte) (int, error) {
	if l.n >= maxRecord {
		return 0, errRecordTooLong
	}
	if len(p) > maxRecord-l.n {
		p = p[:maxRecord-l.n]
	}
	n, err := l.r.Read(p)
	l.n += n
	return n, err
}

func (st *state) readCSV(br *bufio.Reader) error {
	lim := &recordLimit{r: br}
	cr := csv.NewReader(lim)
	cr.Comma = separator(br)
	cr.FieldsPerRecord = -1 // a wrong count is the row's problem, not the file's
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = cr.Comma != '\t' // so that `a, "b"` is not a bare quote

	header, err := cr.Read()
	if err == io.EOF {
		st.fatal(0, "the file is empty (a CSV list starts with a header line naming its columns)")
		return errStop
	}
	if err != nil {
		return st.csvError(err, 0)
	}
	lim.n = 0
	hline, _ := cr.FieldPos(0)
	var idx [numFields]int // column of each field, or -1
	if !st.csvHeader(hline, header, &idx) {
		return errStop
	}
	ncol := len(header)
	lastLine := hline

	var f fields
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			if st.records == 0 && st.res.Invalid == 0 {
				st.fatal(hline, "no rows after the header")
			}
			return nil
		}
		if err != nil {
			return st.csvError(err, lastLine)
		}
		lim.n = 0
		line, _ := cr.FieldPos(0)
		lastLine = line
		if blank(rec) {
			continue
		}
		if !st.record(line) {
			return errStop
		}
		if len(rec) != ncol {
			st.invalid(line, fmt.Sprintf("row has %d fields, the header has %d", len(rec), ncol))
			continue
		}
		f = fields{}
		for c, i := range idx {
			if i >= 0 {
				f.v[c] = strings.TrimSpace(rec[i])
			}
		}
		st.chk.reset()
		spec := st.chk.spec(&f, &csvVocab)
		tenant := st.chk.tenant(&f, &csvVocab)
		if !st.chk.ok() {
			st.invalid(line, st.chk.String())
			continue
		}
		if err := st.row(line, tenant, spec, &csvVocab); err != nil {
			return err
		}
	}
}

// csvHeader maps the header's columns into idx, recording the problems on
// the header line (the first maxNamed, then a count, then a missing
// configuration_id and configuration_name); false if there was any.
func (st *state) csvHeader(line int, header []string, idx *[numFields]int) bool {
	for i := range idx {
		idx[i] = -1
	}
	ok, listed, more := true, 0, 0
	// problem counts one; true when it is to be listed.
	problem := func() bool {
		ok = false
		if listed == maxNamed {
			more++
			return false
		}
		listed++
		return true
	}
	for i, h := range header {
		name := strings.TrimSpace(h)
		c := -1
		for j, known := range Columns {
			if strings.EqualFold(name, known) {
				c = j
				break
			}
		}
		switch {
		case name == "":
			if problem() {
				st.fatal(line, fmt.Sprintf("column %d has no name in the header", i+1))
			}
		case c < 0:
			if problem() {
				msg := "unknown column " + shown("", h)
				if s, ok := suggest(name, Columns); ok {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				} else {
					msg += " (columns are " + strings.Join(Columns, ", ") + ")"
				}
				if strings.ContainsAny(h, ",;\t") {
					msg += "; separate columns with one of comma, semicolon or tab, the same throughout the file"
				}
				st.fatal(line, msg)
			}
		case idx[c] >= 0:
			if problem() {
				st.fatal(line, fmt.Sprintf("duplicate column %q (columns %d and %d)", Columns[c], idx[c]+1, i+1))
			}
		default:
			idx[c] = i
		}
	}
	if more > 0 {
		st.fatal(line, "... and "+count(more, "more problem")+" with the header")
	}
	if idx[fieldConfigurationID] < 0 && idx[fieldConfigurationName] < 0 {
		st.fatal(line, "missing required column "+Columns[fieldConfigurationID]+" or "+Columns[fieldConfigurationName])
		ok = false
	}
	return ok
}

// csvError records a syntax error and stops, or wraps a read error. last
// is the line of the last record read.
func (st *state) csvError(err error, last int) error {
	if errors.Is(err, errRecordTooLong) {
		st.fatal(0, fmt.Sprintf("syntax error: a row after line %d is longer than %d bytes (a quote not closed?)", last, maxRecord))
		return errStop
	}
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("reading %s: %w", st.name, err)
	}
	msg := fmt.Sprintf("syntax error: %v (column %d)", pe.Err, pe.Column)
	if pe.StartLine != pe.Line {
		msg += fmt.Sprintf(" in the row starting on line %d", pe.StartLine)
	}
	st.fatal(pe.Line, msg)
	return errStop
}

// headerPeek bounds the bytes separator looks at for the header line.
const headerPeek = 64 << 10

// separator chooses the CSV separator from the header line: a comma when
// the header has one outside quotes, else a semicolon (Excel's in many
// locales) or a tab when it has one. It reads nothing off br.
func separator(br *bufio.Reader) rune {
	head, _ := br.Peek(headerPeek)
	quoted, semi, tab := false, false, false
header:
	for _, c := range head {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ',':
			return ','
		case c == ';':
			semi = true
		case c == '\t':
			tab = true
		case c == '\n':
			break header
		}
	}
	switch {
	case semi:
		return ';'
	case tab:
		return '\t'
	}
	return ','
}

// blank reports whether every field of rec is empty or white space, as in
// the trailing ",,,,," rows that spreadsheets write.
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

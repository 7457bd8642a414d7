// Package intake reads an input list (CSV, a JSON array or NDJSON) of
// assignments to create or remove, validates every row into an
// assign.Spec and hands the unique valid rows, in order, to a callback. It
// streams: memory does not grow with the number of rows except for a
// compact duplicate set (about 18 bytes a unique row; twice that for a
// filtered group row whose group is new on its configuration path).
//
// Any invalid row makes the whole input invalid (Summary.Err), but reading goes
// on to the end so that every bad line is reported, as "FILE:LINE: message".
// A syntax error stops reading at its line. A row that repeats an earlier one
// (same assign.Spec.Key in the same tenant) is passed on once, with a
// warning; but one that removes what the earlier one assigns, or assigns
// what it removes, is invalid. A row that excludes a group an earlier row
// includes on the same configuration path in the same tenant (or includes
// one it excludes) is invalid too, whether each of the two assigns or
// removes: Intune refuses a group both included and excluded, and the rows
// of a batch may be done in any order, so moving a group from one side to
// the other takes two batches, the remove and then the assign. Messages
// about two rows name the earlier line.
//
// A row names its configuration, its group and its filter each by id or
// by display name (configuration_name, group_name, filter_name), not both;
// a worker resolves names in the row's tenant. A name is kept as given but
// trimmed: valid UTF-8, no control characters, at most 256 characters.
// Rows are compared by what they give: intake cannot tell that a group
// one row gives by id is the one another row names, nor that two names
// in different case are one (Graph compares names case-insensitively); a
// duplicate or a conflict between such rows is left to the worker, which
// resolves names to ids.
//
// CSV: a header row naming the columns (any order; configuration_id or
// configuration_name is required, the others are optional and read as
// empty when absent):
//
//	configuration_id, target_type, group_id, collection_id, filter_id, filter_type, path, tenant_id,
//	action, configuration_name, group_name, filter_name
//
// action is assign (the default, when empty) or remove, in any case.
// UTF-8 with or without a byte order mark, CRLF or LF, RFC 4180 quoting.
// Values are trimmed of surrounding white space; rows whose fields are all
// empty are skipped. The line of a row is the line its record starts on.
//
// JSON: an array of objects (line = the line of each object's opening brace)
// or a stream of objects; NDJSON (.ndjson, .jsonl) has exactly one object per
// line. Each object is
//
//	{"configurationId": "…", "path": "…", "tenantId": "…", "action": "assign", "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget",
//	 "groupId": "…", "deviceAndAppManagementAssignmentFilterId": "…", "deviceAndAppManagementAssignmentFilterType": "include"}}
//
// with names in "configurationName", "target.groupName" and
// "target.filterName" in place of "configurationId", "target.groupId" and
// "target.deviceAndAppManagementAssignmentFilterId". Keys are matched
// exactly; unknown and repeated keys are errors (a row lists the first
// five, then counts the rest). Optional keys may be absent, null or "".
//
// Messages name fields in the input's own words: CSV columns for CSV, JSON
// keys (target.groupId) and @odata.type values for JSON.
package intake

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// Format is the syntax of an input.
type Format string

const (
	// FormatAuto sniffs the first significant byte: '[' or '{' is JSON,
	// anything else CSV. It is what DetectFormat gives for "-" (stdin).
	FormatAuto Format = "auto"
	FormatCSV  Format = "csv"
	// FormatJSON is an array of objects, or a stream of objects separated by
	// white space (which includes NDJSON); the first byte decides.
	FormatJSON Format = "json"
	// FormatNDJSON is one object per line; an object may not span lines.
	FormatNDJSON Format = "ndjson"
)

// Defaults for Reader.
const (
	DefaultMaxProblems = 50
	DefaultMaxRows     = 1_000_000
)

// DetectFormat chooses the format of the input called name: override when it
// is not empty (csv, json, ndjson, jsonl or auto), else the extension (.csv,
// .json, .ndjson, .jsonl; any case). Name "-" (stdin) without an override is
// FormatAuto.
func DetectFormat(name, override string) (Format, error) {
	if override != "" {
		switch strings.ToLower(strings.TrimSpace(override)) {
		case "csv":
			return FormatCSV, nil
		case "json":
			return FormatJSON, nil
		case "ndjson", "jsonl":
			return FormatNDJSON, nil
		case "auto":
			return FormatAuto, nil
		}
		return "", fmt.Errorf("unknown format %q (want csv, json, ndjson or auto)", override)
	}
	if name == "-" {
		return FormatAuto, nil
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return FormatCSV, nil
	case ".json":
		return FormatJSON, nil
	case ".ndjson", ".jsonl":
		return FormatNDJSON, nil
	}
	return "", fmt.Errorf("%s: cannot tell the format from the file name (want .csv, .json, .ndjson or .jsonl, or give a format)", name)
}

// Row is one unique valid input row.
type Row struct {
	Line int // line of the row in the input, from 1 (the CSV header is line 1)
	Spec assign.Spec
	// TenantID is the tenant the row names (a canonical GUID), else
	// Reader.DefaultTenant, which may be "".
	TenantID string
}

// Problem is one finding about the input.
type Problem struct {
	File    string
	Line    int // 0: about the whole file
	Msg     string
	Warning bool
}

// String formats p as "FILE:LINE: msg", "FILE: msg" or
// "FILE:LINE: warning: msg".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Summary sums up one input.
type Summary struct {
	File       string
	Rows       int // unique valid rows passed to the callback
	Duplicates int // valid rows skipped as repeats of an earlier row
	// Invalid counts errors: invalid rows plus problems with the file as a
	// whole (header, syntax, no rows). Any makes the input unacceptable.
	Invalid int
	// Problems lists errors: the first MaxProblems invalid rows, and always
	// every file-wide problem (bad header, syntax error, no rows), so that
	// Invalid-len(Problems) unlisted errors are all invalid rows. A bad
	// header lists its first five problems, then one counting the rest.
	Problems []Problem
	// Warnings lists the first MaxProblems duplicate rows.
	Warnings []Problem
	SHA256   string // hex SHA-256 of the raw input bytes
	Bytes    int64  // length of the raw input
}

// Err is nil when the input is valid. Otherwise its message is the
// problems, one a line, then "FILE: ... and N more invalid rows" for those
// past the cap.
func (r *Summary) Err() error {
	if r.Invalid == 0 {
		return nil
	}
	lines := make([]string, 0, len(r.Problems)+1)
	for _, p := range r.Problems {
		lines = append(lines, p.String())
	}
	if more := r.Invalid - len(r.Problems); more > 0 {
		lines = append(lines, fmt.Sprintf("%s: ... and %d more invalid rows", r.File, more))
	}
	return &InvalidError{Summary: r, msg: strings.Join(lines, "\n")}
}

// WarningLines formats the warnings, one a line, then
// "FILE: ... and N more duplicate rows" for those past the cap.
func (r *Summary) WarningLines() []string {
	lines := make([]string, 0, len(r.Warnings)+1)
	for _, p := range r.Warnings {
		lines = append(lines, p.String())
	}
	if more := r.Duplicates - len(r.Warnings); more > 0 {
		lines = append(lines, fmt.Sprintf("%s: ... and %d more duplicate rows", r.File, more))
	}
	return lines
}

// InvalidError is the error Summary.Err returns.
type InvalidError struct {
	Summary *Summary
	msg     string
}

func (e *InvalidError) Error() string { return e.msg }

// Reader reads one input. The zero value of each field picks a default.
type Reader struct {
	Name        string // used in messages; for stdin the caller chooses, e.g. "-" or "<stdin>"
	Format      Format // empty: FormatAuto
	MaxProblems int    // errors and warnings listed in the Summary; default DefaultMaxProblems
	MaxRows     int    // data rows accepted; more is an error; default DefaultMaxRows
	// DefaultTenant is the tenant of rows that name none: a canonical GUID
	// (assign.ParseGUID), or "" to leave them without one. Rows are told
	// apart by tenant, so a row that names the default tenant repeats one
	// that names none.
	DefaultTenant string
	// Refuse, when set, says why rows of a tenant may not be enqueued
	// ("" when they may; config.TenantAllowlist.Refuses): a row of a
	// tenant it refuses is invalid, with that message at its line. It is
	// asked about the tenant each row names (or DefaultTenant), not "".
	Refuse func(tenant string) string
}

// Read reads and validates all of r. It calls fn for each unique valid row, in
// input order, even when other rows are invalid: the caller must discard what
// fn did when Summary.Err is not nil. An error from fn or from reading r stops
// Read, which returns it wrapped (with the partial Summary). Problems with
// the input are never a returned error; they are in the Summary.
func (rd Reader) Read(r io.Reader, fn func(Row) error) (*Summary, error) {
	res, _, err := rd.read(r, fn)
	return res, err
}

// read is Read; it also returns its state, for tests to look into.
func (rd Reader) read(r io.Reader, fn func(Row) error) (*Summary, *state, error) {
	in := &hashingReader{r: r, h: sha256.New()}
	st := &state{
		name:  rd.Name,
		fn:    fn,
		res:   &Summary{File: rd.Name},
		max:   rd.MaxProblems,
		rows:  rd.MaxRows,
		seed1: maphash.MakeSeed(),
		seed2: maphash.MakeSeed(),
		def:   rd.DefaultTenant,
	}
	if rd.Refuse != nil {
		st.refuse, st.refused = rd.Refuse, map[string]string{}
	}
	if st.max <= 0 {
		st.max = DefaultMaxProblems
	}
	if st.rows <= 0 {
		st.rows = DefaultMaxRows
	}
	st.seen = newDupSet(st.rows)
	br := bufio.NewReaderSize(in, 64<<10)
	err := st.read(br, rd.Format)
	if errors.Is(err, errStop) {
		// Hash the whole input even when reading stopped early, so that the
		// recorded digest is the file's.
		_, err = io.Copy(io.Discard, br)
		if err != nil {
			err = fmt.Errorf("reading %s: %w", rd.Name, err)
		}
	}
	res := st.res
	res.SHA256 = hex.EncodeToString(in.h.Sum(nil))
	res.Bytes = in.n
	if err != nil {
		return res, st, err
	}
	if st.records == 0 && res.Invalid == 0 {
		st.fatal(0, "no rows")
	}
	return res, st, nil
}

// errStop ends reading after a problem that leaves the rest unreadable; the
// problem itself is already recorded.
var errStop = errors.New("stop")

func (st *state) read(br *bufio.Reader, f Format) error {
	head, err := br.Peek(3)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return fmt.Errorf("reading %s: %w", st.name, err)
	}
	switch {
	case len(head) >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF:
		br.Discard(3)
	case len(head) >= 2 && (head[0] == 0xFF && head[1] == 0xFE || head[0] == 0xFE && head[1] == 0xFF):
		st.fatal(0, "the file is UTF-16; save it as UTF-8")
		return errStop
	}
	if f == FormatAuto || f == "" {
		f = sniff(br)
	}
	switch f {
	case FormatCSV:
		return st.readCSV(br)
	case FormatJSON, FormatNDJSON:
		return st.readJSON(br, f == FormatNDJSON)
	}
	return fmt.Errorf("%s: unknown format %q", st.name, f)
}

// sniff looks at the first byte that is not white space.
func sniff(br *bufio.Reader) Format {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			return FormatCSV
		}
		switch b[n-1] {
		case ' ', '\t', '\r', '\n':
			if err == nil {
				continue
			}
			return FormatCSV
		case '[', '{':
			return FormatJSON
		}
		return FormatCSV
	}
}

// state is what Read keeps while it goes through one input.
type state struct {
	name    string
	fn      func(Row) error
	res     *Summary
	max     int // problems / warnings listed
	rows    int // data rows allowed
	records int // data rows seen (valid, invalid, duplicate)
	chk     check
	// seen maps a hash of the key of each unique valid row, and of each
	// side of a group, to the line that added it (see row). Two
	// independently seeded 64-bit maphash values make 128 bits; the seeds
	// are random per Read, so no input can aim for a collision.
	seen         *dupSet
	seed1, seed2 maphash.Seed
	key          []byte
	def          string // Reader.DefaultTenant
	refuse       func(string) string
	refused      map[string]string // Reader.Refuse's answers, by tenant
}

// appendKey appends s.Key() to b without allocating (TestAppendKey keeps
// the two in step).
func appendKey(b []byte, s *assign.Spec) []byte {
	t := &s.Target
	for i, v := range [...]string{s.ConfigurationID, string(s.Path), string(t.Type), t.GroupID, t.CollectionID, t.FilterID, string(t.FilterType)} {
		if i > 0 {
			b = append(b, '|')
		}
		b = append(b, v...)
	}
	if n := &s.Names; n.Any() {
		for _, v := range [...]string{n.Configuration, n.Group, n.Filter} {
			b = append(b, '|')
			b = strconv.AppendQuote(b, v)
		}
	}
	return b
}

// record counts one data row; false (with the problem recorded) when the
// input has too many.
func (st *state) record(line int) bool {
	st.records++
	if st.records > st.rows {
		st.fatal(line, fmt.Sprintf("more than %d rows; split the input into several files", st.rows))
		return false
	}
	return true
}

// What state.row keeps in the duplicate set for a key: the line of the
// row that added it, shifted left by entryShift, and flags.
const (
	// entrySideOnly marks the side entry of a filtered group row (see
	// state.row): no row has its key as its own.
	entrySideOnly = 1 << 0
	// entryRemove marks an entry added by a row that removes.
	entryRemove = 1 << 1
	entryShift  = 2
	// maxEntryLine is the largest line an entry holds; a later one is
	// remembered as this. Lines are bounded by the row limit but for blank
	// CSV rows and JSON objects spread over many lines: passing it takes
	// a file of a gigabyte or more.
	maxEntryLine = 1<<(32-entryShift) - 1
)

// entry is the entry of a row at line that does a, with flags.
func entry(line int, a assign.Action, flags uint32) uint32 {
	if a == assign.ActionRemove {
		flags |= entryRemove
	}
	return uint32(min(line, maxEntryLine))<<entryShift | flags
}

func entryLine(e uint32) int { return int(e >> entryShift) }

// entryAction is what the row that added e does.
func entryAction(e uint32) assign.Action {
	if e&entryRemove != 0 {
		return assign.ActionRemove
	}
	return assign.ActionAssign
}

// row handles a validated row of tenant ("" when it names none), read in
// vocabulary v: a row that includes a group another row excludes on the
// same configuration path in the same tenant, or the other way round, is
// invalid (Intune refuses the pair), whatever the two rows do; a row with
// the key of another in the same tenant is invalid when one assigns and
// the other removes, else a duplicate, counted and warned about; anything
// else is passed to fn.
//
// The duplicate set holds one entry a row, but for a filtered group row
// whose group's side is new, which takes two. A group row's side is its
// group put on one side (included or excluded) of its configuration path
// in its tenant (sideHash). A group or exclusion group row without a
// filter is nothing but its side: its row key is its side's key. A
// filtered group row (exclusion groups take no filter) has its own row
// key (rowHash) and adds its side as an entrySideOnly entry when the side
// is new. When a row without a filter then finds such an entry for its
// side, it is no duplicate: the entry becomes the row's own. The entry of
// a side thus holds one of the lines that put the group on that side, not
// always the first, and a later conflict names that one. Each entry also
// says whether its row removes (entryRemove), for the messages: a row
// entry what its row does, a side entry what the row whose line it holds
// does.
func (st *state) row(line int, tenant string, spec assign.Spec, v *vocab) error {
	if tenant == "" {
		tenant = st.def
	}
	if st.refuse != nil && tenant != "" {
		msg, ok := st.refused[tenant]
		if !ok {
			msg = st.refuse(tenant)
			st.refused[tenant] = msg
		}
		if msg != "" {
			st.invalid(line, msg)
			return nil
		}
	}
	here := entry(line, spec.Action, 0)
	t := spec.Target.Type
	if t != assign.TargetGroup && t != assign.TargetExclusionGroup {
		h1, h2 := st.rowHash(tenant, &spec)
		if e, found := st.seen.add(h1, h2, here); found {
			return st.repeat(line, e, &spec, v)
		}
		return st.pass(line, tenant, spec)
	}
	other := assign.TargetGroup
	if t == assign.TargetGroup {
		other = assign.TargetExclusionGroup
	}
	if e, found := st.seen.find(st.sideHash(tenant, &spec, other)); found {
		st.invalid(line, v.conflict(&spec, entryLine(e), entryAction(e)))
		return nil
	}
	s1, s2 := st.sideHash(tenant, &spec, t)
	if spec.Target.FilterID == "" && spec.Names.Filter == "" {
		e, found := st.seen.add(s1, s2, here)
		switch {
		case !found:
		case e&entrySideOnly == 0:
			return st.repeat(line, e, &spec, v)
		default:
			st.seen.update(s1, s2, here)
		}
		return st.pass(line, tenant, spec)
	}
	h1, h2 := st.rowHash(tenant, &spec)
	if e, found := st.seen.add(h1, h2, here); found {
		return st.repeat(line, e, &spec, v)
	}
	st.seen.add(s1, s2, entry(line, spec.Action, entrySideOnly)) // nothing if the side is known
	return st.pass(line, tenant, spec)
}

// pass hands a unique valid row to fn.
func (st *state) pass(line int, tenant string, spec assign.Spec) error {
	st.res.Rows++
	if err := st.fn(Row{Line: line, Spec: spec, TenantID: tenant}); err != nil {
		return fmt.Errorf("%s:%d: %w", st.name, line, err)
	}
	return nil
}

// repeat handles a row spec whose key an earlier row's entry e holds: a
// duplicate when the two do the same, else invalid.
func (st *state) repeat(line int, e uint32, spec *assign.Spec, v *vocab) error {
	if a := entryAction(e); a != spec.Action {
		st.invalid(line, v.undoes(spec, entryLine(e), a))
		return nil
	}
	st.res.Duplicates++
	if len(st.res.Warnings) < st.max {
		st.res.Warnings = append(st.res.Warnings, Problem{File: st.name, Line: line, Warning: true,
			Msg: fmt.Sprintf("duplicate of line %d; enqueued once", entryLine(e))})
	}
	return nil
}

// rowHash hashes spec's key (appendKey) in tenant.
func (st *state) rowHash(tenant string, spec *assign.Spec) (uint64, uint64) {
	k := append(st.key[:0], tenant...)
	k = append(k, '|')
	k = appendKey(k, spec)
	st.key = k
	return maphash.Bytes(st.seed1, k), maphash.Bytes(st.seed2, k)
}

// sideHash hashes the key of one side (typ: group or exclusion group) of
// spec's group on its configuration path in tenant, the group and the
// configuration as the row gives them (id or name). It starts with
// "side|", which no row key (rowHash) does: those start with a tenant,
// a GUID or "".
func (st *state) sideHash(tenant string, spec *assign.Spec, typ assign.TargetType) (uint64, uint64) {
	k := append(st.key[:0], "side|"...)
	for _, s := range [...]string{tenant, spec.ConfigurationID, string(spec.Path), string(typ), spec.Target.GroupID} {
		k = append(k, s...)
		k = append(k, '|')
	}
	k = strconv.AppendQuote(k, spec.Names.Configuration)
	k = append(k, '|')
	k = strconv.AppendQuote(k, spec.Names.Group)
	st.key = k
	return maphash.Bytes(st.seed1, k), maphash.Bytes(st.seed2, k)
}

// invalid records an invalid row.
func (st *state) invalid(line int, msg string) {
	st.res.Invalid++
	if len(st.res.Problems) < st.max {
		st.res.Problems = append(st.res.Problems, Problem{File: st.name, Line: line, Msg: msg})
	}
}

// fatal records a problem with the file as a whole; it is always listed.
func (st *state) fatal(line int, msg string) {
	st.res.Invalid++
	st.res.Problems = append(st.res.Problems, Problem{File: st.name, Line: line, Msg: msg})
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	hr.n += int64(n)
	return n, err
}

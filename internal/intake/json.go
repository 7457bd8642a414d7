package intake

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The JSON reader is a small hand-written scanner rather than encoding/json:
// it must know the line of every object, reject unknown and repeated keys by
// their exact spelling (encoding/json matches keys case-insensitively and
// keeps the last of a repeat), keep going after a bad row, and never hold
// more than one value. Strings with escapes are still decoded by
// encoding/json.

const (
	maxString = 64 << 10 // longest string accepted, in bytes
	maxDepth  = 64       // deepest nesting skipped inside an unknown value
)

// syntaxError is a JSON syntax error at a line; it stops reading.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

type scanner struct {
	r        io.Reader
	buf      []byte
	pos, end int
	rerr     error // read error other than io.EOF
	eof      bool
	line     int
	ndjson   bool // a value may not span lines
	inValue  bool // inside a top-level value
	str      []byte
	dec      []byte
}

func newScanner(r io.Reader, ndjson bool) *scanner {
	return &scanner{r: r, buf: make([]byte, 32<<10), line: 1, ndjson: ndjson}
}

// more makes sure a byte is buffered; false at the end of input or on a read
// error (in s.rerr).
func (s *scanner) more() bool {
	if s.pos < s.end {
		return true
	}
	for !s.eof && s.rerr == nil {
		n, err := s.r.Read(s.buf)
		s.pos, s.end = 0, n
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			s.rerr = err
		}
		if n > 0 {
			return true
		}
	}
	return false
}

func (s *scanner) peek() (byte, bool) {
	if s.pos < s.end {
		return s.buf[s.pos], true
	}
	if !s.more() {
		return 0, false
	}
	return s.buf[s.pos], true
}

// fail is the error for an unexpected byte (or the end of input, or the
// read error that ended it).
func (s *scanner) fail(expected string) error {
	if c, ok := s.peek(); ok {
		return s.syntax(fmt.Sprintf("expected %s, found %s", expected, describe(c)))
	}
	if s.rerr != nil {
		return s.rerr
	}
	return s.syntax(fmt.Sprintf("expected %s, found the end of the input", expected))
}

func (s *scanner) syntax(msg string) error {
	return &syntaxError{line: s.line, msg: msg}
}

func describe(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	if c == '\n' {
		return "the end of the line"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// ws skips white space, counting lines.
func (s *scanner) ws() error {
	for {
		for s.pos < s.end {
			switch s.buf[s.pos] {
			case ' ', '\t', '\r':
			case '\n':
				if s.ndjson && s.inValue {
					return s.syntax("the line ends inside an object (NDJSON has one object per line)")
				}
				s.line++
			default:
				return nil
			}
			s.pos++
		}
		if !s.more() {
			return s.rerr
		}
	}
}

// expect consumes c, or fails.
func (s *scanner) expect(c byte, what string) error {
	if b, ok := s.peek(); ok && b == c {
		s.pos++
		return nil
	}
	return s.fail(what)
}

// readString reads a string whose opening quote is next. The result is valid
// until the next call.
func (s *scanner) readString() ([]byte, error) {
	s.pos++ // opening quote
	s.str = s.str[:0]
	escaped := false
	for {
		if !s.more() {
			if s.rerr != nil {
				return nil, s.rerr
			}
			return nil, s.syntax("string not closed at the end of the input")
		}
		start := s.pos
		for s.pos < s.end {
			c := s.buf[s.pos]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			s.pos++
		}
		s.str = append(s.str, s.buf[start:s.pos]...)
		if len(s.str) > maxString {
			return nil, s.syntax(fmt.Sprintf("string longer than %d bytes", maxString))
		}
		if s.pos == s.end {
			continue
		}
		switch c := s.buf[s.pos]; {
		case c == '"':
			s.pos++
			if !escaped {
				return s.str, nil
			}
			return s.unescape()
		case c == '\\':
			escaped = true
			s.str = append(s.str, c)
			s.pos++
			c, ok := s.peek()
			if !ok || c < 0x20 {
				continue // reported by the loop
			}
			s.str = append(s.str, c)
			s.pos++
		case c == '\n':
			return nil, s.syntax("string not closed at the end of the line")
		default:
			return nil, s.syntax(fmt.Sprintf("control character %s in string", describe(c)))
		}
	}
}

// unescape decodes s.str, which holds escapes, with encoding/json.
func (s *scanner) unescape() ([]byte, error) {
	s.dec = append(append(append(s.dec[:0], '"'), s.str...), '"')
	var v string
	if err := json.Unmarshal(s.dec, &v); err != nil {
		return nil, s.syntax(fmt.Sprintf("invalid escape in string %s", s.dec))
	}
	s.str = append(s.str[:0], v...)
	return s.str, nil
}

// skipValue reads and discards a value, returning its kind for messages.
func (s *scanner) skipValue(depth int) (string, error) {
	if depth > maxDepth {
		return "", s.syntax(fmt.Sprintf("values nested deeper than %d levels", maxDepth))
	}
	c, ok := s.peek()
	if !ok {
		return "", s.fail("a value")
	}
	switch {
	case c == '{':
		s.pos++
		if err := s.ws(); err != nil {
			return "", err
		}
		if c, ok := s.peek(); ok && c == '}' {
			s.pos++
			return "an object", nil
		}
		for {
			if c, ok := s.peek(); !ok || c != '"' {
				return "", s.fail("a key string")
			}
			if _, err := s.readString(); err != nil {
				return "", err
			}
			if err := s.colon(); err != nil {
				return "", err
			}
			if _, err := s.skipValue(depth + 1); err != nil {
				return "", err
			}
			if end, err := s.next('}'); err != nil || end {
				return "an object", err
			}
		}
	case c == '[':
		s.pos++
		if err := s.ws(); err != nil {
			return "", err
		}
		if c, ok := s.peek(); ok && c == ']' {
			s.pos++
			return "an array", nil
		}
		for {
			if _, err := s.skipValue(depth + 1); err != nil {
				return "", err
			}
			if end, err := s.next(']'); err != nil || end {
				return "an array", err
			}
		}
	case c == '"':
		_, err := s.readString()
		return "a string", err
	case c == 't' || c == 'f' || c == 'n':
		w, err := s.word()
		if err != nil {
			return "", err
		}
		if w == "null" {
			return "null", nil
		}
		return "a boolean", nil
	case c == '-' || '0' <= c && c <= '9':
		return "a number", s.number()
	}
	return "", s.fail("a value")
}

// colon reads the ':' after a key and the white space around it.
func (s *scanner) colon() error {
	if err := s.ws(); err != nil {
		return err
	}
	if err := s.expect(':', "':' after a key"); err != nil {
		return err
	}
	return s.ws()
}

// next reads what follows a member of an object or array: ',' and the white
// space before the next member (end false), or the closing byte (end true).
func (s *scanner) next(closing byte) (end bool, err error) {
	if err := s.ws(); err != nil {
		return false, err
	}
	c, ok := s.peek()
	switch {
	case ok && c == ',':
		s.pos++
		if err := s.ws(); err != nil {
			return false, err
		}
		if c, ok := s.peek(); ok && (c == '}' || c == ']') {
			return false, s.syntax(fmt.Sprintf("trailing comma before %s", describe(c)))
		}
		return false, nil
	case ok && c == closing:
		s.pos++
		return true, nil
	}
	return false, s.fail(fmt.Sprintf("',' or %s", describe(closing)))
}

// word reads true, false or null.
func (s *scanner) word() (string, error) {
	var b [5]byte
	n := 0
	for {
		c, ok := s.peek()
		if !ok || c < 'a' || c > 'z' {
			break
		}
		if n == len(b) {
			return "", s.syntax("invalid literal (want true, false or null)")
		}
		b[n] = c
		n++
		s.pos++
	}
	switch w := string(b[:n]); w {
	case "true", "false", "null":
		return w, nil
	}
	return "", s.syntax(fmt.Sprintf("invalid literal %q (want true, false or null)", b[:n]))
}

// number reads a JSON number.
func (s *scanner) number() error {
	s.str = s.str[:0]
	for {
		c, ok := s.peek()
		if !ok || !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			break
		}
		if len(s.str) > 64 {
			return s.syntax("number too long")
		}
		s.str = append(s.str, c)
		s.pos++
	}
	if !validNumber(s.str) {
		return s.syntax(fmt.Sprintf("invalid number %q", s.str))
	}
	return nil
}

func validNumber(b []byte) bool {
	i, n := 0, len(b)
	digits := func() bool {
		j := i
		for i < n && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < n && b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < n && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == n
}

// jsonKey is a key of a row object or of its target: the JSON key of a
// field, or "target" (field numFields).
type jsonKey struct {
	name  string
	field field
}

// Keys of a row object and of its target, from fieldNames.
var rowKeys, targetKeys = func() (row, target []jsonKey) {
	for f, n := range fieldNames {
		if k, ok := strings.CutPrefix(n.json, targetPrefix); ok {
			target = append(target, jsonKey{k, field(f)})
		} else {
			row = append(row, jsonKey{n.json, field(f)})
		}
	}
	return append(row, jsonKey{"target", numFields}), target
}()

const targetPrefix = "target."

// readJSON reads a JSON array of objects or a stream of objects.
func (st *state) readJSON(r io.Reader, ndjson bool) error {
	s := newScanner(r, ndjson)
	err := st.jsonTop(s)
	if se, ok := err.(*syntaxError); ok {
		st.fatal(se.line, "syntax error: "+se.msg)
		return errStop
	}
	if err != nil && err != errStop && s.rerr == err {
		return fmt.Errorf("reading %s: %w", st.name, err)
	}
	return err
}

func (st *state) jsonTop(s *scanner) error {
	if err := s.ws(); err != nil {
		return err
	}
	c, ok := s.peek()
	if !ok {
		return s.rerr // no rows
	}
	if c == '[' && !s.ndjson {
		return st.jsonArray(s)
	}
	if c != '{' && !s.ndjson {
		return s.fail("'[' or '{' at the start of the JSON input")
	}
	// A stream of values: NDJSON, or objects separated by white space.
	for {
		s.inValue = false
		if err := s.ws(); err != nil {
			return err
		}
		if _, ok := s.peek(); !ok {
			return s.rerr
		}
		s.inValue = true
		if err := st.jsonValue(s); err != nil {
			return err
		}
		if s.ndjson {
			// Nothing else on the line.
			for {
				c, ok := s.peek()
				if !ok || c == '\n' {
					break
				}
				if c != ' ' && c != '\t' && c != '\r' {
					return s.syntax(fmt.Sprintf("found %s after the object (NDJSON has one object per line)", describe(c)))
				}
				s.pos++
			}
		}
	}
}

func (st *state) jsonArray(s *scanner) error {
	s.pos++ // '['
	s.inValue = true
	if err := s.ws(); err != nil {
		return err
	}
	if c, ok := s.peek(); ok && c == ']' {
		s.pos++
	} else {
		for {
			if err := st.jsonValue(s); err != nil {
				return err
			}
			end, err := s.next(']')
			if err != nil {
				return err
			}
			if end {
				break
			}
		}
	}
	s.inValue = false
	if err := s.ws(); err != nil {
		return err
	}
	if c, ok := s.peek(); ok {
		return s.syntax(fmt.Sprintf("found %s after the end of the array", describe(c)))
	}
	return s.rerr
}

// jsonValue reads one element of the top-level array or stream: a row.
func (st *state) jsonValue(s *scanner) error {
	line := s.line
	if !st.record(line) {
		return errStop
	}
	st.chk.reset()
	if c, ok := s.peek(); !ok || c != '{' {
		kind, err := s.skipValue(1)
		if err != nil {
			return err
		}
		st.invalid(line, fmt.Sprintf("expected an object, found %s", kind))
		return nil
	}
	var f fields
	if err := st.jsonObject(s, rowKeys, "", &f); err != nil {
		return err
	}
	st.chk.endKeys()
	spec := st.chk.spec(&f, &jsonVocab)
	tenant := st.chk.tenant(&f, &jsonVocab)
	if !st.chk.ok() {
		st.invalid(line, st.chk.String())
		return nil
	}
	return st.row(line, tenant, spec, &jsonVocab)
}

// jsonObject reads a row object (prefix "") or its target (prefix
// targetPrefix) into f. Problems that do not break the syntax go to st.chk.
func (st *state) jsonObject(s *scanner, keys []jsonKey, prefix string, f *fields) error {
	s.pos++ // '{'
	if err := s.ws(); err != nil {
		return err
	}
	var seen [numFields + 1]bool // by index in keys
	if prefix == "" {
		f.target = targetMissing
	}
	if c, ok := s.peek(); ok && c == '}' {
		s.pos++
		return nil
	}
	for {
		if c, ok := s.peek(); !ok || c != '"' {
			return s.fail("a key string")
		}
		kb, err := s.readString()
		if err != nil {
			return err
		}
		k := -1
		for i, key := range keys {
			if string(kb) == key.name {
				k = i
				break
			}
		}
		// kb is only good until the next string is read: word the message
		// now, and only for the keys listed.
		var msg string
		switch {
		case k < 0:
			if st.chk.listKey(false) {
				msg = unknownKey(prefix, kb, keys)
			}
		case seen[k]:
			if st.chk.listKey(true) {
				msg = fmt.Sprintf("duplicate key %q", prefix+keys[k].name)
			}
		}
		if err := s.colon(); err != nil {
			return err
		}
		switch {
		case k < 0 || seen[k]:
			if _, err := s.skipValue(1); err != nil {
				return err
			}
			if msg != "" {
				st.chk.add(msg)
			}
		case keys[k].field == numFields: // "target"
			seen[k] = true
			c, ok := s.peek()
			if ok && c == '{' {
				f.target = targetObject
				if err := st.jsonObject(s, targetKeys, targetPrefix, f); err != nil {
					return err
				}
				break
			}
			kind, err := s.skipValue(1)
			if err != nil {
				return err
			}
			if kind != "null" {
				st.chk.add(fmt.Sprintf("target must be an object, not %s", kind))
				f.target = targetBad
			}
		default:
			seen[k] = true
			fd := keys[k].field
			if f.v[fd], f.typeErr[fd], err = st.jsonString(s, prefix+keys[k].name); err != nil {
				return err
			}
		}
		end, err := s.next('}')
		if err != nil {
			return err
		}
		if end {
			return nil
		}
	}
}

// unknownKey is the message for key kb, which is not one of keys, with a
// suggestion (suggest) when one is close.
func unknownKey(prefix string, kb []byte, keys []jsonKey) string {
	msg := "unknown key " + shown(prefix, kb)
	names := make([]string, len(keys))
	for i, key := range keys {
		names[i] = key.name
	}
	if s, ok := suggest(string(kb), names); ok {
		msg += fmt.Sprintf(" (did you mean %q?)", prefix+s)
	}
	return msg
}

// suggest is the one rule for "did you mean" on a JSON key or a CSV
// column: the name among names that got spells with other case or word
// separators (ConfigurationId, configuration-id and configurationId for
// configuration_id), else the one name within a typo or two of it (one
// for short names), compared the same way. No suggestion when two are as
// close, nor for a name longer than maxKeyShown.
func suggest(got string, names []string) (string, bool) {
	if len(got) > maxKeyShown {
		return "", false
	}
	g := foldName(got)
	if g == "" {
		return "", false
	}
	best, bestD, tie := "", 3, false
	for _, n := range names {
		d := editDistance(g, foldName(n))
		if d == 0 {
			return n, true
		}
		limit := 2
		if len(g) < 8 {
			limit = 1
		}
		switch {
		case d > limit:
		case d < bestD:
			best, bestD, tie = n, d, false
		case d == bestD:
			tie = true
		}
	}
	return best, best != "" && !tie
}

// foldName is a name without case or word separators.
func foldName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r != '_' && r != '-' && r != ' ' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// jsonString reads a value that must be a string or null (""), trimmed;
// typeErr when it was neither (and the problem recorded).
func (st *state) jsonString(s *scanner, key string) (v string, typeErr bool, err error) {
	if c, ok := s.peek(); ok && c == '"' {
		b, err := s.readString()
		if err != nil {
			return "", false, err
		}
		return strings.TrimSpace(string(b)), false, nil
	}
	kind, err := s.skipValue(1)
	if err != nil {
		return "", false, err
	}
	if kind != "null" {
		st.chk.add(fmt.Sprintf("%s must be a string, not %s", key, kind))
		return "", true, nil
	}
	return "", false, nil
}

// Package text makes foreign text (Graph's error messages, request ids,
// anything a server or a file hands us) fit to store and print: valid
// UTF-8, no NUL bytes (Postgres refuses both in text columns), and bounded
// in length without cutting a character in two.
package text

import "strings"

// Bound returns s as valid UTF-8 without NUL bytes, cut to at most n bytes
// on a character boundary. A cut string ends with "…" (within the n
// bytes). n <= 0 means no length bound.
func Bound(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if n <= 0 || len(s) <= n {
		return s
	}
	const ellipsis = "…"
	mark := ellipsis
	if n <= 2*len(ellipsis) {
		mark = "" // too short to spend on the mark
	}
	cut := n - len(mark)
	// Step back to the start of a character: continuation bytes are 10xxxxxx.
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

// Bounds of the text bulkassign keeps: messages (Graph's error messages,
// reasons), and short tokens (error codes, request ids, assignment ids).
const (
	MaxMessage = 2000
	MaxShort   = 200
)

// Message is Bound(s, MaxMessage).
func Message(s string) string { return Bound(s, MaxMessage) }

// Short is Bound(s, MaxShort).
func Short(s string) string { return Bound(s, MaxShort) }

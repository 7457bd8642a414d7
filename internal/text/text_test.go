package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "ok", 10, "ok"},
		{"no bound", strings.Repeat("a", 5000), 0, strings.Repeat("a", 5000)},
		{"nul stripped", "a\x00b", 10, "ab"},
		{"invalid utf8 replaced", "a\xffb", 10, "a\uFFFDb"},
		{"cut on ascii", "abcdefghij", 8, "abcde…"},
		// "é" is 2 bytes: a cut at byte 5 would split the third one.
		{"cut before a split rune", "ééééé", 8, "éé…"},
		{"tiny bound", "ééé", 2, "é"},
		{"exact fit", "éé", 4, "éé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Bound(tt.in, tt.n)
			if got != tt.want {
				t.Errorf("Bound(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
			if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
				t.Errorf("Bound(%q, %d) = %q is not storable text", tt.in, tt.n, got)
			}
			if tt.n > 0 && len(got) > tt.n {
				t.Errorf("Bound(%q, %d) is %d bytes", tt.in, tt.n, len(got))
			}
		})
	}
}

func FuzzBound(f *testing.F) {
	f.Add("héllo\x00wörld\xff", 7)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n = n % 4096
		got := Bound(s, n)
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Fatalf("Bound(%q, %d) = %q is not storable", s, n, got)
		}
		if n > 0 && len(got) > n {
			t.Fatalf("Bound(%q, %d) = %d bytes", s, n, len(got))
		}
	})
}

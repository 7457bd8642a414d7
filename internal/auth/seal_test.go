package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealer(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	s, err := newSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"RefreshToken":{"x":{"secret":"gsr1.not-a-real-token"}}}`)
	blob := s.seal("delegated/t/c", plain)
	if bytes.Contains(blob, []byte("gsr1")) || bytes.Contains(blob, []byte("RefreshToken")) {
		t.Fatalf("sealed cache holds plaintext: %q", blob)
	}
	if again := s.seal("delegated/t/c", plain); bytes.Equal(again[:13], blob[:13]) {
		t.Fatalf("two seals share a nonce: %x", again[:13])
	}
	got, err := s.open("delegated/t/c", s.check, blob)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q, %v; want the plaintext", got, err)
	}

	other, err := newSealer(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name  string
		s     *sealer
		row   string
		check []byte
		blob  []byte
		want  error
	}{
		{"wrong key", other, "delegated/t/c", s.check, blob, ErrWrongKey},
		{"another row's ciphertext", s, "delegated/t/other", s.check, blob, errDamaged},
		{"flipped bit", s, "delegated/t/c", s.check, flipped, errDamaged},
		{"truncated", s, "delegated/t/c", s.check, blob[:10], errDamaged},
		{"unknown format", s, "delegated/t/c", s.check, append([]byte{9}, blob[1:]...), errDamaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.s.open(tt.row, tt.check, tt.blob)
			if !errors.Is(err, tt.want) || got != nil {
				t.Fatalf("open = %q, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestSealerRejectsShortKey(t *testing.T) {
	t.Parallel()
	if _, err := newSealer(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted; want an error naming BULKASSIGN_TOKEN_CACHE_KEY")
	}
}

package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the length of BULKASSIGN_TOKEN_CACHE_KEY once decoded.
const KeySize = 32

// sealFormat is the first byte of every sealed cache, so the format can
// change without misreading old rows.
const sealFormat byte = 1

// ErrWrongKey means the stored sign-in was sealed under another key.
var ErrWrongKey = errors.New("BULKASSIGN_TOKEN_CACHE_KEY is not the key the stored sign-in was sealed with (set that key, or run `worker login` again)")

// errDamaged means the key is right but the ciphertext does not open.
var errDamaged = errors.New("the stored sign-in is damaged (run `worker login` again)")

// sealer encrypts the token cache with AES-256-GCM. Its encryption key and
// its key check are both derived from the configured key with HMAC, so the
// check stored beside the ciphertext says nothing about the encryption key
// and lets a wrong key be told apart from a damaged row.
type sealer struct {
	aead  cipher.AEAD
	check []byte
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("BULKASSIGN_TOKEN_CACHE_KEY: the key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(derive(key, "bulkassign token cache encryption v1"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, check: derive(key, "bulkassign token cache key check v1")[:16]}, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// aad binds a sealed cache to its row: a ciphertext copied under another
// name does not open.
func aad(name string) []byte { return []byte("bulkassign/token_caches/" + name) }

// seal returns format byte, nonce and ciphertext with its tag.
func (s *sealer) seal(name string, plain []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealFormat
	if _, err := rand.Read(out[1:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never returns an error since Go 1.24
	}
	return s.aead.Seal(out, out[1:], plain, aad(name))
}

// open reverses seal; check is the key check stored with the row.
func (s *sealer) open(name string, check, blob []byte) ([]byte, error) {
	if !hmac.Equal(check, s.check) {
		return nil, ErrWrongKey
	}
	n := s.aead.NonceSize()
	if len(blob) < 1+n+s.aead.Overhead() || blob[0] != sealFormat {
		return nil, errDamaged
	}
	plain, err := s.aead.Open(nil, blob[1:1+n], blob[1+n:], aad(name))
	if err != nil {
		return nil, errDamaged
	}
	return plain, nil
}

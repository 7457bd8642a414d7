package intake

// dupSet remembers the first line of every distinct key, by a hash of the
// key, in 16 bytes a key: each row's key (to find duplicates) and, for a
// group or exclusion group row, its side of the group on its configuration
// path (to find a group both included and excluded; see state.row). A map
// (a map[[16]byte]int32 takes 28 to 45 bytes a key in Go 1.26, depending on where it is in its growth, which at a million
// rows is 20+ MB more live heap and, with GOGC, twice that in RSS).
//
// The hash is 128 bits; 12 to 16 of them choose a bucket, 96 more are kept,
// so two distinct keys are confused with probability about n²/2^109 (1e-21
// for a million rows). Each bucket is a slice sorted by hash, searched by
// bisection and grown by a quarter at a time; buckets are sized so that one
// holds about 256 rows at the input's row limit.
type dupSet struct {
	buckets [][]dupEntry
	shift   uint // bucket index = h2 >> shift
}

type dupEntry struct {
	a    uint64 // h1
	b    uint32 // low bits of h2
	line int32
}

func newDupSet(maxRows int) *dupSet {
	bits := uint(8)
	for bits < 16 && 1<<(bits+8) < maxRows {
		bits++
	}
	return &dupSet{buckets: make([][]dupEntry, 1<<bits), shift: 64 - bits}
}

// add records the key hashed (h1, h2) at line, or returns the line of its
// first occurrence.
func (d *dupSet) add(h1, h2 uint64, line int32) (first int32, dup bool) {
	bp, lo, found := d.search(h1, h2)
	s := *bp
	if found {
		return s[lo].line, true
	}
	if len(s) == cap(s) {
		n := make([]dupEntry, len(s), cap(s)+cap(s)/4+4)
		copy(n, s)
		s = n
	}
	s = s[:len(s)+1]
	copy(s[lo+1:], s[lo:])
	s[lo] = dupEntry{a: h1, b: uint32(h2), line: line}
	*bp = s
	return 0, false
}

// find returns the line the key hashed (h1, h2) was added at, if it was.
func (d *dupSet) find(h1, h2 uint64) (line int32, ok bool) {
	bp, lo, found := d.search(h1, h2)
	if !found {
		return 0, false
	}
	return (*bp)[lo].line, true
}

// search finds the key's bucket and where in it the key is, or would go.
func (d *dupSet) search(h1, h2 uint64) (bp *[]dupEntry, lo int, found bool) {
	bp = &d.buckets[h2>>d.shift]
	s := *bp
	a, b := h1, uint32(h2)
	hi := len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if e := &s[m]; e.a < a || e.a == a && e.b < b {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return bp, lo, lo < len(s) && s[lo].a == a && s[lo].b == b
}

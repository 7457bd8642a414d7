package intake

// dupSet remembers a value (state.row packs a line and flags into it) for
// every distinct key, by a hash of the key, in 16 bytes a key, about 18
// with the room buckets grow into. The keys are each row's key (to find
// duplicates) and the side of a group on its configuration path (to find a
// group both included and excluded): state.row makes the two one key for a
// group or exclusion group row without a filter, so that a row takes one
// entry, and only a filtered group row whose group's side is new takes a
// second. A map would cost more (a map[[16]byte]int32 takes 28 to 45 bytes
// a key in Go 1.26, depending on where it is in its growth, which at a
// million rows is 20+ MB more live heap and, with GOGC, twice that in RSS).
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
	a uint64 // h1
	b uint32 // low bits of h2
	v uint32 // the value
}

func newDupSet(maxRows int) *dupSet {
	bits := uint(8)
	for bits < 16 && 1<<(bits+8) < maxRows {
		bits++
	}
	return &dupSet{buckets: make([][]dupEntry, 1<<bits), shift: 64 - bits}
}

// add records the key hashed (h1, h2) with value v, or returns the value
// it already has.
func (d *dupSet) add(h1, h2 uint64, v uint32) (old uint32, found bool) {
	bp, lo, found := d.search(h1, h2)
	s := *bp
	if found {
		return s[lo].v, true
	}
	if len(s) == cap(s) {
		n := make([]dupEntry, len(s), cap(s)+cap(s)/4+4)
		copy(n, s)
		s = n
	}
	s = s[:len(s)+1]
	copy(s[lo+1:], s[lo:])
	s[lo] = dupEntry{a: h1, b: uint32(h2), v: v}
	*bp = s
	return 0, false
}

// find returns the value of the key hashed (h1, h2), if it was added.
func (d *dupSet) find(h1, h2 uint64) (v uint32, ok bool) {
	bp, lo, found := d.search(h1, h2)
	if !found {
		return 0, false
	}
	return (*bp)[lo].v, true
}

// update sets the value of the key hashed (h1, h2), which must have been
// added.
func (d *dupSet) update(h1, h2 uint64, v uint32) {
	bp, lo, found := d.search(h1, h2)
	if !found {
		panic("dupSet.update of a key not added")
	}
	(*bp)[lo].v = v
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

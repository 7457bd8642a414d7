package intake

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// manyKeys is one JSON object of about size bytes: a row with a repeated
// key and a 1000-byte unknown key in its target, then short unknown keys
// and, last, 8 unknown keys of 60,000 bytes that are not UTF-8 (quoted,
// each byte takes 4). n is the number of unknown keys.
func manyKeys(size int) (data []byte, n int) {
	var b bytes.Buffer
	b.WriteString(`{"configurationId": "` + c1 + `", "configurationId": "` + c2 + `", "target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget", "` +
		strings.Repeat("é", 500) + `": 1}`)
	n = 1
	huge := `, "` + strings.Repeat("\xff", 60_000) + `": null`
	for i := 1; b.Len() < size-8*len(huge); i++ {
		fmt.Fprintf(&b, `, "unknown-%06d": %d`, i, i)
		n++
	}
	for range 8 {
		b.WriteString(huge)
		n++
	}
	b.WriteString("}\n")
	return b.Bytes(), n
}

// TestManyKeysMemory reads one 2.4 MB object with about 100,000 unknown
// keys: what it allocates must not grow with the keys (a message for each
// made it about 20 times the input), and the row's problem lists the first
// few keys, each shown no longer than maxKeyShown bytes, then a count.
func TestManyKeysMemory(t *testing.T) {
	data, n := manyKeys(2400 << 10)
	if n < 40_000 {
		t.Fatalf("only %d unknown keys", n)
	}
	read := func() *Summary {
		res, err := Reader{Name: "big.json", Format: FormatJSON}.Read(bytes.NewReader(data), func(Row) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	read() // warm up
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := read()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes, %d unknown keys: %d bytes allocated (%.2f per input byte)", len(data), n, alloc, float64(alloc)/float64(len(data)))
	if limit := uint64(5 * len(data)); alloc > limit {
		t.Errorf("allocated %d bytes for a %d-byte input; want < %d", alloc, len(data), limit)
	}
	want := `big.json:1: duplicate key "configurationId"; unknown key "target.` + strings.Repeat("é", 32) + `"... (1000 bytes); ` +
		`unknown key "unknown-000001"; unknown key "unknown-000002"; unknown key "unknown-000003"; ` + fmt.Sprintf("... and %d more unknown keys", n-4)
	if got := res.Err(); got == nil || got.Error() != want {
		t.Errorf("Err() =\n%v\nwant\n%s", got, want)
	}
}

// BenchmarkManyKeys reads the object of TestManyKeysMemory; B/op is what
// one read allocates.
func BenchmarkManyKeys(b *testing.B) {
	data, _ := manyKeys(2400 << 10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Reader{Name: "big.json", Format: FormatJSON}.Read(bytes.NewReader(data), func(Row) error { return nil })
		if err != nil || res.Invalid != 1 {
			b.Fatal(err, res.Invalid)
		}
	}
}

// TestManyColumns reads a 1 MB CSV header of unknown columns: the first
// maxNamed problems are listed, then one count, not a problem a column
// (which took half a million problems and 350 MB).
func TestManyColumns(t *testing.T) {
	in := "configuration_id," + strings.Repeat("a,", 500_000) + "b\n" + c1 + "\n"
	res, err := Reader{Name: "in.csv", Format: FormatCSV}.Read(strings.NewReader(in), func(Row) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	unknown := `in.csv:1: unknown column "a" (columns are configuration_id, target_type, group_id, collection_id, filter_id, filter_type, path, tenant_id, action, configuration_name, group_name, filter_name)` + "\n"
	want := strings.Repeat(unknown, maxNamed) + "in.csv:1: ... and 499996 more problems with the header"
	if got := res.Err(); got == nil || got.Error() != want || res.Invalid != maxNamed+1 {
		t.Errorf("Invalid %d, Err() =\n%.2000v\nwant\n%s", res.Invalid, got, want)
	}
}

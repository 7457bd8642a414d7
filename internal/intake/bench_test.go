package intake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func jsonDecoder(data []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec
}

// genRows writes n distinct, valid rows in a realistic mix, lazily, as CSV
// (with header) or NDJSON.
type genRows struct {
	n, i int
	json bool
	buf  []byte
	off  int
}

func newGen(n int, json bool) *genRows {
	g := &genRows{n: n, json: json}
	if !json {
		g.buf = []byte("configuration_id,target_type,group_id,collection_id,filter_id,filter_type,path\r\n")
	}
	return g
}

var genPaths = []string{"", "", "", "", "rootCertificate", "identityCertificate", "microsoft.graph.iosScepCertificateProfile/rootCertificate"}

func (g *genRows) Read(p []byte) (int, error) {
	for g.off == len(g.buf) {
		if g.i == g.n {
			return 0, io.EOF
		}
		g.buf, g.off = g.row(g.buf[:0], g.i), 0
		g.i++
	}
	n := copy(p, g.buf[g.off:])
	g.off += n
	return n, nil
}

func (g *genRows) row(b []byte, i int) []byte {
	cfg := fmt.Sprintf("%08x-8b7d-4e6f-9a1b-2c3d4e5f6a7b", i%97)
	group := fmt.Sprintf("9d8c7b6a-5f4e-4d3c-8b2a-%012x", i)
	tt, coll, filter, ft := "group", "", "", ""
	switch i % 10 {
	case 0:
		tt = "exclusion_group"
	case 1:
		tt, group = "all_devices", ""
		filter, ft = fmt.Sprintf("0a1b2c3d-4e5f-4a6b-8c7d-%012x", i), "include"
	case 2:
		tt, group = "all_licensed_users", ""
		filter, ft = fmt.Sprintf("0a1b2c3d-4e5f-4a6b-8c7d-%012x", i), "exclude"
	case 3:
		tt, group, coll = "configuration_manager_collection", "", fmt.Sprintf("P01%05X", i%0xfffff)
	case 4, 5:
		filter, ft = "5C6D7E8F-9A0B-4C1D-8E2F-3A4B5C6D7E8F", "include"
	}
	path := genPaths[i%len(genPaths)]
	if !g.json {
		return fmt.Appendf(b, "%s,%s,%s,%s,%s,%s,%s\r\n", cfg, tt, group, coll, filter, ft, path)
	}
	odata := map[string]string{
		"group": "groupAssignmentTarget", "exclusion_group": "exclusionGroupAssignmentTarget",
		"all_devices": "allDevicesAssignmentTarget", "all_licensed_users": "allLicensedUsersAssignmentTarget",
		"configuration_manager_collection": "configurationManagerCollectionAssignmentTarget",
	}[tt]
	b = fmt.Appendf(b, `{"configurationId":%q,"path":%q,"target":{"@odata.type":"#microsoft.graph.%s"`, cfg, path, odata)
	if group != "" {
		b = fmt.Appendf(b, `,"groupId":%q`, group)
	}
	if coll != "" {
		b = fmt.Appendf(b, `,"collectionId":%q`, coll)
	}
	if filter != "" {
		b = fmt.Appendf(b, `,"deviceAndAppManagementAssignmentFilterId":%q,"deviceAndAppManagementAssignmentFilterType":%q`, filter, ft)
	}
	return append(b, "}}\n"...)
}

func benchRead(b *testing.B, n int, json bool) {
	data, err := io.ReadAll(newGen(n, json))
	if err != nil {
		b.Fatal(err)
	}
	format := FormatCSV
	if json {
		format = FormatNDJSON
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		res, err := Reader{Name: "bench", Format: format}.Read(bytes.NewReader(data), func(r Row) error { return nil })
		if err != nil || res.Err() != nil || res.Rows != n {
			b.Fatalf("%v %v rows %d", err, res.Err(), res.Rows)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
}

// memoryRows is how many rows TestMemoryFlat reads (fewer under -race).
var memoryRows = 200_000

// BenchmarkReadCSV reads 100,000 generated CSV rows (about 150 bytes each).
func BenchmarkReadCSV(b *testing.B) { benchRead(b, 100_000, false) }

// BenchmarkReadNDJSON reads 100,000 generated NDJSON rows.
func BenchmarkReadNDJSON(b *testing.B) { benchRead(b, 100_000, true) }

// TestMemoryFlat reads 200,000 generated rows from a stream and checks that
// the live heap stays bounded: only the duplicate set grows, by about 18
// bytes a row, twice that for the generated mix's filtered group rows (2
// in 10), each of a new group: about 22 bytes a row in all. The bound is loose (3x the expected growth, plus 8 MB) so
// that it never flakes; BENCH_ROWS=1000000 measures the full million.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	n := memoryRows
	if s := os.Getenv("BENCH_ROWS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, json := range []bool{false, true} {
		var before, peak runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		sample := func() {
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.HeapAlloc {
				peak = m
			}
		}
		format := FormatCSV
		if json {
			format = FormatNDJSON
		}
		res, err := Reader{Name: "gen", Format: format}.Read(newGen(n, json), func(r Row) error {
			if r.Line%(n/4) == 0 {
				sample()
			}
			return nil
		})
		if err != nil || res.Err() != nil || res.Rows != n {
			t.Fatalf("%v %v rows %d", err, res.Err(), res.Rows)
		}
		growth := int64(peak.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%s: %d rows, %d bytes in, live heap growth %.1f MB (%.0f bytes/row), total alloc %.0f MB",
			format, n, res.Bytes, float64(growth)/1e6, float64(growth)/float64(n), float64(peak.TotalAlloc-before.TotalAlloc)/1e6)
		if limit := int64(n) * 64; growth > limit+8<<20 {
			t.Errorf("live heap grew %d bytes for %d rows; want < %d", growth, n, limit+8<<20)
		}
	}
}

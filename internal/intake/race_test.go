//go:build race

package intake

// The race detector slows TestMemoryFlat tenfold; it reads fewer rows then.
func init() { memoryRows = 50_000 }

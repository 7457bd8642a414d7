package testenv

import (
	"fmt"
	"os"
	"strings"
)

// READMEQueries are the SQL queries of the README's "Querying results"
// section, in order and verbatim (without the closing semicolon), read from
// the README at path: the tests and the bench run what users copy, so the
// README cannot drift from what was tested and measured.
func READMEQueries(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the README's queries: %w", err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Querying results\n")
	if !ok {
		return nil, fmt.Errorf("%s: no section \"### Querying results\"", path)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var out []string
	for {
		var block string
		_, rest, ok := strings.Cut(section, "```sql\n")
		if !ok {
			break
		}
		if block, section, ok = strings.Cut(rest, "```"); !ok {
			return nil, fmt.Errorf("%s: a sql block in \"Querying results\" is not closed", path)
		}
		out = append(out, strings.TrimSuffix(strings.TrimSpace(block), ";"))
	}
	return out, nil
}

package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCommandsOnlyParseCallAndPrint keeps the database and Graph out of
// this package: commands hold a *store.DB and call the packages that own
// the work (worker, batchop, dryrun, auth); they never build a pool, a
// Graph client or a limiter, nor reach through store.DB to its pool.
func TestCommandsOnlyParseCallAndPrint(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"github.com/jackc/pgx",
		"github.com/riverqueue/",
		"github.com/bulkassign/bulkassign/internal/graph",
		"github.com/bulkassign/bulkassign/internal/ratelimit",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, p := range forbidden {
				if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
					t.Errorf("%s imports %s", fset.Position(imp.Pos()), path)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Pool" {
				t.Errorf("%s uses .Pool: pass the *store.DB on", fset.Position(sel.Pos()))
			}
			return true
		})
	}
}

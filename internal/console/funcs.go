package console

import (
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/bulkassign/bulkassign/internal/access"
	"github.com/bulkassign/bulkassign/internal/store"
)

func userOf(r *http.Request) string { return access.User(r) }

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 8 {
			return s[:8]
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
	},
	"dash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
	"target": func(r store.Result) string {
		s := r.TargetType
		switch {
		case r.GroupID != "":
			s += ":" + r.GroupID
		case r.CollectionID != "":
			s += ":" + r.CollectionID
		}
		if r.FilterID != "" {
			s += " (" + r.FilterType + " " + r.FilterID + ")"
		}
		return s
	},
	"errtext": func(r store.Result) string {
		switch {
		case r.ErrorCode != "" && r.ErrorMessage != "":
			return r.ErrorCode + ": " + r.ErrorMessage
		case r.ErrorCode != "":
			return r.ErrorCode
		}
		return r.ErrorMessage
	},
	"statusOf": func(m map[string]int, s any) int { return m[fmt.Sprint(s)] },
}

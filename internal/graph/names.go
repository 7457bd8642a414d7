package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/text"
)

// NameKind is a kind of object an input row may name by display name
// instead of giving its id (assign.Names).
type NameKind int

const (
	// NameConfiguration is a device configuration
	// (deviceManagement/deviceConfigurations).
	NameConfiguration NameKind = iota
	// NameGroup is an Entra group (groups).
	NameGroup
	// NameFilter is an Intune assignment filter
	// (deviceManagement/assignmentFilters).
	NameFilter
)

// String is the kind as messages and logs name it.
func (k NameKind) String() string {
	switch k {
	case NameConfiguration:
		return "configuration"
	case NameGroup:
		return "group"
	case NameFilter:
		return "filter"
	}
	return "NameKind(" + strconv.Itoa(int(k)) + ")"
}

// collection is the kind's Graph collection below the base URL.
func (k NameKind) collection() string {
	switch k {
	case NameGroup:
		return "/groups"
	case NameFilter:
		return "/deviceManagement/assignmentFilters"
	}
	return "/deviceManagement/deviceConfigurations"
}

// Named is one object a display name matched.
type Named struct {
	ID          string // canonical: lower case, as assign.ParseGUID returns it
	DisplayName string // as Graph spells it, which may differ in case from the name asked for
}

// MaxNamed caps the objects FindByName returns. One match resolves a name
// and two already make it ambiguous; the rest only help the message that
// lists them, and a name shared by hundreds of groups must not cost
// hundreds of reads to say so. At the cap FindByName stops reading pages,
// so a list of MaxNamed means "at least MaxNamed".
const MaxNamed = 10

// FindByName returns the objects of kind whose displayName equals name as
// Graph compares it (case-insensitively, the whole string, nothing
// trimmed), at most MaxNamed of them, distinct by id, in Graph's order. It
// asks Graph to filter ($filter=displayName eq '…') and checks every
// answer itself as well, so that a server that filters loosely cannot
// hand back an object of another name. An object whose id is not a GUID
// fails the lookup (Response.Err) rather than being skipped: skipping it
// could turn an ambiguous name into a resolved one. Pages are followed through
// @odata.nextLink; wait, when not nil, is called before each request (the
// read limit).
//
// An empty list with a 200 Response means no object has the name. A
// failed lookup returns the Response to classify (op OpResolve): a 403
// says the app lacks the read permission for kind.
func (c *Client) FindByName(ctx context.Context, kind NameKind, name string, wait func(context.Context) error) ([]Named, *Response) {
	first := c.base.String() + kind.collection() +
		"?$filter=" + queryEscape("displayName eq "+odataString(name)) + "&$select=id,displayName"
	var out []Named
	seen := map[string]bool{}
	resp := c.readPages(ctx, OpResolve, first, kind.String()+" list", wait, func(value []json.RawMessage) (bool, error) {
		for _, raw := range value {
			var o struct {
				ID          string `json:"id"`
				DisplayName string `json:"displayName"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return false, err
			}
			if !strings.EqualFold(o.DisplayName, name) {
				continue // a match Graph should not have returned
			}
			id, err := assign.ParseGUID("id", o.ID)
			if err != nil {
				return false, errors.New(text.Short(kind.String() + " " + err.Error()))
			}
			if seen[id] {
				continue // seen on an earlier page: the collection moved under the read
			}
			seen[id] = true
			out = append(out, Named{ID: id, DisplayName: text.Message(o.DisplayName)})
			if len(out) == MaxNamed {
				return false, nil
			}
		}
		return true, nil
	})
	if resp.StatusCode != http.StatusOK || resp.Err != nil {
		return nil, resp
	}
	return out, resp
}

// odataString writes s as an OData string literal: in single quotes, a
// single quote inside doubled.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// queryEscape escapes s for a query parameter's value. Spaces become %20,
// not "+": servers decode "+" in a query as a space, so a literal "+" must
// travel as %2B (which url.QueryEscape does) and a space is clearest as
// %20 for anyone reading the URL in a log.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/text"
)

// ListNamed reads every object of kind in the tenant (id and displayName,
// $select'ed), following @odata.nextLink, and hands each to each in
// Graph's order; each returning an error stops the read with it. wait,
// when not nil, is called before each page (the read limit). An object
// whose id is not a GUID fails the read. The Response is the last page's,
// to classify as op OpResolve (a 403 on groups: no Group.Read.All).
func (c *Client) ListNamed(ctx context.Context, kind NameKind, wait func(context.Context) error, each func(Named) error) *Response {
	first := c.base.String() + kind.collection() + "?$select=id,displayName"
	var stop error
	resp := c.readPages(ctx, OpResolve, first, kind.String()+" list", wait, func(value []json.RawMessage) (bool, error) {
		for _, raw := range value {
			var o struct {
				ID          string `json:"id"`
				DisplayName string `json:"displayName"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return false, err
			}
			id, err := assign.ParseGUID("id", o.ID)
			if err != nil {
				return false, errors.New(text.Short(kind.String() + " " + err.Error()))
			}
			if stop = each(Named{ID: id, DisplayName: o.DisplayName}); stop != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if stop != nil && resp.Err == nil {
		resp.Err = stop
	}
	return resp
}

// MaxIDsPerFilter is how many ids one $filter=id in (...) may hold: Graph
// answers 400 to more than 15 values of "in" on directory objects.
const MaxIDsPerFilter = 15

// FindGroups returns which of ids (GUIDs, at most MaxIDsPerFilter) are
// groups of the tenant, with their display names, in one read of
// groups?$filter=id in ('…','…')&$select=id,displayName (pages followed).
// It needs the same permission as finding groups by name
// (Group.Read.All). An id that is no group, or no object at all, is
// simply absent from the map.
func (c *Client) FindGroups(ctx context.Context, ids []string, wait func(context.Context) error) (map[string]string, *Response) {
	if len(ids) == 0 || len(ids) > MaxIDsPerFilter {
		return nil, &Response{Method: OpResolve.Method(), Op: OpResolve, RetryAfter: -1,
			Err: fmt.Errorf("FindGroups takes 1 to %d ids, not %d", MaxIDsPerFilter, len(ids))}
	}
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = odataString(id)
	}
	first := c.base.String() + NameGroup.collection() +
		"?$filter=" + queryEscape("id in ("+strings.Join(quoted, ",")+")") + "&$select=id,displayName"
	found := map[string]string{}
	resp := c.readPages(ctx, OpResolve, first, "group list", wait, func(value []json.RawMessage) (bool, error) {
		for _, raw := range value {
			var o struct {
				ID          string `json:"id"`
				DisplayName string `json:"displayName"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return false, err
			}
			if id := assign.CanonicalGUID(o.ID); id != "" {
				found[id] = o.DisplayName
			}
		}
		return true, nil
	})
	if resp.StatusCode != http.StatusOK || resp.Err != nil {
		return nil, resp
	}
	return found, resp
}

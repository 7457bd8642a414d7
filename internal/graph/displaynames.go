package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/bulkassign/bulkassign/internal/text"
)

// Display names: the reverse of FindByName. A row that gives ids is shown
// with the names Graph holds for them, read once per batch.

// DisplayName reads the displayName of the object of kind with id (GET
// {collection}/{id}?$select=id,displayName), as op OpResolve. wait, when
// not nil, is called before the request (the read limit). A name is
// returned with a 200; any other answer returns "" with the Response to
// classify (404: no such object; 403: the app may not read kind).
func (c *Client) DisplayName(ctx context.Context, kind NameKind, id string, wait func(context.Context) error) (string, *Response) {
	return c.displayName(ctx, c.base.String()+kind.collection()+"/"+url.PathEscape(id)+"?$select=id,displayName", false, wait)
}

// TenantName reads the display name of the client's tenant (GET
// /organization?$select=displayName), as DisplayName reads an object's.
func (c *Client) TenantName(ctx context.Context, wait func(context.Context) error) (string, *Response) {
	return c.displayName(ctx, c.base.String()+"/organization?$select=id,displayName", true, wait)
}

// displayName reads u, one object or (list) a collection whose first
// object is the one, and returns its displayName.
func (c *Client) displayName(ctx context.Context, u string, list bool, wait func(context.Context) error) (string, *Response) {
	if wait != nil {
		if err := wait(ctx); err != nil {
			return "", NotSent(OpResolve, err)
		}
	}
	resp, body := c.do(ctx, OpResolve, u, nil, "")
	if resp.StatusCode != http.StatusOK || resp.Err != nil {
		return "", resp
	}
	type named struct {
		DisplayName string `json:"displayName"`
	}
	var o named
	var err error
	if list {
		var page struct {
			Value []named `json:"value"`
		}
		if err = json.Unmarshal(body, &page); err == nil && len(page.Value) == 0 {
			err = fmt.Errorf("no organization in the answer")
		}
		if err == nil {
			o = page.Value[0]
		}
	} else {
		err = json.Unmarshal(body, &o)
	}
	if err != nil {
		resp.Err = fmt.Errorf("error decoding display name: %v", err)
		return "", resp
	}
	return text.Message(o.DisplayName), resp
}

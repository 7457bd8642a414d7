package dryrun

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/worker"
)

// Collections are what `enqueue list` lists: the kinds of object an input
// row names, by the name the command takes.
var Collections = map[string]graph.NameKind{
	"configurations": graph.NameConfiguration,
	"groups":         graph.NameGroup,
	"filters":        graph.NameFilter,
}

// Object is one object of a collection, as the tenant holds it.
type Object struct {
	ID, DisplayName string
}

// List reads every object of collection (one of Collections) in tenant
// ("" is AZURE_TENANT_ID), signed in as the settings say and within that
// tenant's read limit, which it shares with the workers, retrying and
// waiting as the dry run does. Pages are followed; a read that fails
// midway starts again from the first page.
func List(ctx context.Context, db *store.DB, gcfg config.Graph, wcfg config.Worker, tenant, collection string) ([]Object, error) {
	kind, ok := Collections[collection]
	if !ok {
		return nil, fmt.Errorf("no collection %q: want configurations, groups or filters", collection)
	}
	if tenant != "" {
		id, err := assign.ParseGUID("--tenant", tenant)
		if err != nil {
			return nil, err
		}
		tenant = id
	}
	tokens, err := auth.NewTokenSource(ctx, gcfg, db)
	if err != nil {
		return nil, err
	}
	tenants, err := worker.NewTenants(db.Pool(), gcfg, wcfg, tokens)
	if err != nil {
		return nil, err
	}
	t, err := tenants.Tenant(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var out []Object
	why := settle(ctx, t, func(wait func(context.Context) error) *graph.Response {
		out = out[:0]
		resp := t.Graph.ListNamed(ctx, kind, wait, func(n graph.Named) error {
			out = append(out, Object{ID: n.ID, DisplayName: n.DisplayName})
			return nil
		})
		if resp.Err == nil && resp.StatusCode == 200 {
			return nil
		}
		return resp
	})
	if why != "" {
		where := "the tenant"
		if tenant != "" {
			where = "tenant " + tenant
		}
		return nil, errors.New("reading the " + strings.TrimSuffix(collection, "s") + " list of " + where + ": " + why)
	}
	return out, nil
}

// Package stall says why a batch's rows are not moving: no worker alive,
// throttled by Graph until a given time, sign-in failing, or waiting on the
// fleet's limit. It is the one decision behind the console's batch page and
// the commands' --wait.
package stall

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkassign/bulkassign/internal/store"
)

// Kind is a reason's category.
type Kind string

const (
	// None: the batch is finished, or nothing holds it back.
	None Kind = ""
	// NoWorker: no worker process is running (no River leader holds a
	// lease).
	NoWorker Kind = "no_worker"
	// Throttled: Graph answered 429 and the fleet pauses the tenant's
	// requests until Until.
	Throttled Kind = "throttled"
	// SignIn: rows could not sign in to their tenant.
	SignIn Kind = "sign_in"
	// Limit: rows wait their turn at the fleet's write limit
	// (GRAPH_WRITE_RATE).
	Limit Kind = "limit"
)

// Reason is why a batch waits.
type Reason struct {
	Kind Kind
	// Text is a sentence for a person, with what to do where there is
	// something to do.
	Text string
	// Until is the end of a throttle's pause (Throttled only).
	Until time.Time
}

// Why reads the batch's facts and decides.
func Why(ctx context.Context, q store.Querier, batchID string) (Reason, error) {
	f, err := store.ReadStallFacts(ctx, q, batchID)
	if err != nil {
		return Reason{}, err
	}
	return Decide(f), nil
}

// Decide is the reason the facts give, the most pressing first: without a
// worker nothing else matters; a throttle pauses the tenant whatever the
// rows' last codes say; a failing sign-in needs a person; waiting on the
// limit is the normal pace of a limited fleet.
func Decide(f store.StallFacts) Reason {
	switch {
	case f.Open == 0:
		return Reason{}
	case !f.WorkerAlive:
		return Reason{Kind: NoWorker, Text: fmt.Sprintf("no worker is running: %d rows wait for one (start one with `worker`)", f.Open)}
	case !f.ThrottledUntil.IsZero() && f.ThrottledUntil.After(f.Now):
		left := f.ThrottledUntil.Sub(f.Now).Round(time.Second)
		return Reason{Kind: Throttled, Until: f.ThrottledUntil, Text: fmt.Sprintf(
			"throttled by Graph (HTTP 429) until %s UTC (%s from now): the fleet pauses this tenant's requests, and the rows resume by themselves",
			f.ThrottledUntil.UTC().Format("15:04:05"), left)}
	case f.SignIn > 0:
		return Reason{Kind: SignIn, Text: fmt.Sprintf(
			"sign-in failing: %d rows could not sign in to their tenant (%s); `worker check` says why", f.SignIn, f.SignInCode)}
	case f.Waiting > 0:
		return Reason{Kind: Limit, Text: fmt.Sprintf(
			"waiting on the fleet's limit: %d rows wait their turn at GRAPH_WRITE_RATE", f.Waiting)}
	}
	return Reason{}
}

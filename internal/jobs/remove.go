package jobs

import (
	"context"
	"net/http"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/store"
)

// remove settles a remove row against list, its configuration path's
// assignments (read fresh when the row's last delete may have applied
// unseen). The target absent: the row ends not_assigned, or removed when
// its own earlier delete was in doubt (a delete whose answer was lost is
// checked by this read before it is sent again). Present: the row waits
// for the write limit, claims the target across batches with its intent
// recorded (as a create does), and deletes the assignment by id.
func (r *assignRun) remove(ctx context.Context, list *store.AssignmentList, fresh bool) error {
	d, it := r.w.d, r.it
	inDoubt := it.IntentRequestID != ""
	id, ok := list.Keys[it.Spec.Target.Key()]
	if !ok {
		o := store.Outcome{Status: assign.StatusNotAssigned, HTTPStatus: http.StatusOK, RequestID: list.RequestID}
		if inDoubt {
			// Our earlier delete applied although its answer was lost;
			// the row kept the assignment's id with its intent.
			o.Status, o.HTTPStatus = assign.StatusRemoved, http.StatusNoContent
		}
		return r.done(ctx, o)
	}
	if it.Status == assign.StatusCancelling {
		return r.done(ctx, r.notApplied(list)) // its delete did not apply: the target is still there
	}
	r.removing = id
	crid, claim, err := r.claim(ctx, graph.OpDelete, list, fresh)
	if err != nil || claim == nil {
		return err
	}
	if claim.Verdict == store.HolderCreated {
		// Another row created the target after this list was read: what
		// is there now is for a fresh read to say.
		if fresh {
			return r.w.d.settle(ctx, r.rowRun(graph.OpDelete), graph.NotSent(graph.OpDelete, claimWait), r.t.Writes)
		}
		return r.work(ctx, true)
	}

	resp := r.t.Graph.DeleteAssignment(ctx, it.Spec.ConfigurationID, it.Spec.Path, id, crid)
	r.log.Debug("graph delete", "status", resp.StatusCode, "request_id", resp.RequestID, "client_request_id", resp.ClientRequestID, "duration", resp.Duration)
	if graph.Classify(resp).Action == graph.Succeed {
		o := store.Outcome{Status: assign.StatusRemoved, HTTPStatus: resp.StatusCode, AssignmentID: id, RequestID: resp.RequestID}
		if resp.StatusCode == http.StatusNotFound && !inDoubt {
			// Gone between the read and the delete, and not by this row:
			// someone else removed it.
			o.Status, o.AssignmentID = assign.StatusNotAssigned, ""
		}
		return r.done(ctx, o)
	}
	it.IntentRequestID = crid // the delete may be in doubt from here on
	return d.settle(ctx, r.rowRun(graph.OpDelete), resp, r.t.Writes)
}

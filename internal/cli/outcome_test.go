package cli

import (
	"testing"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/store"
)

func TestBatchOutcome(t *testing.T) {
	t.Parallel()
	b := &store.Batch{ID: "3f2a9c1e-0000-4000-8000-000000000000"}
	counts := func(created, failed, canceled int) store.StatusCounts {
		return store.StatusCounts{assign.StatusCreated: created, assign.StatusFailed: failed, assign.StatusCanceled: canceled}
	}
	tests := []struct {
		name   string
		counts store.StatusCounts
		retry  store.RetryCounts
		want   string // "" is no error
	}{
		{"AllCreated", counts(5, 0, 0), store.RetryCounts{}, ""},
		{"RetryHelpsAll", counts(5, 2, 1), store.RetryCounts{Retryable: 3},
			"batch 3f2a9c1e: 2 rows failed and 1 were canceled: `enqueue results 3f2a9c1e --status failed,canceled` lists them; `enqueue retry 3f2a9c1e` runs them again"},
		{"RetryHelpsNone", counts(5, 4, 0), store.RetryCounts{NotFound: 4},
			"batch 3f2a9c1e: 4 rows failed and 0 were canceled: `enqueue results 3f2a9c1e --status failed,canceled` lists them; " +
				"4 rows name a configuration that does not exist (HTTP 404) and fail the same way on a retry: fix their configuration ids in the list and enqueue it again"},
		{"RetryHelpsSome", counts(5, 4, 1), store.RetryCounts{Retryable: 2, NotFound: 3},
			"batch 3f2a9c1e: 4 rows failed and 1 were canceled: `enqueue results 3f2a9c1e --status failed,canceled` lists them; `enqueue retry 3f2a9c1e` runs the other 2 again; " +
				"3 rows name a configuration that does not exist (HTTP 404) and fail the same way on a retry: fix their configuration ids in the list and enqueue it again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := batchOutcome(b, tt.counts, tt.retry)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("batchOutcome = %q, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("batchOutcome = %v\nwant %s", err, tt.want)
			}
		})
	}
}

package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// InsertJobs inserts n jobs into tx, the i-th with args(i), in chunks of
// chunkRows: enqueue, retry and revert insert one job per row, and memory
// stays flat however many rows a batch has.
func InsertJobs(ctx context.Context, tx pgx.Tx, rc *river.Client[pgx.Tx], n int, args func(i int) river.JobArgs) error {
	params := make([]river.InsertManyParams, 0, min(n, chunkRows))
	for start := 0; start < n; start += chunkRows {
		params = params[:0]
		for i := start; i < min(start+chunkRows, n); i++ {
			params = append(params, river.InsertManyParams{Args: args(i)})
		}
		if _, err := rc.InsertManyFastTx(ctx, tx, params); err != nil {
			return fmt.Errorf("error inserting jobs: %w", err)
		}
	}
	return nil
}

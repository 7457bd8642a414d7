package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testdb"
)

const itemsBatch = "b0000000-0000-4000-8000-000000000001"

func insertItem(t *testing.T, db *testdb.DB, row int, path string) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO items (batch_id, row, line, configuration_id, path, target_type)
		VALUES ($1, $2, $2 + 1, 'c0000000-0000-4000-8000-000000000001', $3, 'all_devices')`, itemsBatch, row, path); err != nil {
		t.Fatal(err)
	}
}

// TestItemPathIsCheckedOnRead: a path read back from the database passes
// the same allow-list as input, so a row changed behind bulkassign's back
// can never send a request (with its token) to another Graph URL.
func TestItemPathIsCheckedOnRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	insertItem(t, db, 0, "rootCertificate")
	insertItem(t, db, 1, "../../users")
	if it, err := store.GetItem(ctx, db.Pool, itemsBatch, 0); err != nil || it.Spec.Path != "rootCertificate" {
		t.Fatalf("GetItem(allowed path) = %+v, %v", it, err)
	}
	_, err := store.GetItem(ctx, db.Pool, itemsBatch, 1)
	if err == nil || !strings.Contains(err.Error(), "invalid path") {
		t.Fatalf("GetItem(../../users) err = %v, want an invalid path error", err)
	}
	if _, err := store.StartRun(ctx, db.Pool, itemsBatch, 1, assign.NewID()); err == nil {
		t.Fatal("StartRun handed out a row with a path outside the allow-list")
	}
}

// claimRequest is a claim of row's all-devices target by run.
func claimRequest(row int, run string, hold time.Duration) store.ClaimRequest {
	return store.ClaimRequest{BatchID: itemsBatch, Row: row, Run: run, Hold: hold, ClientRequestID: assign.NewID(),
		Spec:       assign.Spec{ConfigurationID: "c0000000-0000-4000-8000-000000000001", Target: assign.Target{Type: assign.TargetAllDevices}},
		ListReadAt: time.Now()}
}

// TestClaimHoldsTheRow: the run that claims a row's target holds the row;
// another run of it is told how long the hold lasts, may neither claim nor
// write, until the first run's outcome releases the row.
func TestClaimHoldsTheRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	insertItem(t, db, 0, "")
	first, second := assign.NewID(), assign.NewID()
	it, err := store.StartRun(ctx, db.Pool, itemsBatch, 0, first)
	if err != nil || it.Status != assign.StatusQueued || it.List != nil {
		t.Fatalf("first StartRun = %+v, %v; want the queued row, no list", it, err)
	}
	if res, err := store.Claim(ctx, db.Pool, claimRequest(0, first, time.Minute)); err != nil || res.Verdict != store.Claimed {
		t.Fatalf("first Claim = %+v, %v; want claimed", res, err)
	}
	if it, err := store.GetItem(ctx, db.Pool, itemsBatch, 0); err != nil || it.Status != assign.StatusRunning ||
		it.Attempts != 1 || it.IntentRequestID == "" {
		t.Fatalf("after the claim: %+v, %v; want running, 1 attempt, an intent", it, err)
	}
	_, err = store.StartRun(ctx, db.Pool, itemsBatch, 0, second)
	var held *store.HeldError
	if !errors.As(err, &held) || held.Left <= 50*time.Second || held.Left > time.Minute {
		t.Fatalf("second StartRun err = %v, want held for about a minute", err)
	}
	if _, err := store.Claim(ctx, db.Pool, claimRequest(0, second, time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Claim err = %v, want ErrNotFound", err)
	}
	// The second run may not write; the first may.
	if ok, err := store.RecordOutcome(ctx, db.Pool, itemsBatch, 0, second, store.Outcome{Status: assign.StatusFailed}); err != nil || ok {
		t.Fatalf("outcome of the run that does not hold the row = %v, %v; want not written", ok, err)
	}
	if ok, err := store.RecordOutcome(ctx, db.Pool, itemsBatch, 0, first, store.Outcome{Status: assign.StatusRetrying, KeepIntent: true}); err != nil || !ok {
		t.Fatalf("outcome of the holding run = %v, %v; want written", ok, err)
	}
	// A snooze released the hold: the next run takes the row, and the
	// claim is its own row's (a later run of the same row).
	if _, err := store.StartRun(ctx, db.Pool, itemsBatch, 0, second); err != nil {
		t.Fatalf("StartRun after the hold was released: %v", err)
	}
	if res, err := store.Claim(ctx, db.Pool, claimRequest(0, second, time.Minute)); err != nil || res.Verdict != store.Claimed {
		t.Fatalf("Claim after the hold was released = %+v, %v; want claimed", res, err)
	}
}

// TestClaimOfAHeldRowLeavesNothing: a claim refused because another run
// holds the row leaves no claim behind (the statement is all or nothing),
// so a row of another batch is not kept waiting for a holder that never
// posted.
func TestClaimOfAHeldRowLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	insertItem(t, db, 0, "")
	if _, err := db.Pool.Exec(ctx, `UPDATE items SET run_id = $1, run_until = now() + interval '1 minute'`, assign.NewID()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Claim(ctx, db.Pool, claimRequest(0, assign.NewID(), time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Claim of a held row err = %v, want ErrNotFound", err)
	}
	var claims, attempts int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM target_claims), (SELECT attempts FROM items)`).Scan(&claims, &attempts); err != nil {
		t.Fatal(err)
	}
	if claims != 0 || attempts != 0 {
		t.Fatalf("after a refused claim: %d claims, %d attempts; want none", claims, attempts)
	}
}

// TestRecordOutcomesInOneStatement: outcomes of several rows are written
// together, each reported; a row already final keeps its outcome, and a
// row being cancelled takes the create its write in flight made.
func TestRecordOutcomesInOneStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	for row := range 4 {
		insertItem(t, db, row, "")
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE items SET status = CASE row WHEN 2 THEN 'canceled' ELSE 'cancelling' END,
		finished_at = CASE row WHEN 2 THEN now() END WHERE row IN (2, 3)`); err != nil {
		t.Fatal(err)
	}
	wrote, err := store.RecordOutcomes(ctx, db.Pool, []store.RowOutcome{
		{BatchID: itemsBatch, Row: 0, Outcome: store.Outcome{Status: assign.StatusCreated, AssignmentID: "a0", HTTPStatus: 201}},
		{BatchID: itemsBatch, Row: 1, Outcome: store.Outcome{Status: assign.StatusRetrying, ErrorCode: "ServiceUnavailable", HTTPStatus: 503, CountError: true}},
		{BatchID: itemsBatch, Row: 2, Outcome: store.Outcome{Status: assign.StatusFailed, ErrorCode: "x"}},
		{BatchID: itemsBatch, Row: 3, Outcome: store.Outcome{Status: assign.StatusCreated, AssignmentID: "a3", HTTPStatus: 201}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(wrote, want) {
		t.Fatalf("wrote = %v, want %v", wrote, want)
	}
	rows, err := db.Pool.Query(ctx, `SELECT status, coalesce(assignment_id, ''), errors, started_at IS NOT NULL, finished_at IS NOT NULL
		FROM items ORDER BY row`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var status, id string
		var errs int
		var started, finished bool
		if err := rows.Scan(&status, &id, &errs, &started, &finished); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %q errors=%d started=%v finished=%v", status, id, errs, started, finished))
	}
	want := []string{
		`created "a0" errors=0 started=true finished=true`,
		`retrying "" errors=1 started=true finished=false`,
		`canceled "" errors=0 started=false finished=true`,
		`created "a3" errors=0 started=true finished=true`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClaimsInOneRound: a round claims for many rows in one statement,
// each answered in its place: rows on distinct targets are claimed and
// taken, the second of two rows on one target finds it busy (not
// claimed, no intent), a second run of one row in the same round is
// refused, and a final row is refused with nothing left of its request.
func TestClaimsInOneRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	for row := range 5 {
		insertItem(t, db, row, "")
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE items SET status = 'canceled' WHERE row = 4`); err != nil {
		t.Fatal(err)
	}
	group := func(n int) assign.Target {
		return assign.Target{Type: assign.TargetGroup, GroupID: fmt.Sprintf("90000000-0000-4000-8000-%012d", n)}
	}
	req := func(row int, tg assign.Target) store.ClaimRequest {
		r := claimRequest(row, assign.NewID(), time.Minute)
		r.Spec.Target = tg
		return r
	}
	// A round claims in target order, and requests of one target in the
	// order given: row 3 before row 2, row 0 before row 1.
	reqs := []store.ClaimRequest{
		req(3, group(2)),
		req(0, group(1)),
		req(2, group(2)), // target 2 is row 3's
		req(1, group(1)), // target 1 is row 0's
		req(0, group(9)), // a second run of row 0
		req(4, group(5)), // final
	}
	res, err := store.Claims(ctx, db.Pool, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.ClaimVerdict{store.Claimed, store.Claimed, store.HolderBusy, store.HolderBusy, store.Refused, store.Refused}
	for i := range want {
		if res[i].Verdict != want[i] {
			t.Errorf("request %d (row %d): verdict %v, want %v", i, reqs[i].Row, res[i].Verdict, want[i])
		}
	}
	var claims int
	var intents []int
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM target_claims),
		(SELECT array_agg(row ORDER BY row) FROM items WHERE intent_request_id IS NOT NULL AND status = 'running')`).Scan(&claims, &intents); err != nil {
		t.Fatal(err)
	}
	if claims != 2 || !slices.Equal(intents, []int{0, 3}) {
		t.Errorf("after the round: %d claims, intents on rows %v; want 2 claims, intents on rows 0 and 3", claims, intents)
	}
}

// TestUnsentTakesTheAttemptBack: a claim counts the attempt of the write
// it is for; when the fleet's limit then holds the write back, the
// outcome takes the count back, so attempts stays the requests sent.
func TestUnsentTakesTheAttemptBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t, 2)
	insertItem(t, db, 0, "")
	run := assign.NewID()
	if _, err := store.Claim(ctx, db.Pool, claimRequest(0, run, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, err := store.RecordOutcome(ctx, db.Pool, itemsBatch, 0, run, store.Outcome{Status: assign.StatusRetrying, Unsent: true}); err != nil || !ok {
		t.Fatalf("outcome = %v, %v", ok, err)
	}
	it, err := store.GetItem(ctx, db.Pool, itemsBatch, 0)
	if err != nil || it.Attempts != 0 || it.IntentRequestID != "" {
		t.Fatalf("after an unsent write: %+v, %v; want 0 attempts and no intent", it, err)
	}
}

package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/store"
	"github.com/bulkassign/bulkassign/internal/testenv"
	"github.com/bulkassign/bulkassign/internal/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// settings loads the worker's and Graph's settings from env and opens the
// harness's migrated database, as the worker command does.
func settings(t *testing.T, h *testenv.Harness, env config.Env) (config.Worker, config.Graph, *store.DB) {
	t.Helper()
	wcfg, err := config.LoadWorker(env)
	if err != nil {
		t.Fatal(err)
	}
	gcfg, err := config.LoadGraph(env, true)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.ConnectMigrated(context.Background(), h.DB.URL, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return wcfg, gcfg, db
}

// TestOpenRunStop is the worker command's path: sign in from the settings,
// wire, serve, and stop when ctx ends.
func TestOpenRunStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := testenv.New(t, graphsim.Config{})
	wcfg, gcfg, db := settings(t, h, h.Env(map[string]string{"WORKER_CONCURRENCY": "2"}))
	rt, err := worker.Open(ctx, db, gcfg, wcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	select {
	case <-rt.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30s")
	}
	if rt.HTTPAddr() == "" {
		t.Fatal("ready without its HTTP listener")
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("still running 60s after ctx ended")
	}
}

func TestOpenRefusesAWrongSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := testenv.New(t, graphsim.Config{})
	gcfg, err := config.LoadGraph(h.Env(map[string]string{"AZURE_CLIENT_SECRET": "wrong"}), true)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.ConnectMigrated(ctx, h.DB.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = worker.Open(ctx, db, gcfg, config.Worker{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "cannot sign in") {
		t.Fatalf("Open with a wrong secret: %v, want it to say it cannot sign in", err)
	}
}

type noTokens struct{}

func (noTokens) Token(context.Context, graph.TokenOptions) (string, error) {
	return "", errors.New("none")
}

func TestNewGraphClientRefusesABadURL(t *testing.T) {
	t.Parallel()
	_, err := worker.NewGraphClient(config.Graph{BaseURL: "http://graph.example.com/beta"}, noTokens{}, nil)
	var ue *config.UnusableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "GRAPH_BASE_URL") {
		t.Fatalf("NewGraphClient with an http URL: %v, want a config.UnusableError naming GRAPH_BASE_URL", err)
	}
}

// TestPoolSize: the pool leaves room for River's LISTEN connection, which
// River takes out of the pool, so the process stays within
// DATABASE_MAX_CONNS whatever its concurrency.
func TestPoolSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want int32
	}{
		{map[string]string{}, 9},
		{map[string]string{"WORKER_CONCURRENCY": "100"}, 9},
		{map[string]string{"DATABASE_MAX_CONNS": "2", "WORKER_CONCURRENCY": "50"}, 1},
		{map[string]string{"DATABASE_MAX_CONNS": "25"}, 24},
	} {
		wcfg, err := config.LoadWorker(config.MapEnv(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		if got := worker.PoolSize(wcfg); got != tc.want {
			t.Errorf("%v: PoolSize = %d, want %d", tc.env, got, tc.want)
		}
	}
}

#!/usr/bin/env bash
# The whole job on embedded defaults: a Postgres (local, compose, or a
# throwaway cluster), the Graph simulator standing in for a tenant
# (examples/tenant.json: 8 configurations, 3 assignments already there,
# and the two customer tenants of examples/multi-tenant.csv),
# examples/assignments.csv enqueued, one worker at Intune's documented write
# limit (GRAPH_WRITE_RATE=5), and the results table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=.demo
mkdir -p "$demo" bin

base=$(bash scripts/postgres.sh)
db=bulkassign_demo
# The demo owns this database: every run drops it and starts afresh. Say so
# before doing it (the host only: the URL may hold a password).
echo "== dropping database $db on ${base##*@} if it exists, and creating it again (anything in it is lost)"
psql "$base/postgres" -qX -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export DATABASE_URL="$base/$db?sslmode=disable"

echo "== building"
go build -o bin/ ./cmd/...

echo "== starting the Graph simulator (write limit 100 per 20 s, as Intune documents)"
: > "$demo/graphsim.env"
bin/graphsim -tenant-file examples/tenant.json -write-limit 100/20s -ca-out "$demo/ca.pem" \
  > "$demo/graphsim.env" 2> "$demo/graphsim.log" &
sim=$!
worker=""
cleanup() { [ -n "$worker" ] && kill "$worker" 2>/dev/null; kill "$sim" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^# graphsim ready' "$demo/graphsim.env" && break; sleep 0.1; done
grep -q '^# graphsim ready' "$demo/graphsim.env" || { cat "$demo/graphsim.log"; exit 1; }
set -a; . "$demo/graphsim.env"; set +a

echo "== worker migrate"
bin/worker migrate

echo "== enqueue examples/assignments.csv"
batch=$(bin/enqueue examples/assignments.csv | tail -n 1)

echo "== worker (log in $demo/worker.log)"
WORKER_HTTP_ADDR=127.0.0.1:0 bin/worker 2> "$demo/worker.log" &
worker=$!
# The worker logs the address it chose ("worker started ... http=ADDR").
console=""
for _ in $(seq 1 100); do
  addr=$(grep -o 'http[=":]*127\.0\.0\.1:[0-9]*' "$demo/worker.log" 2>/dev/null | head -n 1 | grep -o '127\.0\.0\.1:[0-9]*' || true)
  if [ -n "$addr" ]; then console="http://$addr/console/"; break; fi
  sleep 0.1
done
[ -n "$console" ] && echo "== console: ${console}batches/$batch (open it in a browser while the worker runs)"
bin/enqueue status "$batch" --wait || true
if [ -n "$console" ] && [ -t 0 ] && [ -t 1 ]; then
  echo "== the console stays open at $console — press Enter to stop the worker"
  read -r _ || true
fi
kill -TERM "$worker"; wait "$worker" || true; worker=""

echo "== results of batch $batch"
bin/enqueue results "$batch"
echo
echo "Query them in Postgres too:  psql '$DATABASE_URL' -c 'SELECT status, count(*) FROM assignment_results GROUP BY 1'"

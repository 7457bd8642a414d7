#!/usr/bin/env bash
# make bench: builds the enqueue command and the bench program (bench/, its
# own module, so kiota-http-go stays out of the product's go.mod), then runs
# every scenario on a real Postgres (found or started by scripts/postgres.sh;
# the bench creates and drops its own bench_* schemas in the database
# "test") and prints one Markdown table. Extra arguments go to the bench
# program (cd bench && go run . -h lists them; -quick is a smoke run;
# -sections 5 runs only the many-tenants part, about 3 minutes).
# Outputs are kept in bench/out/: the table, the CPU profiles of the worker
# runs of sections 2 and 5 (5a) and their top functions.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(bash scripts/postgres.sh)
if ! psql "$base/postgres" -qXtAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  psql "$base/postgres" -qX -c "CREATE DATABASE test" >/dev/null
fi
export TEST_DATABASE_URL="$base/test?sslmode=disable"

out=bench/out
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "bench: building (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
go build -o "$tmp/enqueue" ./cmd/enqueue
# -mod=mod: the bench module follows the product's go.mod through its
# replace directive, so a dependency the product adds is resolved here too.
(cd bench && go build -mod=mod -o "$tmp/bench" .)
rm -f "$out/worker-cpu.pprof" "$out/fleet-cpu.pprof"
"$tmp/bench" -enqueue-bin "$tmp/enqueue" -cpuprofile "$out/worker-cpu.pprof" -fleet-cpuprofile "$out/fleet-cpu.pprof" "$@" | tee "$out/table.md"
for p in worker fleet; do
  if [ -s "$out/$p-cpu.pprof" ]; then
    go tool pprof -top -nodecount=25 "$tmp/bench" "$out/$p-cpu.pprof" >"$out/$p-cpu-top.txt" 2>/dev/null || true
    go tool pprof -top -cum -nodecount=60 "$tmp/bench" "$out/$p-cpu.pprof" >"$out/$p-cpu-cum.txt" 2>/dev/null || true
    echo "bench: $p CPU profile in $out/$p-cpu.pprof (top functions: $out/$p-cpu-top.txt, $out/$p-cpu-cum.txt)" >&2
  fi
done

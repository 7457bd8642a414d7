#!/usr/bin/env bash
# The project's tests: vet, then every package with the race detector, on a
# real Postgres (found or started by scripts/postgres.sh; the tests create
# and drop one schema each in the database "test").
set -euo pipefail
cd "$(dirname "$0")/.."
base=$(bash scripts/postgres.sh)
if ! psql "$base/postgres" -qXtAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  psql "$base/postgres" -qX -c "CREATE DATABASE test" >/dev/null
fi
export TEST_DATABASE_URL="$base/test?sslmode=disable"
# The console's browser test needs chromium: installed here when we may
# (root), else the test says it is skipped (and fails when CI is set).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...
# The benchmark module (its own go.mod): vet it and test its arithmetic.
(cd bench && go vet -mod=mod ./... && go test -mod=mod -count=1 ./...)

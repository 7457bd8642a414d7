#!/usr/bin/env bash
# Prints a Postgres base URL (no database name) that is reachable now,
# starting a server when none is:
#   1. $BULKASSIGN_PG_URL, or Postgres on 127.0.0.1:5432 (user postgres, trust or PGPASSWORD);
#   2. else docker compose's postgres service, where a Docker engine runs;
#   3. else a throwaway cluster from this machine's PostgreSQL binaries
#      (installed with apt-get when missing and we are root), on port 54329,
#      kept in ${TMPDIR:-/tmp}/bulkassign-pg.
# Progress goes to stderr; only the URL goes to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "postgres.sh: $*" >&2; }

reachable() { # host port user
  pg_isready -q -h "$1" -p "$2" -U "$3" -t 3 2>/dev/null
}

if [ -n "${BULKASSIGN_PG_URL:-}" ]; then
  echo "$BULKASSIGN_PG_URL"; exit 0
fi

if command -v pg_isready >/dev/null && reachable 127.0.0.1 5432 postgres; then
  say "using Postgres on 127.0.0.1:5432"
  echo "postgres://postgres@127.0.0.1:5432"; exit 0
fi

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  # compose takes the password from POSTGRES_PASSWORD (or .env); a local
  # development database without one gets a fixed development password.
  pw="${POSTGRES_PASSWORD:-bulkassign-dev}"
  say "starting Postgres with docker compose"
  POSTGRES_PASSWORD="$pw" docker compose up -d --wait postgres >&2
  echo "postgres://postgres:${pw}@127.0.0.1:5432"; exit 0
fi

bindir=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bindir="$d"
done
if [ -z "$bindir" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing PostgreSQL from Debian's packages"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bindir="$d"; done
  fi
  [ -n "$bindir" ] || { say "no Postgres reachable and none installable: set BULKASSIGN_PG_URL"; exit 1; }
fi

port=54329
dir="${TMPDIR:-/tmp}/bulkassign-pg"
run() { # run as the postgres user when we are root (initdb refuses root)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if ! reachable 127.0.0.1 "$port" postgres; then
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "creating a throwaway cluster in $dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    run "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  say "starting the throwaway cluster on 127.0.0.1:$port"
  run "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port"

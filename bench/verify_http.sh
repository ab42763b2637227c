#!/usr/bin/env bash
# HTTP verify under load: `keyward serve` on loopback, one hot key, wrk
# posting verify requests. Runs on SQLite, then on PostgreSQL when
# DATABASE_URL is set. Server and load generator share the machine's cores.
#
#   bench/verify_http.sh [SECONDS] [CONNECTIONS]      (needs: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-15}
CONNECTIONS=${2:-64}
source bench/common.sh
verify_bench_setup

run() {
  local label=$1 db_url=$2
  local data=$WORK/$label
  DATABASE_URL=$db_url start_serve "$data" "$KW"
  local pid=$SERVE_PID url=$SERVE_URL admin=$SERVE_ADMIN project=$SERVE_PROJECT
  local token
  token=$(create_key "$url" "$admin" "$project" '{"name":"hot","kind":"secret","mode":"live","scopes":["analytics:read"]}')
  verify_lua "$data/verify.lua" POST "$token"
  curl -s -d "{\"key\":\"$token\"}" "$url/v1/keys/verify" | grep -q '"VALID"'
  echo "### $label"
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$data/verify.lua" "$url/v1/keys/verify"
  kill -TERM "$pid"; wait "$pid" || true
}

run sqlite ""
if [ -n "${DATABASE_URL:-}" ]; then
  db="kwbench_$(date +%s)"
  psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
  run postgres "${DATABASE_URL%/*}/$db"
  psql "$DATABASE_URL" -qc "DROP DATABASE $db" >/dev/null
fi

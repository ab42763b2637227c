#!/usr/bin/env bash
# Verify against the HTTP floor, in one run on one server: wrk on the
# server's own /healthz, then POST /v1/keys/verify for a hot key, a key
# with two rate limits, a key with credits, and 20,000 keys in random
# order (a first pass over keys the cache has never held, timed by
# bench/verify_first_pass.lua; a pass after a restart, which preloads
# them; then warm passes).
#
#   bench/verify_floor.sh [SECONDS] [CONNECTIONS]   (needs wrk and python3; ROUNDS=3)
#
# Server and load generator share the machine's two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-15}
CONNECTIONS=${2:-32}
KEYS=${KEYS:-20000}
ROUNDS=${ROUNDS:-3}
source bench/common.sh
verify_bench_setup
verify_bench_env

start() {
  start_serve "$WORK" "$KW"
  PID=$SERVE_PID
  URL=$SERVE_URL
}

start
ADMIN=$SERVE_ADMIN
PROJECT=$SERVE_PROJECT
create() { create_key "$URL" "$ADMIN" "$PROJECT" "$1"; }
HOT=$(create '{"name":"hot","scopes":["analytics:read"]}')
LIMITED=$(create '{"name":"limited","scopes":["analytics:read"],"ratelimits":[{"name":"second","limit":1000000000,"duration_ms":1000},{"name":"hour","limit":1000000000,"duration_ms":3600000}]}')
CREDITED=$(create '{"name":"credited","scopes":["analytics:read"],"credits":{"remaining":1000000000}}')

echo "== making $KEYS keys"
python3 - "$URL" "$ADMIN" "$PROJECT" "$KEYS" > "$WORK/many.txt" <<'PY'
import json, random, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
url, admin, project, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def make(i):
    body = json.dumps({"name": f"m{i}", "scopes": []}).encode()
    req = urllib.request.Request(f"{url}/v1/projects/{project}/keys", data=body, headers={"Authorization": f"Bearer {admin}"})
    return json.load(urllib.request.urlopen(req))["secret"]
with ThreadPoolExecutor(8) as pool:
    secrets = list(pool.map(make, range(n)))
random.seed(7)
random.shuffle(secrets)
print("\n".join(secrets))
PY

verify_lua "$WORK/hot.lua" POST "$HOT"
verify_lua "$WORK/limited.lua" POST "$LIMITED"
verify_lua "$WORK/credited.lua" POST "$CREDITED"
# Two floors between /healthz and a verify: /healthz read with a verify's
# body (hyper takes the body in), and a verify whose key fails the format
# check (the JSON is parsed and an answer written, but nothing is looked
# up). What a verify costs beyond the second is the lookup and its answer.
verify_lua "$WORK/malformed_key.lua" POST "kw_sk_live_not-a-key"
verify_lua "$WORK/healthz_with_body.lua" GET "$HOT"
# The same request-making script over one key: the baseline for the many
# keys, since making each request in Lua costs wrk time on these cores too.
head -n 1 "$WORK/many.txt" > "$WORK/one.txt"
many_lua() {
  cat > "$WORK/$1.lua" <<LUA
local keys = {}
for line in io.lines("$WORK/$1.txt") do keys[#keys + 1] = line end
local threads, counter = 0, 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args) counter = id end
function request()
  counter = counter + 2
  local key = keys[counter % #keys + 1]
  return wrk.format("POST", "/v1/keys/verify", {["Content-Type"] = "application/json"}, '{"key":"' .. key .. '"}')
end
LUA
}
many_lua many
many_lua one

load() {
  echo "### $1"
  wrk -t2 -c"$CONNECTIONS" -d"$2" --latency ${3:+-s "$3"} "$URL${4:-/v1/keys/verify}" \
    | grep -E "Requests/sec|^ +(50|90|99)%|Socket errors|Non-2xx" | tee "$WORK/last"
  awk '/Requests\/sec/ {print $2}' "$WORK/last" >> "$WORK/rate.$1"
}

# The floor and the one-key loads alternate, ROUNDS times: on two shared
# cores one run can be 10% off, so the medians and the median of each
# round's ratio are what to quote.
for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  load healthz "${SECONDS_PER_RUN}s" "" /healthz
  load hot_key "${SECONDS_PER_RUN}s" "$WORK/hot.lua"
  load two_rate_limits "${SECONDS_PER_RUN}s" "$WORK/limited.lua"
  load one_key_same_script "${SECONDS_PER_RUN}s" "$WORK/one.lua"
  load healthz_with_body "${SECONDS_PER_RUN}s" "$WORK/healthz_with_body.lua" /healthz
  load malformed_key "${SECONDS_PER_RUN}s" "$WORK/malformed_key.lua"
done
ratio() { paste "$WORK/rate.$1" "$WORK/rate.$2" | awk '{print $1 / $2}' | median; }
echo "== medians over $ROUNDS rounds"
for row in healthz hot_key two_rate_limits one_key_same_script healthz_with_body malformed_key; do
  echo "$row $(median < "$WORK/rate.$row") req/s"
done
echo "hot_key / healthz, median of the rounds' ratios: $(ratio hot_key healthz)"
echo "two_rate_limits / healthz: $(ratio two_rate_limits healthz)"
echo "healthz_with_body / healthz: $(ratio healthz_with_body healthz)"
echo "malformed_key / healthz: $(ratio malformed_key healthz)"
load credits "${SECONDS_PER_RUN}s" "$WORK/credited.lua"
# Made after the start, so not cached: each first verify reads the store.
# The script times the pass itself: wrk's own rate would count the warm
# verifies once the pass is over.
timed_pass() {
  echo "### $1"
  wrk -t2 -c"$CONNECTIONS" -d10s -s bench/verify_first_pass.lua "$URL/v1/keys/verify" -- "$2" 2 \
    | grep "first pass" | tee "$WORK/last"
  sed -n 's/.*, \([0-9]*\) verifies\/s$/\1/p' "$WORK/last" > "$WORK/rate.$1"
}
timed_pass many_keys_first_pass "$WORK/many.txt"
# The same timed script over one key, now cached, as many times: the
# first pass's control with wrk's per-answer Lua cost included.
awk -v n="$KEYS" 'NR == 1 {for (i = 0; i < n; i++) print}' "$WORK/many.txt" > "$WORK/same.txt"
timed_pass one_key_first_pass_script "$WORK/same.txt"
# A restart empties the cache, and serve preloads the recently used keys.
kill -TERM "$PID"; wait "$PID" || true
start
sleep 1
load many_keys_after_restart 2s "$WORK/many.lua"
load many_keys_warm "${SECONDS_PER_RUN}s" "$WORK/many.lua"
load healthz_again "${SECONDS_PER_RUN}s" "" /healthz
echo "log lines written by serve during the runs: $(wc -l < "$WORK/log")"
one=$(median < "$WORK/rate.one_key_same_script")
for row in many_keys_first_pass many_keys_after_restart many_keys_warm; do
  echo "$row / one_key_same_script: $(awk -v a="$(cat "$WORK/rate.$row")" -v b="$one" 'BEGIN {printf "%.2f", a / b}')"
done
echo "many_keys_first_pass / one_key_first_pass_script: $(awk -v a="$(cat "$WORK/rate.many_keys_first_pass")" \
  -v b="$(cat "$WORK/rate.one_key_first_pass_script")" 'BEGIN {printf "%.2f", a / b}')"

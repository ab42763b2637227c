#!/usr/bin/env bash
# Two builds of keyward side by side on the verify floor: each serves from
# its own data directory, and the loads alternate between them round by
# round (/healthz, a hot key, a key with two rate limits), so a noisy
# minute on these shared cores hits both alike.
#
#   BASELINE=/path/to/older/keyward bench/verify_ab.sh [SECONDS] [ROUNDS]
#
# Quotes, per build, the medians and the median of each round's ratio to
# its own /healthz.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-4}
: "${BASELINE:?set BASELINE to the keyward binary to compare against}"
source bench/common.sh
cargo build --release --quiet
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export KEYWARD_PEPPER=$(python3 -c 'print("42" * 32)')
# Keep wrk, not the limiter, the bottleneck.
export KEYWARD_RATE_VERIFY_PER_IP=10000000 KEYWARD_RATE_VERIFY_PER_KEY=10000000

serve() {
  local dir=$WORK/$1
  mkdir -p "$dir"
  "$2" serve --listen 127.0.0.1:0 --data-dir "$dir/data" > "$dir/out" 2> "$dir/log" &
  for _ in $(seq 100); do grep -q "listening" "$dir/out" 2>/dev/null && break; sleep 0.1; done
  local url admin project
  url=$(sed -n 's/^keyward listening on //p' "$dir/out")
  admin=$(sed -n 's/^admin key (shown once, store it now): //p' "$dir/out")
  project=$(sed -n 's/^project: //p' "$dir/out")
  echo "$url" > "$dir/url"
  for load in hot limited; do
    local limits=''
    [ "$load" = limited ] && limits=',"ratelimits":[{"name":"second","limit":1000000000,"duration_ms":1000},{"name":"hour","limit":1000000000,"duration_ms":3600000}]'
    local secret
    secret=$(curl -s -H "Authorization: Bearer $admin" -d "{\"name\":\"$load\",\"scopes\":[\"analytics:read\"]$limits}" "$url/v1/projects/$project/keys" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
    cat > "$dir/$load.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"$secret","scope":"analytics:read","mode":"live"}'
LUA
  done
}

serve baseline "$BASELINE"
serve current "$PWD/target/release/keyward"

for round in $(seq "$ROUNDS"); do
  for build in baseline current; do
    url=$(cat "$WORK/$build/url")
    for load in healthz hot limited; do
      if [ "$load" = healthz ]; then args=("$url/healthz"); else args=(-s "$WORK/$build/$load.lua" "$url/v1/keys/verify"); fi
      rate=$(wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" "${args[@]}" | awk '/Requests\/sec/ {print $2}')
      echo "round $round $build $load $rate" | tee -a "$WORK/rates"
    done
  done
done

echo "== medians over $ROUNDS rounds"
for build in baseline current; do
  rates() { awk -v b="$build" -v l="$1" '$3 == b && $4 == l {print $5}' "$WORK/rates"; }
  ratio() { paste <(rates "$1") <(rates healthz) | awk '{print $1 / $2}' | median; }
  echo "$build: healthz $(rates healthz | median) hot $(rates hot | median) limited $(rates limited | median) req/s;" \
    "hot/healthz $(ratio hot) limited/healthz $(ratio limited)"
done

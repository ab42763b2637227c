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
verify_bench_setup
verify_bench_env

serve() {
  local dir=$WORK/$1
  start_serve "$dir" "$2"
  local url=$SERVE_URL admin=$SERVE_ADMIN project=$SERVE_PROJECT
  echo "$url" > "$dir/url"
  for load in hot limited; do
    local limits=''
    [ "$load" = limited ] && limits=',"ratelimits":[{"name":"second","limit":1000000000,"duration_ms":1000},{"name":"hour","limit":1000000000,"duration_ms":3600000}]'
    verify_lua "$dir/$load.lua" POST "$(create_key "$url" "$admin" "$project" "{\"name\":\"$load\",\"scopes\":[\"analytics:read\"]$limits}")"
  done
}

serve baseline "$BASELINE"
serve current "$KW"

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

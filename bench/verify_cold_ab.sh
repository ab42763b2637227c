#!/usr/bin/env bash
# Two builds of keyward on verify's cache misses. Each round, for each
# build: a fresh server, keys made after its start (so the cache has never
# held them), one pass over them in random order timed by
# bench/verify_first_pass.lua, then the same script on one key as that
# build's baseline. The builds alternate round by round, so a noisy
# minute on these shared cores hits both alike.
#
#   BASELINE=/path/to/older/keyward bench/verify_cold_ab.sh [ROUNDS] [MAKE_SECONDS]
#
# Quotes, per build, the medians and the median of the rounds' ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
MAKE_SECONDS=${2:-30}
: "${BASELINE:?set BASELINE to the keyward binary to compare against}"
source bench/common.sh
verify_bench_setup
verify_bench_env

one_pass() {
  local build=$1 binary=$2 dir=$WORK/$1
  serve_with_new_keys "$dir" "$binary" "$MAKE_SECONDS"
  local pid=$SERVE_PID url=$SERVE_URL
  head -n 1 "$dir/keys" > "$dir/one"
  local keys first one
  keys=$(wc -l < "$dir/keys")
  sleep 1
  first=$(wrk -t2 -c32 -d"$((keys / 4000 + 3))s" -s bench/verify_first_pass.lua "$url/v1/keys/verify" -- "$dir/keys" 2 \
    | sed -n 's/.*, \([0-9]*\) verifies\/s$/\1/p')
  one=$(wrk -t2 -c32 -d5s -s bench/verify_first_pass.lua "$url/v1/keys/verify" -- "$dir/one" 2 | awk '/Requests\/sec/ {print $2}')
  kill -TERM "$pid"
  wait "$pid" || true
  echo "round $round $build keys $keys first_pass ${first:-0} one_key $one" | tee -a "$WORK/rates"
}

for round in $(seq "$ROUNDS"); do
  one_pass baseline "$BASELINE"
  one_pass current "$KW"
done

echo "== medians over $ROUNDS rounds"
for build in baseline current; do
  rates() { awk -v b="$build" -v l="$1" '$3 == b {for (i = 4; i < NF; i++) if ($i == l) print $(i + 1)}' "$WORK/rates"; }
  echo "$build: first pass $(rates first_pass | median) one key $(rates one_key | median) verifies/s;" \
    "first pass / one key $(paste <(rates first_pass) <(rates one_key) | awk '{print $1 / $2}' | median)"
done

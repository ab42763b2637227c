#!/usr/bin/env bash
# What writing the usage counters costs after a pass over keys verified
# for the first time: each key gains a row per hour and outcome, a row per
# day, and a new last use. A fresh server, keys made after its start, one
# verify pass over them, then the flushes; the CPU time of serve's SQLite
# writer threads (sqlx's; besides the flushes they only answer the job
# queues' idle polls here) over that span, per key. With BASELINE set, that build runs too, alternating round by round.
#
#   [BASELINE=/path/to/older/keyward] bench/usage_flush.sh [ROUNDS] [MAKE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
MAKE_SECONDS=${2:-20}
source bench/common.sh
verify_bench_setup
verify_bench_env

# CPU clock ticks of the process's threads whose name starts with sqlx.
writer_ticks() {
  for task in /proc/"$1"/task/*; do
    if [[ $(cat "$task/comm") == sqlx* ]]; then awk '{print $14 + $15}' "$task/stat"; fi
  done | awk '{s += $1} END {print s + 0}'
}

one_round() {
  local build=$1 binary=$2 dir=$WORK/$1
  serve_with_new_keys "$dir" "$binary" "$MAKE_SECONDS"
  local pid=$SERVE_PID url=$SERVE_URL
  local keys before after
  keys=$(wc -l < "$dir/keys")
  # Making keys counts no use, but its last writes and checkpoint are
  # kept out of the count.
  sleep 7
  before=$(writer_ticks "$pid")
  wrk -t2 -c32 -d"$((keys / 4000 + 3))s" -s bench/verify_first_pass.lua "$url/v1/keys/verify" -- "$dir/keys" 2 > /dev/null
  # A flush after a busy second waits up to 5 s for the next.
  sleep 7
  after=$(writer_ticks "$pid")
  kill -TERM "$pid"
  wait "$pid" || true
  echo "round $round $build keys $keys writer_us_per_key $(awk -v t=$((after - before)) -v k="$keys" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.1f", t * 1e6 / hz / k}')" | tee -a "$WORK/rates"
}

for round in $(seq "$ROUNDS"); do
  [ -n "${BASELINE:-}" ] && one_round baseline "$BASELINE"
  one_round current "$KW"
done

echo "== medians over $ROUNDS rounds (µs of writer CPU per key)"
for build in baseline current; do
  values=$(awk -v b="$build" '$3 == b {print $7}' "$WORK/rates")
  [ -n "$values" ] && echo "$build: $(median <<< "$values")"
done

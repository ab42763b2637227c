#!/usr/bin/env bash
# Where a verify's cost lies against the HTTP floor: CPU per request, of
# serve and of wrk, for four loads on one server, alternating round by
# round: GET /healthz; GET /healthz carrying a verify's body; a verify
# whose key fails the format check (parsed and answered, nothing looked
# up); and a hot key. Both share the machine's two cores, so the rate is
# set by their two costs added, and a ratio to /healthz is a ratio of sums.
#
#   bench/verify_cpu.sh [SECONDS] [ROUNDS]   (needs wrk, python3, GNU time)
#
# serve's CPU comes from /proc/PID/stat around each run, wrk's from GNU
# time; both are divided by the requests wrk counted.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-4}
ROUNDS=${2:-5}
source bench/common.sh
verify_bench_setup
verify_bench_env

start_serve "$WORK" "$KW"
SECRET=$(create_key "$SERVE_URL" "$SERVE_ADMIN" "$SERVE_PROJECT" '{"name":"hot","scopes":["analytics:read"]}')
verify_lua "$WORK/healthz_with_body.lua" GET "$SECRET"
verify_lua "$WORK/malformed_key.lua" POST "kw_sk_live_not-a-key"
verify_lua "$WORK/hot_key.lua" POST "$SECRET"

serve_ticks() { awk '{print $14 + $15}' "/proc/$SERVE_PID/stat"; }
ticks_per_second=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  for load in healthz healthz_with_body malformed_key hot_key; do
    case $load in
      healthz) args=("$SERVE_URL/healthz") ;;
      healthz_with_body) args=(-s "$WORK/$load.lua" "$SERVE_URL/healthz") ;;
      *) args=(-s "$WORK/$load.lua" "$SERVE_URL/v1/keys/verify") ;;
    esac
    before=$(serve_ticks)
    /usr/bin/time -f "%U %S" -o "$WORK/wrk_time" wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" "${args[@]}" > "$WORK/wrk_out"
    after=$(serve_ticks)
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk_out")
    rate=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk_out")
    read -r user system < "$WORK/wrk_time"
    awk -v r="$round" -v l="$load" -v rate="$rate" -v n="$requests" -v s=$((after - before)) -v hz="$ticks_per_second" \
      -v u="$user" -v sys="$system" \
      'BEGIN {printf "round %s %s %.0f %.2f %.2f\n", r, l, rate, s / hz * 1e6 / n, (u + sys) * 1e6 / n}' | tee -a "$WORK/rows"
  done
done

echo "== medians over $ROUNDS rounds (req/s; serve and wrk CPU, µs per request; ratio to /healthz per round)"
for load in healthz healthz_with_body malformed_key hot_key; do
  col() { awk -v l="$load" -v c="$1" '$3 == l {print $c}' "$WORK/rows" | median; }
  ratio=$(paste <(awk -v l="$load" '$3 == l {print $4}' "$WORK/rows") <(awk '$3 == "healthz" {print $4}' "$WORK/rows") \
    | awk '{print $1 / $2}' | median)
  echo "$load $(col 4) req/s; serve $(col 5) µs; wrk $(col 6) µs; ${ratio}x"
done

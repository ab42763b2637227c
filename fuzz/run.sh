#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, TWO at a time on
# this 2-core box, and prints each target's executions and outcome.
#   fuzz/run.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain (`rustup toolchain install nightly`) and
# cargo-fuzz (`cargo install cargo-fuzz`). Each target starts from its
# small seed corpus in fuzz/seeds/ (kept in the repository, under 2 MB) and
# grows its working corpus in target/fuzz-corpus/ (not committed);
# a crash lands in fuzz/artifacts/<target>/ and this script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(engine_vs_reference webhook_payloads token_parse rule_files)
logs=$(mktemp -d)
cargo +nightly fuzz build -O >/dev/null
args_for() {
  case $1 in
    engine_vs_reference) echo "-dict=fuzz/dict/engine.dict -max_len=4096" ;;
    *) echo "" ;;
  esac
}
run() {
  # shellcheck disable=SC2046
  mkdir -p "target/fuzz-corpus/$1"
  cargo +nightly fuzz run -O "$1" "target/fuzz-corpus/$1" "fuzz/seeds/$1" -- -max_total_time="$seconds" -print_final_stats=1 $(args_for "$1") >"$logs/$1.log" 2>&1
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do run "$t" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
for t in "${targets[@]}"; do
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$logs/$t.log" | awk '{print $2}')
  crash=$(grep -c 'panicked\|ERROR: libFuzzer' "$logs/$t.log" || true)
  printf '%-22s %6ss %12s runs  %s\n' "$t" "$seconds" "${runs:-?}" "$([ "$crash" = 0 ] && echo ok || echo CRASH)"
done
echo "logs: $logs"
exit $status

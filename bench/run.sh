#!/usr/bin/env bash
# End-to-end scan benchmark: keyward against ripsecrets and detect-secrets on
# the same trees, in the same run, page cache warm. Prints a Markdown table
# of medians (wall, MiB/s, peak RSS, findings) for BENCHMARKS.md.
#
#   bench/run.sh [RUNS]          # default 5 runs per tool and tree
#   TREES="real" bench/run.sh    # only some trees; the others' last results are kept
#
# Peers: `cargo install ripsecrets --version 0.1.11 --locked`,
#        `pip install detect-secrets==1.5.0`.
# ripsecrets runs at most 3 times and detect-secrets once per tree: they are
# 100x to 1000x slower.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-5}
# ripsecrets takes about a minute per run on these trees.
SLOW_RUNS=$(( RUNS < 3 ? RUNS : 3 ))
OUT=bench/out
mkdir -p "$OUT"

cargo build --release --quiet
KW=target/release/keyward

# Trees: a generated corpus with planted tokens, and a real source tree
# (the Rust crates vendored on this machine, C headers and the Python stdlib).
[ -d "$OUT/gen256" ] || python3 bench/corpus.py --out "$OUT/gen256" --size 256M --sets 4 --manifest "$OUT/gen256.jsonl" >/dev/null
if [ ! -d "$OUT/real" ]; then
  mkdir -p "$OUT/real"
  cp -r "$HOME/.cargo/registry/src" "$OUT/real/crates"
  cp -r /usr/include "$OUT/real/include"
  mkdir -p "$OUT/real/python-stdlib"
  tar -C "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" --exclude=site-packages -cf - . | tar -C "$OUT/real/python-stdlib" -xf -
fi
[ -d "$OUT/gen1g" ] || python3 bench/corpus.py --out "$OUT/gen1g" --size 1G --seed 3 >/dev/null
[ -f "$OUT/one-gib.txt" ] || find "$OUT/gen1g/src" -type f -print0 | xargs -0 cat | head -c 1073741824 > "$OUT/one-gib.txt"


# time_cmd LABEL TREE CMD...: one run, appends "label tree wall rss findings".
time_cmd() {
  local label=$1 tree=$2; shift 2
  local out; out=$(mktemp)
  /usr/bin/time -f "%e %M" -o "$out.time" "$@" > "$out" 2>/dev/null || true
  local findings
  case $label in
    keyward) findings=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$out") ;;
    ripsecrets) findings=$(wc -l < "$out") ;;
    detect-secrets) findings=$(python3 -c 'import json,sys; print(sum(len(v) for v in json.load(open(sys.argv[1]))["results"].values()))' "$out") ;;
  esac
  echo "$label $tree $(tail -n 1 "$out.time") $findings" >> "$OUT/results-$tree.txt"
  rm -f "$out" "$out.time"
}

TREES=${TREES:-gen256 real gen1g}
for tree in $TREES; do : > "$OUT/results-$tree.txt"; done
for tree in $TREES; do
  [ "$tree" = gen1g ] && continue
  warm "$OUT/$tree"
  for _ in $(seq "$RUNS"); do time_cmd keyward "$tree" "$KW" scan "$OUT/$tree" --format json -q; done
  for _ in $(seq "$SLOW_RUNS"); do time_cmd ripsecrets "$tree" ripsecrets "$OUT/$tree"; done
  time_cmd detect-secrets "$tree" detect-secrets scan --all-files "$OUT/$tree"
done
if [[ " $TREES " == *" gen1g "* ]]; then
  : > "$OUT/results-one-gib-file.txt"
  warm "$OUT/gen1g"
  for _ in $(seq "$RUNS"); do time_cmd keyward gen1g "$KW" scan "$OUT/gen1g" --format json -q; done
  for _ in $(seq "$RUNS"); do time_cmd keyward one-gib-file "$KW" scan "$OUT/one-gib.txt" --format json -q; done
fi

python3 - "$OUT" <<'PY'
import collections, statistics, subprocess, sys
out = sys.argv[1]
size = {t: int(subprocess.check_output(["du", "-sb", f"{out}/{p}"]).split()[0])
        for t, p in {"gen256": "gen256", "real": "real", "gen1g": "gen1g", "one-gib-file": "one-gib.txt"}.items()}
runs = collections.defaultdict(list)
import glob
for path in sorted(glob.glob(f"{out}/results-*.txt")):
    for line in open(path):
        tool, tree, wall, rss, findings = line.split()
        runs[(tree, tool)].append((float(wall), int(rss), int(findings)))
print("| tree | MiB | tool | runs | median wall s | MiB/s | peak RSS MiB | findings | keyward speed-up |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
kw = {tree: statistics.median(w for w, _, _ in r) for (tree, tool), r in runs.items() if tool == "keyward"}
for (tree, tool), r in runs.items():
    wall = statistics.median(w for w, _, _ in r)
    mib = size[tree] / 2**20
    ratio = "" if tool == "keyward" else f"{wall / kw[tree]:.0f}x"
    rate = mib / max(wall, 1e-3)
    rate = f"{rate:.0f}" if rate >= 10 else f"{rate:.2f}"
    print(f"| {tree} | {mib:.0f} | {tool} | {len(r)} | {wall:.2f} | {rate} | {max(x for _, x, _ in r) / 1024:.0f} | {r[0][2]} | {ratio} |")
PY

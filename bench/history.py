#!/usr/bin/env python3
"""Builds a large git history from real source files, for `bench/git.sh`.

git/git cannot be cloned here (no network beyond package registries), so
this makes a repository of the same shape from the source trees on the
machine: an initial import, then commits that each edit a few files (a new
full-size blob per edit, as real history has) and add a few new ones. A
handful of valid tokens are planted in known commits and removed later, so
the benchmark also checks that the scan finds them.

    bench/history.py --out DIR --commits 40000 [--seed 1]

Feeds `git fast-import`, then repacks with deltas as a cloned repository is.
"""
import argparse
import os
import random
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import corpus  # noqa: E402  (the independent token generator)

ROOTS = [
    os.path.expanduser("~/.cargo/registry/src"),
    "/usr/include",
    os.path.join(sys.prefix, "lib", "python%d.%d" % sys.version_info[:2]),
]
MAX_FILE = 1 << 20


def source_files():
    files = []
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "__pycache__", ".git"))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    if os.path.isfile(path) and not os.path.islink(path) and 0 < os.path.getsize(path) <= MAX_FILE:
                        files.append((path, os.path.relpath(path, "/").replace(os.sep, "/")))
                except OSError:
                    pass
    return files


def blob(out, data):
    out.write(b"data %d\n" % len(data))
    out.write(data)
    out.write(b"\n")


def commit(out, n, when, message, changes, deletes=()):
    author = b"Dev %d <dev%d@example.com> %d +0000" % (n % 37, n % 37, when)
    out.write(b"commit refs/heads/main\n")
    out.write(b"author " + author + b"\ncommitter " + author + b"\n")
    blob(out, message.encode())
    for path in deletes:
        out.write(b"D " + path.encode() + b"\n")
    for path, data in changes:
        out.write(b"M 100644 inline " + path.encode() + b"\n")
        blob(out, data)


def edit(rng, data):
    """Inserts or replaces one line, as a small real change would."""
    lines = data.split(b"\n")
    at = rng.randrange(len(lines) + 1)
    line = b"    value_%d = %d  # edited" % (rng.randrange(10**6), rng.randrange(10**9))
    if at < len(lines) and rng.random() < 0.5:
        lines[at] = line
    else:
        lines.insert(at, line)
    return b"\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--commits", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    files = source_files()
    rng.shuffle(files)
    initial, pool = files[: len(files) // 3], files[len(files) // 3 :]
    subprocess.run(["git", "init", "-q", "-b", "main", args.out], check=True)
    fi = subprocess.Popen(["git", "-C", args.out, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    out = fi.stdin
    contents = {}
    when = 1_500_000_000
    changes = []
    for src, path in initial:
        with open(src, "rb") as f:
            contents[path] = f.read()
        changes.append((path, contents[path]))
    commit(out, 0, when, "import", changes)
    tokens = [corpus.FORMATS[name](rng) for name in ("github-ghp", "npm", "keyward-sk-live", "aws-access-key-id")]
    planted = {args.commits * (i + 1) // (len(tokens) + 1): t for i, t in enumerate(tokens)}
    live = list(contents)
    for n in range(1, args.commits):
        when += rng.randrange(60, 7200)
        changes, deletes = [], []
        for _ in range(rng.choice((1, 2, 3, 3, 4, 6))):
            path = rng.choice(live)
            contents[path] = edit(rng, contents[path])
            changes.append((path, contents[path]))
        if pool and rng.random() < 0.5:
            src, path = pool.pop()
            with open(src, "rb") as f:
                contents[path] = f.read()
            live.append(path)
            changes.append((path, contents[path]))
        if n in planted:
            changes.append(("config/leak-%d.env" % n, b"TOKEN=" + planted[n].encode() + b"\n"))
        if n - 5 in planted:
            deletes.append("config/leak-%d.env" % (n - 5))
        commit(out, n, when, "change %d" % n, changes, deletes)
    out.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")
    print("planted %d tokens, crc32 %08x" % (len(planted), zlib.crc32("".join(planted.values()).encode())))


if __name__ == "__main__":
    main()

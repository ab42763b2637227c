#!/usr/bin/env python3
"""Generate a source-like corpus with planted tokens, for tests and benchmarks.

This is a second, independent implementation of every token format keyward
ships rules for (CRC32 via zlib, base64 via the standard library), so a test
that scans its output checks the Rust rules against it rather than against
themselves.

    python3 bench/corpus.py --out DIR --size 256M --manifest planted.jsonl

Every planted token goes in the manifest with `"expect": "found"`; every
decoy (bad checksum, placeholder, glued to a word) with `"expect": "absent"`.
The same seed gives the same corpus.
"""
import argparse
import base64
import json
import os
import random
import string
import zlib

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
URLSAFE = BASE62 + "_-"
HEX = "0123456789abcdef"


def b62_crc(payload: str) -> str:
    value = zlib.crc32(payload.encode())
    out = ""
    for _ in range(6):
        out = BASE62[value % 62] + out
        value //= 62
    return out


def rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def keyward(rng, kind="sk", mode="live", prefix="kw"):
    head = f"{prefix}_{kind}_{mode}_" + rand(rng, BASE62, 43)
    return head + b62_crc(head)


def github(rng, p="ghp"):
    body = rand(rng, BASE62, 30)
    return f"{p}_{body}{b62_crc(body)}"


def npm(rng):
    body = rand(rng, BASE62, 30)
    return f"npm_{body}{b62_crc(body)}"


def pem(rng):
    lines = [base64.b64encode(rng.randbytes(48)).decode() for _ in range(12)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"


# name -> generator of one valid token
FORMATS = {
    "keyward-sk-live": lambda r: keyward(r, "sk", "live"),
    "keyward-sk-test": lambda r: keyward(r, "sk", "test"),
    "keyward-pk-live": lambda r: keyward(r, "pk", "live"),
    "github-ghp": lambda r: github(r, "ghp"),
    "github-gho": lambda r: github(r, "gho"),
    "github-ghu": lambda r: github(r, "ghu"),
    "github-ghs": lambda r: github(r, "ghs"),
    "github-ghr": lambda r: github(r, "ghr"),
    "github-pat": lambda r: "github_pat_" + rand(r, BASE62, 22) + "_" + rand(r, BASE62, 59),
    "npm": npm,
    "gitlab-pat": lambda r: "glpat-" + rand(r, URLSAFE, 20),
    "slack-bot": lambda r: f"xoxb-{rand(r, string.digits, 12)}-{rand(r, string.digits, 13)}-{rand(r, BASE62, 24)}",
    "slack-user": lambda r: f"xoxp-{rand(r, string.digits, 12)}-{rand(r, string.digits, 12)}-{rand(r, string.digits, 13)}-{rand(r, HEX, 32)}",
    "slack-webhook": lambda r: f"https://hooks.slack.com/services/T{rand(r, string.ascii_uppercase + string.digits, 10)}/B{rand(r, string.ascii_uppercase + string.digits, 10)}/{rand(r, BASE62, 24)}",
    "stripe-sk": lambda r: "sk_live_" + rand(r, BASE62, 99),
    "stripe-rk": lambda r: "rk_live_" + rand(r, BASE62, 24),
    "aws-access-key-id": lambda r: "AKIA" + rand(r, string.ascii_uppercase + "234567", 16),
    "pypi": lambda r: "pypi-AgEIcHlwaS5vcmc" + rand(r, URLSAFE, 140),
    "openai-project": lambda r: "sk-proj-" + rand(r, URLSAFE, 74) + "T3BlbkFJ" + rand(r, URLSAFE, 74),
    "openai-legacy": lambda r: "sk-" + rand(r, BASE62, 20) + "T3BlbkFJ" + rand(r, BASE62, 20),
    "anthropic": lambda r: "sk-ant-api03-" + rand(r, URLSAFE, 93) + "AA",
    "google-api-key": lambda r: "AIza" + rand(r, URLSAFE, 35),
    "sendgrid": lambda r: "SG." + rand(r, URLSAFE, 22) + "." + rand(r, URLSAFE, 43),
    "twilio-api-key": lambda r: "SK" + rand(r, HEX, 32),
    "pem-private-key": pem,
}

CHECKSUMMED = ["keyward-sk-live", "github-ghp", "github-gho", "npm"]


def bad_checksum(rng, fmt):
    token = FORMATS[fmt](rng)
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


DECOYS = {
    "placeholder-x": lambda r: "ghp_" + "X" * 36,
    "placeholder-zero": lambda r: "kw_sk_live_" + "0" * 49,
    "placeholder-slot": lambda r: "ghp_<your-token>",
    "placeholder-env": lambda r: "sk_live_${STRIPE_KEY}",
    "aws-doc-example": lambda r: "AKIAIOSFODNN7EXAMPLE",
    "glued-word": lambda r: "x" + github(r, "ghp"),
    "glued-tail": lambda r: github(r, "ghp") + "abc",
}

WORDS = (
    "def class return import from self value result config request response "
    "error handler client server token user name data items index count "
    "buffer stream parse format encode decode options params context logger "
    "fn let mut pub struct impl match const static async await yield lambda "
    "if else for while in not and or None true false null undefined this"
).split()


def code_line(rng):
    indent = " " * (4 * rng.randint(0, 3))
    kind = rng.randint(0, 5)
    w = lambda: rng.choice(WORDS)
    if kind == 0:
        return f"{indent}{w()}_{w()} = {w()}({w()}, {rng.randint(0, 9999)})"
    if kind == 1:
        return f"{indent}# {' '.join(w() for _ in range(rng.randint(3, 12)))}"
    if kind == 2:
        return f'{indent}{w()}.{w()}("{w()} {w()}: %s", {w()}_{w()})'
    if kind == 3:
        return f"{indent}if {w()} == {w()}: {w()}({rng.randint(0, 99)})"
    if kind == 4:
        return f"{indent}let {w()}Id = \"{rand(rng, string.hexdigits, 16)}\";"
    return f"{indent}{w()} {w()} {w()} {w()} {w()}"


class Corpus:
    def __init__(self, out, seed):
        self.out = out
        self.rng = random.Random(seed)
        self.pool = [code_line(self.rng) for _ in range(4000)]
        self.manifest = []
        self.bytes = 0
        self.files = 0

    def filler(self, n_lines, nl="\n"):
        return nl.join(self.rng.choices(self.pool, k=n_lines)) + nl

    def write(self, rel, text, newline=None):
        path = os.path.join(self.out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = text.encode()
        with open(path, "wb") as f:
            f.write(data)
        self.bytes += len(data)
        self.files += 1
        return rel

    def plant(self, rel, token, fmt, context, expect="found"):
        self.manifest.append({"path": rel, "token": token, "format": fmt, "context": context, "expect": expect})

    def contexts(self, fmt, token, d):
        """One file per context; returns nothing, records the manifest."""
        r = self.rng
        one_line = "\n" not in token
        name = fmt.upper().replace("-", "_")
        if one_line:
            self.plant(self.write(f"{d}/.env", self.filler(20) + f"{name}={token}\n" + self.filler(5)), token, fmt, "env")
            self.plant(self.write(f"{d}/config.json", json.dumps({"service": {"name": "api", "credentials": {"token": token}}}, indent=2) + "\n"), token, fmt, "json")
            self.plant(self.write(f"{d}/values.yaml", f"service:\n  name: api\n  auth:\n    token: \"{token}\"\n"), token, fmt, "yaml")
            js = "".join(r.choices(["var a=1;", "function f(b){return b*2}", "x.y(z);", "if(q){w()}"], k=30000))
            self.plant(self.write(f"{d}/bundle.min.js", js[:150000] + f'const k="{token}";' + js[150000:]), token, fmt, "minified-js")
            self.plant(self.write(f"{d}/windows.ini", self.filler(30, "\r\n") + f"token = {token}\r\n" + self.filler(3, "\r\n")), token, fmt, "crlf")
            self.plant(self.write(f"{d}/nofinal.sh", self.filler(10) + f"export TOKEN={token}"), token, fmt, "no-final-newline")
            if not token.startswith("https://"):
                self.plant(self.write(f"{d}/curl.txt", f"curl 'https://api.example.com/v1/things?access_token={token}&page=2'\n"), token, fmt, "url-query")
            self.plant(self.write(f"{d}/README.md", f"# Setup\n\nSet the key:\n\n```sh\nexport KEY={token}\n```\n\nInline `{token}` too.\n"), token, fmt, "markdown")
            self.plant(self.write(f"{d}/settings.toml", f"[api]\nurl = \"https://example.com\"\nkey = '{token}'\n"), token, fmt, "toml")
        else:
            self.plant(self.write(f"{d}/id_rsa", token + "\n"), token, fmt, "file")
            self.plant(self.write(f"{d}/nofinal.key", token), token, fmt, "no-final-newline")
            self.plant(self.write(f"{d}/crlf.pem", token.replace("\n", "\r\n") + "\r\n"), token, fmt, "crlf")
        # Key names of 2, 4 and 6 bytes put the token at each base64 alignment.
        payload = f"{r.choice(['t=', 'key=', 'token='])}{token}\n" if one_line else token + "\n"
        secret = (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ntype: Opaque\ndata:\n"
            f"  token: {base64.b64encode(payload.encode()).decode()}\n"
        )
        self.plant(self.write(f"{d}/secret.yaml", secret), token, fmt, "k8s-secret-base64")

    def planted_set(self, prefix):
        for fmt, gen in FORMATS.items():
            self.contexts(fmt, gen(self.rng), f"{prefix}/{fmt}")
        for fmt in CHECKSUMMED:
            token = bad_checksum(self.rng, fmt)
            self.plant(self.write(f"{prefix}/decoys/{fmt}.env", f"TOKEN={token}\n"), token, fmt, "bad-checksum", "absent")
        for name, gen in DECOYS.items():
            token = gen(self.rng)
            self.plant(self.write(f"{prefix}/decoys/{name}.txt", f"token: {token}\n"), token, name, "decoy", "absent")

    def bulk(self, target):
        n = 0
        while self.bytes < target:
            lines = self.rng.randint(50, 6000)
            self.write(f"src/mod{n // 200:03}/file{n:06}.py", self.filler(lines))
            n += 1


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="1M", help="total bytes, e.g. 256M or 1G")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--manifest", help="JSONL of planted tokens and decoys")
    ap.add_argument("--sets", type=int, default=1, help="how many full sets of planted tokens")
    args = ap.parse_args()
    corpus = Corpus(args.out, args.seed)
    for i in range(args.sets):
        corpus.planted_set(f"planted/set{i:03}")
    corpus.bulk(parse_size(args.size))
    if args.manifest:
        with open(args.manifest, "w") as f:
            for entry in corpus.manifest:
                f.write(json.dumps(entry) + "\n")
    print(json.dumps({"files": corpus.files, "bytes": corpus.bytes, "planted": sum(e["expect"] == "found" for e in corpus.manifest)}))


if __name__ == "__main__":
    main()

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
import glob
import json
import os
import random
import string
import struct
import tomllib
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

def b36(value, width):
    digits = string.digits + string.ascii_lowercase
    out = ""
    for _ in range(width):
        out = digits[value % 36] + out
        value //= 36
    return out


def gitlab_routable(rng, prefix="glpat-"):
    payload = base64.urlsafe_b64encode(b"o:1\n" + rng.randbytes(16) + b"\x10").decode().rstrip("=")
    signed = f"{prefix}{payload}.{b36(len(payload), 2)}"
    return signed + b36(zlib.crc32(signed.encode()), 7)


def atlassian(rng):
    signed = "ATATT3xFfGF0" + rand(rng, URLSAFE, 171) + "="
    return signed + "%08X" % zlib.crc32(signed.encode())


def grafana_sa(rng):
    signed = "glsa_" + rand(rng, BASE62, 32)
    return signed + "_" + struct.pack("<I", zlib.crc32(signed.encode())).hex()


def marvin32(data, seed):
    """Marvin32 as SymCrypt and .NET define it."""
    mask = 0xFFFFFFFF
    rotl = lambda x, n: ((x << n) | (x >> (32 - n))) & mask

    def block(p0, p1):
        p1 ^= p0
        p0 = (rotl(p0, 20) + p1) & mask
        p1 = rotl(p1, 9) ^ p0
        p0 = (rotl(p0, 27) + p1) & mask
        return p0, rotl(p1, 19)

    p0, p1 = seed & mask, seed >> 32
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        p0 = (p0 + struct.unpack("<I", data[i:i + 4])[0]) & mask
        p0, p1 = block(p0, p1)
    tail = data[whole:]
    last = 0x80 << (8 * len(tail))
    for i, b in enumerate(tail):
        last |= b << (8 * i)
    p0, p1 = block((p0 + last) & mask, p1)
    p0, p1 = block(p0, p1)
    return p0 ^ p1


DEFAULT0 = int.from_bytes(b"Default0", "big")


def azure_storage(rng):
    while True:
        head = base64.b64decode(base64.b64encode(rng.randbytes(57)).decode() + "+ASt")
        key = base64.b64encode(head + struct.pack("<I", marvin32(head, DEFAULT0))).decode()
        if key[76:80] == "+ASt":
            return key


def azure_devops(rng):
    while True:
        body = rand(rng, BASE62, 52) + "JQQJ99" + rand(rng, BASE62, 1) + rng.choice("ABCDEFGHIJKL") + rand(rng, BASE62, 16) + rng.choice(string.ascii_letters) + rand(rng, BASE62, 3)
        check = base64.b64encode(struct.pack("<I", marvin32(base64.b64decode(body), DEFAULT0))[:3]).decode()
        if "+" not in check and "/" not in check:
            return body + check


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32_polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk


def age(rng):
    acc, bits, data = 0, 0, []
    for b in rng.randbytes(32):
        acc, bits = (acc << 8) | b, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    data.append((acc << (5 - bits)) & 31)
    hrp = "age-secret-key-"
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = bech32_polymod(expanded + data + [0] * 6) ^ 1
    check = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return (hrp + "1" + "".join(BECH32[x] for x in data + check)).upper()


def b64json(prefix, obj):
    return prefix + base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def jwt(rng):
    part = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return part({"alg": "RS256", "typ": "JWT"}) + "." + part({"sub": rand(rng, BASE62, 12), "iat": rng.randint(10**9, 2 * 10**9)}) + "." + rand(rng, URLSAFE, 86)


# Families with a checksum or a structure, generated from their published
# layouts rather than from the rules.
FORMATS.update({
    "gitlab-routable": gitlab_routable,
    "atlassian": atlassian,
    "grafana-sa": grafana_sa,
    "grafana-cloud": lambda r: b64json("glc_", {"o": str(r.randint(1, 10**6)), "n": "stack-" + rand(r, BASE62, 6), "k": rand(r, BASE62, 32), "m": {"r": "prod-eu-west-0"}}),
    "azure-storage": azure_storage,
    "azure-devops": azure_devops,
    "age": age,
    "jwt": jwt,
    "sentry-org": lambda r: b64json("sntrys_", {"iat": r.randint(10**9, 2 * 10**9), "url": "https://sentry.io", "region_url": "https://us.sentry.io", "org": rand(r, string.ascii_lowercase, 8)}).rstrip("=") + "_" + rand(r, BASE62, 43),
    "bedrock": lambda r: "bedrock-api-key-" + base64.b64encode(f"bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Credential=ASIA{rand(r, string.ascii_uppercase, 16)}&X-Amz-Signature={rand(r, HEX, 64)}".encode()).decode(),
})

CHECKSUMMED = ["keyward-sk-live", "github-ghp", "github-gho", "npm", "gitlab-routable", "atlassian", "grafana-sa", "azure-storage", "azure-devops", "age"]


def rule_examples():
    """The first example of every shipped rule that a literal anchors: for
    the families that are a prefix and a charset, their format is the rule."""
    rules_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rules")
    covered = ("keyward.", "github.", "npm.", "gitlab.routable", "atlassian.", "grafana.", "azure.storage", "azure.cask", "age.", "jwt.", "sentry.org", "aws.bedrock-api")
    out = {}
    for path in sorted(glob.glob(os.path.join(rules_dir, "*.toml"))):
        with open(path, "rb") as f:
            for rule in tomllib.load(f).get("rule", []):
                if rule["id"].startswith(covered) or rule.get("keyword_gap") or rule.get("shape") == "uri-password":
                    continue
                out["rule:" + rule["id"]] = rule["examples"][0]
    return out


def bad_checksum(rng, fmt):
    """One character changed in the middle, where every scheme's checksum
    covers it (the last character may be padding or unused bits)."""
    token = FORMATS[fmt](rng)
    i = len(token) // 2
    swap = {c: n for c, n in zip(BASE62, BASE62[1:] + BASE62[0])}
    return token[:i] + swap.get(token[i], "A") + token[i + 1:]


DECOYS = {
    "placeholder-x": lambda r: "ghp_" + "X" * 36,
    "placeholder-zero": lambda r: "kw_sk_live_" + "0" * 49,
    "placeholder-slot": lambda r: "ghp_<your-token>",
    "placeholder-env": lambda r: "sk_live_${STRIPE_KEY}",
    "aws-doc-example": lambda r: "AKIAIOSFODNN7EXAMPLE",
    "glued-word": lambda r: "x" + github(r, "ghp"),
    "glued-tail": lambda r: github(r, "ghp") + "abc",
    "placeholder-grafana": lambda r: "glsa_" + "x" * 32 + "_00000000",
    "placeholder-atlassian": lambda r: "ATATT3xFfGF0" + "X" * 180,
    "placeholder-shopify": lambda r: "shpat_" + "0" * 32,
    "placeholder-hf": lambda r: "hf_<your-token>",
    "placeholder-doppler": lambda r: "dp.pt.${DOPPLER_TOKEN}",
    "placeholder-uri": lambda r: "postgres://app:${DB_PASSWORD}@db:5432/app",
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

    def planted_set(self, prefix, families):
        for fmt, gen in FORMATS.items():
            self.contexts(fmt, gen(self.rng), f"{prefix}/{fmt}")
        if families:
            for fmt, token in rule_examples().items():
                self.contexts(fmt, token, f"{prefix}/{fmt.replace(':', '-')}")
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
    ap.add_argument("--families", action="store_true", help="also plant every shipped rule's first example")
    args = ap.parse_args()
    corpus = Corpus(args.out, args.seed)
    for i in range(args.sets):
        corpus.planted_set(f"planted/set{i:03}", args.families)
    corpus.bulk(parse_size(args.size))
    if args.manifest:
        with open(args.manifest, "w") as f:
            for entry in corpus.manifest:
                f.write(json.dumps(entry) + "\n")
    print(json.dumps({"files": corpus.files, "bytes": corpus.bytes, "planted": sum(e["expect"] == "found" for e in corpus.manifest)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Validates the deployment files, as CI runs it (tests/deploy.rs):

- the Kubernetes manifests parse, have the kinds and API versions they
  claim, and agree with each other (selectors, labels, ports, the Secret's
  keys, probes on real paths);
- the compose file parses and runs two keyward replicas on PostgreSQL behind
  a proxy, with the pepper shared;
- the systemd unit passes `systemd-analyze verify` (with ExecStart pointed
  at the binary under test, when given as argv[1]).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = {"Deployment": "apps/v1", "Service": "v1", "Secret": "v1", "PodDisruptionBudget": "policy/v1"}
problems = []


def need(cond, message):
    if not cond:
        problems.append(message)


def manifests():
    found = {}
    k8s = os.path.join(HERE, "k8s")
    for name in sorted(os.listdir(k8s)):
        with open(os.path.join(k8s, name)) as f:
            for doc in yaml.safe_load_all(f):
                kind = doc.get("kind")
                need(kind in KINDS, f"{name}: unknown kind {kind}")
                need(doc.get("apiVersion") == KINDS.get(kind), f"{name}: {kind} must be {KINDS.get(kind)}")
                need(doc.get("metadata", {}).get("name"), f"{name}: metadata.name is required")
                found[kind] = doc
    need(set(found) == set(KINDS), f"k8s: expected {sorted(KINDS)}, found {sorted(found)}")
    return found


def check_k8s(m):
    dep, svc, sec, pdb = m["Deployment"], m["Service"], m["Secret"], m["PodDisruptionBudget"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    need(selector.items() <= labels.items(), "Deployment selector does not match its pod labels")
    need(dep["spec"]["replicas"] >= 2, "Deployment should run at least 2 replicas")
    need(svc["spec"]["selector"].items() <= labels.items(), "Service selector matches no pod")
    need(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PodDisruptionBudget selects no pod")
    pod = dep["spec"]["template"]["spec"]
    need(pod["securityContext"].get("runAsNonRoot") is True, "pods must run as non-root")
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for p in svc["spec"]["ports"]:
        need(p["targetPort"] in ports or p["targetPort"] in ports.values(), f"Service targetPort {p['targetPort']} is not a container port")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        need(container.get(probe, {}).get("httpGet", {}).get("path") == path, f"{probe} must GET {path}")
    secret_keys = set(sec.get("stringData", {})) | set(sec.get("data", {}))
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            need(ref["name"] == sec["metadata"]["name"], f"env {env['name']} refers to Secret {ref['name']}")
            need(ref["key"] in secret_keys, f"env {env['name']} needs key {ref['key']} in the Secret")
    names = {e["name"] for e in container.get("env", [])}
    need({"KEYWARD_PEPPER", "DATABASE_URL"} <= names, "the pepper and DATABASE_URL must come from the Secret")
    need("KEYWARD_TRUSTED_PROXIES" in names, "behind an ingress, KEYWARD_TRUSTED_PROXIES must name it")
    need(container["securityContext"].get("readOnlyRootFilesystem") is True, "the root filesystem should be read-only")


def check_compose():
    with open(os.path.join(HERE, "docker-compose.yml")) as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    need({"postgres", "keyward", "proxy"} <= set(services), "compose needs postgres, keyward and proxy services")
    kw = services.get("keyward", {})
    need(kw.get("deploy", {}).get("replicas") == 2, "compose must run 2 keyward replicas")
    env = kw.get("environment", {})
    need(str(env.get("DATABASE_URL", "")).startswith("postgres://"), "keyward must use PostgreSQL in compose")
    need("KEYWARD_PEPPER" in env, "replicas must share KEYWARD_PEPPER")
    need(os.path.exists(os.path.join(HERE, "Caddyfile")), "the proxy's Caddyfile is missing")
    proxy_ip = services.get("proxy", {}).get("networks", {}).get("default", {}).get("ipv4_address")
    need(proxy_ip is not None and env.get("KEYWARD_TRUSTED_PROXIES") == proxy_ip,
         "KEYWARD_TRUSTED_PROXIES must be exactly the proxy's fixed address")
    with open(os.path.join(HERE, "Caddyfile")) as f:
        need("header_up X-Forwarded-For {remote_host}" in f.read(), "Caddy must set X-Forwarded-For to the address it saw")


def check_systemd(binary):
    if shutil.which("systemd-analyze") is None:
        print("systemd-analyze not found: the unit was not verified", file=sys.stderr)
        return
    with open(os.path.join(HERE, "keyward.service")) as f:
        unit = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        if binary:
            unit = unit.replace("/usr/local/bin/keyward", os.path.abspath(binary))
        path = os.path.join(tmp, "keyward.service")
        with open(path, "w") as f:
            f.write(unit)
        out = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        # verify also reports on unrelated system units; keep what is ours.
        ours = [l for l in (out.stdout + out.stderr).splitlines() if "keyward.service" in l]
        need(out.returncode == 0 and not ours, "systemd-analyze verify: " + " | ".join(ours or [out.stderr.strip()]))


def main():
    check_k8s(manifests())
    check_compose()
    check_systemd(sys.argv[1] if len(sys.argv) > 1 else None)
    for p in problems:
        print("deploy:", p)
    if problems:
        sys.exit(1)
    print("deploy: Kubernetes manifests, compose file and systemd unit are valid")


if __name__ == "__main__":
    main()

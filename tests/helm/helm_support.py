"""Paths, names and small accessors for rendered manifests (shared by the helm tests)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "synthscan"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
ENSURE_HELM = REPO / "scripts" / "tools" / "ensure-helm.sh"
RELEASE = "scan"
NAMESPACE = "moderation"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def run_helm(helm: str, *args: str, cwd: Path = CHART) -> subprocess.CompletedProcess[str]:
    """Run helm with a clean environment for reproducible output."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "HELM_CACHE_HOME": "/tmp/synthscan-helm-test/cache",
        "HELM_CONFIG_HOME": "/tmp/synthscan-helm-test/config",
        "HELM_DATA_HOME": "/tmp/synthscan-helm-test/data",
    }
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )


def values_keys() -> list[tuple[str, int, str | None]]:
    """Keys of values.yaml in order: (dotted path, indent, text of its `# --` comment or None)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys: list[tuple[str, int, str | None]] = []
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        j = i - 1
        while (
            j >= 0
            and lines[j].lstrip().startswith("#")
            and not lines[j].lstrip().startswith("# --")
        ):
            j -= 1
        doc = None
        if j >= 0 and lines[j].lstrip().startswith("# --"):
            doc = " ".join(c.strip().lstrip("#").strip() for c in lines[j:i])[2:].strip()
        keys.append((".".join(name for _, name in stack), indent, doc))
    return keys


def values_table() -> str:
    """Markdown table of every documented value (key, default, description), helm-docs style."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for path, _, doc in values_keys():
        if doc is None:
            continue
        default: Any = values
        for part in path.split("."):
            default = default[part]
        shown = json.dumps(default)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        doc = doc.replace("|", "\\|")
        rows.append(f"| `{path}` | `{shown}` | {doc} |")
    return "\n".join(rows) + "\n"


def one(docs: list[Manifest], kind: str) -> Manifest:
    """The only manifest of `kind`."""
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['kind'] for d in docs]}"
    return found[0]


def kinds(docs: list[Manifest]) -> set[str]:
    """Kinds present in a render."""
    return {d["kind"] for d in docs}


def pod_spec(docs: list[Manifest]) -> Manifest:
    """The Deployment's pod spec."""
    spec: Manifest = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def consumer(docs: list[Manifest]) -> Manifest:
    """The consumer container."""
    (container,) = [c for c in pod_spec(docs)["containers"] if c["name"] == "consumer"]
    return container


def init_containers(docs: list[Manifest]) -> dict[str, Manifest]:
    """Init containers by name."""
    return {c["name"]: c for c in pod_spec(docs).get("initContainers", [])}


def env(docs: list[Manifest]) -> dict[str, str]:
    """Consumer environment: the ConfigMap data plus literal `env` values."""
    data: dict[str, str] = dict(one(docs, "ConfigMap")["data"])
    for var in consumer(docs).get("env", []):
        if "value" in var:
            data[var["name"]] = var["value"]
    return data


def secret_refs(docs: list[Manifest]) -> dict[str, tuple[str, str]]:
    """Env vars fed from Secrets: name -> (secret, key)."""
    refs = {}
    for var in consumer(docs).get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[var["name"]] = (ref["name"], ref["key"])
    return refs


def mounts(container: Manifest) -> dict[str, Manifest]:
    """Volume mounts by mount path."""
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def volumes(docs: list[Manifest]) -> dict[str, Manifest]:
    """Pod volumes by name."""
    return {v["name"]: v for v in pod_spec(docs).get("volumes", [])}


if __name__ == "__main__":  # regenerate the README table: python tests/helm/helm_support.py
    readme = CHART / "README.md"
    head = readme.read_text().split("| Key | Default | Description |")[0]
    readme.write_text(head + values_table())

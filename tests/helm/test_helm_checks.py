"""helm lint, render-time validation, NOTES warnings, the README example and ensure-helm.sh."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helm_support import (
    CHART,
    CI_VALUES,
    ENSURE_HELM,
    Render,
    consumer,
    init_containers,
    one,
    pod_spec,
    run_helm,
    values_keys,
    values_table,
)

Notes = Callable[..., str]
RenderError = Callable[..., str]


@pytest.mark.parametrize("values", [p.name for p in CI_VALUES])
def test_helm_lint_is_clean(helm_bin: str, values: str) -> None:
    proc = run_helm(helm_bin, "lint", ".", "--strict", "-f", f"ci/{values}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


def test_ci_value_sets_cover_the_issue() -> None:
    names = {p.name for p in CI_VALUES}
    assert {
        "default-values.yaml",
        "cpu-only-values.yaml",
        "keda-values.yaml",
        "servicemonitor-values.yaml",
        "existing-secret-values.yaml",
    } <= names


def test_every_value_is_documented() -> None:
    """Every key in values.yaml has a `# --` comment, is a section, or sits in a documented map."""
    keys = values_keys()
    undocumented = []
    for n, (path, indent, doc) in enumerate(keys):
        documented = doc is not None
        section = n + 1 < len(keys) and keys[n + 1][1] > indent and not documented
        inside_documented = any(
            parent_doc is not None and path.startswith(parent + ".")
            for parent, _, parent_doc in keys[:n]
        )
        if not (documented or section or inside_documented):
            undocumented.append(path)
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"terminationGracePeriodSeconds": "50"}, "must exceed the consumer's shutdown bound 50s"),
        ({"keda.enabled": "true", "hpa.enabled": "true"}, "exclusive"),
        ({"kafka.securityProtocol": "SASL_SSL"}, "needs kafka.sasl.existingSecret"),
        ({"kafka.tls.existingSecret": "ca"}, "not SSL or SASL_SSL"),
        (
            {
                "kafka.securityProtocol": "SSL",
                "kafka.tls.existingSecret": "t",
                "kafka.tls.certKey": "c",
            },
            "go together",
        ),
        ({"kafka.librdkafka.sasl\\.password": "x"}, "kafka.librdkafka.sasl.password is a secret"),
        (
            {"extraEnv[0].name": "SYNTHSCAN_KAFKA__SASL_PASSWORD", "extraEnv[0].value": "x"},
            "holds a secret as a literal value",
        ),
        ({"model.source": "pvc"}, "model.pvc.claimName"),
        ({"model.source": "initImage"}, "model.initImage.repository"),
        (
            {"keda.enabled": "true", "keda.minReplicaCount": "5", "keda.maxReplicaCount": "3"},
            "min replicas exceed max",
        ),
        ({"kafka.partitions": "0"}, "/kafka/partitions"),
        ({"kafka.bootstrapServer": "typo:9092"}, "'bootstrapServer' not allowed"),
        ({"model.sha256": "abc"}, "/model/sha256"),
        ({"kafka.securityProtocol": "SASL"}, "/kafka/securityProtocol"),
        ({"gpu.count": "0"}, "/gpu/count"),
    ],
)
def test_broken_values_fail_the_render(
    render_error: RenderError, sets: dict[str, str], message: str
) -> None:
    assert message in render_error(sets=sets)


def test_notes_are_quiet_for_a_sane_production_setup(notes: Notes) -> None:
    text = notes("keda-values.yaml")
    assert "KEDA 2..24 for 24 partitions" in text
    assert "consumer bound 50s, terminationGracePeriodSeconds 60s" in text
    assert "WARNING" not in text


@pytest.mark.parametrize(
    ("values", "sets", "warning"),
    [
        (None, {"shutdown.graceSeconds": "20"}, "below batch + flush + commit + close = 50s"),
        (None, {"shutdown.batchSeconds": "5"}, "one slow fetch can outlast"),
        (None, {"replicaCount": "16"}, "up to 16 replicas for 12 partitions"),
        (None, {"keda.enabled": "true", "keda.maxReplicaCount": "30"}, "up to 30 replicas"),
        ("cpu-only-values.yaml", None, "CPU-only mode"),
        (None, {"model.device": "cpu"}, "the GPU sits idle"),
        (None, {"pdb.enabled": "false"}, "no PodDisruptionBudget"),
        (None, None, "a single replica"),
        (None, None, "model.sha256 is empty"),
        (None, None, "the image must contain /opt/synthscan/models/model.safetensors"),
        (None, {"strategy.rollingUpdate.maxSurge": "1"}, "stalls the rollout"),
        (
            "existing-secret-values.yaml",
            {"kafka.librdkafka.transaction\\.timeout\\.ms": "10000"},
            "transaction.timeout.ms is below",
        ),
    ],
)
def test_notes_warn_about_risky_values(
    notes: Notes, values: str | None, sets: dict[str, str] | None, warning: str
) -> None:
    assert warning in notes(values, sets)


def test_readme_install_example_renders(render: Render, tmp_path: Path) -> None:
    readme = (CHART / "README.md").read_text()
    block = re.search(r"<!-- example-values -->\s*```yaml\n(.*?)```", readme, re.S)
    assert block, "README.md lost its example values block"
    example = tmp_path / "example.yaml"
    example.write_text(block.group(1))
    docs = render(example)
    assert consumer(docs)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert (
        one(docs, "ScaledObject")["spec"]["maxReplicaCount"]
        <= yaml.safe_load(block.group(1))["kafka"]["partitions"]
    )
    assert pod_spec(docs)["terminationGracePeriodSeconds"] > 0
    for command in re.findall(r"^helm (?:upgrade --install|install) .*$", readme, re.M):
        assert "synthscan" in command


def test_readme_values_table_is_current() -> None:
    """The README table equals the one generated from values.yaml (no drift)."""
    readme = (CHART / "README.md").read_text()
    assert readme.endswith(values_table()), (
        "README values table is stale: run `.venv/bin/python tests/helm/helm_support.py`"
    )


def _ensure_helm(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENSURE_HELM)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **env},
        timeout=60,
        check=False,
    )


def test_ensure_helm_honours_helm_env(helm_bin: str) -> None:
    proc = _ensure_helm({"HELM": helm_bin})
    assert proc.returncode == 0
    assert proc.stdout.strip() == helm_bin
    proc = _ensure_helm({"HELM": "/nonexistent/helm"})
    assert proc.returncode == 1
    assert "not an executable" in proc.stderr


def test_ensure_helm_uses_the_cache_and_explains_a_missing_go(tmp_path: Path) -> None:
    cached = tmp_path / "helm-v3.0.0-test"
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    base = {"SYNTHSCAN_HELM_BIN_DIR": str(tmp_path), "GO": "/nonexistent/go"}
    proc = _ensure_helm({**base, "HELM_VERSION": "v3.0.0-test"})
    assert proc.stdout.strip() == str(cached)  # no Go needed when cached
    proc = _ensure_helm({**base, "HELM_VERSION": "v3.0.1-test"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "no Go toolchain" in proc.stderr
    assert "https://go.dev/dl/" in proc.stderr and "HELM=/path/to/helm" in proc.stderr


def test_init_container_commands_run_as_rendered(render: Render, tmp_path: Path) -> None:
    """The rendered shell of copy-model and verify-checkpoint works (paths moved to tmp)."""
    inits = init_containers(render("servicemonitor-values.yaml"))
    source = tmp_path / "image" / "glff.safetensors"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    models = tmp_path / "models"
    models.mkdir()

    def run(name: str, overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
        container = inits[name]
        variables = {e["name"]: e["value"] for e in container["env"]} | overrides
        return subprocess.run(
            container["command"],
            env={"PATH": "/usr/bin:/bin", **variables},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    target = models / "glff.safetensors"
    assert run("copy-model", {"SRC": str(source), "DST": str(target)}).returncode == 0
    assert target.read_bytes() == b"weights"
    assert not list(models.glob("*.partial"))
    good = hashlib.sha256(b"weights").hexdigest()
    assert run("verify-checkpoint", {"CHECKPOINT": str(target), "SHA256": good}).returncode == 0
    bad = run("verify-checkpoint", {"CHECKPOINT": str(target)})  # the chart's (other) sha256
    assert bad.returncode != 0
    assert "FAILED" in bad.stdout

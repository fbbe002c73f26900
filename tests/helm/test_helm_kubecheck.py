"""Rendered manifests decode strictly into the Kubernetes API types (no cluster needed)."""

from __future__ import annotations

import subprocess

import pytest
from helm_support import CI_VALUES, NAMESPACE, RELEASE, run_helm


def _kubecheck(kubecheck_bin: str, manifests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubecheck_bin], input=manifests, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("values", "sets"),
    [*((p.name, []) for p in CI_VALUES), ("default-values.yaml", ["--set", "hpa.enabled=true"])],
)
def test_rendered_objects_match_the_api_schema(
    helm_bin: str, kubecheck_bin: str, values: str, sets: list[str]
) -> None:
    proc = run_helm(
        helm_bin, "template", RELEASE, ".", "-n", NAMESPACE, "-f", f"ci/{values}", *sets
    )
    assert proc.returncode == 0, proc.stderr
    check = _kubecheck(kubecheck_bin, proc.stdout)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok   Deployment" in check.stdout
    assert "FAIL" not in check.stdout


def test_kubecheck_rejects_misplaced_fields(kubecheck_bin: str) -> None:
    bad = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  terminationGracePeriodSeconds: 60
  template:
    metadata: {labels: {a: b}}
    spec:
      containers: [{name: c, image: i}]
"""
    check = _kubecheck(kubecheck_bin, bad)
    assert check.returncode == 1
    assert 'unknown field "spec.terminationGracePeriodSeconds"' in check.stdout

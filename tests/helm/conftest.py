"""Fixtures for the Helm chart tests: a helm binary (built once if needed) and a renderer."""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from helm_support import CHART, ENSURE_HELM, NAMESPACE, RELEASE, Manifest, Render, run_helm

HOW_TO_GET_HELM = (
    "scripts/tools/ensure-helm.sh could not provide helm. It builds helm v3 from the Go module "
    "proxy with the Go toolchain (`go install helm.sh/helm/v3/cmd/helm@...`, a few minutes, "
    "cached in "
    "~/.cache/synthscan/bin). Install Go >= 1.26 (https://go.dev/dl/) or set HELM=/path/to/helm "
    "(a helm v3 release from https://github.com/helm/helm/releases)."
)


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """Path of a helm v3 binary: $HELM, the cached build, or a fresh build (never skipped)."""
    try:
        proc = subprocess.run(
            ["bash", str(ENSURE_HELM)], capture_output=True, text=True, timeout=1500, check=False
        )
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"building helm timed out after {exc.timeout}s.\n{HOW_TO_GET_HELM}")
    if proc.returncode != 0:
        pytest.fail(f"{HOW_TO_GET_HELM}\n--- ensure-helm.sh stderr ---\n{proc.stderr[-4000:]}")
    path = proc.stdout.strip().splitlines()[-1]
    version = subprocess.run(
        [path, "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("v3."), f"{path} is not helm v3: {version!r}"
    return path


def _values_args(values: str | Path | None, sets: dict[str, str] | None) -> list[str]:
    args: list[str] = []
    if values is not None:
        args += ["-f", str(CHART / "ci" / values) if isinstance(values, str) else str(values)]
    for key, val in (sets or {}).items():
        args += ["--set", f"{key}={val}"]
    return args


@pytest.fixture(scope="session")
def kubecheck_bin() -> str:
    """Path of tests/helm/kubecheck built with Go (cached by source hash, like helm)."""
    source = Path(__file__).parent / "kubecheck"
    digest = hashlib.sha256(
        b"".join((source / name).read_bytes() for name in ("main.go", "go.mod", "go.sum"))
    ).hexdigest()[:12]
    cache = Path(os.environ.get("SYNTHSCAN_HELM_BIN_DIR", Path.home() / ".cache/synthscan/bin"))
    target = cache / f"kubecheck-{digest}"
    if target.exists():
        return str(target)
    go = os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        pytest.fail(
            "kubecheck (strict Kubernetes schema check of the rendered chart) needs the Go "
            "toolchain >= 1.26 to build once: install it from https://go.dev/dl/ or set GO."
        )
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    proc = subprocess.run(
        [go, "build", "-mod=readonly", "-trimpath", "-o", str(partial), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, f"building kubecheck failed:\n{proc.stderr[-4000:]}"
    partial.rename(target)
    return str(target)


@pytest.fixture(scope="session")
def render(helm_bin: str) -> Render:
    """`render(values=None, sets=None, chart=CHART)` -> parsed manifests of `helm template`.

    Renders are memoized per arguments (tests get deep copies), which keeps the suite fast.
    """
    cache: dict[tuple[str, str, str], list[Manifest]] = {}

    def _render(
        values: str | Path | None = None,
        sets: dict[str, str] | None = None,
        chart: Path = CHART,
    ) -> list[Manifest]:
        key = (str(values), repr(sorted((sets or {}).items())), str(chart))
        if key not in cache:
            proc = run_helm(
                helm_bin,
                "template",
                RELEASE,
                str(chart),
                "--namespace",
                NAMESPACE,
                *_values_args(values, sets),
            )
            assert proc.returncode == 0, proc.stderr
            cache[key] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
        return copy.deepcopy(cache[key])

    return _render


@pytest.fixture(scope="session")
def render_error(helm_bin: str) -> Callable[..., str]:
    """`render_error(values=None, sets=None)` -> stderr of a `helm template` that must fail."""

    def _render_error(values: str | Path | None = None, sets: dict[str, str] | None = None) -> str:
        proc = run_helm(helm_bin, "template", RELEASE, str(CHART), *_values_args(values, sets))
        assert proc.returncode != 0, "render was expected to fail"
        return proc.stderr

    return _render_error


@pytest.fixture(scope="session")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the chart whose NOTES.txt also renders into a ConfigMap.

    `helm template` never prints NOTES.txt and `helm install --dry-run` needs a cluster, so the
    test copy wraps the same text in a named template and emits it as data.
    """
    root = tmp_path_factory.mktemp("notes") / "synthscan"
    shutil.copytree(CHART, root)
    notes = (root / "templates" / "NOTES.txt").read_text()
    (root / "templates" / "_notes_test.tpl").write_text(
        '{{- define "notes-test" -}}\n' + notes + "\n{{- end }}\n"
    )
    (root / "templates" / "notes-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-test\n"
        'data:\n  notes: {{ include "notes-test" . | toJson }}\n'
    )
    yield root


@pytest.fixture(scope="session")
def notes(render: Render, notes_chart: Path) -> Callable[..., str]:
    """`notes(values=None, sets=None)` -> the rendered NOTES.txt text."""

    def _notes(values: str | Path | None = None, sets: dict[str, str] | None = None) -> str:
        docs = render(values, sets, chart=notes_chart)
        (doc,) = [d for d in docs if d["metadata"]["name"] == "notes-test"]
        return str(doc["data"]["notes"])

    return _notes

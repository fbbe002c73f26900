"""Fixtures of the provenance tests: one test PKI per session, an extractor that trusts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from provenance_support import Pki, make_pki

from provenance import Extractor, ProvenanceConfig


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def anchors(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "anchors.pem"
    path.write_bytes(pki.anchor_pem)
    return path


@pytest.fixture(scope="session")
def extractor(anchors: Path) -> Extractor:
    return Extractor(ProvenanceConfig(trust_anchors=anchors, timeout_s=30.0))

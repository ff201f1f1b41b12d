"""Fixtures for tests on the local Kubernetes control plane.

`control_plane` (session) reuses a running control plane or starts one with
scripts/cluster/install.sh and up.sh; at the end it stops one that a test session started,
once no other test session still uses it (see kube.py).
`market_crd` (session) applies crds/market.yaml and waits until it is served.
`namespace` gives each test a namespace of its own, deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import REPO_ROOT, ControlPlane

CRD_PATH: Path = REPO_ROOT / "crds" / "market.yaml"
CRD_NAME = "markets.cex.dev"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here needs the real control plane."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane.ensure()
    try:
        yield cp
    finally:
        cp.release()


@pytest.fixture(scope="session")
def market_crd(control_plane: ControlPlane) -> str:
    control_plane.apply_crds(CRD_PATH.read_text())
    return CRD_NAME


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)

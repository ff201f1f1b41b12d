"""Market manifests: the YAML ``Market`` resources of ``examples/`` (schema: ``crds/market.yaml``).

:func:`load_market` reads one file into a :class:`~cex.core.market.MarketConfig`;
:func:`example_markets` lists the examples shipped with the repository (the markets of the
local stack), and :func:`find_market_file` finds a market's manifest by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cex.core.errors import MarketConfigError
from cex.core.market import MarketConfig

__all__ = [
    "EXAMPLES_DIR",
    "MARKET_API_VERSION",
    "MARKET_API_VERSIONS",
    "example_markets",
    "find_market_file",
    "load_market",
    "market_document",
    "parse_market",
]

#: ``examples/`` of the source checkout (services/cex/infra/manifests.py → repo root).
EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
MARKET_API_VERSION = "cex.dev/v1alpha1"
MARKET_API_VERSIONS = frozenset({MARKET_API_VERSION})


def market_document(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The ``Market`` resource an engine reads (``CEX_MARKET_FILE``), for a spec."""
    return {
        "apiVersion": MARKET_API_VERSION,
        "kind": "Market",
        "metadata": {"name": name},
        "spec": spec,
    }


def parse_market(document: Any, *, source: str = "<manifest>") -> MarketConfig:
    """A ``Market`` resource (already parsed YAML/JSON) → its config."""
    if not isinstance(document, dict):
        raise MarketConfigError(f"{source}: not a mapping")
    if document.get("kind") != "Market" or document.get("apiVersion") not in MARKET_API_VERSIONS:
        raise MarketConfigError(
            f"{source}: expected kind Market of {sorted(MARKET_API_VERSIONS)}, got "
            f"{document.get('kind')!r} {document.get('apiVersion')!r}"
        )
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    spec = document.get("spec")
    if not isinstance(name, str) or not isinstance(spec, dict):
        raise MarketConfigError(f"{source}: metadata.name and spec are required")
    try:
        return MarketConfig.from_spec(name, spec)
    except MarketConfigError as exc:
        raise MarketConfigError(f"{source}: {exc}") from exc


def load_market(path: Path | str) -> MarketConfig:
    """Read one manifest file (a single YAML document)."""
    path = Path(path)
    with path.open() as f:
        document = yaml.safe_load(f)
    return parse_market(document, source=str(path))


def example_markets(directory: Path = EXAMPLES_DIR) -> dict[str, Path]:
    """Market name → manifest file, for every ``*.yaml`` Market in ``directory``, sorted by
    name."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        config = load_market(path)
        found[config.name] = path
    return dict(sorted(found.items()))


def find_market_file(market: str, directory: Path = EXAMPLES_DIR) -> Path:
    """The manifest of ``market`` among the examples (``<directory>/<market>.yaml``)."""
    path = directory / f"{market}.yaml"
    if not path.is_file():
        raise MarketConfigError(f"no manifest for market {market!r} at {path}")
    return path

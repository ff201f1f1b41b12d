"""The layer rules of `.importlinter` are enforced: a forbidden import fails the check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(services_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(services_dir)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / ".importlinter"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=services_dir,
        env=env,
        check=False,
    )


def test_the_repository_keeps_its_layers() -> None:
    result = _lint_imports(REPO / "services")
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_an_io_library_in_core_breaks_the_contract(tmp_path: Path) -> None:
    services = tmp_path / "services"
    shutil.copytree(REPO / "services", services, ignore=shutil.ignore_patterns("__pycache__"))
    (services / "cex" / "core" / "leak.py").write_text("import asyncpg  # noqa: F401\n")

    result = _lint_imports(services)

    assert result.returncode != 0
    assert "cex.core.leak -> asyncpg" in result.stdout


@pytest.mark.parametrize("module", ["time", "datetime", "random", "os", "uuid", "secrets"])
def test_the_core_takes_its_clock_and_randomness_from_callers(tmp_path: Path, module: str) -> None:
    services = tmp_path / "services"
    shutil.copytree(REPO / "services", services, ignore=shutil.ignore_patterns("__pycache__"))
    (services / "cex" / "core" / "leak.py").write_text(f"import {module}  # noqa: F401\n")

    result = _lint_imports(services)

    assert result.returncode != 0
    assert f"cex.core.leak -> {module}" in result.stdout

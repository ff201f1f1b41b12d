"""The image's build step without Docker: build the wheel the way the Dockerfile's
`uv sync --no-editable` does, install it into a fresh virtualenv (with the locked versions),
and check that the installed package, not the checkout, runs: `cex --help`,
`cex-operator --help`, and the SQL migrations found through importlib.resources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def find_uv() -> str:
    """uv as scripts/bootstrap.sh installs it (the cache's tools venv), else from PATH."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cex"
    candidate = cache / "tools" / "bin" / "uv"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv not found: run scripts/bootstrap.sh (make bootstrap) first")
    return found


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def run_ok(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    proc = run(*args, cwd=cwd, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stderr}\n{proc.stdout}"
    return proc


def run_offline_first(*args: str | Path, cwd: Path, timeout: float = 600):
    """From uv's cache when it has everything, from the package index otherwise."""
    proc = run(*args, "--offline", cwd=cwd, timeout=timeout)
    if proc.returncode == 0:
        return proc
    return run_ok(*args, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the project's wheel and its locked dependencies; returns its bin/."""
    uv = find_uv()
    work = tmp_path_factory.mktemp("wheel")
    dist, venv = work / "dist", work / "venv"
    run_offline_first(uv, "build", "--wheel", "--out-dir", dist, str(REPO_ROOT), cwd=REPO_ROOT)
    wheels = list(dist.glob("cex-*.whl"))
    assert len(wheels) == 1, wheels

    # The locked versions, as `uv sync --frozen` would install them.
    requirements = work / "requirements.txt"
    run_ok(
        uv,
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-hashes",
        "--output-file",
        requirements,
        cwd=REPO_ROOT,
    )
    run_ok(uv, "venv", "--python", sys.executable, venv, cwd=work)
    python = venv / "bin" / "python"
    run_offline_first(
        uv, "pip", "install", "--python", python, "-r", requirements, wheels[0], cwd=work
    )
    return venv / "bin"


def test_wheel_carries_both_packages_and_the_migrations() -> None:
    """Checked on the archive itself: what hatchling puts in is what the image gets."""
    uv = find_uv()
    out = REPO_ROOT / ".cex" / "test-wheel"
    shutil.rmtree(out, ignore_errors=True)
    run_offline_first(uv, "build", "--wheel", "--out-dir", out, str(REPO_ROOT), cwd=REPO_ROOT)
    (wheel,) = out.glob("cex-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    shutil.rmtree(out, ignore_errors=True)
    sql = sorted(n for n in names if n.startswith("cex/infra/migrations/") and n.endswith(".sql"))
    in_checkout = sorted(
        f"cex/infra/migrations/{p.name}"
        for p in (REPO_ROOT / "services" / "cex" / "infra" / "migrations").glob("*.sql")
    )
    assert sql == in_checkout
    assert "cex/cli.py" in names
    assert any(n.startswith("cex_operator/") for n in names), "the operator package is missing"
    assert "cex = cex.cli:main" in scripts
    assert "cex-operator = " in scripts


def test_cex_command_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    proc = run_ok(installed / "cex", "--help", cwd=tmp_path)
    for command in ("serve", "migrate", "admin"):
        assert command in proc.stdout
    run_ok(installed / "cex", "serve", "--help", cwd=tmp_path)
    run_ok(installed / "cex", "migrate", "--help", cwd=tmp_path)


def test_operator_command_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    operator = installed / "cex-operator"
    assert operator.exists(), "the wheel installs no cex-operator console script"
    run_ok(operator, "--help", cwd=tmp_path)


def test_migrations_come_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    # Run outside the checkout, so nothing can be imported from services/ by accident.
    code = (
        "import cex, cex.infra.migrations as m\n"
        "from importlib import resources\n"
        "from cex.infra.postgres import migrations\n"
        "print(cex.__file__)\n"
        "print(resources.files(m))\n"
        "print(len(migrations()))\n"
    )
    proc = run_ok(installed / "python", "-c", code, cwd=tmp_path, env={"PYTHONPATH": ""})
    module_file, package_dir, count = proc.stdout.split()
    venv = installed.parent.resolve()
    assert Path(module_file).resolve().is_relative_to(venv), module_file
    assert Path(package_dir).resolve().is_relative_to(venv), package_dir
    expected = len(list((REPO_ROOT / "services" / "cex" / "infra" / "migrations").glob("*.sql")))
    assert int(count) == expected > 0

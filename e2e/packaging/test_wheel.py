"""The image's build step without Docker: the Dockerfile's builder stage (its COPY sources
and `uv sync --frozen --no-dev --no-editable`, read from the Dockerfile itself) run into a
fresh virtualenv, then checks that the installed package, not the checkout, works:
`cex --help`, `cex-operator --help`, and the SQL migrations found through
importlib.resources. The wheel hatchling builds is checked for both packages and every
migration. (The image's Python is 3.12; this runs on the interpreter of the test session.)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"

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


def run_offline_first(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
):
    """From uv's cache when it has everything, from the package index otherwise."""
    proc = run(*args, "--offline", cwd=cwd, env=env, timeout=timeout)
    if proc.returncode == 0:
        return proc
    return run_ok(*args, cwd=cwd, env=env, timeout=timeout)


def dockerfile_build() -> tuple[list[str], list[list[str]]]:
    """The builder stage of the Dockerfile: what it COPYs from the build context, and its
    `uv sync` commands, in order."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM .*$", text, flags=re.MULTILINE)
    assert len(stages) == 3, "expected a builder and a runtime stage"
    sources: list[str] = []
    syncs: list[list[str]] = []
    for line in stages[1].splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            sources += words[1:-1]
        if words[0] == "RUN":
            for command in line.split("RUN", 1)[1].split("&&"):
                argv = shlex.split(command)
                if argv[:2] == ["uv", "sync"]:
                    syncs.append(argv)
    return sources, syncs


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's builder stage without Docker: its COPY sources into a build context,
    then its `uv sync` commands there, into a virtualenv of our own instead of /opt/cex.
    Returns the virtualenv's bin/."""
    uv = find_uv()
    work = tmp_path_factory.mktemp("image")
    context, venv = work / "src", work / "venv"
    sources, syncs = dockerfile_build()
    assert syncs, "the Dockerfile runs no `uv sync`"
    context.mkdir()
    for source in sources:
        origin = REPO_ROOT / source
        if origin.is_dir():
            shutil.copytree(
                origin, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(origin, context / source)
    env = {
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
    }
    for argv in syncs:
        run_offline_first(uv, *argv[1:], cwd=context, env=env)
    shutil.rmtree(context)  # nothing may come from the build context any more
    return venv / "bin"


def test_dockerignore_lets_the_build_sources_through() -> None:
    sources, _ = dockerfile_build()
    kept = {
        line[1:].strip().rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(sources) <= kept, f"excluded from the build context: {set(sources) - kept}"


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

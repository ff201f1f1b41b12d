"""run.sh and the Tiltfile need Docker and kind, which the build machines lack: these tests
never run them for real. They check that run.sh refuses clearly, before doing anything,
when a tool or the Docker daemon is missing, and that the Tiltfile parses and points at
files that exist."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN = REPO_ROOT / "e2e" / "kind" / "run.sh"
TOOLS = ("docker", "kind", "kubectl", "helm", "curl", "python3")


def fake_tools(directory: Path, tools: tuple[str, ...], docker_info_ok: bool) -> None:
    """Stand-ins that record their calls; `docker info` fails unless docker_info_ok."""
    for tool in tools:
        script = directory / tool
        body = f'echo "{tool} $*" >> "{directory}/calls"\n'
        if tool == "docker" and not docker_info_ok:
            body += '[ "$1" = info ] && exit 1\n'
        script.write_text(f"#!/bin/bash\n{body}exit 0\n")
        script.chmod(0o755)


def run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(RUN)],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("absent", ["docker", "kind"])
def test_refuses_without_docker_or_kind(tmp_path: Path, absent: str) -> None:
    fake_tools(tmp_path, tuple(t for t in TOOLS if t != absent), docker_info_ok=True)
    proc = run(tmp_path)
    assert proc.returncode == 1
    assert f"missing on PATH: {absent}." in proc.stderr
    assert "needs Docker and kind" in proc.stderr
    assert not (tmp_path / "calls").exists(), "it ran something before refusing"


def test_refuses_when_the_docker_daemon_does_not_answer(tmp_path: Path) -> None:
    fake_tools(tmp_path, TOOLS, docker_info_ok=False)
    proc = run(tmp_path)
    assert proc.returncode == 1
    assert "daemon does not answer" in proc.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["docker info"]


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(RUN)], check=True)


def test_tiltfile_parses_and_uses_existing_paths() -> None:
    """Starlark is close enough to Python for a syntax check."""
    source = (REPO_ROOT / "Tiltfile").read_text()
    tree = ast.parse(source)
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    for path in ("Dockerfile", "charts/cex", "charts/cex/ci/dev-values.yaml", "examples"):
        assert path in strings
        assert (REPO_ROOT / path).exists(), path

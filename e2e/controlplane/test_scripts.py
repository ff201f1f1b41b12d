"""The control-plane scripts behave as documented: up.sh is idempotent and reports a taken
port clearly, without starting anything."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .kube import SCRIPTS, ControlPlane, components


def run(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / script)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_up_again_reuses_the_running_components(control_plane: ControlPlane) -> None:
    proc = run("up.sh")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("already running") == len(components()), proc.stderr
    assert f"export KUBECONFIG={control_plane.kubeconfig}" in proc.stdout
    assert run("status.sh").returncode == 0


def test_taken_port_is_reported_before_anything_starts(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    # A second plane in another directory wants the same ports as the running one.
    other = tmp_path / "cluster"
    proc = run("up.sh", {"CEX_CLUSTER_DIR": str(other)})
    assert proc.returncode == 1
    assert re.search(r"port \d+ needed by etcd is taken by", proc.stderr), proc.stderr
    assert "etcd" in proc.stderr.split("taken by", 1)[1]
    assert "starting" not in proc.stderr
    assert not (other / "run" / "etcd.pid").exists()

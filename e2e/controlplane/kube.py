"""Start, reuse and drive the local control plane of scripts/cluster/ from tests.

`ControlPlane.ensure()` reuses a control plane that is already running (for example after
`make cluster-up`) or starts one with the repository's scripts. Several test sessions may
share the work tree: `tests/sessions.py` stops the control plane only when the last session
leaves and only if a test session started it; one started by hand is never stopped by tests.
Every call goes through the version-matched `kubectl` built by scripts/cluster/install.sh,
as a user would type it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.sessions import SharedByTestSessions

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "cluster"
# The label of the real node and the namespace annotation that sends pods to it.
REAL_NODE_SELECTOR = "cex.dev/node=real"
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"


class KubectlError(AssertionError):
    """kubectl exited non-zero; carries what the API server said."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"kubectl {' '.join(args)} exited {returncode}: {stderr.strip()}")


def _script_settings() -> dict[str, str]:
    """Paths the scripts use, read from lib.sh so the defaults live in one place."""
    out = subprocess.run(
        [
            "bash",
            "-c",
            'source "$1"; printf "%s\\n" "$CEX_K8S_BIN" "$KUBECONFIG_CEX" "$CEX_CLUSTER_DIR"',
            "settings",
            str(SCRIPTS / "lib.sh"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return {"bin_dir": out[0], "kubeconfig": out[1], "cluster_dir": out[2]}


def components() -> list[str]:
    """The components up.sh starts (lib.sh's CEX_COMPONENTS: the real node's too, if on)."""
    out = subprocess.run(
        [
            "bash",
            "-c",
            'source "$1"; echo "${CEX_COMPONENTS[*]}"',
            "components",
            str(SCRIPTS / "lib.sh"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def _run_script(name: str, *args: str) -> None:
    proc = subprocess.run(
        [str(SCRIPTS / name), *args], capture_output=True, text=True, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/cluster/{name} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
        )


def _running() -> bool:
    status = subprocess.run([str(SCRIPTS / "status.sh")], capture_output=True, cwd=REPO_ROOT)
    return status.returncode == 0


@dataclass
class ControlPlane:
    bin_dir: Path
    kubeconfig: Path
    run_dir: Path

    @classmethod
    def ensure(cls) -> ControlPlane:
        """Reuse the running control plane, or install (cached) and start one."""
        settings = _script_settings()
        run_dir = Path(settings["cluster_dir"]) / "run"

        def start() -> None:
            _run_script("install.sh")
            _run_script("up.sh")

        SharedByTestSessions(run_dir).join(
            running=_running, start=start, stop=lambda: _run_script("down.sh")
        )
        return cls(Path(settings["bin_dir"]), Path(settings["kubeconfig"]), run_dir)

    def release(self) -> None:
        """Leave; the last session out stops a control plane that tests started."""
        SharedByTestSessions(self.run_dir).leave(stop=lambda: _run_script("down.sh"))

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def apply_crds(self, manifests: str) -> list[str]:
        """Apply CRDs (YAML text) and wait until each is served: Established is not enough,
        the API server may still answer 404 for its resource for a few seconds after."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifests)
        names = [
            str(doc["metadata"]["name"])
            for doc in yaml.safe_load_all(manifests)
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        for name in names:
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
            wait_until(
                lambda n=name: self.kubectl("get", n, "-A", check=False).returncode == 0,  # type: ignore[misc]
                timeout=60,
                what=f"{name} to be served",
            )
        return names

    def create_namespace(self, name: str, *, real_node: bool = False) -> None:
        """Create a namespace whose pods run on kwok's fake node, or on the real node (the
        API server's PodNodeSelector admission reads the annotation; scripts/cluster/README.md)."""
        self.kubectl("create", "namespace", name)
        if real_node:
            self.kubectl(
                "annotate", "namespace", name, f"{NODE_SELECTOR_ANNOTATION}={REAL_NODE_SELECTOR}"
            )

    def real_node(self) -> dict[str, Any] | None:
        """The real node (kubelet on this host), or None if the cluster runs kwok's only."""
        nodes = self.get_json("nodes", "-l", REAL_NODE_SELECTOR)["items"]
        return nodes[0] if nodes else None

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply_obj(self, obj: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *args, stdin=json.dumps(obj))

    def create_obj(
        self, obj: dict[str, Any], *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("create", "-f", "-", *args, stdin=json.dumps(obj), check=check)


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str = ""
) -> None:
    """Poll `predicate` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)

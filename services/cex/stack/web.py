"""The web UI (``services/web``, Next.js) in the local stack: its production build, made only
when its sources changed, served by the app's own server (``server.mjs``: Next.js plus a
reverse proxy sending ``/api``, ``/cex``, ``/ws-api`` to ``CEX_API_URL`` and ``/ws``,
``/stream`` to ``CEX_GATEWAY_URL``, read when it starts) as one more supervisord program.
One build serves any exchange: the browser tests start a second server of the same build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cex.stack.components import Program, StackError

#: ``services/web`` of the source checkout (services/cex/stack/web.py → repo root).
WEB_DIR = Path(__file__).resolve().parents[3] / "services" / "web"
WEB_PORT = 18400
#: What a build writes or installs, never part of the sources.
_NOT_SOURCES = {"node_modules", ".next", "out", "coverage", "test-results", ".turbo"}
_GENERATED_FILES = {"next-env.d.ts"}
_STAMP = ".cex-build-sha256"
_NO_TELEMETRY = {"NEXT_TELEMETRY_DISABLED": "1"}


@dataclass(frozen=True)
class WebBuild:
    """The production build (`next build`) of the app in `app_dir`."""

    app_dir: Path = WEB_DIR

    def digest(self) -> str:
        """SHA-256 over the app's sources: paths and contents."""
        sha = hashlib.sha256()
        for path in sorted(_source_files(self.app_dir)):
            sha.update(str(path.relative_to(self.app_dir)).encode() + b"\0")
            sha.update(path.read_bytes() + b"\0")
        return sha.hexdigest()

    def ensure(self, log: Path) -> str:
        """Build unless the last build was of these very sources; the digest. One build at a
        time per app directory (a file lock); its output appended to `log`."""
        next_bin = self.app_dir / "node_modules" / ".bin" / "next"
        if not next_bin.exists():
            raise StackError(
                f"{self.app_dir}/node_modules is missing; run scripts/bootstrap.sh (npm ci)"
            )
        with _locked(self.app_dir / "node_modules" / ".cex-build.lock"):
            digest = self.digest()
            stamp = self.app_dir / ".next" / _STAMP
            if stamp.exists() and stamp.read_text().strip() == digest:
                return digest
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                result = subprocess.run(
                    [str(next_bin), "build"], cwd=self.app_dir, stdout=out,
                    stderr=subprocess.STDOUT, env=os.environ | _NO_TELEMETRY, check=False,
                )  # fmt: skip
            if result.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise StackError(f"next build of {self.app_dir} failed; see {log}:\n{tail}")
            stamp.write_text(digest + "\n")
            return digest

    def server(
        self, host: str, port: int, api_url: str, gateway_url: str
    ) -> tuple[list[str], dict[str, str]]:
        """Command and environment of the app's production server in the foreground on
        host:port, proxying to the exchange's API and gateway at these URLs."""
        node = shutil.which("node") or "node"
        env = {
            "NODE_ENV": "production", "HOSTNAME": host, "PORT": str(port),
            "CEX_API_URL": api_url, "CEX_GATEWAY_URL": gateway_url, **_NO_TELEMETRY,
        }  # fmt: skip
        return [node, str(self.app_dir / "server.mjs")], env


def _source_files(app_dir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(app_dir):
        dirs[:] = [d for d in dirs if d not in _NOT_SOURCES]
        for name in files:
            if name not in _GENERATED_FILES and not name.endswith(".tsbuildinfo"):
                yield Path(root) / name


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def program(host: str, api_url: str, gateway_url: str, log: Path) -> tuple[Program, str] | None:
    """The stack's `web` program (built first if its sources changed) and its URL; None when
    the checkout has no web app. The build's digest is in the program's environment, so a
    rebuild changes its supervisord config and `supervisorctl update` restarts it."""
    build = WebBuild()
    if not (build.app_dir / "package.json").exists():
        return None
    digest = build.ensure(log)
    command, env = build.server(host, WEB_PORT, api_url, gateway_url)
    env["CEX_WEB_BUILD"] = digest[:16]
    return Program("web", command, stop_wait_s=20, environment=env), f"http://{host}:{WEB_PORT}"

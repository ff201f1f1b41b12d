"""The web UI (``services/web``, Next.js) in the local stack: its production build, made only
when its sources changed, served by the app's own server (``server.mjs``: Next.js plus a
reverse proxy sending ``/api``, ``/cex``, ``/ws-api`` to ``CEX_API_URL`` and ``/ws``,
``/stream`` to ``CEX_GATEWAY_URL``, read when it starts) as one more supervisord program.
One build serves any exchange (the targets are not in it); the browser tests build a copy of
the app of their own (:func:`app_copy`), so that a test run never rebuilds what ``make up``
is serving.
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
_LOCK_STAMP = ".cex-lock-sha256"  # scripts/bootstrap.sh: the lockfile node_modules is from
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

    def is_current(self) -> bool:
        """Whether the build in .next is of the sources as they are now."""
        stamp = self.app_dir / ".next" / _STAMP
        return stamp.exists() and stamp.read_text().strip() == self.digest()

    def ensure(self, log: Path) -> str:
        """Build unless the last build was of these very sources; the digest. One build at a
        time per app directory (a file lock); its output appended to `log`."""
        next_bin = (self.app_dir / "node_modules" / ".bin" / "next").resolve()
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


def app_copy(dest: Path, source: Path = WEB_DIR) -> Path:
    """`source`'s sources copied into `dest` (stale ones removed) and its node_modules
    hard-linked (again when the lockfile changed): an app directory whose build never touches
    `source`'s. Next's bundler refuses a node_modules outside the app's root: no symlink."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(source) for p in _source_files(source)}
    for old in list(_source_files(dest)):
        if old.relative_to(dest) not in wanted:
            old.unlink()
    for relative in wanted:
        target, data = dest / relative, (source / relative).read_bytes()
        if not target.exists() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    modules, installed = source / "node_modules", dest / "node_modules"
    if not modules.exists():
        raise StackError(f"{modules} is missing; run scripts/bootstrap.sh (npm ci)")
    lock, linked = modules / _LOCK_STAMP, installed / _LOCK_STAMP
    if not (lock.exists() and linked.exists() and lock.read_bytes() == linked.read_bytes()):
        shutil.rmtree(installed, ignore_errors=True)
        subprocess.run(["cp", "-al", str(modules), str(installed)], check=True)
    return dest.resolve()


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

"""Infrastructure that concurrent test sessions on one machine share (the local Kafka,
Postgres and Redis; the local control plane).

A session joins before using it: it starts it if nothing runs, and records that a test
session did. Each session registers its pid under ``<run_dir>/test-sessions/``. When a
session leaves, the infrastructure is stopped only if no live session remains *and* a test
session started it: what a developer started by hand (``make up``, ``make cluster-up``) is
never stopped by tests, and one session never pulls it from under another.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class SharedByTestSessions:
    run_dir: Path

    @contextmanager
    def _locked(self) -> Iterator[Path]:
        sessions = self.run_dir / "test-sessions"
        sessions.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "test-sessions.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield sessions
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def _started_by_tests(self) -> Path:
        return self.run_dir / "started-by-tests"

    def join(
        self, *, running: Callable[[], bool], start: Callable[[], None], stop: Callable[[], None]
    ) -> None:
        """Start it unless it runs (undoing a failed start), then register this session."""
        with self._locked() as sessions:
            if not running():
                self._started_by_tests.touch()
                try:
                    start()
                except BaseException:
                    stop()
                    self._started_by_tests.unlink(missing_ok=True)
                    raise
            (sessions / str(os.getpid())).touch()

    def leave(self, *, stop: Callable[[], None]) -> None:
        """Unregister; the last live session stops it if a test session started it."""
        with self._locked() as sessions:
            (sessions / str(os.getpid())).unlink(missing_ok=True)
            others = []
            for entry in sessions.iterdir():
                if entry.name.isdigit() and _alive(int(entry.name)):
                    others.append(entry)
                else:  # a session that died without leaving
                    entry.unlink(missing_ok=True)
            if not others and self._started_by_tests.exists():
                stop()
                self._started_by_tests.unlink(missing_ok=True)

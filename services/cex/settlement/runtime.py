"""A minimal worker runtime: ``/metrics``, ``/healthz``, ``/readyz`` and signal handling.

Kept small and shaped like the shared worker runtime being written in
``cex.infra.service`` (``WorkerContext`` with ``readiness`` and ``stopping``), so that
swapping to it is a change of import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


@dataclass
class Readiness:
    ready: bool = False
    reason: str = "starting"

    def set_ready(self) -> None:
        self.ready, self.reason = True, "ready"

    def set_not_ready(self, reason: str) -> None:
        self.ready, self.reason = False, reason


@dataclass
class WorkerContext:
    name: str
    readiness: Readiness = field(default_factory=Readiness)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


async def serve_http(readiness: Readiness, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = head.split(b" ", 2)[1].split(b"?", 1)[0]
            if path == b"/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest()
            elif path == b"/healthz":
                status, ctype, body = "200 OK", "text/plain", b"ok\n"
            elif path == b"/readyz" and readiness.ready:
                status, ctype, body = "200 OK", "text/plain", b"ready\n"
            elif path == b"/readyz":
                status, ctype = "503 Service Unavailable", "text/plain"
                body = f"not ready: {readiness.reason}\n".encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}"
                "\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, IndexError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


async def run(name: str, worker: Callable[[WorkerContext], Awaitable[None]], *, port: int) -> int:
    """Run ``worker`` next to the probe server until it returns or a signal stops it;
    0 after a clean stop, 1 after a failure."""
    ctx = WorkerContext(name)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stopping.set)
    server = await serve_http(ctx.readiness, "0.0.0.0", port)
    try:
        await worker(ctx)
        return 0
    except Exception:
        log.exception("%s failed", name)
        return 1
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()

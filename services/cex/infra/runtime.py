"""The runtime of a worker service: probes, metrics, logging and graceful shutdown.

A worker (engine, relay, settlement, …) is one coroutine. :func:`run_worker` runs it next
to a tiny HTTP server and handles the process around it::

    async def main(ctx: WorkerContext) -> None:
        await connect_everything()
        ctx.readiness.set_ready()          # /readyz answers 200 from now on
        while not ctx.stopping.is_set():
            await do_one_unit_of_work()

    def serve(market: str | None) -> None:
        run_worker("relay", main, port=metrics_port(default=9310))

HTTP endpoints (``GET``, on ``CEX_HTTP_HOST:port``, loopback by default):

* ``/metrics``: the default ``prometheus_client`` registry, text format;
* ``/healthz``: 200 while the process runs (liveness);
* ``/readyz``: 200 once the worker called ``ctx.readiness.set_ready()`` and until it calls
  ``set_not_ready()`` or shutdown begins, else 503 with the reason (readiness).

Shutdown: SIGTERM or SIGINT sets ``ctx.stopping``; the worker should finish its unit of
work and return. If it has not returned after ``grace_s`` seconds it is cancelled. A worker
that raises makes the process exit with status 1 after logging the error; a clean return
exits 0.

Event loop: uvloop (as the API and the gateway under uvicorn). Every worker spends its
time between Kafka, Postgres and Redis round trips, where uvloop's loop costs less than
asyncio's.

Logging: :func:`configure_logging` writes one JSON object per line to stderr (``ts``,
``level``, ``logger``, ``service``, ``msg``, plus any ``extra={...}`` fields and the
exception). The level comes from ``CEX_LOG_LEVEL`` (default ``INFO``).

The port comes from ``CEX_METRICS_PORT`` (:func:`metrics_port`), else the service's
default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = [
    "Readiness",
    "WorkerContext",
    "configure_logging",
    "metrics_port",
    "run_worker",
    "serve_http",
]

log = logging.getLogger(__name__)


class Readiness:
    """Whether the worker can do its job now (``/readyz``), with a reason when not."""

    def __init__(self) -> None:
        self._ready = False
        self.reason = "starting"

    @property
    def ready(self) -> bool:
        return self._ready

    def set_ready(self) -> None:
        self._ready = True
        self.reason = "ready"

    def set_not_ready(self, reason: str) -> None:
        self._ready = False
        self.reason = reason


@dataclass
class WorkerContext:
    name: str
    readiness: Readiness = field(default_factory=Readiness)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


Worker = Callable[[WorkerContext], Coroutine[Any, Any, None]]


def metrics_port(default: int) -> int:
    """``CEX_METRICS_PORT`` if set, else ``default``."""
    value = os.environ.get("CEX_METRICS_PORT")
    return int(value) if value else default


# --------------------------------------------------------------------------- logging

_STANDARD_ATTRS = set(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str) -> None:
    """JSON lines on stderr for the whole process (replaces existing root handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("CEX_LOG_LEVEL", "INFO").upper())
    # aiokafka is chatty at INFO about every connection it opens.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- HTTP


async def serve_http(readiness: Readiness, host: str, port: int) -> asyncio.Server:
    """Start the probe and metrics server; close it with ``server.close()``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            status, ctype, body = _route(method, path, readiness)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (body if method != "HEAD" else b""))
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


def _route(method: str, path: str, readiness: Readiness) -> tuple[str, str, bytes]:
    text = "text/plain; charset=utf-8"
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", text, b"method not allowed\n"
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
    if path == "/healthz":
        return "200 OK", text, b"ok\n"
    if path == "/readyz":
        if readiness.ready:
            return "200 OK", text, b"ready\n"
        return "503 Service Unavailable", text, f"not ready: {readiness.reason}\n".encode()
    return "404 Not Found", text, b"not found\n"


# --------------------------------------------------------------------------- runner


async def _run(name: str, worker: Worker, port: int, host: str, grace_s: float) -> int:
    ctx = WorkerContext(name)
    loop = asyncio.get_running_loop()

    def on_signal(signame: str) -> None:
        if not ctx.stopping.is_set():
            log.info("received %s, stopping", signame)
            ctx.readiness.set_not_ready("stopping")
            ctx.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)

    server = await serve_http(ctx.readiness, host, port)
    log.info("%s serving probes and metrics on %s:%d", name, host, port)
    task = asyncio.create_task(worker(ctx), name=name)
    stop_wait = asyncio.create_task(ctx.stopping.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            deadline = time.monotonic() + grace_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
            if not task.done():
                log.warning("%s did not stop within %.0f s, cancelling", name, grace_s)
                task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return 0 if ctx.stopping.is_set() else 1
        except Exception:
            log.exception("%s failed", name)
            return 1
        return 0
    finally:
        stop_wait.cancel()
        server.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_worker(
    name: str, worker: Worker, *, port: int, host: str | None = None, grace_s: float = 30.0
) -> None:
    """Run ``worker`` with probes, metrics, JSON logs and signal handling; exit the process
    with 0 after a clean stop, 1 after a failure.

    The probes listen on ``CEX_HTTP_HOST`` (default loopback; the Helm chart sets
    ``0.0.0.0`` so the kubelet and Prometheus reach them)."""
    host = host or os.environ.get("CEX_HTTP_HOST", "127.0.0.1")
    configure_logging(name)
    code = uvloop.run(_run(name, worker, port, host, grace_s))
    sys.exit(code)

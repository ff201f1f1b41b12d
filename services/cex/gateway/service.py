"""`cex serve gateway`: Binance's WebSocket market streams (:mod:`cex.gateway.server`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
import sys

import redis.asyncio as aioredis

from cex.gateway.server import Gateway
from cex.gateway.settings import GatewaySettings
from cex.infra.postgres import create_pool
from cex.infra.runtime import configure_logging

log = logging.getLogger(__name__)


def raise_nofile() -> int:
    """Raise the soft limit of open files to the hard one (a connection is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run(settings: GatewaySettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # Named, so an operator (or a test) can tell the gateways' connections apart.
    redis = aioredis.Redis.from_url(
        settings.redis_url, client_name=f"cex-gateway:{settings.redis_prefix}"
    )
    pool = await create_pool(settings.postgres_dsn, min_size=1, max_size=3)
    gateway = Gateway(settings, redis, pool)
    try:
        await gateway.start()
        # What startup built (modules, settings, pools) lives as long as the process:
        # out of the collector's way, so that a full collection scans the connections'
        # objects only (with 2,000 clients, a pause of ~80 ms before, about half after).
        gc.collect()
        gc.freeze()
        await stopping.wait()
        log.info("stopping")
    finally:
        await gateway.close()
        await pool.close()
        await redis.aclose()


def serve(market: str | None = None) -> None:
    del market  # one gateway serves every market
    configure_logging("gateway")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per connection
    log.info("open files limit %d", raise_nofile())
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        asyncio.run(run(GatewaySettings()))
    else:
        uvloop.run(run(GatewaySettings()))
    sys.exit(0)

"""``cex bench api``: signed order placements per second through the public API.

Runs against the local stack (``make up``): the whole order path is live (trading API,
relay, engines, settlement). The benchmark starts its own ``cex serve api`` process beside
the stack's, on a free port and with rate limits out of the way (one IP sends everything),
creates ``users`` funded users with HMAC keys in the stack's database (deposits through the
ledger, so ``cex check`` still holds), and sends ``orders`` signed ``POST /api/v3/order``
from ``concurrency`` concurrent connections of this process (the load generator shares the
two cores with every service). Orders rest far below the market (no trade) and are
cancelled afterwards.

One JSON object per response type: ``resp_type``, ``orders``, ``orders_per_sec``,
``p50_ms``, ``p99_ms``, ``errors``. ACK answers once the order is stored with its funds
locked; FULL once settlement has booked the engine's outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg

from cex.bench.figures import latency_ms
from cex.infra import accounts, apikeys
from cex.infra.secretbox import SecretBox
from cex.infra.settings import InfraSettings

USDT = 1_000_000


def run(orders: int, concurrency: int, users: int, resp_types: list[str]) -> list[dict[str, Any]]:
    return asyncio.run(_run(orders, concurrency, users, resp_types))


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['resp_type']:>6}: {result['orders_per_sec']:>9,.0f} orders/s  "
        f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
        f"({result['orders']} orders, {result['concurrency']} connections, "
        f"{result['errors']} errors)"
    )


async def _seed(dsn: str, users: int) -> list[tuple[int, str, bytes]]:
    tag = uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(dsn)
    box = SecretBox()
    seeded = []
    try:
        for i in range(users):
            user_id = await accounts.create_user(conn, f"bench-api-{tag}-{i}@example.com")
            await accounts.deposit(conn, user_id, "USDT", 10**9 * USDT, f"bench-api-{tag}-{i}")
            key = await apikeys.create(conn, box, user_id)
            assert key.secret is not None
            seeded.append((user_id, key.api_key, key.secret.encode()))
    finally:
        await conn.close()
    return seeded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(http: aiohttp.ClientSession, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError(f"cex serve api exited with {server.returncode}")
        try:
            async with http.get("/readyz") as probe:
                if probe.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("cex serve api did not become ready")


def _signed(secret: bytes, params: dict[str, str]) -> str:
    query = urlencode(params)
    signature = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


async def _run(
    orders: int, concurrency: int, users: int, resp_types: list[str]
) -> list[dict[str, Any]]:
    infra = InfraSettings()
    seeded = await _seed(infra.postgres_dsn, users)
    port = _free_port()
    env = {
        **os.environ,
        "CEX_API_PORT": str(port),
        "CEX_API_WEIGHT_PER_MINUTE": str(10**9),
        "CEX_API_ORDERS_PER_10S": str(10**9),
        "CEX_API_ORDERS_PER_DAY": str(10**9),
    }
    cex = str(Path(sys.executable).with_name("cex"))
    server = subprocess.Popen([cex, "serve", "api"], env=env)  # noqa: ASYNC220
    results = []
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
            await _wait_ready(http, server)
            for resp_type in resp_types:
                results.append(await _drive(http, seeded, orders, concurrency, resp_type))
            await _cancel_all(http, seeded)
    finally:
        server.terminate()
        server.wait()
    return results


async def _drive(
    http: aiohttp.ClientSession, seeded: list[tuple[int, str, bytes]], orders: int,
    concurrency: int, resp_type: str,
) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    errors = 0
    counter = iter(range(orders))

    async def client() -> None:
        nonlocal errors
        for i in counter:
            _, api_key, secret = seeded[i % len(seeded)]
            body = _signed(secret, {
                "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.01", "price": f"{1000 + i % 900}", "newOrderRespType": resp_type,
                "timestamp": str(time.time_ns() // 1_000_000),
            })  # fmt: skip
            started = time.perf_counter()
            async with http.post(
                "/api/v3/order", data=body,
                headers={"X-MBX-APIKEY": api_key,
                         "Content-Type": "application/x-www-form-urlencoded"},
            ) as response:  # fmt: skip
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    n = len(latencies)
    return {
        "bench": "api",
        "resp_type": resp_type,
        "orders": n,
        "concurrency": concurrency,
        "orders_per_sec": round(n / elapsed, 1),
        **latency_ms(latencies),
        "errors": errors,
    }


async def _cancel_all(http: aiohttp.ClientSession, seeded: list[tuple[int, str, bytes]]) -> None:
    """Take the benchmark's resting orders off the book again."""
    for _, api_key, secret in seeded:
        body = _signed(secret, {"symbol": "BTCUSDT", "timestamp": str(time.time_ns() // 10**6)})
        async with http.delete(f"/api/v3/openOrders?{body}",
                               headers={"X-MBX-APIKEY": api_key}) as response:  # fmt: skip
            await response.read()

"""`cex bench ws`: N WebSocket clients on depth + trades of one busy market.

The bench starts its own ``cex serve gateway`` (local stack's Postgres and Redis, a Redis
prefix of its own, a free port), connects N clients to
``/ws/btcusdt@depth@100ms/btcusdt@trade`` and publishes **synthetic** engine output on the
gateway's channels at a steady rate: each tick one :class:`~cex.infra.redis.DepthUpdate`
(chained seqs) and one TRADE_EXECUTED message, as the engine publishes them after a
commit. (Synthetic, so the local stack's own markets are untouched.)

Latency: from the publication of an update (the bench's clock) to its receipt by a client
(same process, same clock): a trade by its id ``t``; a depth event by its last update
``u`` (a @100ms event carries up to 100 ms of updates: the freshest one's age is
measured). Memory: the gateway's RSS growth from before the clients connected to after,
per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis
import websockets

from cex.core.events import Side, TradeExecuted
from cex.infra import redis as keys
from cex.infra.settings import InfraSettings

_decode = msgspec.json.Decoder()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


async def _run(clients: int, rate: float, seconds: float) -> dict[str, Any]:
    settings = InfraSettings()
    prefix = f"benchws_{uuid.uuid4().hex[:8]}"
    port = _free_port()
    cex = str(Path(sys.executable).with_name("cex"))
    env = os.environ | {
        "CEX_REDIS_PREFIX": prefix, "CEX_GATEWAY_PORT": str(port),
        "CEX_GATEWAY_CONNECTIONS_PER_IP": "1000000", "CEX_GATEWAY_ATTEMPTS_PER_IP": "1000000",
        "CEX_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    gateway = subprocess.Popen([cex, "serve", "gateway"], env=env)  # noqa: ASYNC220
    redis = aioredis.Redis.from_url(settings.redis_url)
    book = keys.book_key(prefix, "btc-usdt")
    await redis.hset(book, mapping={"seq": 0})
    published: dict[tuple[str, int], float] = {}
    latencies: dict[str, list[float]] = {"t": [], "u": []}
    received = 0
    sockets: list[Any] = []
    try:
        url = f"ws://127.0.0.1:{port}"
        async with asyncio.timeout(60):
            while True:
                try:
                    async with websockets.connect(f"{url}/ws"):
                        break
                except OSError:
                    await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        rss_before = _rss_kib(gateway.pid)

        async def client() -> None:
            nonlocal received
            ws = await websockets.connect(
                f"{url}/ws/btcusdt@depth@100ms/btcusdt@trade", compression=None, max_queue=None
            )
            sockets.append(ws)
            async for message in ws:
                now = time.perf_counter()
                event = _decode.decode(message)
                key = ("t", event["t"]) if event["e"] == "trade" else ("u", event["u"])
                sent = published.get(key)
                if sent is not None:
                    latencies[key[0]].append(now - sent)
                received += 1

        tasks = []
        for i in range(clients):
            tasks.append(asyncio.create_task(client()))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(120):
            while len(sockets) < clients:  # noqa: ASYNC110 (polling the clients' count)
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        rss_after = _rss_kib(gateway.pid)

        seq = trade_id = 0
        depth_channel = keys.depth_channel(prefix, "btc-usdt")
        trades_channel = keys.trades_channel(prefix, "btc-usdt")
        latencies["t"].clear()
        latencies["u"].clear()
        received = 0
        started = time.perf_counter()
        tick = 0
        while time.perf_counter() - started < seconds:
            tick += 1
            price = 300_000 + tick % 50
            update = keys.DepthUpdate("BTCUSDT", seq, seq + 2, [(price, tick % 7 + 1)], [])
            trade_id += 1
            trade = TradeExecuted(
                market="BTCUSDT", seq=seq + 1, offset=tick, ts=int(time.time() * 1000),
                trade_id=trade_id, price=price, qty=10, quote_amount=price * 10,
                base_amount=10_000, taker_side=Side.BUY, maker_order_id=1, maker_user_id=1,
                taker_order_id=tick + 1, taker_user_id=2, maker_fee=0, taker_fee=0,
            )  # fmt: skip
            seq += 2
            now = time.perf_counter()
            published[("u", seq)] = now
            published[("t", trade_id)] = now
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(book, mapping={"seq": seq, f"b:{price}": tick % 7 + 1})
                pipe.publish(depth_channel, keys.encode(update))
                pipe.publish(trades_channel, keys.encode_events([trade]))
                await pipe.execute()
            await asyncio.sleep(max(0.0, started + tick / rate - time.perf_counter()))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)
        count = received
        for task in tasks:
            task.cancel()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
    finally:
        gateway.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.wait(10)
        await redis.delete(book)
        await redis.aclose()
    trades, depth = sorted(latencies["t"]), sorted(latencies["u"])
    return {
        "clients": clients,
        "updates_per_sec": rate,
        "messages_per_sec": round(count / elapsed),
        # Trades (real-time stream): publication → receipt.
        "p50_ms": _ms(statistics.median(trades)) if trades else None,
        "p99_ms": _ms(trades[int(len(trades) * 0.99)]) if trades else None,
        # @depth@100ms: the freshest update of an event, publication → receipt (includes
        # the wait for the 100 ms push period).
        "depth_p50_ms": _ms(statistics.median(depth)) if depth else None,
        "depth_p99_ms": _ms(depth[int(len(depth) * 0.99)]) if depth else None,
        "memory_per_client_kib": round((rss_after - rss_before) / clients, 1),
        "source": "synthetic DepthUpdate + TRADE_EXECUTED on Redis pub/sub",
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run(clients: int = 2000, rate: float = 10.0, seconds: float = 10.0) -> dict[str, Any]:
    _raise_nofile(clients * 2 + 256)
    try:
        import uvloop

        return uvloop.run(_run(clients, rate, seconds))
    except ImportError:  # pragma: no cover
        return asyncio.run(_run(clients, rate, seconds))


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['clients']} clients, {result['messages_per_sec']} messages/s received, "
        f"latency p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms, "
        f"{result['memory_per_client_kib']} KiB per client"
    )

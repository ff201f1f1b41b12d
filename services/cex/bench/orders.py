"""``cex bench orders``: orders accepted per second by the trading API, funds locked.

Runs against the local stack's Postgres (``make up`` or ``cex stack up --infra-only``) in a
database of its own, created, migrated and seeded for the run and dropped afterwards:
``users`` users, each funded to place every order it will send. Three modes:

``store``
    The trading API's order store in this process (validation, group commit, funds
    locking, outbox), driven by ``concurrency`` concurrent clients: what the database side
    sustains.
``http``
    ``cex serve trading`` as a separate process (``workers`` uvicorn processes), driven
    over HTTP (``POST /internal/v1/orders``, one order per request) by ``concurrency``
    concurrent keep-alive connections from this process (`cex.bench.keepalive`: prepared request
    bytes, httptools parsing the answers; the load generator shares the cores with what it
    measures, and the summary says how much CPU it and the server took).
``http-batch``
    the same server, driven the way the public API calls it: ``POST
    /internal/v1/orders/batch`` with ``HTTP_BATCH`` orders per request, from
    ``concurrency / HTTP_BATCH`` clients (as many orders in flight as ``http``); its
    latency is a whole request's.

One JSON summary object: per mode ``orders``, ``ops_per_sec``, latency ``p50_ms`` and
``p99_ms``, the CPU seconds of this process (``client_cpu_s``: in ``store`` mode the
validation and the store too), of the trading API's process (``server_cpu_s``) and of the
bench database's Postgres backends (``postgres_cpu_s``), the mean group-commit batch size
(``mean_batch``, from the server's metrics in the HTTP modes), and the load average; each
mode's orders/s and p50/p99 at the top level.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import uvloop
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from cex.bench.figures import latency_ms
from cex.bench.keepalive import KeepAlive
from cex.core.market import MarketConfig
from cex.infra import registry
from cex.infra.postgres import create_pool, migrate
from cex.infra.settings import InfraSettings
from cex.trading.app import BATCH_WORKERS
from cex.trading.store import OrderStore, create_order_pool
from cex.trading.validation import OrderRequest, validate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
#: Orders per request in the ``http-batch`` mode.
HTTP_BATCH = 32
MODES = ("store", "http", "http-batch")


def run(
    orders: int, concurrency: int, users: int, modes: list[str], workers: int = 1
) -> dict[str, Any]:
    """One summary of every mode run (see the module's docstring)."""
    # uvloop, as the servers: the load generator shares the cores with what it measures.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(_run(orders, concurrency, users, modes, workers))
    summary: dict[str, Any] = {"bench": "orders"}
    for result in results:
        mode = result["mode"].replace("-", "_")
        summary |= {f"{mode}_{key}": result[key] for key in ("ops_per_sec", "p50_ms", "p99_ms")}
    return summary | {result["mode"]: result for result in results}


def describe(summary: dict[str, Any]) -> str:
    lines = []
    for mode in MODES:
        if (result := summary.get(mode)) is not None:
            lines.append(
                f"{mode:>10}: {result['ops_per_sec']:>9,.0f} orders/s  "
                f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                f"({result['orders']} orders, {result['concurrency']} clients)"
            )
    return "\n".join(lines)


async def _run(
    orders: int, concurrency: int, users: int, modes: list[str], workers: int
) -> list[dict[str, Any]]:
    base_dsn = InfraSettings().postgres_dsn.rsplit("/", 1)[0]
    results = []
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        name = f"bench_orders_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(f"{base_dsn}/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = f"{base_dsn}/{name}"
        try:
            user_ids = await _seed(dsn, users)
            requests = _requests(user_ids, orders)
            if mode == "store":
                results.append(await _bench_store(dsn, requests, concurrency))
            else:
                batch = HTTP_BATCH if mode == "http-batch" else 1
                results.append(await _bench_http(dsn, requests, concurrency, workers, batch))
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()
    return results


async def _seed(dsn: str, users: int) -> list[int]:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        for path in sorted(EXAMPLES.glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            name, spec = doc["metadata"]["name"], doc["spec"]
            await registry.register_market(conn, MarketConfig.from_spec(name, spec), spec)
        ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO users (email) SELECT 'bench' || g || '@example.com'"
                " FROM generate_series(1, $1) g RETURNING id",
                users,
            )
        ]
        # Plenty of USDT each (a seeded balance, outside the ledger: the bench measures
        # order entry, not deposits).
        await conn.execute(
            "INSERT INTO balances (user_id, asset, available)"
            " SELECT unnest($1::bigint[]), 'USDT', 1000000000000000",
            ids,
        )
        return ids
    finally:
        await conn.close()


def _requests(user_ids: list[int], count: int) -> list[OrderRequest]:
    return [
        OrderRequest(
            user_id=user_ids[i % len(user_ids)],
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            newClientOrderId=f"b{i}",
            timeInForce="GTC",
            quantity="0.001",
            price=f"{20000 + i % 1000}",
        )
        for i in range(count)
    ]


async def _drive(requests: list[Any], concurrency: int, send: Any) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(requests)

    async def client() -> None:
        for request in queue:
            started = time.perf_counter()
            await send(request)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def _summary(
    mode: str,
    elapsed: float,
    latencies: list[float],
    concurrency: int,
    *,
    orders: int | None = None,
) -> dict[str, Any]:
    """A mode's figures; `latencies` are per request, `orders` the orders they carried."""
    n = len(latencies) if orders is None else orders
    return {
        "bench": "orders",
        "mode": mode,
        "orders": n,
        "concurrency": concurrency,
        "ops_per_sec": round(n / elapsed, 1),
        **latency_ms(latencies),
    }


async def _bench_store(dsn: str, requests: list[OrderRequest], concurrency: int) -> dict[str, Any]:
    # As the trading API makes its store (`cex.trading.app`).
    pool = await create_order_pool(dsn, max_size=4)
    batch_pool = await create_order_pool(dsn, max_size=BATCH_WORKERS, generic_plans=True)
    store = OrderStore(pool, workers=BATCH_WORKERS, batch_pool=batch_pool)
    await store.start()
    orders_before, batches_before = _batch_totals()
    try:
        config = store.market_for_symbol("BTCUSDT")

        async def send(request: OrderRequest) -> None:
            await store.place(validate(request, config))

        cpu = await _CpuMeter.start(pool)
        elapsed, latencies = await _drive(requests, concurrency, send)
        used = await cpu.stop(pool)
    finally:
        await store.stop()
        await batch_pool.close()
        await pool.close()
    result = _summary("store", elapsed, latencies, concurrency) | used
    orders, batches = _batch_totals()
    result["mean_batch"] = round((orders - orders_before) / max(1, batches - batches_before), 1)
    return result


@dataclass
class _CpuMeter:
    """CPU seconds of this process, of a server process (and its children) and of the
    bench database's Postgres backends, from `start` to `stop` (/proc: the local stack's
    Postgres runs on this machine). A backend that connects meanwhile counts from 0."""

    client: float
    server: float
    backends: dict[int, float]
    server_pid: int | None = None

    @classmethod
    async def start(cls, conn: asyncpg.Pool, server_pid: int | None = None) -> _CpuMeter:
        server = _cpu_seconds(server_pid) if server_pid else 0.0
        return cls(time.process_time(), server, await _backend_cpu(conn), server_pid)

    async def stop(self, conn: asyncpg.Pool) -> dict[str, Any]:
        client = time.process_time() - self.client
        server = _cpu_seconds(self.server_pid) - self.server if self.server_pid else None
        backends = await _backend_cpu(conn)
        postgres = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in backends.items())
        used = {"client_cpu_s": round(client, 2), "postgres_cpu_s": round(postgres, 2)}
        if server is not None:
            used["server_cpu_s"] = round(server, 2)
        return used | {"load_average": os.getloadavg()[0]}


async def _backend_cpu(conn: asyncpg.Pool) -> dict[int, float]:
    """CPU seconds so far of every Postgres backend connected to this database."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return {r["pid"]: _cpu_seconds(r["pid"]) for r in pids}


def _batch_totals(metrics: str | None = None) -> tuple[float, float]:
    """Orders and batches the store committed so far (its cex_trading_batch_orders): this
    process's, or those of a server's `/metrics` text."""
    names = ("cex_trading_batch_orders_sum", "cex_trading_batch_orders_count")
    if metrics is None:
        return (REGISTRY.get_sample_value(names[0]) or 0.0,
                REGISTRY.get_sample_value(names[1]) or 0.0)  # fmt: skip
    values = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name in values:
                values[sample.name] += sample.value
    return values[names[0]], values[names[1]]


async def _bench_http(
    dsn: str, requests: list[OrderRequest], concurrency: int, workers: int, batch: int
) -> dict[str, Any]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "CEX_POSTGRES_DSN": dsn,
        "CEX_TRADING_PORT": str(port),
        "CEX_TRADING_WORKERS": str(workers),
    }
    cex = str(Path(sys.executable).with_name("cex"))
    server = subprocess.Popen([cex, "serve", "trading"], env=env)  # noqa: ASYNC220
    observer = await create_pool(dsn, min_size=1, max_size=1)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                try:
                    async with http.get("/readyz") as probe:
                        if probe.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            async with http.get("/metrics") as response:
                batches_before = _batch_totals(await response.text())
            if batch > 1:
                bodies = [
                    msgspec.json.encode(requests[i : i + batch])
                    for i in range(0, len(requests), batch)
                ]
                clients = max(1, concurrency // batch)
            else:
                bodies = [msgspec.json.encode(r) for r in requests]
                clients = concurrency
            connections = [await KeepAlive.open("127.0.0.1", port) for _ in range(clients)]
            free = asyncio.Queue[KeepAlive]()
            for connection in connections:
                free.put_nowait(connection)

            async def send(body: bytes) -> None:
                connection = await free.get()
                try:
                    if batch > 1:
                        status, answer = await connection.post(b"/internal/v1/orders/batch", body)
                        refused = [o for o in msgspec.json.decode(answer) if "orderId" not in o]
                        if status != 200 or refused:
                            raise RuntimeError(f"orders refused: {refused[:3]}")
                    else:
                        status, answer = await connection.post(b"/internal/v1/orders", body)
                        if status != 201:
                            raise RuntimeError(f"order refused: {answer!r}")
                finally:
                    free.put_nowait(connection)

            cpu = await _CpuMeter.start(observer, server.pid)
            elapsed, latencies = await _drive(bodies, clients, send)
            used = await cpu.stop(observer)
            for connection in connections:
                connection.close()
            async with http.get("/metrics") as response:
                orders, batches = _batch_totals(await response.text())
            used["mean_batch"] = round(
                (orders - batches_before[0]) / max(1, batches - batches_before[1]), 1
            )
    finally:
        server.terminate()
        server.wait()
        await observer.close()
    mode = "http-batch" if batch > 1 else "http"
    summary = _summary(mode, elapsed, latencies, clients, orders=len(requests))
    return summary | used | {"workers": workers}


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` and its children so far (its uvicorn
    workers, which are its children): /proc, Linux only."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        pids += [int(child) for child in children]
    return total

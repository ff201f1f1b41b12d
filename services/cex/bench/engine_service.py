"""``cex bench engine-service``: the engine service end to end on the real local Kafka.

For one market on fresh topics, the bench produces ``--commands`` commands to ``orders``
(as fast as the producer goes), starts the engine service as its own process (``cex serve
engine``, as it runs in production) with a given batch size, and reads ``executions`` with
a ``read_committed`` consumer in the bench's process.

* ``commands_per_sec``: commands divided by the time from the engine reporting ready (its
  input already filled) to the last event visible to the ``read_committed`` reader: the
  rate from ``orders`` to committed ``executions``.
* ``latency_ms``: p50/p99/p99.9 from a command's produce call to the moment its first
  event is visible to the reader, measured in a second, paced phase (``--rate`` commands
  per second, sent one by one without lingering, as the relay does) so that it is latency
  and not queueing that is measured.

It repeats for each ``--batch`` size and prints one summary object: the best run's figures
and every run under ``runs``. The command mix (:func:`workload`): limit orders around a
drifting mid (some crossing), IOC orders, market orders and cancels, from 200 users.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from aiokafka import TopicPartition

from cex.core.events import (
    Command,
    OrderCancel,
    OrderCreate,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
    decode_event,
    encode,
)
from cex.core.market import MarketConfig

__all__ = ["describe", "run", "workload"]


def workload(
    config: MarketConfig, n: int, *, seed: int = 1, start_ts: int = 1_700_000_000_000
) -> Iterator[Command]:
    """``n`` deterministic commands for ``config``'s market (funded as the trading API
    would: a buy locks its notional, a sell its base units)."""
    rng = random.Random(seed)
    mid = 1_000_000
    open_ids: list[tuple[int, int]] = []  # (order id, user id), maybe filled since
    order_id = 0
    ts = start_ts
    for _ in range(n):
        ts += rng.randint(0, 3)
        mid = max(1000, mid + rng.randint(-2, 2))
        roll = rng.random()
        if roll < 0.22 and open_ids:
            oid, uid = open_ids.pop(rng.randrange(len(open_ids)))
            yield OrderCancel(config.symbol, ts, uid, oid, None)
            continue
        order_id += 1
        user = rng.randint(1, 200)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        qty = rng.randint(1, 50)
        if roll < 0.27:
            budget = config.notional(mid + 500, qty)
            locked = budget if side is Side.BUY else config.base_units(qty)
            yield OrderCreate(
                config.symbol, ts, order_id, f"c{order_id}", user, side, OrderType.MARKET,
                TimeInForce.IOC, None, qty, None, None, None, StpMode.NONE, locked,
            )  # fmt: skip
            continue
        offset = rng.randint(-40, 40)
        price = mid + offset if side is Side.BUY else mid - offset
        tif = TimeInForce.IOC if roll < 0.35 else TimeInForce.GTC
        locked = config.notional(price, qty) if side is Side.BUY else config.base_units(qty)
        yield OrderCreate(
            config.symbol, ts, order_id, f"c{order_id}", user, side, OrderType.LIMIT, tif,
            price, qty, None, None, None, StpMode.EXPIRE_TAKER, locked,
        )  # fmt: skip
        if tif is TimeInForce.GTC:
            open_ids.append((order_id, user))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _produce(
    bootstrap: str, topic: str, payloads: list[bytes], rate: float | None
) -> list[float]:
    """Produce in order to partition 0; returns each command's send time. Paced (``rate``)
    records go out at once, as the relay sends them; a bulk load lingers to fill batches."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_batch_size=1 << 20,
        linger_ms=0 if rate is not None else 5,
        acks="all",
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        sent: list[float] = []
        for i, value in enumerate(payloads):
            if rate is not None:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent.append(time.time())
            futures.append(await producer.send(topic, value, partition=0))
        await asyncio.gather(*futures)
        return sent
    finally:
        await producer.stop()


async def _read_until(
    bootstrap: str,
    topic: str,
    last_offset: int,
    first_seen: dict[int, float],
    from_end: asyncio.Event | None = None,
) -> float:
    """Read ``executions`` (read_committed) until an event answers input ``last_offset``;
    note when each input offset's first event became visible. Returns the time. Reads from
    the beginning, or with ``from_end`` from the end as it is now (set once positioned)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
    )  # fmt: skip
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    if from_end is not None:
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        from_end.set()
    try:
        while True:
            got = await consumer.getmany(tp, timeout_ms=200, max_records=20000)
            now = time.time()
            for record in got.get(tp, []):
                event = decode_event(record.value)
                first_seen.setdefault(event.offset, now)
                if event.offset >= last_offset:
                    return time.perf_counter()
    finally:
        await consumer.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_engine(market: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cex = os.path.join(os.path.dirname(sys.executable), "cex")
    return subprocess.Popen(
        [cex, "serve", "engine", "--market", market],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _wait_ready(engine: subprocess.Popen[bytes], port: int) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if engine.poll() is not None:
                err = engine.stderr.read().decode(errors="replace") if engine.stderr else ""
                raise RuntimeError(f"the engine exited with {engine.returncode}:\n{err[-3000:]}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.005)


async def _engine_counters(port: int) -> dict[str, float]:
    """The engine's transaction and batch totals, from its ``/metrics``."""
    import httpx

    names = {
        "cex_engine_transaction_seconds_sum": "txn_seconds",
        "cex_engine_transaction_seconds_count": "transactions",
        "cex_engine_batch_size_sum": "commands",
        "cex_engine_command_seconds_sum": "command_seconds",
        "cex_engine_command_seconds_count": "command_batches",
    }
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in names:
            found[names[name]] = float(line.rsplit(" ", 1)[1])
    return found


def _engine_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the engine did between two readings: transactions, their mean duration (begin
    to committed), mean commands per transaction, and the mean time a fetched batch spent
    in the engine until committed (``in_engine_mean_ms``: the rest of a command's latency
    is the way in, through Kafka, and the commit markers on the way out)."""

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    txns = delta("transactions")
    if not txns:
        return {"transactions": 0}
    figures = {
        "transactions": txns,
        "txn_mean_ms": round(delta("txn_seconds") / txns * 1e3, 2),
        "commands_per_txn": round(delta("commands") / txns, 1),
    }
    if delta("command_batches"):
        figures["in_engine_mean_ms"] = round(
            delta("command_seconds") / delta("command_batches") * 1e3, 2
        )
    return figures


async def _one(
    config: MarketConfig, commands: int, batch: int, rate: float, latency_commands: int
) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from cex.infra.settings import InfraSettings

    infra = InfraSettings()
    tag = uuid.uuid4().hex[:10]
    orders, executions = f"bench_orders_{tag}", f"bench_executions_{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, 1, 1) for t in (orders, executions)])
    port = _free_port()
    env = {
        "CEX_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "CEX_REDIS_URL": infra.redis_url,
        "CEX_REDIS_PREFIX": f"bench_{tag}",
        "CEX_ORDERS_TOPIC": orders,
        "CEX_EXECUTIONS_TOPIC": executions,
        "CEX_MARKET_PARTITION": "0",
        "CEX_METRICS_PORT": str(port),
        "CEX_ENGINE_BATCH_MAX": str(batch),
        "CEX_ENGINE_VERIFY_OUTPUT": "false",
        "CEX_LOG_LEVEL": "WARNING",
    }
    engine: subprocess.Popen[bytes] | None = None
    try:
        payloads = [encode(c) for c in workload(config, commands + latency_commands)]
        # The observer's own pauses are not the engine's latency: no collection in this
        # process while it measures (full collections of 50-100 ms seen here under load).
        gc.collect()
        gc.disable()
        # Phase 1: throughput. The input is in the topic before the engine starts.
        await _produce(infra.kafka_bootstrap, orders, payloads[:commands], None)
        engine = _start_engine(config.name, env)
        await _wait_ready(engine, port)
        started = time.perf_counter()
        first_seen: dict[int, float] = {}
        finished = await _read_until(infra.kafka_bootstrap, executions, commands - 1, first_seen)
        throughput = commands / (finished - started)
        counters = await _engine_counters(port)
        engine_bulk = _engine_figures({}, counters)

        # Phase 2: latency at a steady rate, engine idle-ready; read from where phase 1 ended
        # (the reader must not be busy with phase 1's events while phase 2's arrive).
        latencies: list[float] = []
        if latency_commands:
            positioned = asyncio.Event()
            reader = asyncio.create_task(
                _read_until(
                    infra.kafka_bootstrap,
                    executions,
                    commands + latency_commands - 1,
                    first_seen,
                    positioned,
                )
            )
            await positioned.wait()
            sent = await _produce(infra.kafka_bootstrap, orders, payloads[commands:], rate)
            await reader
            produced_at = {commands + i: t for i, t in enumerate(sent)}
            latencies = [
                (first_seen[o] - produced_at[o]) * 1000 for o in produced_at if o in first_seen
            ]
        result: dict[str, Any] = {
            "batch_max": batch,
            "commands": commands,
            "commands_per_sec": round(throughput),
            "engine_throughput_phase": engine_bulk,
        }
        if latency_commands:
            result["engine_latency_phase"] = _engine_figures(counters, await _engine_counters(port))
        if latencies:
            result |= {
                "latency_rate_per_sec": rate,
                "latency_commands": len(latencies),
                "latency_p50_ms": round(_percentile(latencies, 0.5), 2),
                "latency_p99_ms": round(_percentile(latencies, 0.99), 2),
                "latency_p999_ms": round(_percentile(latencies, 0.999), 2),
                "latency_max_ms": round(max(latencies), 2),
            }
        return result
    finally:
        gc.enable()
        if engine is not None and engine.poll() is None:
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(30)
            except subprocess.TimeoutExpired:
                engine.kill()
                engine.wait()
        await admin.delete_topics([orders, executions])
        await admin.close()


def run(
    *,
    market: str = "btc-usdt",
    commands: int = 200_000,
    batches: tuple[int, ...] = (500, 2000, 5000),
    rate: float = 2000.0,
    latency_commands: int = 4000,
) -> list[dict[str, Any]]:
    """One summary object: the best batch size's figures, every run under ``runs``."""
    from cex.infra.manifests import find_market_file, load_market

    config = load_market(find_market_file(market))
    runs = [asyncio.run(_one(config, commands, batch, rate, latency_commands)) for batch in batches]
    best = max(runs, key=lambda r: r["commands_per_sec"])
    summary: dict[str, Any] = {"bench": "engine-service", "market": market}
    summary |= {k: v for k, v in best.items() if k != "batch_max"}
    summary |= {"best_batch_max": best["batch_max"], "load_avg_1m": os.getloadavg()[0]}
    return [summary | {"runs": runs}]


def describe(result: dict[str, Any]) -> str:
    lines = [
        f"batch {r['batch_max']:>6}: {r['commands_per_sec']:>8,} commands/s"
        f"  p50 {r.get('latency_p50_ms')} ms  p99 {r.get('latency_p99_ms')} ms"
        f"  p99.9 {r.get('latency_p999_ms')} ms"
        for r in result["runs"]
    ]
    lines.append(
        f"best: batch {result['best_batch_max']}: {result['commands_per_sec']:,} commands/s"
        f", latency p50 {result.get('latency_p50_ms')} ms p99 {result.get('latency_p99_ms')} ms"
        f" p99.9 {result.get('latency_p999_ms')} ms (load average {result['load_avg_1m']:.2f})"
    )
    return "\n".join(lines)

"""``cex bench engine-service``: the engine service end to end on the real local Kafka.

For one market on fresh topics, the bench produces ``--commands`` commands to ``orders``
(as fast as the producer goes, with the produce time in the record timestamp), runs the
engine service in-process with a given batch size, and reads ``executions`` with a
``read_committed`` consumer.

* ``commands_per_sec``: commands divided by the time from the engine going live (its
  input already filled) to the last event visible to the ``read_committed`` reader: the
  rate from ``orders`` to committed ``executions``.
* ``latency_ms``: p50/p99 from a command's produce time to the moment its first event is
  visible to the reader, measured in a second, paced phase (``--rate`` commands per
  second) so that it is latency and not queueing that is measured.

It repeats for each ``--batch`` size and reports the best. The command mix
(:func:`workload`): limit orders around a drifting mid (some crossing), IOC orders, market
orders and cancels, from 200 users.
"""

from __future__ import annotations

import asyncio
import random
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
    """Produce in order to partition 0; returns each command's send time."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_batch_size=1 << 20, linger_ms=2, acks="all"
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
    bootstrap: str, topic: str, last_offset: int, first_seen: dict[int, float]
) -> float:
    """Read ``executions`` (read_committed) until an event answers input ``last_offset``;
    note when each input offset's first event became visible. Returns the time."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
    )  # fmt: skip
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
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


async def _one(
    config: MarketConfig, commands: int, batch: int, rate: float, latency_commands: int
) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from cex.engine.runner import EngineRunner
    from cex.engine.settings import EngineSettings
    from cex.infra.runtime import WorkerContext
    from cex.infra.settings import InfraSettings

    infra = InfraSettings()
    tag = uuid.uuid4().hex[:10]
    orders, executions = f"bench_orders_{tag}", f"bench_executions_{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, 1, 1) for t in (orders, executions)])
    settings = EngineSettings(engine_batch_max=batch, engine_verify_output=False)
    run_infra = infra.model_copy(
        update={
            "orders_topic": orders,
            "executions_topic": executions,
            "redis_prefix": f"bench_{tag}",
        }
    )
    try:
        payloads = [encode(c) for c in workload(config, commands + latency_commands)]
        # Phase 1: throughput. The input is in the topic before the engine starts.
        await _produce(infra.kafka_bootstrap, orders, payloads[:commands], None)
        runner = EngineRunner(config, 0, run_infra, settings)
        ctx = WorkerContext("bench")
        task = asyncio.create_task(runner.run(ctx))
        while not ctx.readiness.ready:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        first_seen: dict[int, float] = {}
        finished = await _read_until(infra.kafka_bootstrap, executions, commands - 1, first_seen)
        throughput = commands / (finished - started)

        # Phase 2: latency at a steady rate, engine idle-ready.
        latencies: list[float] = []
        if latency_commands:
            reader = asyncio.create_task(
                _read_until(
                    infra.kafka_bootstrap, executions, commands + latency_commands - 1, first_seen
                )
            )
            sent = await _produce(infra.kafka_bootstrap, orders, payloads[commands:], rate)
            await reader
            produced_at = {commands + i: t for i, t in enumerate(sent)}
            latencies = [
                (first_seen[o] - produced_at[o]) * 1000 for o in produced_at if o in first_seen
            ]
        ctx.stopping.set()
        await task
        result: dict[str, Any] = {
            "bench": "engine-service",
            "market": config.name,
            "batch_max": batch,
            "commands": commands,
            "commands_per_sec": round(throughput),
        }
        if latencies:
            result |= {
                "latency_rate_per_sec": rate,
                "latency_p50_ms": round(_percentile(latencies, 0.5), 2),
                "latency_p99_ms": round(_percentile(latencies, 0.99), 2),
            }
        return result
    finally:
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
    """One result per batch size, then a summary naming the best one."""
    from cex.infra.manifests import find_market_file, load_market

    config = load_market(find_market_file(market))
    results = [
        asyncio.run(_one(config, commands, batch, rate, latency_commands)) for batch in batches
    ]
    best = max(results, key=lambda r: r["commands_per_sec"])
    summary = {"bench": "engine-service", "summary": True, "best_batch_max": best["batch_max"]}
    summary |= {k: v for k, v in best.items() if k not in ("bench", "batch_max")}
    return [*results, summary]


def describe(result: dict[str, Any]) -> str:
    if result.get("summary"):
        return (
            f"best: batch {result['best_batch_max']}: {result['commands_per_sec']:,} commands/s"
            f", latency p50 {result.get('latency_p50_ms')} ms p99 {result.get('latency_p99_ms')} ms"
        )
    return (
        f"batch {result['batch_max']:>6}: {result['commands_per_sec']:>8,} commands/s"
        f"  p50 {result.get('latency_p50_ms')} ms  p99 {result.get('latency_p99_ms')} ms"
    )

"""``cex bench settlement``: trades settled per second, and batch latency.

Against the local stack (``make up`` or ``cex stack up --infra-only``), in a database and a
topic of its own, created for the run and dropped afterwards:

1. seed: a fresh database (migrated, one market), ``users`` makers and ``users`` takers
   funded by deposits, and every order of the run inserted as the trading API does
   (PENDING, funds ``available → locked``, an ORDER_LOCK journal);
2. generate: the orders go through the real matching engine core — each maker rests
   ``fanout`` lots, ``fanout`` takers buy one lot each with IOC limits — and its events are
   produced transactionally to a fresh ``executions`` topic (about four events per trade:
   the trade, both orders' updates, the book delta);
3. measure: the settlement worker (the code of ``cex serve settlement``, in this process)
   consumes and settles everything; the clock runs from its first batch to the last.

Prints one JSON object: ``trades``, ``events``, ``trades_per_sec``, ``events_per_sec``,
batch latency ``p50_ms`` / ``p99_ms``, the mean batch size, and ``seconds_by_phase``:
where the time went (Kafka fetch and decode, database lock and read, the Python replay,
balance locking and update, the remaining writes with COPY, and the commit).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cex.core.events import OrderCreate, OrderType, Side, StpMode, TimeInForce, encode
from cex.core.market import MarketConfig
from cex.core.matching import MatchingEngine
from cex.infra import registry
from cex.infra.postgres import migrate
from cex.infra.runtime import WorkerContext
from cex.infra.settings import InfraSettings
from cex.settlement.service import SettlementSettings, SettlementWorker

SPEC: dict[str, Any] = {
    "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "basePrecision": 8,
    "quotePrecision": 6, "tickSize": "0.1", "lotSize": "0.00001", "minQty": "0.00001",
    "maxQty": "9000", "minNotional": "0", "makerFee": "0.001", "takerFee": "0.002",
}  # fmt: skip
TS = 1_700_000_000_000


def run(trades: int, batch: int, users: int, fanout: int) -> dict[str, Any]:
    return asyncio.run(_run(trades, batch, users, fanout))


def describe(result: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in result["seconds_by_phase"].items())
    return (
        f"settled {result['trades']} trades ({result['events']} events) at "
        f"{result['trades_per_sec']:.0f} trades/s, batch p50 {result['p50_ms']:.1f} ms "
        f"p99 {result['p99_ms']:.1f} ms (mean {result['mean_batch_events']:.0f} events); "
        f"{phases}"
    )


async def _run(trades: int, batch: int, users: int, fanout: int) -> dict[str, Any]:
    infra = InfraSettings()
    base_dsn = infra.postgres_dsn.rsplit("/", 1)[0]
    name = f"bench_settlement_{uuid.uuid4().hex[:8]}"
    topic = f"bench-executions-{uuid.uuid4().hex[:8]}"
    admin_pg = await asyncpg.connect(base_dsn + "/postgres")
    kafka_admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await kafka_admin.start()
    try:
        await admin_pg.execute(f'CREATE DATABASE "{name}"')
        await kafka_admin.create_topics([NewTopic(topic, 1, 1)])
        dsn = f"{base_dsn}/{name}"
        t0 = time.perf_counter()
        events = await _seed_and_generate(dsn, infra.kafka_bootstrap, topic, trades, users, fanout)
        prepared = time.perf_counter() - t0
        result = await _measure(
            infra.model_copy(update={"postgres_dsn": dsn, "executions_topic": topic}),
            SettlementSettings(batch_max=batch, poll_ms=50),
            events,
        )
        result["prepare_seconds"] = round(prepared, 1)
        result["batch_max"] = batch
        return result
    finally:
        await admin_pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_pg.close()
        await kafka_admin.delete_topics([topic])
        await kafka_admin.close()


async def _seed_and_generate(
    dsn: str, bootstrap: str, topic: str, trades: int, users: int, fanout: int
) -> int:
    await migrate(dsn)
    config = MarketConfig.from_spec("btc-usdt", SPEC)
    conn = await asyncpg.connect(dsn)
    try:
        await registry.register_market(conn, config, SPEC)
        makers = [u for (u,) in await conn.fetch(
            "INSERT INTO users (email) SELECT 'maker' || i || '@bench' FROM"
            " generate_series(1, $1) i RETURNING id", users)]  # fmt: skip
        takers = [u for (u,) in await conn.fetch(
            "INSERT INTO users (email) SELECT 'taker' || i || '@bench' FROM"
            " generate_series(1, $1) i RETURNING id", users)]  # fmt: skip

        # The orders: makers sell `fanout` lots at a price walking up and down; takers buy
        # one lot each at that price, IOC.
        engine = MatchingEngine(config)
        rounds = -(-trades // fanout)
        order_id = 0
        commands: list[OrderCreate] = []
        for r in range(rounds):
            price = 300_000 + (r % 200)
            order_id += 1
            commands.append(_create(order_id, makers[r % users], Side.SELL, price, fanout,
                                    config.base_units(fanout)))  # fmt: skip
            for i in range(fanout):
                order_id += 1
                taker = takers[(r * fanout + i) % users]
                commands.append(_create(order_id, taker, Side.BUY, price, 1,
                                        config.notional(price, 1)))  # fmt: skip

        # Fund everyone with exactly what their orders lock (deposits), then lock it.
        need: dict[tuple[int, str], int] = {}
        for c in commands:
            asset = config.quote if c.side is Side.BUY else config.base
            need[c.user_id, asset] = need.get((c.user_id, asset), 0) + c.locked
        await _deposit(conn, need)
        await _lock(conn, config, commands)
    finally:
        await conn.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"bench-{uuid.uuid4().hex}",
        max_batch_size=1 << 20,
        linger_ms=5,
    )
    await producer.start()
    produced = 0
    try:
        for start in range(0, len(commands), 5000):
            async with producer.transaction():
                for offset, command in enumerate(commands[start : start + 5000], start):
                    for event in engine.apply(command, offset):
                        await producer.send(topic, encode(event), partition=0)
                        produced += 1
    finally:
        await producer.stop()
    return produced


def _create(order_id: int, user: int, side: Side, price: int, qty: int, locked: int) -> OrderCreate:
    return OrderCreate(
        market="BTCUSDT", ts=TS, order_id=order_id, client_order_id=f"b{order_id}",
        user_id=user, side=side, type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC if side is Side.SELL else TimeInForce.IOC,
        price=price, quantity=qty, quote_order_qty=None, stop_price=None, expire_at=None,
        stp_mode=StpMode.NONE, locked=locked,
    )  # fmt: skip


async def _journal_ids(conn: asyncpg.Connection, n: int) -> list[int]:
    rows = await conn.fetch("SELECT nextval('journals_id_seq') FROM generate_series(1, $1)", n)
    return [int(r[0]) for r in rows]


async def _deposit(conn: asyncpg.Connection, need: dict[tuple[int, str], int]) -> None:
    keys = sorted(need)
    async with conn.transaction():
        ids = await _journal_ids(conn, len(keys))
        await conn.copy_records_to_table(
            "journals", records=[(j, "DEPOSIT", f"bench-{j}") for j in ids],
            columns=("id", "kind", "reference"),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "ledger_entries",
            records=[row for j, (u, a) in zip(ids, keys, strict=True) for row in (
                (j, None, "EXTERNAL", a, -need[u, a]), (j, u, "AVAILABLE", a, need[u, a]))],
            columns=("journal_id", "user_id", "bucket", "asset", "amount"),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "deposits",
            records=[(f"bench-{j}", u, a, need[u, a], j)
                     for j, (u, a) in zip(ids, keys, strict=True)],
            columns=("external_id", "user_id", "asset", "amount", "journal_id"),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "balances", records=[(u, a, need[u, a], 0) for u, a in keys],
            columns=("user_id", "asset", "available", "locked"),
        )  # fmt: skip


async def _lock(
    conn: asyncpg.Connection, config: MarketConfig, commands: list[OrderCreate]
) -> None:
    """The trading API's effects for every order: PENDING row, funds locked, ORDER_LOCK."""
    async with conn.transaction():
        ids = await _journal_ids(conn, len(commands))
        orders, journals, entries = [], [], []
        for j, c in zip(ids, commands, strict=True):
            asset = config.quote if c.side is Side.BUY else config.base
            orders.append((
                c.order_id, "btc-usdt", c.user_id, c.client_order_id, c.side.value,
                c.type.value, c.time_in_force.value, c.price, c.quantity, c.stp_mode.value,
                "PENDING", asset, c.locked, c.locked, c.ts,
            ))  # fmt: skip
            journals.append((j, "ORDER_LOCK", f"order:{c.order_id}"))
            entries.append((j, c.user_id, "AVAILABLE", asset, -c.locked))
            entries.append((j, c.user_id, "LOCKED", asset, c.locked))
        await conn.copy_records_to_table(
            "orders", records=orders,
            columns=("id", "market", "user_id", "client_order_id", "side", "type",
                     "time_in_force", "price", "quantity", "stp_mode", "status", "locked_asset",
                     "locked", "locked_remaining", "created_ms"),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "journals", records=journals, columns=("id", "kind", "reference")
        )
        await conn.copy_records_to_table(
            "ledger_entries", records=entries,
            columns=("journal_id", "user_id", "bucket", "asset", "amount"),
        )  # fmt: skip
        await conn.execute("UPDATE balances SET locked = available, available = 0")


async def _measure(
    infra: InfraSettings, settings: SettlementSettings, events: int
) -> dict[str, Any]:
    latencies: list[float] = []
    worker = SettlementWorker(infra, settings, observe_batch=latencies.append)
    ctx = WorkerContext("settlement-bench")
    task = asyncio.create_task(worker.run(ctx))
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        while not ctx.readiness.ready:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        while worker.events_seen < events:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        assert worker.first_batch_at is not None
        assert worker.last_batch_at is not None
        elapsed = worker.last_batch_at - worker.first_batch_at
        trades = int(await conn.fetchval("SELECT count(*) FROM trades"))
    finally:
        ctx.stopping.set()
        await task
        await conn.close()
    latencies.sort()
    n = len(latencies)
    return {
        "benchmark": "settlement",
        "trades": trades,
        "events": events,
        "seconds": round(elapsed, 3),
        "trades_per_sec": round(trades / elapsed),
        "events_per_sec": round(events / elapsed),
        "batches": n,
        "mean_batch_events": round(events / n, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 2),
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2),
        "seconds_by_phase": {k: round(v, 3) for k, v in worker.phase_seconds.items()},
    }

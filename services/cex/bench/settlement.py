"""``cex bench settlement``: trades settled per second, batch latency, and the settle hop
at a paced rate.

Against the local stack (``make up`` or ``cex stack up --infra-only``), in a database and a
topic of its own, created for the run and dropped afterwards:

1. seed: a fresh database (migrated, one market trading and ``idle_markets`` more, each
   with its partition, as in the local stack: settlement reads every market's partition
   with one consumer, and an idle partition changes how the consumer fetches the busy
   one), ``users`` makers and ``users`` takers
   funded by deposits, and every order of the run inserted as the trading API does
   (PENDING, funds ``available → locked``, an ORDER_LOCK journal);
2. generate: the orders go through the real matching engine core — each maker rests
   ``fanout`` lots, ``fanout`` takers buy one lot each with IOC limits — and its events are
   produced transactionally to a fresh ``executions`` topic (about four events per trade:
   the trade, both orders' updates, the book delta);
3. throughput: the settlement worker (the code of ``cex serve settlement``, in this
   process, on uvloop as the service) settles the ``trades`` backlog; the clock runs from
   its first batch to the last;
4. latency (``rate`` > 0): a producer process commits the next orders' events at ``rate``
   orders per second for ``seconds`` seconds, one Kafka transaction every ``tick_ms`` (as an
   engine commits what it has), while the worker settles them. Each event's latency runs
   from its transaction's commit (the producer's clock) to the commit, and then to the
   publication, of the batch that settled it (``time.monotonic``: one clock on the machine).

Prints one JSON object: ``trades_per_sec``, ``events_per_sec``, batch ``p50_ms`` /
``p99_ms``, the mean batch size, ``seconds_by_phase`` (where the time went: Kafka fetch and
decode, database lock and read, the Python replay, balances, orders, trades, ledger, commit
and publication), ``cpu_seconds`` (this process's and its Postgres backend's CPU during the
throughput phase: a figure a busy machine distorts less than wall time), and ``settle`` with
the paced phase's ``committed_*`` and ``published_*`` p50/p99/p99.9 in ms and its CPU
seconds (what settling costs the machine at that rate, which the whole stack shares).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cex.bench.figures import latency_ms
from cex.core.events import OrderCreate, OrderType, Side, StpMode, TimeInForce, encode
from cex.core.market import MarketConfig
from cex.core.matching import MatchingEngine
from cex.infra import registry
from cex.infra.postgres import migrate
from cex.infra.runtime import WorkerContext
from cex.infra.settings import InfraSettings
from cex.settlement.service import (
    SettledBatch,
    SettlementSettings,
    SettlementWorker,
    tune_gc,
)

SPEC: dict[str, Any] = {
    "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "basePrecision": 8,
    "quotePrecision": 6, "tickSize": "0.1", "lotSize": "0.00001", "minQty": "0.00001",
    "maxQty": "9000", "minNotional": "0", "makerFee": "0.001", "takerFee": "0.002",
}  # fmt: skip
TS = 1_700_000_000_000


def run(
    trades: int,
    batch: int,
    users: int,
    fanout: int,
    rate: int = 2000,
    seconds: float = 10.0,
    tick_ms: float = 5.0,
    idle_markets: int = 1,
) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(_run(trades, batch, users, fanout, rate, seconds, tick_ms, idle_markets))
    return uvloop.run(_run(trades, batch, users, fanout, rate, seconds, tick_ms, idle_markets))


def describe(result: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in result["seconds_by_phase"].items())
    text = (
        f"settled {result['trades']} trades ({result['events']} events) at "
        f"{result['trades_per_sec']:.0f} trades/s, batch p50 {result['p50_ms']:.1f} ms "
        f"p99 {result['p99_ms']:.1f} ms (mean {result['mean_batch_events']:.0f} events); "
        f"{phases}"
    )
    settle = result.get("settle")
    if settle:
        text += (
            f"; at {settle['rate']} orders/s, Kafka commit → settled p50"
            f" {settle['committed_p50_ms']:.1f} ms p99 {settle['committed_p99_ms']:.1f} ms,"
            f" → published p50 {settle['published_p50_ms']:.1f} ms"
            f" p99 {settle['published_p99_ms']:.1f} ms"
        )
    return text


async def _run(
    trades: int,
    batch: int,
    users: int,
    fanout: int,
    rate: int,
    seconds: float,
    tick_ms: float,
    idle_markets: int,
) -> dict[str, Any]:
    infra = InfraSettings()
    base_dsn = infra.postgres_dsn.rsplit("/", 1)[0]
    name = f"bench_settlement_{uuid.uuid4().hex[:8]}"
    topic = f"bench-executions-{uuid.uuid4().hex[:8]}"
    admin_pg = await asyncpg.connect(base_dsn + "/postgres")
    kafka_admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await kafka_admin.start()
    try:
        await admin_pg.execute(f'CREATE DATABASE "{name}"')
        await kafka_admin.create_topics([NewTopic(topic, 1 + idle_markets, 1)])
        dsn = f"{base_dsn}/{name}"
        t0 = time.perf_counter()
        paced_orders = int(rate * seconds)
        backlog, paced = await _seed_and_generate(
            dsn, infra.kafka_bootstrap, topic, trades, paced_orders, users, fanout, idle_markets
        )
        prepared = time.perf_counter() - t0
        result = await _measure(
            infra.model_copy(update={"postgres_dsn": dsn, "executions_topic": topic}),
            SettlementSettings(batch_max=batch),
            backlog,
            paced,
            rate,
            tick_ms,
        )
        result["prepare_seconds"] = round(prepared, 1)
        result["batch_max"] = batch
        result["idle_markets"] = idle_markets
        return result
    finally:
        await admin_pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_pg.close()
        await kafka_admin.delete_topics([topic])
        await kafka_admin.close()


async def _seed_and_generate(
    dsn: str,
    bootstrap: str,
    topic: str,
    trades: int,
    paced_orders: int,
    users: int,
    fanout: int,
    idle_markets: int,
) -> tuple[int, list[list[bytes]]]:
    """Seed the database and produce the backlog's events (``trades`` trades); returns
    their count and the paced phase's events (``paced_orders`` orders), per order."""
    await migrate(dsn)
    config = MarketConfig.from_spec("btc-usdt", SPEC)
    conn = await asyncpg.connect(dsn)
    try:
        await registry.register_market(conn, config, SPEC)  # partition 0
        for i in range(idle_markets):  # partitions 1, 2, …: no order, no event
            spec = SPEC | {"symbol": f"IDLE{i}USDT", "base": f"IDLE{i}"}
            await registry.register_market(
                conn, MarketConfig.from_spec(f"idle{i}-usdt", spec), spec
            )
        makers = [u for (u,) in await conn.fetch(
            "INSERT INTO users (email) SELECT 'maker' || i || '@bench' FROM"
            " generate_series(1, $1) i RETURNING id", users)]  # fmt: skip
        takers = [u for (u,) in await conn.fetch(
            "INSERT INTO users (email) SELECT 'taker' || i || '@bench' FROM"
            " generate_series(1, $1) i RETURNING id", users)]  # fmt: skip

        # The orders: makers sell `fanout` lots at a price walking up and down; takers buy
        # one lot each at that price, IOC. The backlog's rounds, then the paced phase's.
        rounds = -(-trades // fanout)
        paced_rounds = -(-paced_orders // (fanout + 1))
        order_id = 0
        commands: list[OrderCreate] = []
        for r in range(rounds + paced_rounds):
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

    engine = MatchingEngine(config)
    events = [
        [encode(event) for event in engine.apply(command, offset)]
        for offset, command in enumerate(commands)
    ]
    split = rounds * (fanout + 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"bench-{uuid.uuid4().hex}",
        max_batch_size=1 << 20,
        linger_ms=5,
    )
    await producer.start()
    produced = 0
    try:
        for start in range(0, split, 5000):
            async with producer.transaction():
                for per_command in events[start : min(start + 5000, split)]:
                    for value in per_command:
                        await producer.send(topic, value, partition=0)
                        produced += 1
    finally:
        await producer.stop()
    return produced, events[split:]


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
    infra: InfraSettings,
    settings: SettlementSettings,
    backlog: int,
    paced: list[list[bytes]],
    rate: int,
    tick_ms: float,
) -> dict[str, Any]:
    settled: list[SettledBatch] = []
    worker = SettlementWorker(infra, settings, observe_batch=settled.append)
    tune_gc()  # as `cex serve settlement`
    ctx = WorkerContext("settlement-bench")
    task = asyncio.create_task(worker.run(ctx))
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        while not ctx.readiness.ready:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        assert worker.conn is not None
        backend = worker.conn.get_server_pid()
        cpu = (time.process_time(), _process_cpu(backend))
        while worker.events_seen < backlog:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        cpu_used = (time.process_time() - cpu[0], _process_cpu(backend) - cpu[1])
        while sum(b.events for b in settled) < backlog:  # their publication follows
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        assert worker.first_batch_at is not None
        assert worker.last_batch_at is not None
        elapsed = worker.last_batch_at - worker.first_batch_at
        trades = int(await conn.fetchval("SELECT count(*) FROM trades"))
        phases = dict(worker.phase_seconds)
        throughput = list(settled)
        if paced:
            cpu = (time.process_time(), _process_cpu(backend))
            settle = await _paced(infra, worker, task, paced, rate, tick_ms)
            # (This process's CPU includes waiting for the producer: a few ms.)
            settle["cpu_seconds"] = {
                "settlement": round(time.process_time() - cpu[0], 3),
                "postgres_backend": round(_process_cpu(backend) - cpu[1], 3),
            }
        else:
            settle = None
    finally:
        ctx.stopping.set()
        await task
        await conn.close()
    n = len(throughput)
    result: dict[str, Any] = {
        "benchmark": "settlement",
        "trades": trades,
        "events": backlog,
        "seconds": round(elapsed, 3),
        "trades_per_sec": round(trades / elapsed),
        "events_per_sec": round(backlog / elapsed),
        "batches": n,
        "mean_batch_events": round(backlog / n, 1),
        **latency_ms([b.seconds for b in throughput], 2),
        "seconds_by_phase": {k: round(v, 3) for k, v in phases.items()},
        "cpu_seconds": {
            "settlement": round(cpu_used[0], 3),
            "postgres_backend": round(cpu_used[1], 3),
        },
        "load_average": os.getloadavg()[0],
    }
    if settle is not None:
        result["settle"] = settle
    return result


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``; the local stack's
    Postgres runs on this machine)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _paced(
    infra: InfraSettings,
    worker: SettlementWorker,
    task: asyncio.Task[None],
    paced: list[list[bytes]],
    rate: int,
    tick_ms: float,
) -> dict[str, Any]:
    """Commit ``paced`` at ``rate`` orders/s from another process while ``worker`` runs;
    the settle hop's latencies, per event."""
    settled: list[SettledBatch] = []
    worker.observe_batch = settled.append
    total = sum(len(events) for events in paced)
    seen = worker.events_seen
    receiver, sender = multiprocessing.get_context("spawn").Pipe(duplex=False)
    producer = multiprocessing.get_context("spawn").Process(
        target=_produce_paced,
        args=(infra.kafka_bootstrap, infra.executions_topic, paced, rate, tick_ms, sender),
    )
    producer.start()
    sender.close()
    try:
        while worker.events_seen < seen + total:
            if task.done():
                task.result()
            if not producer.is_alive() and producer.exitcode:
                raise RuntimeError(f"the paced producer failed ({producer.exitcode})")
            await asyncio.sleep(0.01)
        commits: list[tuple[int, float, int]] = await asyncio.to_thread(receiver.recv)
    finally:
        await asyncio.to_thread(producer.join, 30)
        receiver.close()
    # Each transaction's events are settled by the first batch reaching past its last one.
    committed: list[float] = []
    published: list[float] = []
    b = 0
    for next_offset, commit_time, events in commits:
        while settled[b].positions.get(0, 0) < next_offset:
            b += 1
        committed += [settled[b].committed_at - commit_time] * events
        published += [settled[b].published_at - commit_time] * events
    elapsed = commits[-1][1] - commits[0][1] if len(commits) > 1 else 0.0
    return {
        "rate": rate,
        "orders": len(paced),
        "events": total,
        "offered_seconds": round(elapsed, 2),
        "transactions": len(commits),
        "batches": len(settled),
        **{f"committed_{k}": v for k, v in _tail_ms(committed).items()},
        **{f"published_{k}": v for k, v in _tail_ms(published).items()},
    }


def _tail_ms(seconds: list[float]) -> dict[str, float]:
    figures = latency_ms(seconds, 2)
    figures["p999_ms"] = round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.999))] * 1000, 2)
    return figures


def _produce_paced(
    bootstrap: str,
    topic: str,
    paced: list[list[bytes]],
    rate: int,
    tick_ms: float,
    results: Connection,
) -> None:
    """In its own process, as an engine would be: every ``tick_ms``, the orders due by then
    (``rate`` per second), in one Kafka transaction. Sends back ``(next offset, commit
    time, events)`` per transaction."""
    results.send(asyncio.run(_produce(bootstrap, topic, paced, rate, tick_ms)))
    results.close()


async def _produce(
    bootstrap: str, topic: str, paced: list[list[bytes]], rate: int, tick_ms: float
) -> list[tuple[int, float, int]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"bench-paced-{uuid.uuid4().hex}"
    )
    await producer.start()
    commits: list[tuple[int, float, int]] = []
    try:
        started = time.monotonic()
        sent = 0
        while sent < len(paced):
            due = min(len(paced), int((time.monotonic() - started) * rate) + 1)
            if due > sent:
                async with producer.transaction():
                    futures = [
                        await producer.send(topic, value, partition=0)
                        for events in paced[sent:due]
                        for value in events
                    ]
                last = await futures[-1]
                commits.append((last.offset + 1, time.monotonic(), len(futures)))
                sent = due
            await asyncio.sleep(tick_ms / 1000)
    finally:
        await producer.stop()
    return commits

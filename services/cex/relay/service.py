"""`cex serve relay`.

Standby until it holds the publisher lock (two relays at once: one publishes, the other
waits, so a market's commands are never reordered); then fences older producers,
reconciles with what Kafka already has, and publishes batches: one Kafka transaction per
batch, then the rows are marked published. A batch is read in (market, command number)
order; the trading API's `NOTIFY cex_outbox` wakes the relay, a short poll covers a
missed notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram

from cex.infra import kafka, outbox, registry
from cex.infra.service import WorkerContext, metrics_port, run_worker
from cex.infra.settings import InfraSettings

log = logging.getLogger(__name__)

PUBLISHED = Counter("cex_relay_published_total", "Commands published to Kafka", ["market"])
BATCH = Histogram(
    "cex_relay_batch_size", "Commands per Kafka transaction", buckets=(1, 10, 100, 1000, 5000)
)
LATENCY = Histogram("cex_relay_batch_seconds", "Publish + mark time of one batch")
LEADER = Gauge("cex_relay_leader", "1 while this relay holds the publisher lock")
OLDEST = Gauge(
    "cex_relay_oldest_unpublished_seconds",
    "Age of the oldest outbox row in the batch being published (0 when the outbox is empty)",
)

BATCH_LIMIT = 5000
POLL_S = 0.05


async def run_relay(ctx: WorkerContext, settings: InfraSettings) -> None:
    lock_conn = await asyncpg.connect(settings.postgres_dsn)
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        ctx.readiness.set_not_ready("standby: another relay holds the publisher lock")
        while not ctx.stopping.is_set():
            if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", outbox.PUBLISHER_LOCK):
                break
            await _sleep_or_stop(ctx, 1.0)
        else:
            return
        LEADER.set(1)
        log.info("relay holds the publisher lock")
        await _publish_forever(ctx, settings, pool, lock_conn)
    finally:
        LEADER.set(0)
        await pool.close()
        await lock_conn.close()


async def _publish_forever(
    ctx: WorkerContext,
    settings: InfraSettings,
    pool: asyncpg.Pool,
    lock_conn: asyncpg.Connection,
) -> None:
    wake = asyncio.Event()
    await lock_conn.add_listener("cex_outbox", lambda *_: wake.set())
    producer = kafka.producer(
        settings, transactional_id=outbox.publisher_transactional_id(settings.orders_topic)
    )
    await producer.start()  # initialises the transactional id: older producers are fenced
    consumer = kafka.consumer(settings)
    await consumer.start()
    try:
        partitions = await _partitions(pool)
        async with pool.acquire() as conn:
            last = await outbox.reconcile(conn, consumer, settings.orders_topic, partitions)
        log.info("relay reconciled with Kafka", extra={"last_published": last})
        ctx.readiness.set_ready()
        while not ctx.stopping.is_set():
            rows = await pool.fetch(
                "SELECT market, command_seq, payload,"
                " extract(epoch FROM now() - created_at)::float8 AS age_s"
                " FROM outbox WHERE NOT published ORDER BY market, command_seq LIMIT $1",
                BATCH_LIMIT,
            )
            OLDEST.set(max((r["age_s"] for r in rows), default=0.0))
            if not rows:
                wake.clear()
                await _wait(wake, POLL_S)
                continue
            if any(r["market"] not in partitions for r in rows):
                partitions = await _partitions(pool)
            started = time.perf_counter()
            await _publish(producer, settings.orders_topic, partitions, rows)
            await pool.execute(
                "UPDATE outbox o SET published = true FROM unnest($1::text[], $2::bigint[])"
                " p(market, seq) WHERE o.market = p.market AND o.command_seq = p.seq",
                [r["market"] for r in rows],
                [r["command_seq"] for r in rows],
            )
            LATENCY.observe(time.perf_counter() - started)
            BATCH.observe(len(rows))
    finally:
        await consumer.stop()
        await producer.stop()


async def _publish(
    producer: AIOKafkaProducer,
    topic: str,
    partitions: dict[str, int],
    rows: list[asyncpg.Record],
) -> None:
    by_market: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_market.setdefault(row["market"], []).append(row)
    async with producer.transaction():
        futures = []
        for market, market_rows in by_market.items():
            records = [
                (
                    market.encode(),
                    bytes(r["payload"]),
                    [(outbox.COMMAND_SEQ_HEADER, str(r["command_seq"]).encode())],
                )
                for r in market_rows
            ]
            futures += await kafka.send_records(producer, topic, partitions[market], records)
            PUBLISHED.labels(market).inc(len(market_rows))
        await asyncio.gather(*futures)


async def _partitions(pool: asyncpg.Pool) -> dict[str, int]:
    return {name: m.partition for name, m in (await registry.load_markets(pool)).items()}


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def _sleep_or_stop(ctx: WorkerContext, seconds: float) -> None:
    await _wait(ctx.stopping, seconds)


def serve(market: str | None = None) -> None:
    del market  # one relay serves every market
    settings = InfraSettings()

    async def main(ctx: WorkerContext) -> None:
        await run_relay(ctx, settings)

    run_worker("relay", main, port=metrics_port(default=18101))

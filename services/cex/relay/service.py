"""`cex serve relay`.

Standby until it holds the publisher lock (two relays at once: one publishes, the other
waits, so a market's commands are never reordered); then fences older producers,
reconciles with what Kafka already has, and publishes batches: one Kafka transaction per
batch, then the rows are marked published. Neither the read of the next batch nor the
mark is on the path of a batch: the next batch is read while this one's transaction
commits (once its records are acknowledged; it starts after them), and the mark runs while
the next batch is sent (the publisher remembers what it sent, so a row sent but not yet
marked is never sent again); a crash before the mark is what reconciling covers anyway.
Every market with waiting commands gets an equal share of a batch, in command order within
each market (`cex.infra.outbox.next_batch`), so one market's backlog never holds back
another's commands. The trading API's
`NOTIFY cex_outbox` wakes the relay, a short poll covers a missed notification. Meanwhile
published rows older than `CEX_OUTBOX_RETENTION_S` are deleted in bounded rounds.

Settings (environment, besides `cex.infra.settings`):

=================================  ================================================
``CEX_RELAY_BATCH_LIMIT``          commands per Kafka transaction at most (5000)
``CEX_OUTBOX_RETENTION_S``         how long published outbox rows are kept (3600 s;
                                   Kafka keeps every command, the rows only help
                                   to debug)
``CEX_OUTBOX_PRUNE_INTERVAL_S``    how often old published rows are deleted (60 s)
``CEX_RELAY_TXN_RETRY_MS``         how soon a Kafka transaction begun while the
                                   previous one's commit markers are still being
                                   written is retried (2 ms; aiokafka's own 20 ms
                                   was paid by almost every batch under load)
=================================  ================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cex.infra import kafka, outbox, registry
from cex.infra.runtime import WorkerContext, metrics_port, run_worker
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

PRUNED = Counter("cex_relay_outbox_pruned_total", "Published outbox rows deleted after retention")

POLL_S = 0.05


class RelaySettings(InfraSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    relay_batch_limit: int = Field(default=5000, ge=1)
    outbox_retention_s: float = Field(default=3600.0, ge=0)
    outbox_prune_interval_s: float = Field(default=60.0, gt=0)
    relay_txn_retry_ms: float = Field(default=2.0, ge=0)


async def run_relay(ctx: WorkerContext, settings: RelaySettings) -> None:
    lock_conn = await asyncpg.connect(settings.postgres_dsn)
    # The pool's connections read, mark and delete outbox rows, never money: their commits
    # need not wait for the WAL flush (`synchronous_commit = off`). A mark lost in a crash
    # of Postgres is what reconciling with Kafka redoes (the relay's and the lifecycle
    # worker's, before it expires an unpublished order); every later durable commit
    # flushes it anyway. It spares the trading API's and settlement's commits a flush per
    # batch in the queue. The connections change no session state either: a released
    # one skips asyncpg's reset query, a round trip after every read and mark.
    pool = await asyncpg.create_pool(
        settings.postgres_dsn, min_size=1, max_size=3, reset=_keep_session,
        server_settings={"synchronous_commit": "off"},
    )  # fmt: skip
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
    settings: RelaySettings,
    pool: asyncpg.Pool,
    lock_conn: asyncpg.Connection,
) -> None:
    wake = asyncio.Event()
    await lock_conn.add_listener(outbox.OUTBOX_CHANNEL, lambda *_: wake.set())
    producer = kafka.producer(
        settings, transactional_id=outbox.publisher_transactional_id(settings.orders_topic)
    )
    await producer.start()  # initialises the transactional id: older producers are fenced
    pruning: asyncio.Task[None] | None = None
    try:
        publisher = Publisher(
            pool, producer, settings.orders_topic, await _partitions(pool), wake=wake
        )
        # The consumer only reconciles: left assigned, it would fetch every command the
        # relay publishes, for as long as it runs.
        consumer = kafka.consumer(settings)
        await consumer.start()
        try:
            async with pool.acquire() as conn:
                last = await outbox.reconcile(
                    conn, consumer, settings.orders_topic, publisher.partitions
                )
        finally:
            await consumer.stop()
        log.info("relay reconciled with Kafka", extra={"last_published": last})
        pruning = asyncio.create_task(_prune_forever(ctx, settings, pool))
        ctx.readiness.set_ready()
        try:
            while not ctx.stopping.is_set():
                if not await publisher.publish_batch(settings.relay_batch_limit):
                    await _wait(wake, POLL_S)
        finally:
            try:
                await publisher.close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The next holder of the lock marks them when it reconciles with Kafka.
                log.warning("marking the last published rows failed: %s", exc)
    finally:
        if pruning is not None:
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
        await producer.stop()


@dataclass
class Publisher:
    """Publishes the outbox's next batch in one Kafka transaction, then marks it. Only
    while holding `outbox.PUBLISHER_LOCK`, with the publisher's transactional producer."""

    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    topic: str
    partitions: dict[str, int]  # market → partition, refreshed when a new market appears
    #: market → the last command number this publisher sent (its row may be unmarked yet)
    sent: dict[str, int] = field(default_factory=dict)
    #: Set by the outbox's notification; cleared just before each read, so a notification
    #: sent during a read is never lost (the caller waits for it when a batch is empty).
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _marking: asyncio.Task[None] | None = field(default=None, repr=False)
    #: The next batch, read while the previous one's transaction commits.
    _reading: asyncio.Task[list[asyncpg.Record]] | None = field(default=None, repr=False)

    async def publish_batch(self, limit: int) -> list[asyncpg.Record]:
        """Publish up to about `limit` waiting commands, shared fairly by the markets;
        returns the rows published (none when nothing waits). Their rows are marked in
        the background: `flush` waits for it."""
        reading, self._reading = self._reading, None
        rows = await (reading or self._read(limit, self.sent))
        OLDEST.set(max((r["age_s"] for r in rows), default=0.0))
        if not rows:
            return rows
        if any(r["market"] not in self.partitions for r in rows):
            self.partitions = await _partitions(self.pool)
        ahead = self.sent | {r["market"]: r["command_seq"] for r in rows}  # the last of each

        def read_next() -> None:
            self._reading = asyncio.create_task(self._read(limit, ahead))

        started = time.perf_counter()
        try:
            await _publish(self.producer, self.topic, self.partitions, rows, committing=read_next)
        except BaseException:
            await self._stop_reading()
            raise
        self.sent = ahead
        LATENCY.observe(time.perf_counter() - started)
        BATCH.observe(len(rows))
        await self.flush()  # the previous batch's mark, done meanwhile; one at a time
        self._marking = asyncio.create_task(outbox.mark_published(self.pool, rows))
        return rows

    async def _read(self, limit: int, sent: dict[str, int]) -> list[asyncpg.Record]:
        self.wake.clear()
        return await outbox.next_batch(self.pool, limit, sent)

    async def _stop_reading(self) -> None:
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def flush(self) -> None:
        """Wait until every published row is marked (a failed mark raises here)."""
        marking, self._marking = self._marking, None
        if marking is not None:
            await marking

    async def close(self) -> None:
        """Drop the batch read ahead (it is read again by whoever publishes next) and wait
        for the marks."""
        await self._stop_reading()
        await self.flush()


async def _prune_forever(ctx: WorkerContext, settings: RelaySettings, pool: asyncpg.Pool) -> None:
    """Delete published rows past retention every interval. A failure (the database away)
    is logged and tried again at the next interval: publishing does not depend on it."""
    while not ctx.stopping.is_set():
        try:
            PRUNED.inc(await outbox.prune_published(pool, settings.outbox_retention_s))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("pruning the outbox failed: %s", exc)
        await _sleep_or_stop(ctx, settings.outbox_prune_interval_s)


async def _publish(
    producer: AIOKafkaProducer,
    topic: str,
    partitions: dict[str, int],
    rows: list[asyncpg.Record],
    *,
    committing: Callable[[], None] = lambda: None,
) -> None:
    """`rows` in one transaction; `committing` is called once every record is
    acknowledged, as the commit begins."""
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
        committing()


async def _keep_session(_: asyncpg.Connection) -> None:
    return None


async def _partitions(pool: asyncpg.Pool) -> dict[str, int]:
    return {name: m.partition for name, m in (await registry.load_markets(pool)).items()}


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def _sleep_or_stop(ctx: WorkerContext, seconds: float) -> None:
    await _wait(ctx.stopping, seconds)


def serve(market: str | None = None) -> None:
    del market  # one relay serves every market
    settings = RelaySettings()
    kafka.set_concurrent_transactions_backoff(settings.relay_txn_retry_ms)

    async def main(ctx: WorkerContext) -> None:
        await run_relay(ctx, settings)

    run_worker("relay", main, port=metrics_port(default=18101))

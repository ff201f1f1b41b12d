"""``cex serve settlement``: the ``executions`` topic → the database, batch by batch.

* Reads ``executions`` with ``isolation_level=read_committed``, each market's partition
  (every market of the registry, or ``--market`` only) by a consumer of its own, manually
  assigned. No consumer group: the position lives in ``settlement_progress.next_offset``,
  written in the same transaction as the effects, and a consumer seeks there on start.
* One consumer per partition, not one for all: aiokafka's fetcher sends one fetch per
  broker at a time, and once a partition's prefetched records are older than its fixed
  ``prefetch_backoff`` (0.1 s) it fetches the *other* partitions alone; the broker parks
  that fetch up to ``CEX_SETTLEMENT_FETCH_WAIT_MS`` when they are idle, and the busy
  partition's next fetch waits behind it. With one idle market beside a busy one, Kafka
  commit → settled was p50 447 / p99 888 ms at 2,000 orders/s (one partition alone: 13 /
  384); a consumer of its own per partition has nothing to wait behind, so the fetch wait
  stays long (500 ms: idle partitions cost ~2 fetches a second). A parked
  ``read_committed`` fetch is answered as soon as a transaction commits (measured).
* Three concurrent parts, one transaction at a time: the partitions' readers fetch and
  decode into one buffer (at most twice ``CEX_SETTLEMENT_BATCH_MAX`` events; a full buffer
  stops the readers, whose records then wait in their own consumer); the applier takes
  what is waiting (up to ``CEX_SETTLEMENT_BATCH_MAX`` events) as one batch, applied in one
  transaction by :class:`cex.settlement.batch.Settler` — a batch is what is already
  waiting, never more; the publisher sends each committed batch's user updates to Redis,
  in commit order, while the next batch is applied. Decoding and publishing thus overlap
  the database's work.
* Transient database errors (``cex.infra.transactions.is_retryable``: deadlock,
  serialization failure, lost connection) retry the batch; anything else stops the service
  with an error — a gap in seq or an event contradicting the database needs a human, never
  a guess. Events read but not applied when the process stops are read again on start.
* The registry is re-read every ``CEX_SETTLEMENT_REGISTRY_REFRESH_S`` seconds; a new
  market gets its partition's reader.

Configuration: the shared ``CEX_*`` settings (``InfraSettings``) plus ``CEX_SETTLEMENT_*``
(:class:`SettlementSettings`). Metrics, ``/healthz`` and ``/readyz`` through the shared
worker runtime (``cex.infra.runtime``) on ``CEX_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.exceptions import RedisError

from cex.core.events import TradeExecuted, decode_event
from cex.infra import kafka
from cex.infra import redis as keys
from cex.infra.runtime import WorkerContext, metrics_port, run_worker
from cex.infra.settings import InfraSettings
from cex.infra.transactions import is_retryable, retrying
from cex.settlement.batch import (
    COPY_FROM_ENTRIES,
    BatchResult,
    Delivered,
    MarketInfo,
    Settler,
    load_fee_user,
)
from cex.settlement.batch import load_markets as load_registry
from cex.settlement.errors import RetryableSettlementError

log = logging.getLogger("cex.settlement")

EVENTS = Counter("cex_settlement_events_total", "Events applied", ["market"])
SKIPPED = Counter("cex_settlement_redelivered_total", "Events skipped as already applied")
TRADES = Counter("cex_settlement_trades_total", "Trades settled", ["market"])
BATCHES = Counter("cex_settlement_batches_total", "Batches committed")
RETRIES = Counter("cex_settlement_retries_total", "Batches retried after a transient error")
BATCH_SECONDS = Histogram(
    "cex_settlement_batch_seconds",
    "Time to apply one batch (one transaction)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAST_SEQ = Gauge("cex_settlement_last_seq", "Last settled event seq", ["market"])
LAG = Gauge("cex_settlement_lag_records", "Records in the partition not settled yet", ["market"])
PUBLISH_ERRORS = Counter(
    "cex_settlement_publish_errors_total", "Batches whose user updates could not be published"
)


#: Publishes ``ARGV`` as (channel, message) pairs, in order: one script call per chunk,
#: not one PUBLISH each (a batch has thousands, and the client's per-command reply parsing
#: was a third of settlement's CPU).
_PUBLISH_LUA = """
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""
#: How long a reader's getmany waits for records before it asks again.
_READ_WAIT_MS = 10_000
#: Records decoded at a time: a few ms of the event loop, so the applier, whose database
#: round trips are the critical path, resumes soon after each answer.
_READ_MAX = 1000
_FETCH_BYTES = 1 << 20
#: Arguments per script call: 1,000 messages keep Redis's pause short, and encoding them
#: (a few ms) is the longest the publisher holds the event loop from the applier.
_PUBLISH_CHUNK = 2000


class SettlementSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_SETTLEMENT_", frozen=True, extra="ignore")

    batch_max: int = 5000  # events per batch (per transaction)
    poll_ms: int = 100  # longest wait for a batch
    fetch_wait_ms: int = 500  # longest time the broker parks a fetch with nothing to return
    registry_refresh_s: float = 10.0
    metrics_port: int = 9320
    max_retries: int = 10
    # from this many ledger entries on, a batch is written by COPY (cex.settlement.batch)
    copy_from_entries: int = COPY_FROM_ENTRIES


@dataclass(frozen=True)
class SettledBatch:
    """One applied batch, for an observer (the benchmark): ``positions`` is each
    partition's next offset after it; times are ``time.monotonic()`` (one clock for every
    process of the machine): its transaction committed, its user updates published."""

    events: int
    seconds: float  # applying it: one transaction, retries included
    positions: dict[int, int]
    committed_at: float
    published_at: float


@dataclass
class _Feed:
    """One market's partition: its consumer and the task reading it into the buffer."""

    market: MarketInfo
    consumer: AIOKafkaConsumer
    task: asyncio.Task[None]


#: A committed batch waiting for its publication: the batch, its result, seconds applying
#: it, when it committed (``time.monotonic``).
_Committed = tuple[list[Delivered], BatchResult, float, float]


class SettlementWorker:
    """The read → apply → publish loop; usable in-process (tests, bench) through :meth:`run`."""

    def __init__(
        self,
        infra: InfraSettings | None = None,
        settings: SettlementSettings | None = None,
        market: str | None = None,
        observe_batch: Callable[[SettledBatch], None] | None = None,
    ) -> None:
        """``observe_batch`` gets each batch once published (a benchmark's own
        measurement; the histograms are the service's)."""
        self.observe_batch = observe_batch
        self.infra = infra or InfraSettings()
        self.settings = settings or SettlementSettings()
        self.only_market = market
        self.topic = self.infra.executions_topic
        self.conn: asyncpg.Connection | None = None
        self.redis: aioredis.Redis | None = None
        self.settler: Settler | None = None
        self.feeds: dict[int, _Feed] = {}  # partition → its reader
        self.last_result = BatchResult()
        # Read and decoded, not applied yet (every partition's, each in offset order).
        self._waiting: collections.deque[Delivered] = collections.deque()
        self._arrived = asyncio.Event()  # something was added to _waiting
        self._room = asyncio.Event()  # _waiting is below its bound: readers may read
        self._room.set()
        self._committed: asyncio.Queue[_Committed | None] = asyncio.Queue(maxsize=8)
        self._publisher: asyncio.Task[None] | None = None
        # For the benchmark: seconds per phase, events settled (per-batch latency is the
        # cex_settlement_batch_seconds histogram).
        self.phase_seconds: dict[str, float] = {}
        self.events_seen = 0
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None

    async def run(self, ctx: WorkerContext) -> None:
        self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        self.redis = keys.client(self.infra)
        self._publish_script = self.redis.register_script(_PUBLISH_LUA)
        publisher: asyncio.Task[None] | None = None
        self._publisher = None
        try:
            self.settler = Settler(
                {}, await load_fee_user(self.conn), self.settings.copy_from_entries
            )
            await self._refresh_registry()
            publisher = self._publisher = asyncio.create_task(self._publish_committed())
            ctx.readiness.set_ready()
            await self._settle(ctx, publisher)
        finally:
            ctx.readiness.set_not_ready("stopped")
            for feed in self.feeds.values():
                feed.task.cancel()
            for feed in self.feeds.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await feed.task
                await feed.consumer.stop()
            if publisher is not None:
                if not publisher.done():
                    # What committed is published before the process goes.
                    await self._committed.put(None)
                await publisher
            await self.conn.close()
            await self.redis.aclose()

    async def _settle(self, ctx: WorkerContext, publisher: asyncio.Task[None]) -> None:
        """The applier: what is waiting, up to ``batch_max`` events, as one batch."""
        refreshed = time.monotonic()
        high_water = 2 * self.settings.batch_max
        while not ctx.stopping.is_set():
            for task in (publisher, *(feed.task for feed in self.feeds.values())):
                if task.done():
                    task.result()  # a reader or the publisher failed: stop with its error
                    raise RuntimeError("a settlement task ended")  # pragma: no cover
            if time.monotonic() - refreshed > self.settings.registry_refresh_s:
                await self._refresh_registry()
                refreshed = time.monotonic()
            if not self._waiting:
                self._arrived.clear()
                waited = time.perf_counter()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), self.settings.poll_ms / 1000)
                if self.first_batch_at is not None:
                    self._add_phase("waiting_for_events", time.perf_counter() - waited)
                continue
            take = min(len(self._waiting), self.settings.batch_max)
            batch = [self._waiting.popleft() for _ in range(take)]
            if len(self._waiting) < high_water:
                self._room.set()
            await self._apply(batch)
            self.events_seen += len(batch)
            self.last_batch_at = time.perf_counter()

    async def _read(self, market: MarketInfo, consumer: AIOKafkaConsumer) -> None:
        """One partition's reader: fetch, decode, add to the buffer while it has room."""
        high_water = 2 * self.settings.batch_max
        tp = TopicPartition(self.topic, market.partition)
        lag = LAG.labels(market.name)
        while True:
            await self._room.wait()
            # (A long wait: records wake it at once, and an idle market's reader polling
            # every poll_ms cost ~0.2 % of a core each.)
            records = await consumer.getmany(tp, timeout_ms=_READ_WAIT_MS, max_records=_READ_MAX)
            rs = records.get(tp)
            if not rs:
                continue
            decoding = time.perf_counter()
            if self.first_batch_at is None:
                self.first_batch_at = decoding
            partition = tp.partition
            self._waiting.extend(
                [
                    Delivered(partition, r.offset, decode_event(r.value), r.value)
                    for r in rs
                    if r.value
                ]
            )
            self._arrived.set()
            if len(self._waiting) >= high_water:
                self._room.clear()
            self._add_phase("kafka_decode (overlapped)", time.perf_counter() - decoding)
            high = consumer.highwater(tp)
            if high is not None:
                lag.set(max(0, high - await consumer.position(tp)))

    async def _refresh_registry(self) -> None:
        """The registry's markets; a reader for each new one, from its stored position.
        (Called by the applier between batches: the stored positions are current.)"""
        assert self.conn is not None
        assert self.settler is not None
        markets = await load_registry(self.conn)
        if self.only_market is not None:
            markets = {s: m for s, m in markets.items() if m.name == self.only_market}
            if not markets:
                raise RuntimeError(f"market {self.only_market!r} is not in the registry")
        self.settler.markets = markets
        new = [m for m in markets.values() if m.partition not in self.feeds]
        if not new:
            return
        counts = await kafka.partition_counts(self.infra.kafka_bootstrap, [self.topic])
        progress = await self.settler.progress(self.conn)
        for market in sorted(new, key=lambda m: m.partition):
            if market.partition >= counts.get(self.topic, 0):
                log.warning(
                    "partition %d of market %s does not exist yet", market.partition, market.name
                )
                continue
            await self._start_feed(market, progress.get(market.name))

    async def _start_feed(self, market: MarketInfo, stored: tuple[int, int] | None) -> None:
        # A consumer per market holds up to one fetch per market: 1 MiB (~10,000 events,
        # two batches) each, not the shared default's 8, so many markets behind stay small.
        consumer = kafka.consumer(
            self.infra,
            fetch_max_wait_ms=self.settings.fetch_wait_ms,
            max_partition_fetch_bytes=_FETCH_BYTES,
            fetch_max_bytes=_FETCH_BYTES,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, market.partition)
            consumer.assign([tp])
            # Everything before the stored position has been applied and committed: the
            # database is the truth.
            if stored is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, stored[1])
        except BaseException:
            await consumer.stop()
            raise
        task = asyncio.create_task(
            self._read(market, consumer), name=f"settlement-read-{market.name}"
        )
        self.feeds[market.partition] = _Feed(market, consumer, task)
        log.info("settling market %s (partition %d)", market.name, market.partition)

    async def _apply(self, batch: list[Delivered]) -> None:
        started = time.perf_counter()
        try:
            # Settling is idempotent (progress in the same transaction): a batch whose
            # commit is unknown after a lost connection is simply applied again.
            result: BatchResult = await retrying(
                attempts=self.settings.max_retries + 1,
                idempotent=True,
                initial_wait=0.05,
                on_retry=lambda _: RETRIES.inc(),
            )(self._apply_once, batch)
        except Exception as exc:
            if is_retryable(exc, idempotent=True):
                raise RetryableSettlementError(
                    f"batch failed {self.settings.max_retries + 1} times"
                ) from exc
            raise
        committed_at = time.monotonic()
        elapsed = time.perf_counter() - started
        self.last_result = result
        for phase, seconds in result.timings.items():
            self._add_phase(phase, seconds)
        self._add_phase("commit_and_overhead", elapsed - sum(result.timings.values()))
        BATCH_SECONDS.observe(elapsed)
        BATCHES.inc()
        SKIPPED.inc(result.skipped)
        per_market: dict[str, int] = {}
        trades: dict[str, int] = {}
        for d in batch:
            per_market[d.event.market] = per_market.get(d.event.market, 0) + 1
            if isinstance(d.event, TradeExecuted):
                trades[d.event.market] = trades.get(d.event.market, 0) + 1
        for symbol, n in per_market.items():
            EVENTS.labels(symbol).inc(n)
        for symbol, n in trades.items():
            TRADES.labels(symbol).inc(n)
        for name, seq in result.last_seq.items():
            LAST_SEQ.labels(name).set(seq)
        await self._queue_publication((batch, result, elapsed, committed_at))

    async def _queue_publication(self, committed: _Committed) -> None:
        """Hand a committed batch to the publisher (waiting while it is 8 batches behind:
        Redis slower than the database holds settlement back, never its memory)."""
        put = asyncio.ensure_future(self._committed.put(committed))
        if not put.done() and self._publisher is not None:
            await asyncio.wait({put, self._publisher}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            assert self._publisher is not None
            self._publisher.result()  # the publisher failed: stop with its error
        await put

    async def _apply_once(self, batch: list[Delivered]) -> BatchResult:
        assert self.settler is not None
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        return await self.settler.apply(self.conn, batch)

    async def _publish_committed(self) -> None:
        """The publisher: each committed batch's user updates, in commit order, until
        ``None``."""
        while (committed := await self._committed.get()) is not None:
            batch, result, elapsed, committed_at = committed
            started = time.perf_counter()
            await self._publish(batch, result)
            self._add_phase("publish (overlapped)", time.perf_counter() - started)
            if self.observe_batch is not None:
                # (A partition's events are in offset order: the last one wins.)
                positions = {d.partition: d.offset + 1 for d in batch}
                self.observe_batch(
                    SettledBatch(len(batch), elapsed, positions, committed_at, time.monotonic())
                )

    async def _publish(self, batch: list[Delivered], result: BatchResult) -> None:
        """Each user's settled changes, now that they are committed (DESIGN.md §6): the
        events on ``{prefix}:account:{user}`` (RESULT/FULL responses), then a
        :class:`~cex.infra.redis.UserUpdate` with the same events, the user's orders and
        balances as the transaction left them on ``{prefix}:userdata:{user}`` (user data
        streams). Redis being down never stops settlement: the database is the truth,
        readers resync from it."""
        if self.redis is None:
            return
        # Each event as read from Kafka: its own encoding, not encoded again, and each
        # user's list encoded once for both channels.
        users = keys.encoded_by_user(
            [d.event for d in batch], [d.raw or keys.encode(d.event) for d in batch]
        )
        if not users:
            return
        balances: dict[int, list[keys.BalanceState]] = {}
        for (user_id, asset), (available, locked) in result.balances.items():
            balances.setdefault(user_id, []).append(keys.BalanceState(asset, available, locked))
        orders: dict[int, list[keys.OrderState]] = {}
        for order_id, (user_id, status, filled, quote) in result.orders.items():
            orders.setdefault(user_id, []).append(keys.OrderState(order_id, status, filled, quote))
        now_ms = time.time_ns() // 1_000_000
        prefix = self.infra.redis_prefix
        messages: list[str | bytes] = []
        try:
            for user_id, encoded in users.items():
                events = keys.encode_events(encoded)
                messages += (
                    keys.account_channel(prefix, user_id),
                    events,
                    keys.userdata_channel(prefix, user_id),
                    keys.encode_user_update(
                        now_ms, events, orders.get(user_id, []), balances.get(user_id, [])
                    ),
                )
                if len(messages) >= _PUBLISH_CHUNK:
                    await self._publish_script(args=messages)
                    messages = []
            if messages:
                await self._publish_script(args=messages)
        except (RedisError, OSError) as exc:
            PUBLISH_ERRORS.inc()
            log.warning("publishing settled user updates failed: %s", exc)

    def _add_phase(self, phase: str, seconds: float) -> None:
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds


def tune_gc() -> None:
    """The collector's settings of a settlement process (``cex serve settlement`` and the
    benchmark's worker). A batch allocates some 100,000 short-lived containers (events,
    postings, rows); at the default gen0 threshold (700) the collector ran ~100 times per
    batch and took a quarter of the process's CPU (1.09 s of 4.0 s for 50,000 trades,
    measured with ``gc.callbacks``). Settlement makes almost no reference cycles, so a gen0
    of 50,000 frees the same memory later, not less; start-up objects are frozen out of
    the full collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(market: str | None) -> None:
    """Entry point of ``cex serve settlement``: probes and metrics on ``CEX_METRICS_PORT``
    (else ``CEX_SETTLEMENT_METRICS_PORT``), JSON logs, graceful stop on SIGTERM."""
    settings = SettlementSettings()
    worker = SettlementWorker(settings=settings, market=market)
    tune_gc()
    with contextlib.suppress(ImportError):  # uvicorn[standard] brings it
        import uvloop

        # A faster event loop: settlement spends its own time in Python between round trips.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    run_worker("settlement", worker.run, port=metrics_port(default=settings.metrics_port))

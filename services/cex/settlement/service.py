"""``cex serve settlement``: the ``executions`` topic → the database, batch by batch.

* Reads ``executions`` with ``isolation_level=read_committed`` and *manual* assignment of
  the partition of every market in the registry (or of ``--market`` only). No consumer
  group: the position lives in ``settlement_progress.next_offset``, written in the same
  transaction as the effects, and the consumer seeks there on start.
* Each ``getmany`` result (up to ``CEX_SETTLEMENT_BATCH_MAX`` events) is one batch, applied
  in one transaction by :class:`cex.settlement.batch.Settler`: a batch is what is already
  waiting, never more. (A fetch the broker parks, at most ``CEX_SETTLEMENT_FETCH_WAIT_MS``,
  is answered as soon as a transaction commits: measured, read_committed included.)
  Transient database errors
  (``cex.infra.transactions.is_retryable``: deadlock, serialization failure, lost
  connection) retry the batch; anything else stops the service with an error — a gap in
  seq or an event contradicting the database needs a human, never a guess.
* The registry is re-read every ``CEX_SETTLEMENT_REGISTRY_REFRESH_S`` seconds; new markets
  get their partition assigned.

Configuration: the shared ``CEX_*`` settings (``InfraSettings``) plus ``CEX_SETTLEMENT_*``
(:class:`SettlementSettings`). Metrics, ``/healthz`` and ``/readyz`` through the shared
worker runtime (``cex.infra.runtime``) on ``CEX_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
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
from cex.settlement.batch import BatchResult, Delivered, MarketInfo, Settler, load_fee_user
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


#: Publishes ``ARGV`` as (channel, message) pairs, in order.
_PUBLISH_LUA = """
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""
_PUBLISH_CHUNK = 2000  # arguments per script call: 1,000 messages keep Redis's pause short


class SettlementSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_SETTLEMENT_", frozen=True, extra="ignore")

    batch_max: int = 5000  # events per batch (per transaction)
    poll_ms: int = 100  # longest wait for a batch
    fetch_wait_ms: int = 500  # longest time the broker parks a fetch with nothing to return
    registry_refresh_s: float = 10.0
    metrics_port: int = 9320
    max_retries: int = 10


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


class SettlementWorker:
    """The consume → apply loop; usable in-process (tests, bench) through :meth:`run`."""

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
        self.consumer: AIOKafkaConsumer | None = None
        self.settler: Settler | None = None
        self.assigned: dict[int, MarketInfo] = {}  # partition → market
        self.last_result = BatchResult()
        # For the benchmark: seconds per phase, events read (per-batch latency is the
        # cex_settlement_batch_seconds histogram).
        self.phase_seconds: dict[str, float] = {}
        self.events_seen = 0
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None

    async def run(self, ctx: WorkerContext) -> None:
        self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        self.consumer = kafka.consumer(self.infra, fetch_max_wait_ms=self.settings.fetch_wait_ms)
        await self.consumer.start()
        self.redis = keys.client(self.infra)
        self._publish_script = self.redis.register_script(_PUBLISH_LUA)
        try:
            self.settler = Settler({}, await load_fee_user(self.conn))
            await self._refresh_registry()
            ctx.readiness.set_ready()
            refreshed = time.monotonic()
            while not ctx.stopping.is_set():
                if time.monotonic() - refreshed > self.settings.registry_refresh_s:
                    await self._refresh_registry()
                    refreshed = time.monotonic()
                if not self.assigned:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ctx.stopping.wait(), self.settings.poll_ms / 1000)
                    continue
                fetched = time.perf_counter()
                records = await self.consumer.getmany(
                    timeout_ms=self.settings.poll_ms, max_records=self.settings.batch_max
                )
                batch = [
                    Delivered(tp.partition, r.offset, decode_event(r.value))
                    for tp, rs in records.items()
                    for r in rs
                    if r.value is not None
                ]
                if batch:
                    if self.first_batch_at is None:
                        self.first_batch_at = fetched
                    self._add_phase("kafka_fetch_decode", time.perf_counter() - fetched)
                    await self._apply(batch)
                    self.events_seen += len(batch)
                    self.last_batch_at = time.perf_counter()
                    await self._update_lag()
        finally:
            ctx.readiness.set_not_ready("stopped")
            await self.consumer.stop()
            await self.conn.close()
            await self.redis.aclose()

    async def _refresh_registry(self) -> None:
        assert self.conn is not None
        assert self.consumer is not None
        assert self.settler is not None
        markets = await load_registry(self.conn)
        if self.only_market is not None:
            markets = {s: m for s, m in markets.items() if m.name == self.only_market}
            if not markets:
                raise RuntimeError(f"market {self.only_market!r} is not in the registry")
        existing = self.consumer.partitions_for_topic(self.topic) or set()
        if any(m.partition not in existing for m in markets.values()):
            # The consumer's metadata lags a topic it does not read yet, or new partitions:
            # ask the cluster (the consumer refreshes its own once they are assigned).
            counts = await kafka.partition_counts(self.infra.kafka_bootstrap, [self.topic])
            existing = set(range(counts.get(self.topic, 0)))
        wanted = {m.partition: m for m in markets.values() if m.partition in existing}
        for m in markets.values():
            if m.partition not in existing:
                log.warning("partition %d of market %s does not exist yet", m.partition, m.name)
        self.settler.markets = markets
        if wanted.keys() == self.assigned.keys():
            return
        # (Re)assign and seek every partition to its stored position: everything read
        # so far has been applied and committed, so the database is the truth.
        progress = await self.settler.progress(self.conn)
        partitions = [TopicPartition(self.topic, p) for p in sorted(wanted)]
        self.consumer.assign(partitions)
        for tp in partitions:
            stored = progress.get(wanted[tp.partition].name)
            if stored is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored[1])
        self.assigned = wanted
        log.info("settling markets %s", sorted(m.name for m in wanted.values()))

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
        await self._publish(batch, result)
        if self.observe_batch is not None:
            positions: dict[int, int] = {}
            for d in batch:
                positions[d.partition] = max(positions.get(d.partition, 0), d.offset + 1)
            self.observe_batch(
                SettledBatch(len(batch), elapsed, positions, committed_at, time.monotonic())
            )

    async def _apply_once(self, batch: list[Delivered]) -> BatchResult:
        assert self.settler is not None
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        return await self.settler.apply(self.conn, batch)

    async def _publish(self, batch: list[Delivered], result: BatchResult) -> None:
        """Each user's settled changes, now that they are committed (DESIGN.md §6): the
        events on ``{prefix}:account:{user}`` (RESULT/FULL responses), then a
        :class:`~cex.infra.redis.UserUpdate` with the same events, the user's orders and
        balances as the transaction left them on ``{prefix}:userdata:{user}`` (user data
        streams). Redis being down never stops settlement: the database is the truth,
        readers resync from it."""
        if self.redis is None:
            return
        users = keys.events_by_user([d.event for d in batch])
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
        for user_id, events in users.items():
            messages.append(keys.account_channel(prefix, user_id))
            messages.append(keys.encode_events(events))
            update = keys.UserUpdate(
                now_ms, events, orders.get(user_id, []), balances.get(user_id, [])
            )
            messages.append(keys.userdata_channel(prefix, user_id))
            messages.append(keys.encode_user_data(update))
        try:
            # One script call per chunk, not one PUBLISH each: a batch has thousands, and
            # the client's per-command reply parsing was a third of settlement's CPU.
            for start in range(0, len(messages), _PUBLISH_CHUNK):
                await self._publish_script(args=messages[start : start + _PUBLISH_CHUNK])
        except (RedisError, OSError) as exc:
            PUBLISH_ERRORS.inc()
            log.warning("publishing settled user updates failed: %s", exc)

    def _add_phase(self, phase: str, seconds: float) -> None:
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds

    async def _update_lag(self) -> None:
        assert self.consumer is not None
        for partition, market in self.assigned.items():
            tp = TopicPartition(self.topic, partition)
            high = self.consumer.highwater(tp)
            if high is not None:
                LAG.labels(market.name).set(max(0, high - await self.consumer.position(tp)))


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

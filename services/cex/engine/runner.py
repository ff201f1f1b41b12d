"""The engine's Kafka loop: exactly-once from ``orders`` to ``executions``, and recovery.

Live loop
---------
The engine owns one partition index ``P`` of both topics. It reads ``orders[P]`` by manual
assignment with ``read_committed``, and for each batch of commands (at most
``batch_max``, gathered for at most ``batch_linger_ms`` once the first arrived), in one
Kafka transaction of its transactional producer:

1. applies every command to the core, in offset order (a record that does not decode is
   answered by ``COMMAND_REJECTED``/``MALFORMED`` and the market goes on);
2. produces every event, in order, to ``executions[P]`` with key = the market's symbol;
3. adds the input position (last offset + 1) to the transaction for the engine's group
   (``send_offsets_to_transaction``);
4. commits.

With no input for ``engine_offset_refresh_s``, it commits the same input position again in
a transaction of its own (offsets only): the group never has a member, so Kafka would
otherwise drop its committed offset ``offsets.retention.minutes`` after the last commit,
and the next recovery would replay from the partition's start.

Only then does the batch go to Redis (book, pub/sub, sometimes a snapshot), in order, by
:class:`~cex.engine.publisher.RedisPublisher`. Any Kafka error (including being fenced by
a newer instance) ends the process: restarting and recovering is the one error path, so it
is the well-tested one.

Recovery (DESIGN §5)
--------------------
1. Start the transactional producer. ``init_transactions`` bumps the epoch of the
   market's ``transactional_id``: an older instance is fenced from here on, and its open
   transaction, if any, is aborted (or a commit it had already decided is completed)
   before this returns. From this point nobody else can move the committed offset.
2. Read the group's committed offset ``C`` on ``orders[P]``: every command below ``C``
   has its events committed in ``executions``; none at or above it has.
3. Load the snapshot (state at ``S``, next seq). It is only ever written after the
   transaction covering ``S`` committed, so ``S <= C``; a snapshot beyond ``C`` (a
   recreated topic) is discarded. No snapshot: start from an empty book at the partition's
   start.
4. Replay ``[S, C)`` through the core *without producing*: those events exist already.
   The core is deterministic, so the state reached is the one the previous instance had
   after committing ``C``.
5. Check (unless disabled) that the state's next seq is one past the last committed event
   in ``executions[P]`` — the outputs of the replay equal what is there — then rewrite the
   book key, report ready and go live from ``C``.

Why a kill -9 at any instant loses and duplicates nothing: the events of a batch and the
offset that marks its commands as done are committed atomically. A crash before the commit
leaves neither (the next instance aborts the transaction and reprocesses the same
commands into the same events); a crash after it leaves both (the next instance replays
them silently). Redis only ever holds states that are committed; a lost or stale snapshot
only means a longer replay.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from cex.core.errors import SchemaError, SnapshotError
from cex.core.events import BookDelta, Event, Side, decode_command, decode_event, encode
from cex.core.market import MarketConfig
from cex.core.matching import MatchingEngine
from cex.engine import metrics
from cex.engine.publisher import Committed, RedisPublisher, delete_snapshot, load_snapshot
from cex.engine.settings import EngineSettings, group_id, transactional_id
from cex.infra import kafka
from cex.infra.redis import EngineSnapshot
from cex.infra.runtime import WorkerContext
from cex.infra.settings import InfraSettings

log = logging.getLogger(__name__)


class RecoveryError(RuntimeError):
    """The stored state does not agree with Kafka; the engine refuses to go live (permanent:
    restarting gives the same answer until someone looks)."""


class SnapshotUnusable(RecoveryError):
    """The snapshot cannot be restored, or the state it leads to disagrees with Kafka. Only
    this error makes recovery fall back to a full replay: the snapshot is a shortcut, Kafka
    the truth."""


@dataclass(frozen=True)
class Recovered:
    engine: MatchingEngine
    next_offset: int
    book_seq: int
    replayed: int
    from_snapshot: bool


class EngineRunner:
    def __init__(
        self,
        config: MarketConfig,
        partition: int,
        infra: InfraSettings,
        settings: EngineSettings,
    ) -> None:
        self.config = config
        self.market = config.name
        self.partition = partition
        self.infra = infra
        self.settings = settings
        self.tp_in = TopicPartition(infra.orders_topic, partition)
        self.group_id = group_id(infra.orders_topic, self.market)
        self.transactional_id = transactional_id(infra.orders_topic, self.market)
        self.key = config.symbol.encode()
        self.engine: MatchingEngine | None = None
        self.next_offset = 0
        self.book_seq = 0

    # ------------------------------------------------------------------ entry point

    async def run(self, ctx: WorkerContext) -> None:
        producer = kafka.producer(self.infra, transactional_id=self.transactional_id)
        consumer = kafka.consumer(
            self.infra,
            group_id=self.group_id,
            max_poll_records=self.settings.engine_batch_max,
        )
        redis = aioredis.Redis.from_url(self.infra.redis_url)
        publisher: RedisPublisher | None = None
        try:
            ctx.readiness.set_not_ready("fencing older instances")
            await producer.start()  # init_transactions: fences any older instance
            await consumer.start()
            consumer.assign([self.tp_in])
            ctx.readiness.set_not_ready("recovering")
            started = time.monotonic()
            recovered = await self.recover(consumer, redis)
            metrics.RECOVERY_SECONDS.labels(self.market).set(time.monotonic() - started)
            self.engine = recovered.engine
            self.next_offset = recovered.next_offset
            self.book_seq = recovered.book_seq
            publisher = RedisPublisher(
                redis,
                self.infra.redis_prefix,
                self.market,
                self.config.symbol,
                book_seq=self.book_seq,
                bids=self.engine.depth(Side.BUY),
                asks=self.engine.depth(Side.SELL),
            )
            await publisher.write_book()
            publisher.start()
            log.info(
                "recovered, going live",
                extra={
                    "market": self.market,
                    "partition": self.partition,
                    "next_offset": self.next_offset,
                    "next_seq": self.engine.next_seq,
                    "replayed": recovered.replayed,
                    "from_snapshot": recovered.from_snapshot,
                    "recovery_s": round(time.monotonic() - started, 3),
                },
            )
            ctx.readiness.set_ready()
            await self.live(ctx, consumer, producer, publisher)
        finally:
            ctx.readiness.set_not_ready("stopped")
            if publisher is not None:
                await publisher.close()
            await consumer.stop()
            await producer.stop()
            await redis.aclose()

    # ------------------------------------------------------------------ recovery

    async def recover(self, consumer: AIOKafkaConsumer, redis: aioredis.Redis) -> Recovered:
        """Recover from the snapshot; if the state it leads to disagrees with Kafka, the
        snapshot is not trusted: recover again by a full replay (Kafka is the truth)."""
        try:
            return await self._recover(consumer, redis, use_snapshot=True)
        except SnapshotUnusable as exc:
            log.error("recovery from the snapshot failed, replaying everything: %s", exc)
            return await self._recover(consumer, redis, use_snapshot=False)

    async def _recover(
        self, consumer: AIOKafkaConsumer, redis: aioredis.Redis, *, use_snapshot: bool
    ) -> Recovered:
        tp = self.tp_in
        committed = await consumer.committed(tp)
        beginning = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        if committed is None:
            committed = beginning
        if committed > end:
            raise RecoveryError(
                f"committed offset {committed} of {tp} is beyond its end {end}: "
                "was the topic recreated?"
            )

        snap = await load_snapshot(redis, self.infra.redis_prefix, self.market)
        if not use_snapshot:
            snap = None
        if snap is not None and (
            snap.next_offset > committed
            or snap.partition != self.partition
            or snap.market != self.market
        ):
            log.warning(
                "discarding a snapshot that does not belong to this input",
                extra={"snapshot_offset": snap.next_offset, "committed": committed},
            )
            await delete_snapshot(redis, self.infra.redis_prefix, self.market)
            snap = None
        if snap is not None:
            try:
                engine = MatchingEngine.restore(snap.engine)
            except SnapshotError as exc:
                raise SnapshotUnusable(f"the snapshot does not restore: {exc}") from exc
            start, book_seq = snap.next_offset, snap.book_seq
            if engine.next_seq != snap.next_seq:
                raise SnapshotUnusable(
                    f"the snapshot restores to next seq {engine.next_seq}, it recorded "
                    f"{snap.next_seq}"
                )
        else:
            if beginning > 0 and committed > beginning:
                raise RecoveryError(
                    f"no snapshot and {tp} starts at {beginning}: commands before it are "
                    "gone (retention), a full replay is impossible"
                )
            engine = MatchingEngine(self.config)
            start, book_seq = beginning, 0

        replayed = 0
        if start < committed:
            consumer.seek(tp, start)
            while (await consumer.position(tp)) < committed:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                for record in batches.get(tp, []):
                    if record.offset >= committed:
                        break
                    for event in self._apply(engine, record):
                        if type(event) is BookDelta:
                            book_seq = event.seq
                    replayed += 1
            metrics.REPLAYED.labels(self.market).inc(replayed)
        consumer.seek(tp, committed)

        if self.settings.engine_verify_output:
            try:
                await self._verify_output(engine, committed)
            except RecoveryError as exc:
                if snap is None:
                    raise
                raise SnapshotUnusable(f"after replay from the snapshot: {exc}") from exc
        return Recovered(engine, committed, book_seq, replayed, snap is not None)

    async def _verify_output(self, engine: MatchingEngine, committed: int) -> None:
        """The last committed event of ``executions[P]`` must be the last one the replayed
        state produced: same seq, and it answers a command below ``committed``."""
        last = await last_committed_event(self.infra, self.infra.executions_topic, self.partition)
        last_seq = last.seq if last is not None else 0
        if engine.next_seq != last_seq + 1 or (last is not None and last.offset >= committed):
            raise RecoveryError(
                f"replayed state disagrees with {self.infra.executions_topic}[{self.partition}]:"
                f" next seq {engine.next_seq} after input {committed}, but the last committed"
                f" event is {last!r}"
            )

    # ------------------------------------------------------------------ live

    def _apply(self, engine: MatchingEngine, record: ConsumerRecord[bytes, bytes]) -> list[Event]:
        value = record.value
        if value is None:
            metrics.MALFORMED.labels(self.market).inc()
            return engine.reject_malformed(record.offset)
        try:
            command = decode_command(value)
        except SchemaError:
            metrics.MALFORMED.labels(self.market).inc()
            return engine.reject_malformed(record.offset)
        return engine.apply(command, record.offset)

    async def _next_batch(
        self, consumer: AIOKafkaConsumer, ctx: WorkerContext
    ) -> list[ConsumerRecord[bytes, bytes]]:
        tp, limit = self.tp_in, self.settings.engine_batch_max
        batch: list[ConsumerRecord[bytes, bytes]] = []
        got = await consumer.getmany(tp, timeout_ms=100, max_records=limit)
        batch += got.get(tp, [])
        if not batch:
            return batch
        deadline = time.monotonic() + self.settings.engine_batch_linger_ms / 1000
        while len(batch) < limit and not ctx.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            got = await consumer.getmany(
                tp, timeout_ms=int(remaining * 1000), max_records=limit - len(batch)
            )
            if not got:
                break
            batch += got.get(tp, [])
        return batch

    def _offset_commit(self, next_offset: int) -> dict[TopicPartition, OffsetAndMetadata]:
        """The input position to commit, stamped with the wall time of the commit (metadata
        for humans: it shows that a quiet market still refreshes its offset)."""
        return {
            self.tp_in: OffsetAndMetadata(
                next_offset, f"committed_at_ms={time.time_ns() // 1_000_000}"
            )
        }

    async def live(
        self,
        ctx: WorkerContext,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        publisher: RedisPublisher,
    ) -> None:
        assert self.engine is not None
        engine, market, tp = self.engine, self.market, self.tp_in
        out_topic, key = self.infra.executions_topic, self.key
        m_commands = metrics.COMMANDS.labels(market)
        m_events = metrics.EVENTS.labels(market)
        m_batch = metrics.BATCH_SIZE.labels(market)
        m_txn = metrics.TXN_SECONDS.labels(market)
        m_lag = metrics.INPUT_LAG.labels(market)
        m_offset = metrics.INPUT_OFFSET.labels(market)
        m_seq = metrics.NEXT_SEQ.labels(market)
        since_snapshot = 0
        last_snapshot = time.monotonic()
        every = self.settings.engine_snapshot_every
        interval = self.settings.engine_snapshot_interval_s
        refresh = self.settings.engine_offset_refresh_s
        m_refresh = metrics.OFFSET_REFRESHES.labels(market)
        last_commit = time.monotonic()

        while not ctx.stopping.is_set():
            batch = await self._next_batch(consumer, ctx)
            events: list[Event] = []
            if batch:
                records: list[tuple[bytes | None, bytes, kafka.Headers | None]] = []
                for record in batch:
                    produced = self._apply(engine, record)
                    headers = kafka.trace_headers(record.headers) or None
                    for event in produced:
                        records.append((key, encode(event), headers))
                    events += produced
                next_offset = batch[-1].offset + 1

                started = time.perf_counter()
                await producer.begin_transaction()
                await kafka.send_records(producer, out_topic, self.partition, records)
                await producer.send_offsets_to_transaction(
                    self._offset_commit(next_offset), self.group_id
                )
                await producer.commit_transaction()
                m_txn.observe(time.perf_counter() - started)
                last_commit = time.monotonic()

                self.next_offset = next_offset
                m_commands.inc(len(batch))
                m_events.inc(len(events))
                m_batch.observe(len(batch))
                m_offset.set(next_offset)
                m_seq.set(engine.next_seq)
                for event in reversed(events):
                    if type(event) is BookDelta:
                        self.book_seq = event.seq
                        break
                since_snapshot += len(batch)

            now = time.monotonic()
            if not batch and now - last_commit >= refresh:
                # A quiet market: commit the same offset again so Kafka keeps it.
                await producer.begin_transaction()
                await producer.send_offsets_to_transaction(
                    self._offset_commit(self.next_offset), self.group_id
                )
                await producer.commit_transaction()
                last_commit = now
                m_refresh.inc()
            snapshot = None
            if since_snapshot and (since_snapshot >= every or now - last_snapshot >= interval):
                snapshot = EngineSnapshot(
                    market=market,
                    partition=self.partition,
                    next_offset=self.next_offset,
                    next_seq=engine.next_seq,
                    book_seq=self.book_seq,
                    engine=engine.snapshot(),
                )
                since_snapshot, last_snapshot = 0, now
            if batch or snapshot is not None:
                await publisher.submit(Committed(events, snapshot))
            lso = consumer.last_stable_offset(tp)
            if lso is not None:
                m_lag.set(max(0, lso - self.next_offset))


async def last_committed_event(infra: InfraSettings, topic: str, partition: int) -> Event | None:
    """The last committed (``read_committed``) event of one partition, or None if empty."""
    tp = TopicPartition(topic, partition)
    consumer = kafka.consumer(infra)
    await consumer.start()
    try:
        consumer.assign([tp])
        beginning = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        window = 64
        while True:
            start = max(beginning, end - window)
            consumer.seek(tp, start)
            last: ConsumerRecord[bytes, bytes] | None = None
            while (await consumer.position(tp)) < end:
                got = await consumer.getmany(tp, timeout_ms=1000)
                for record in got.get(tp, []):
                    if record.offset < end and record.value is not None:
                        last = record
            if last is not None:
                return decode_event(last.value)
            if start == beginning:
                return None
            window *= 4
    finally:
        await consumer.stop()

"""The engine's Kafka loop: exactly-once from ``orders`` to ``executions``, and recovery.

Live loop
---------
The engine owns one partition index ``P`` of both topics. It reads ``orders[P]`` by manual
assignment with ``read_committed``. Each batch of commands (what is waiting, at most
``engine_batch_max``; it never waits for more) is applied to the core, in offset order (a
record that does not decode is answered by ``COMMAND_REJECTED``/``MALFORMED`` and the
market goes on), and then committed in one Kafka transaction of its transactional
producer, which:

1. produces every event, in order, to ``executions[P]`` with key = the market's symbol;
2. adds the input position (last offset + 1) to the transaction for the engine's group
   (``send_offsets_to_transaction``);
3. commits.

Pipelining: while a transaction is in flight (four round trips to the broker, plus the
previous one's commit markers), the commands arriving meanwhile are applied already; they
become the next transaction as soon as the previous one committed. Transactions stay one
at a time and in input order, and the core runs ahead of Kafka by at most one batch that
exists nowhere else: a crash loses it, and the next instance applies it again.

With no input for ``engine_offset_refresh_s``, it commits the same input position again in
a transaction of its own (offsets only): the group never has a member, so Kafka would
otherwise drop its committed offset ``offsets.retention.minutes`` after the last commit,
and the next recovery would replay from the partition's start.

Only after its commit does a batch go to Redis (book, pub/sub, sometimes a snapshot taken
at its end when it was applied), in order, by
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

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass, field

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


#: One output record: key, value, headers.
OutRecord = tuple[bytes | None, bytes, kafka.Headers | None]

#: How long one poll of an idle input waits (it ends early as soon as records arrive).
_IDLE_POLL_MS = 100


@dataclass
class Applied:
    """Commands applied to the core whose events are not committed yet: one transaction's
    worth (consecutive batches applied while the previous transaction was in flight are
    joined by :meth:`then`)."""

    commands: int
    records: list[OutRecord]
    events: list[Event]
    next_offset: int  # the input position after these commands
    next_seq: int  # the seq after their events
    book_seq: int  # the seq of the last BOOK_DELTA up to here
    snapshot: EngineSnapshot | None = field(default=None)  # state at a boundary within
    fetched_at: list[float] = field(default_factory=list)  # when each batch was fetched

    def then(self, later: Applied) -> Applied:
        """These commands followed by ``later``'s, as one transaction."""
        self.commands += later.commands
        self.fetched_at += later.fetched_at
        self.records += later.records
        self.events += later.events
        self.next_offset, self.next_seq = later.next_offset, later.next_seq
        self.book_seq = later.book_seq
        self.snapshot = later.snapshot or self.snapshot
        return self


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
        self.next_offset = 0  # committed input position
        self.book_seq = 0  # seq of the last committed BOOK_DELTA
        self.applied_book_seq = 0  # ... of the last applied one (ahead while pipelining)

    # ------------------------------------------------------------------ entry point

    async def run(self, ctx: WorkerContext) -> None:
        kafka.set_concurrent_transactions_backoff(self.settings.engine_txn_retry_ms)
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
            # What exists now (code, clients, the recovered book) lives as long as the
            # process: frozen out of the collector's way, a full collection scans only
            # what was made since, not the whole heap (18-100 ms pauses seen under load).
            gc.collect()
            gc.freeze()
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
        # Counted after every recovery, 0 included: a snapshot at the committed offset
        # (a quiet market's) replays nothing, and the series must still be there.
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

    def _apply_batch(self, batch: list[ConsumerRecord[bytes, bytes]]) -> Applied:
        """Apply a batch to the core and encode its events (nothing leaves the process)."""
        assert self.engine is not None
        fetched_at = time.monotonic()
        engine, key = self.engine, self.key
        records: list[OutRecord] = []
        events: list[Event] = []
        for record in batch:
            produced = self._apply(engine, record)
            headers = kafka.trace_headers(record.headers) or None
            records += [(key, encode(event), headers) for event in produced]
            events += produced
        for event in reversed(events):
            if type(event) is BookDelta:
                self.applied_book_seq = event.seq
                break
        return Applied(
            commands=len(batch),
            records=records,
            events=events,
            next_offset=batch[-1].offset + 1,
            next_seq=engine.next_seq,
            book_seq=self.applied_book_seq,
            fetched_at=[fetched_at],
        )

    def _snapshot(self, next_offset: int, book_seq: int) -> EngineSnapshot:
        """The core's state now, which must be the state after input ``next_offset``."""
        assert self.engine is not None
        return EngineSnapshot(
            market=self.market,
            partition=self.partition,
            next_offset=next_offset,
            next_seq=self.engine.next_seq,
            book_seq=book_seq,
            engine=self.engine.snapshot(),
        )

    def _offset_commit(self, next_offset: int) -> dict[TopicPartition, OffsetAndMetadata]:
        """The input position to commit, stamped with the wall time of the commit (metadata
        for humans: it shows that a quiet market still refreshes its offset)."""
        return {
            self.tp_in: OffsetAndMetadata(
                next_offset, f"committed_at_ms={time.time_ns() // 1_000_000}"
            )
        }

    async def _commit(self, producer: AIOKafkaProducer, applied: Applied) -> Applied:
        """One Kafka transaction: the events of ``applied`` and the input position after
        it, atomically. An offsets-only transaction when it has no records."""
        started = time.perf_counter()
        await producer.begin_transaction()
        if applied.records:
            await kafka.send_records(
                producer, self.infra.executions_topic, self.partition, applied.records
            )
        await producer.send_offsets_to_transaction(
            self._offset_commit(applied.next_offset), self.group_id
        )
        await producer.commit_transaction()
        metrics.TXN_SECONDS.labels(self.market).observe(time.perf_counter() - started)
        return applied

    async def live(
        self,
        ctx: WorkerContext,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        publisher: RedisPublisher,
    ) -> None:
        """Pipelined: while one transaction commits, the commands that arrived meanwhile
        are applied to the core; they form the next transaction, begun as soon as the
        previous one committed (at most ``engine_batch_max`` commands ahead). Batches are
        what is already waiting: nothing waits for more input.

        The core may run ahead of Kafka by one uncommitted batch, never Redis: a batch
        reaches the publisher (pub/sub, book, snapshot) only after its own commit, and a
        snapshot is taken at a batch boundary and stored only once that batch committed.
        A crash loses only applied-but-uncommitted batches, which the next instance
        applies again from the committed offset (the core is deterministic)."""
        assert self.engine is not None
        market, tp, limit = self.market, self.tp_in, self.settings.engine_batch_max
        m_commands = metrics.COMMANDS.labels(market)
        m_events = metrics.EVENTS.labels(market)
        m_batch = metrics.BATCH_SIZE.labels(market)
        m_lag = metrics.INPUT_LAG.labels(market)
        m_offset = metrics.INPUT_OFFSET.labels(market)
        m_seq = metrics.NEXT_SEQ.labels(market)
        m_refresh = metrics.OFFSET_REFRESHES.labels(market)
        m_command = metrics.COMMAND_SECONDS.labels(market)
        every = self.settings.engine_snapshot_every
        interval = self.settings.engine_snapshot_interval_s
        refresh = self.settings.engine_offset_refresh_s
        # Commands applied since the last snapshot, and since when: the interval counts from
        # the first of them, so the first batch after a quiet spell (the state snapshotted
        # already) does not pay for a snapshot on the hot path.
        since_snapshot = 0
        unsnapshotted_since = last_commit = time.monotonic()
        self.applied_book_seq = self.book_seq

        fetch: asyncio.Task[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]] | None
        fetch = None
        commit: asyncio.Task[Applied] | None = None
        pending: Applied | None = None  # applied, waiting for the transaction in flight
        try:
            while True:
                stopping = ctx.stopping.is_set()
                room = limit - (pending.commands if pending is not None else 0)
                if fetch is None and not stopping and room > 0:
                    fetch = asyncio.create_task(
                        consumer.getmany(tp, timeout_ms=_IDLE_POLL_MS, max_records=room)
                    )
                waiting = {task for task in (fetch, commit) if task is not None}
                if not waiting:
                    return  # stopping, and everything applied is committed
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

                if fetch is not None and fetch.done():
                    batch = fetch.result().get(tp, [])
                    fetch = None
                    if batch:
                        applied = self._apply_batch(batch)
                        if not since_snapshot:
                            unsnapshotted_since = time.monotonic()
                        since_snapshot += applied.commands
                        if since_snapshot >= every or (
                            time.monotonic() - unsnapshotted_since >= interval
                        ):
                            applied.snapshot = self._snapshot(applied.next_offset, applied.book_seq)
                            since_snapshot = 0
                        pending = applied if pending is None else pending.then(applied)

                if commit is not None and commit.done():
                    done = commit.result()  # a failed commit ends the process
                    commit = None
                    if pending is not None:
                        # The next transaction before anything else: its round trips are
                        # the hot path, the bookkeeping and Redis below run while they
                        # are out.
                        commit = asyncio.create_task(self._commit(producer, pending))
                        pending = None
                    last_commit = time.monotonic()
                    for fetched_at in done.fetched_at:
                        m_command.observe(last_commit - fetched_at)
                    self.next_offset, self.book_seq = done.next_offset, done.book_seq
                    m_commands.inc(done.commands)
                    m_events.inc(len(done.events))
                    m_batch.observe(done.commands)
                    m_offset.set(done.next_offset)
                    m_seq.set(done.next_seq)
                    encoded = [value for _, value, _ in done.records]
                    await publisher.submit(Committed(done.events, done.snapshot, encoded))

                if commit is None and pending is not None:
                    commit = asyncio.create_task(self._commit(producer, pending))
                    pending = None
                elif commit is None:
                    # Everything applied is committed: the core's state is a committed one.
                    now = time.monotonic()
                    if since_snapshot and now - unsnapshotted_since >= interval:
                        snapshot = self._snapshot(self.next_offset, self.book_seq)
                        await publisher.submit(Committed([], snapshot))
                        since_snapshot = 0
                    if not stopping and now - last_commit >= refresh:
                        # A quiet market: commit the same offset again so Kafka keeps it.
                        await self._commit(
                            producer,
                            Applied(0, [], [], self.next_offset, 0, self.book_seq),
                        )
                        last_commit = time.monotonic()
                        m_refresh.inc()
                lso = consumer.last_stable_offset(tp)
                if lso is not None:
                    m_lag.set(max(0, lso - self.next_offset))
        finally:
            for task in (fetch, commit):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task


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

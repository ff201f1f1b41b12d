"""``cex serve candles``: TRADE_EXECUTED events of ``executions`` → candles in Redis.

* Reads ``executions`` with ``isolation_level=read_committed`` and *manual* assignment of
  the partition of every market in the registry (or ``--market`` only); no consumer group.
  A consumer per market's partition, as settlement does (see :mod:`cex.settlement.service`):
  with one consumer for all, aiokafka fetches the idle partitions alone while a busy
  one's records wait, and the busy one's next fetch waits behind that parked fetch.
* Only TRADE_EXECUTED records are decoded (most of ``executions`` is order and book events):
  their tag is recognised in the record's first bytes.
* Per market, Redis holds the aggregation state (:class:`cex.core.candles.CandleState`:
  the current candle of each interval and the last applied trade's seq) and the next
  input offset, in ``{prefix}:candles:state:{market}``. Each batch is written by ONE Lua
  script per market: the new state and offset, every changed candle version into the
  pending hashes the persister drains, and the publication on ``{prefix}:candles:{market}``
  (:mod:`cex.infra.redis` documents keys and payloads). A kill -9 at any instant leaves
  either the old or the new state with its own offset: nothing lost, nothing counted twice.
* A market's batches go to Redis on a connection of its own, straight (the client's pool,
  retries and hooks cost more than the call), by the script's sha; a Redis that lost its
  scripts is sent it again. Work per batch is what remains at a steady rate (the engine
  commits every few ms: a batch holds a few trades), so it is kept small: only
  TRADE_EXECUTED records decoded, the kline message written from per-market parts
  (:func:`cex.infra.redis.kline_payload`), the changed candles in one script argument.
* A batch without a new trade changes only the offset: it is written once 10,000 records
  or a second have gone by unwritten (a restart reads them again, changing nothing).
* On start, and after any failed write, the state is read back and the partition is
  sought to the stored offset; a trade whose seq is not above the stored seq is skipped.
* The script refuses a write whose expected offset is not the stored one (another
  aggregator moved it): this one then reloads the state and continues from there.

Configuration: the shared ``CEX_*`` settings plus ``CEX_CANDLES_*``
(:class:`AggregatorSettings`); probes and metrics on ``CEX_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.exceptions import NoScriptError, RedisError, ResponseError

from cex.core import candles
from cex.core.events import TradeExecuted
from cex.core.market import MarketConfig
from cex.infra import kafka
from cex.infra import redis as keys
from cex.infra.registry import load_markets
from cex.infra.runtime import WorkerContext, metrics_port, run_worker
from cex.infra.settings import InfraSettings

log = logging.getLogger("cex.candles.aggregator")

TRADES = Counter("cex_candles_trades_total", "Trades aggregated", ["market"])
SKIPPED = Counter("cex_candles_redelivered_total", "Trades skipped as already applied")
BATCHES = Counter("cex_candles_batches_total", "Batches written to Redis")
RESYNCS = Counter("cex_candles_resyncs_total", "State reloads after a failed or stale write")
BATCH_SECONDS = Histogram(
    "cex_candles_batch_seconds",
    "Time to aggregate and write one batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
LAST_SEQ = Gauge("cex_candles_last_seq", "Seq of the last aggregated trade", ["market"])
LAG = Gauge("cex_candles_lag_records", "Records in the partition not aggregated yet", ["market"])

#: KEYS: the state hash, then the pending hash of every interval (INTERVALS order).
#: ARGV: expected next_offset ('' when none is stored), new next_offset, partition, state
#: JSON, channel, payload ('' publishes nothing), then the changed candles in one argument:
#: a line "<interval number> <open time> <candle JSON>" each (compact JSON has no newline;
#: one argument, not three per candle: redis-py packs each argument in Python).
COMMIT_BATCH = """
local stored = redis.call('HGET', KEYS[1], 'next_offset')
if stored == false then stored = '' end
if stored ~= ARGV[1] then
  return redis.error_reply('STALE stored offset ' .. stored .. ', expected ' .. ARGV[1])
end
redis.call('HSET', KEYS[1], 'next_offset', ARGV[2], 'partition', ARGV[3], 'state', ARGV[4])
for interval, opened, candle in string.gmatch(ARGV[7], '(%d+) (-?%d+) ([^\\n]*)\\n') do
  redis.call('HSET', KEYS[1 + tonumber(interval)], opened, candle)
end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
"""


class AggregatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_CANDLES_", frozen=True, extra="ignore")

    batch_max: int = 5000  # records per batch
    # How long a market's reader waits in getmany (records wake it at once; a short wait
    # made each idle market's reader poll for nothing).
    poll_ms: int = 10_000
    # How long the broker may park a fetch with nothing to return (a reader's own
    # partition only: nothing else waits behind it).
    fetch_wait_ms: int = 500
    # Bytes a fetch waits for (up to fetch_wait_ms) before it returns: 1 returns what is
    # there at once. More makes fewer, larger batches (each batch costs the same fixed
    # Kafka and Redis work) at the price of up to fetch_wait_ms of latency.
    fetch_min_bytes: int = 1
    # A batch without a new trade is written (its offset) only this long after the last
    # write, or 10,000 records after it.
    offset_write_s: float = 1.0
    registry_refresh_s: float = 10.0
    metrics_port: int = 9330


#: A consumer per market holds at most one fetch of 1 MiB (~10,000 events), not the shared
#: default's 8 MiB per partition.
_FETCH_BYTES = 1 << 20
#: The msgpack string of TRADE_EXECUTED's tag, which follows an event's array header
#: (one byte up to 15 elements, three up to 65,535): only these records are decoded.
_TRADE_TAG = msgspec.msgpack.encode(TradeExecuted.__struct_config__.tag)
_trade_decoder = msgspec.msgpack.Decoder(TradeExecuted)


def is_trade(value: bytes) -> bool:
    """Whether an ``executions`` record is a TRADE_EXECUTED event, without decoding it."""
    return value.startswith(_TRADE_TAG, 1) or value.startswith(_TRADE_TAG, 3)


class MarketCandles:
    """One market's partition: its aggregation state, its consumer and the task reading it."""

    def __init__(self, config: MarketConfig, partition: int, prefix: str) -> None:
        self.config = config
        self.partition = partition
        self.state = candles.new_state()
        self.next_offset: int | None = None  # None: nothing stored yet
        self.written_at = 0.0  # time.monotonic() of the last write
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None
        self.writer: aioredis.Connection | None = None  # its batches' own Redis connection
        # The script's constant keys and arguments, and the metrics' children.
        self.state_key = keys.candles_state_key(prefix, config.name)
        self.script_keys = [
            self.state_key,
            *(keys.candles_pending_key(prefix, config.name, i) for i in candles.INTERVALS),
        ]
        self.channel = keys.candles_channel(prefix, config.name)
        self.trades = TRADES.labels(config.name)
        self.last_seq = LAST_SEQ.labels(config.name)
        self.lag = LAG.labels(config.name)


#: A batch without a new trade (orders resting, cancelled; most of a market's flow) changes
#: nothing but the offset: it is written only once this many records (or
#: ``offset_write_s``) have gone by unwritten. A restart reads those records again; they
#: change nothing either.
_OFFSET_ONLY_RECORDS = 10_000

#: An interval's position among the script's pending keys (KEYS[2] is the first).
_PENDING_INDEX = {interval: i + 1 for i, interval in enumerate(candles.INTERVALS)}


class StaleState(Exception):
    """The stored offset is not the one this aggregator wrote last."""


class CandleAggregator:
    """The consume → aggregate → write loop; usable in-process through :meth:`run`."""

    def __init__(
        self,
        infra: InfraSettings | None = None,
        settings: AggregatorSettings | None = None,
        market: str | None = None,
    ) -> None:
        self.infra = infra or InfraSettings()
        self.settings = settings or AggregatorSettings()
        self.only_market = market
        self.topic = self.infra.executions_topic
        self.prefix = self.infra.redis_prefix
        self.markets: dict[int, MarketCandles] = {}  # by partition
        self.redis: aioredis.Redis | None = None

    async def run(self, ctx: WorkerContext) -> None:
        self.redis = keys.client(self.infra)
        self._commit = self.redis.register_script(COMMIT_BATCH)
        try:
            await self._refresh_registry()
            ctx.readiness.set_ready()
            while not ctx.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.stopping.wait(), self.settings.registry_refresh_s)
                for market in self.markets.values():
                    if market.task is not None and market.task.done():
                        market.task.result()  # a reader failed: stop with its error
                        raise RuntimeError(f"the reader of {market.config.name} ended")
                if not ctx.stopping.is_set():
                    await self._refresh_registry()
        finally:
            ctx.readiness.set_not_ready("stopped")
            for market in self.markets.values():
                await self._stop_reader(market)
            await self.redis.aclose()

    async def _refresh_registry(self) -> None:
        conn = await asyncpg.connect(self.infra.postgres_dsn)
        try:
            registered = await load_markets(conn)
        finally:
            await conn.close()
        if self.only_market is not None:
            registered = {n: m for n, m in registered.items() if n == self.only_market}
            if not registered:
                raise RuntimeError(f"market {self.only_market!r} is not in the registry")
        # The topic's partitions from the admin API: a consumer's own metadata only covers
        # what it is assigned, and refreshing it means its private client.
        counts = await kafka.partition_counts(self.infra.kafka_bootstrap, [self.topic])
        existing = set(range(counts.get(self.topic, 0)))
        wanted = {m.partition: m for m in registered.values() if m.partition in existing}
        if wanted.keys() == self.markets.keys():
            return
        for partition in self.markets.keys() - wanted.keys():
            await self._stop_reader(self.markets.pop(partition))
        for partition in sorted(wanted.keys() - self.markets.keys()):
            market = MarketCandles(wanted[partition].config, partition, self.prefix)
            self.markets[partition] = market
            await self._start_reader(market)
        log.info("aggregating candles of %s", sorted(m.config.name for m in self.markets.values()))

    async def _start_reader(self, market: MarketCandles) -> None:
        consumer = kafka.consumer(
            self.infra,
            fetch_max_wait_ms=self.settings.fetch_wait_ms,
            fetch_min_bytes=self.settings.fetch_min_bytes,
            max_partition_fetch_bytes=_FETCH_BYTES,
            fetch_max_bytes=_FETCH_BYTES,
        )
        await consumer.start()
        market.consumer = consumer
        try:
            consumer.assign([TopicPartition(self.topic, market.partition)])
            await self._load(market)
        except BaseException:
            market.consumer = None
            await consumer.stop()
            raise
        market.task = asyncio.create_task(
            self._read(market, consumer), name=f"candles-read-{market.config.name}"
        )

    async def _stop_reader(self, market: MarketCandles) -> None:
        if market.task is not None:
            market.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await market.task
        if market.consumer is not None:
            await market.consumer.stop()
        if market.writer is not None:
            await market.writer.disconnect()

    async def _read(self, market: MarketCandles, consumer: AIOKafkaConsumer) -> None:
        """One market's reader: fetch what is there, aggregate it, write it."""
        tp = TopicPartition(self.topic, market.partition)
        while True:
            records = await consumer.getmany(
                tp, timeout_ms=self.settings.poll_ms, max_records=self.settings.batch_max
            )
            batch = records.get(tp)
            if not batch:
                continue
            try:
                await self._apply(market, batch)
            except (StaleState, RedisError, OSError) as exc:
                RESYNCS.inc()
                log.warning("candle write for %s failed (%s); reloading",
                            market.config.name, exc)  # fmt: skip
                await asyncio.sleep(0.2)
                await self._load(market)
            high = consumer.highwater(tp)
            if high is not None:
                market.lag.set(max(0, high - batch[-1].offset - 1))

    async def _write(self, market: MarketCandles, args: list[bytes | str | int]) -> None:
        """The batch's script call on the market's own connection: straight to the
        connection, not through the client (its pool, retries and observability hooks
        were a third of the aggregator's work per batch; a failed write reloads anyway)."""
        assert self.redis is not None
        conn = market.writer
        if conn is None:
            conn = market.writer = self.redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        call = ("EVALSHA", self._commit.sha, len(market.script_keys), *market.script_keys, *args)
        try:
            try:
                await conn.send_command(*call)
                await conn.read_response()
            except NoScriptError:  # a restarted or flushed Redis
                await conn.send_command("SCRIPT", "LOAD", COMMIT_BATCH)
                await conn.read_response()
                await conn.send_command(*call)
                await conn.read_response()
        except ResponseError as exc:  # an error reply: the connection stays usable
            if "STALE" in str(exc):
                raise StaleState(str(exc)) from exc
            raise
        except BaseException:
            await conn.disconnect()
            raise

    async def _load(self, market: MarketCandles) -> None:
        """Read the stored state and seek the partition to its offset."""
        assert self.redis is not None
        assert market.consumer is not None
        stored: list[Any] = await self.redis.hmget(market.state_key, ["next_offset", "state"])
        tp = TopicPartition(self.topic, market.partition)
        if stored[0] is None:
            market.state, market.next_offset = candles.new_state(), None
            await market.consumer.seek_to_beginning(tp)
        else:
            market.state = candles.decode_state(stored[1] or b"{}")
            market.next_offset = int(stored[0])
            market.consumer.seek(tp, market.next_offset)

    async def _apply(self, market: MarketCandles, records: list) -> None:  # type: ignore[type-arg]
        started = time.perf_counter()
        config = market.config
        trades = []
        for record in records:
            value = record.value
            if value is None or not is_trade(value):
                continue
            trade = _trade_decoder.decode(value)
            if trade.market != config.symbol:
                log.warning("trade of %s in the partition of %s ignored",
                            trade.market, config.symbol)  # fmt: skip
                continue
            trades.append(trade)
        state = candles.copy_state(market.state)  # the stored one stays until written
        before = state.last_seq
        update = candles.apply(state, trades)
        applied = sum(1 for t in trades if t.seq > before)
        next_offset = records[-1].offset + 1
        if (
            not applied
            and market.next_offset is not None
            and (
                next_offset - market.next_offset < _OFFSET_ONLY_RECORDS
                and time.monotonic() - market.written_at < self.settings.offset_write_s
            )
        ):
            return  # no trade: the stored offset may stay behind a while (see above)
        changed = update.candles
        payload = b""
        if changed:
            last = max((t for t in trades if t.seq > before), key=lambda t: t.seq)
            payload = keys.kline_payload(config, changed, seq=state.last_seq, event_ts=last.ts)
        args: list[bytes | str | int] = [
            "" if market.next_offset is None else market.next_offset,
            next_offset,
            market.partition,
            candles.encode_state(state),
            market.channel,
            payload,
            b"".join([
                b"%d %d %s\n" % (_PENDING_INDEX[c.interval], c.open_time, candles.encode_candle(c))
                for c in changed
            ]),
        ]  # fmt: skip
        await self._write(market, args)
        market.state, market.next_offset = state, next_offset
        market.written_at = time.monotonic()
        BATCHES.inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)
        market.trades.inc(applied)
        if applied < len(trades):
            SKIPPED.inc(len(trades) - applied)
        market.last_seq.set(state.last_seq)


def serve(market: str | None) -> None:
    """Entry point of ``cex serve candles``."""
    settings = AggregatorSettings()
    worker = CandleAggregator(settings=settings, market=market)
    run_worker("candles", worker.run, port=metrics_port(default=settings.metrics_port))

"""``cex serve candles``: TRADE_EXECUTED events of ``executions`` → candles in Redis.

* Reads ``executions`` with ``isolation_level=read_committed`` and *manual* assignment of
  the partition of every market in the registry (or ``--market`` only); no consumer group.
* Per market, Redis holds the aggregation state (:class:`cex.core.candles.CandleState`:
  the current candle of each interval and the last applied trade's seq) and the next
  input offset, in ``{prefix}:candles:state:{market}``. Each batch is written by ONE Lua
  script per market: the new state and offset, every changed candle version into the
  pending hashes the persister drains, and the publication on ``{prefix}:candles:{market}``
  (:mod:`cex.infra.redis` documents keys and payloads). A kill -9 at any instant leaves
  either the old or the new state with its own offset: nothing lost, nothing counted twice.
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
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.exceptions import RedisError, ResponseError

from cex.core import candles
from cex.core.events import TradeExecuted, decode_event
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
#: JSON, channel, payload ('' publishes nothing), then (interval number, open time, candle
#: JSON) triples.
COMMIT_BATCH = """
local stored = redis.call('HGET', KEYS[1], 'next_offset')
if stored == false then stored = '' end
if stored ~= ARGV[1] then
  return redis.error_reply('STALE stored offset ' .. stored .. ', expected ' .. ARGV[1])
end
redis.call('HSET', KEYS[1], 'next_offset', ARGV[2], 'partition', ARGV[3], 'state', ARGV[4])
for i = 7, #ARGV, 3 do
  redis.call('HSET', KEYS[1 + tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
"""


class AggregatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_CANDLES_", frozen=True, extra="ignore")

    batch_max: int = 5000  # records per batch
    poll_ms: int = 100
    # How long the broker may park a fetch with nothing to return. One consumer reads every
    # market's partition, and aiokafka, while a busy partition's records wait to be read
    # (longer than its fixed 0.1 s prefetch backoff), fetches the idle ones alone: the busy
    # one's next fetch waits behind that parked fetch (500 ms at aiokafka's default).
    fetch_wait_ms: int = 50
    registry_refresh_s: float = 10.0
    metrics_port: int = 9330


@dataclass
class MarketCandles:
    config: MarketConfig
    partition: int
    state: candles.CandleState = field(default_factory=candles.new_state)
    next_offset: int | None = None  # None: nothing stored yet


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
        self.consumer: AIOKafkaConsumer | None = None
        self.redis: aioredis.Redis | None = None

    async def run(self, ctx: WorkerContext) -> None:
        self.consumer = kafka.consumer(self.infra, fetch_max_wait_ms=self.settings.fetch_wait_ms)
        await self.consumer.start()
        self.redis = keys.client(self.infra)
        self._commit = self.redis.register_script(COMMIT_BATCH)
        try:
            await self._refresh_registry()
            ctx.readiness.set_ready()
            refreshed = time.monotonic()
            while not ctx.stopping.is_set():
                if time.monotonic() - refreshed > self.settings.registry_refresh_s:
                    await self._refresh_registry()
                    refreshed = time.monotonic()
                if not self.markets:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ctx.stopping.wait(), self.settings.poll_ms / 1000)
                    continue
                records = await self.consumer.getmany(
                    timeout_ms=self.settings.poll_ms, max_records=self.settings.batch_max
                )
                for tp, batch in records.items():
                    market = self.markets.get(tp.partition)
                    if market is None or not batch:
                        continue
                    try:
                        await self._apply(market, batch)
                    except (StaleState, RedisError, OSError) as exc:
                        RESYNCS.inc()
                        log.warning("candle write for %s failed (%s); reloading",
                                    market.config.name, exc)  # fmt: skip
                        await asyncio.sleep(0.2)
                        await self._load(market)
                if records:
                    await self._update_lag()
        finally:
            ctx.readiness.set_not_ready("stopped")
            await self.consumer.stop()
            await self.redis.aclose()

    async def _refresh_registry(self) -> None:
        assert self.consumer is not None
        conn = await asyncpg.connect(self.infra.postgres_dsn)
        try:
            registered = await load_markets(conn)
        finally:
            await conn.close()
        if self.only_market is not None:
            registered = {n: m for n, m in registered.items() if n == self.only_market}
            if not registered:
                raise RuntimeError(f"market {self.only_market!r} is not in the registry")
        # The topic's partitions from the admin API: the consumer's own metadata only covers
        # what it is assigned, and refreshing it means its private client.
        counts = await kafka.partition_counts(self.infra.kafka_bootstrap, [self.topic])
        existing = set(range(counts.get(self.topic, 0)))
        wanted = {m.partition: m for m in registered.values() if m.partition in existing}
        if wanted.keys() == self.markets.keys():
            return
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(wanted)])
        self.markets = {p: MarketCandles(m.config, p) for p, m in wanted.items()}
        for market in self.markets.values():
            await self._load(market)
        log.info("aggregating candles of %s", sorted(m.config.name for m in self.markets.values()))

    async def _load(self, market: MarketCandles) -> None:
        """Read the stored state and seek the partition to its offset."""
        assert self.redis is not None
        assert self.consumer is not None
        stored: list[Any] = await self.redis.hmget(
            keys.candles_state_key(self.prefix, market.config.name), ["next_offset", "state"]
        )
        tp = TopicPartition(self.topic, market.partition)
        if stored[0] is None:
            market.state, market.next_offset = candles.new_state(), None
            await self.consumer.seek_to_beginning(tp)
        else:
            market.state = candles.decode_state(stored[1] or b"{}")
            market.next_offset = int(stored[0])
            self.consumer.seek(tp, market.next_offset)

    async def _apply(self, market: MarketCandles, records: list) -> None:  # type: ignore[type-arg]
        started = time.perf_counter()
        config = market.config
        trades = []
        for record in records:
            if record.value is None:
                continue
            event = decode_event(record.value)
            if isinstance(event, TradeExecuted):
                if event.market != config.symbol:
                    log.warning("trade of %s in the partition of %s ignored",
                                event.market, config.symbol)  # fmt: skip
                    continue
                trades.append(event)
        state = candles.decode_state(candles.encode_state(market.state))  # a copy
        before = state.last_seq
        update = candles.apply(state, trades)
        applied = sum(1 for t in trades if t.seq > before)
        next_offset = records[-1].offset + 1
        changed = update.candles
        payload = b""
        if changed:
            last = max((t for t in trades if t.seq > before), key=lambda t: t.seq)
            payload = keys.kline_payload(config, changed, seq=state.last_seq, event_ts=last.ts)
        args: list[bytes | str | int] = [
            "" if market.next_offset is None else str(market.next_offset),
            str(next_offset),
            str(market.partition),
            candles.encode_state(state),
            keys.candles_channel(self.prefix, config.name),
            payload,
        ]
        index = {interval: i + 1 for i, interval in enumerate(candles.INTERVALS)}
        for candle in changed:
            args += [index[candle.interval], str(candle.open_time), candles.encode_candle(candle)]
        pending = [keys.candles_pending_key(self.prefix, config.name, i) for i in candles.INTERVALS]
        try:
            await self._commit(
                keys=[keys.candles_state_key(self.prefix, config.name), *pending], args=args
            )
        except ResponseError as exc:
            if "STALE" in str(exc):
                raise StaleState(str(exc)) from exc
            raise
        market.state, market.next_offset = state, next_offset
        BATCHES.inc()
        BATCH_SECONDS.observe(time.perf_counter() - started)
        TRADES.labels(config.name).inc(applied)
        SKIPPED.inc(len(trades) - applied)
        LAST_SEQ.labels(config.name).set(state.last_seq)

    async def _update_lag(self) -> None:
        assert self.consumer is not None
        for partition, market in self.markets.items():
            tp = TopicPartition(self.topic, partition)
            high = self.consumer.highwater(tp)
            if high is not None:
                LAG.labels(market.config.name).set(max(0, high - await self.consumer.position(tp)))


def serve(market: str | None) -> None:
    """Entry point of ``cex serve candles``."""
    settings = AggregatorSettings()
    worker = CandleAggregator(settings=settings, market=market)
    run_worker("candles", worker.run, port=metrics_port(default=settings.metrics_port))

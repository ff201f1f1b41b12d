"""The aggregator and the persister on real Kafka, Redis and Postgres, in-process: every
candle in Postgres equals the candles of the trades; rebuild --check agrees, finds a
corrupted candle and repairs it; redelivery after a reset changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition

from cex.candles.aggregator import (
    BATCHES,
    RESYNCS,
    AggregatorSettings,
    CandleAggregator,
    is_trade,
)  # fmt: skip
from cex.candles.persister import CandlePersister, PersisterSettings
from cex.candles.rebuild import rebuild
from cex.candles.store import load_candles
from cex.core import candles
from cex.core.events import (
    BookDelta,
    OrderCreate,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
    TradeExecuted,
    decode_event,
    encode,
)  # fmt: skip
from cex.core.market import MarketConfig
from cex.core.matching.engine import MatchingEngine
from cex.infra import redis as keys
from cex.infra.runtime import WorkerContext
from cex.stack.settings import StackSettings
from tests.candles.harness import MARKETS, Stream
from tests.fixtures import NewTopicFactory

SPEC = {
    "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT", "basePrecision": 8,
    "quotePrecision": 6, "tickSize": "0.1", "lotSize": "0.00001", "minQty": "0.00001",
    "maxQty": "9000", "minNotional": "5", "makerFee": "0.001", "takerFee": "0.002",
}  # fmt: skip


@pytest.fixture
async def stream(
    exchange_dsn: str, kafka_bootstrap: str, new_topic: NewTopicFactory, redis_prefix: str,
    stack: StackSettings,
) -> Stream:  # fmt: skip
    topic = await new_topic("executions", partitions=2)
    return Stream(exchange_dsn, kafka_bootstrap, topic, stack.redis_url, redis_prefix)


@contextlib.asynccontextmanager
async def running(*workers: Callable[[WorkerContext], Awaitable[None]]) -> AsyncIterator[None]:
    contexts = [WorkerContext(f"w{i}") for i in range(len(workers))]
    tasks = [asyncio.create_task(w(c)) for w, c in zip(workers, contexts, strict=True)]
    try:
        yield
    finally:
        for c in contexts:
            c.stopping.set()
        for t in tasks:
            await asyncio.wait_for(t, 30)


def strip(c: candles.Candle) -> candles.Candle:
    return candles.Candle(**{f: getattr(c, f) for f in c.__struct_fields__ if f != "closed"})


async def test_candles_reach_postgres_and_rebuild_checks_them(
    stream: Stream, redis_client: aioredis.Redis
) -> None:
    infra = stream.infra
    channel = redis_client.pubsub()
    await channel.subscribe(keys.candles_channel(stream.prefix, "btc-usdt"))
    aggregator = CandleAggregator(infra, AggregatorSettings(poll_ms=20, batch_max=50))
    persister = CandlePersister(infra, PersisterSettings(interval_s=0.05))
    await stream.produce(120, transactions=3)
    async with running(aggregator.run, persister.run):
        await stream.wait_done(redis_client)
        await stream.produce(60, transactions=2)
        await stream.wait_done(redis_client)

    conn = await asyncpg.connect(stream.dsn)
    try:
        for name, _, _ in MARKETS:
            stored = {(c.interval, c.open_time): c for c in await load_candles(conn, name)}
            expected = {k: strip(c) for k, c in stream.expected(name).items()}
            assert stored == expected
            assert len(stored) > 16 * 5
        assert await rebuild(infra, check=True) == []

        # Published: every message is Binance's kline objects; the last 1m one is current.
        messages = []
        while (m := await channel.get_message(timeout=0.5)) is not None:
            if m["type"] == "message":
                messages.append(json.loads(m["data"]))
        assert messages
        assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
        last_1m = [k for m in messages for k in m["klines"] if k["i"] == "1m"][-1]
        current = stream.expected("btc-usdt")["1m", last_1m["t"]]
        assert last_1m["n"] == current.trades
        assert last_1m["x"] is False
        assert set(last_1m) == set("tTsifLochlvnxqVQB")
        assert last_1m["s"] == "BTCUSDT"

        # A corrupted candle is found, then repaired.
        await conn.execute(
            "UPDATE candles SET volume = volume + 1 WHERE market = 'btc-usdt' AND interval = '1h'"
            " AND open_time = (SELECT min(open_time) FROM candles WHERE interval = '1h'"
            " AND market = 'btc-usdt')"
        )
        await conn.execute(
            "DELETE FROM candles WHERE market = 'eth-usdt' AND interval = '1d'"
            " AND open_time = (SELECT max(open_time) FROM candles WHERE interval = '1d'"
            " AND market = 'eth-usdt')"
        )
        found = await rebuild(infra, check=True)
        assert [(d.market, d.interval) for d in found] == [("btc-usdt", "1h"), ("eth-usdt", "1d")]
        assert "volume" in found[0].what
        assert found[1].what == "postgres: missing"
        assert await rebuild(infra, check=False) == found
        assert await rebuild(infra, check=True) == []
    finally:
        await conn.close()
        await channel.aclose()


async def test_a_reset_offset_redelivers_and_changes_nothing(
    stream: Stream, redis_client: aioredis.Redis
) -> None:
    infra = stream.infra
    await stream.produce(80, transactions=2)
    async with running(CandleAggregator(infra, AggregatorSettings(poll_ms=20)).run):
        async with asyncio.timeout(60):
            while await stream.aggregated_seq(redis_client, "btc-usdt") < stream.seq["btc-usdt"]:
                await asyncio.sleep(0.05)
    key = keys.candles_state_key(stream.prefix, "btc-usdt")
    before = await redis_client.hget(key, "state")
    # The offset goes back to the start (as after a lost write): every trade comes again.
    await redis_client.hset(key, "next_offset", "0")
    for interval in candles.INTERVALS:
        await redis_client.delete(keys.candles_pending_key(stream.prefix, "btc-usdt", interval))
    async with running(CandleAggregator(infra, AggregatorSettings(poll_ms=20)).run):
        async with asyncio.timeout(60):
            while int(await redis_client.hget(key, "next_offset")) == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    assert await redis_client.hget(key, "state") == before
    for interval in candles.INTERVALS:
        assert not await redis_client.hlen(
            keys.candles_pending_key(stream.prefix, "btc-usdt", interval)
        )


async def test_a_redis_that_lost_its_scripts_gets_the_script_again(
    stream: Stream, redis_client: aioredis.Redis
) -> None:
    """The batches are sent straight on each market's connection by the script's sha: a
    Redis that lost its scripts (restarted; here SCRIPT FLUSH) is sent the script again,
    with no resync and nothing lost."""
    infra = stream.infra
    await stream.produce(40)
    async with running(CandleAggregator(infra, AggregatorSettings()).run):
        async with asyncio.timeout(60):
            while await stream.aggregated_seq(redis_client, "btc-usdt") < stream.seq["btc-usdt"]:
                await asyncio.sleep(0.05)
        resyncs = RESYNCS._value.get()
        await redis_client.script_flush()
        await stream.produce(40)
        async with asyncio.timeout(60):
            while await stream.aggregated_seq(redis_client, "btc-usdt") < stream.seq["btc-usdt"]:
                await asyncio.sleep(0.05)
        assert RESYNCS._value.get() == resyncs
    raw = await redis_client.hget(keys.candles_state_key(stream.prefix, "btc-usdt"), "state")
    state = candles.decode_state(raw)
    expected = stream.expected("btc-usdt")
    assert all(expected[c.interval, c.open_time] == c for c in state.current.values())


def test_only_trades_are_recognised_by_their_first_bytes() -> None:
    """``is_trade`` agrees with decoding for every kind of event the engine produces."""
    config = MarketConfig.from_spec("btc-usdt", SPEC)
    engine = MatchingEngine(config)
    values = []
    for n in range(40):
        side = Side.SELL if n % 3 else Side.BUY
        command = OrderCreate(
            market="BTCUSDT", ts=n, order_id=n + 1, client_order_id=f"c{n}", user_id=1 + n % 2,
            side=side, type=OrderType.LIMIT,
            time_in_force=TimeInForce.IOC if n % 4 == 0 else TimeInForce.GTC,
            price=300_000 + n % 3 if side is Side.SELL else 300_002,
            quantity=1_000 if n % 5 else 1, quote_order_qty=None, stop_price=None,
            expire_at=None, stp_mode=StpMode.NONE, locked=locked(config, side),
        )  # fmt: skip
        values += [encode(e) for e in engine.apply(command, n)]
    kinds = {type(decode_event(v)) for v in values}
    assert len(values) > 60
    assert TradeExecuted in kinds
    assert len(kinds) >= 4
    for value in values:
        assert is_trade(value) == isinstance(decode_event(value), TradeExecuted)


def locked(config: MarketConfig, side: Side) -> int:
    return config.base_units(1_000) if side is Side.SELL else config.notional(300_002, 1_000)


async def test_a_batch_without_trades_waits_to_write_its_offset(
    stream: Stream, redis_client: aioredis.Redis
) -> None:
    """Records with no trade are not a Redis write each: the offset stays until the next
    trade (or a second) moves it, and then the candles are those of the trades."""
    infra = stream.infra
    key = keys.candles_state_key(stream.prefix, "btc-usdt")
    await stream.produce(20)
    aggregator = CandleAggregator(infra, AggregatorSettings(offset_write_s=600))
    async with running(aggregator.run):
        async with asyncio.timeout(60):
            while await stream.aggregated_seq(redis_client, "btc-usdt") < stream.seq["btc-usdt"]:
                await asyncio.sleep(0.05)
        stored = await redis_client.hget(key, "next_offset")
        market = aggregator.markets[0]
        # The aggregator counts a batch when its script call returns, which can be after Redis
        # shows the write: wait for that before reading the counter.
        async with asyncio.timeout(10):
            while market.next_offset != int(stored):
                await asyncio.sleep(0.01)
        batches = BATCHES._value.get()
        end = await produce_book_deltas(stream, 30)
        assert market.consumer is not None
        tp = TopicPartition(stream.topic, 0)
        async with asyncio.timeout(60):
            while await market.consumer.position(tp) < end:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the batch applied (no write) before the check
        assert await redis_client.hget(key, "next_offset") == stored
        assert BATCHES._value.get() == batches

        await stream.produce(20)
        async with asyncio.timeout(60):
            while await stream.aggregated_seq(redis_client, "btc-usdt") < stream.seq["btc-usdt"]:
                await asyncio.sleep(0.05)
    assert int(await redis_client.hget(key, "next_offset")) > end
    state = candles.decode_state(await redis_client.hget(key, "state"))
    expected = stream.expected("btc-usdt")
    assert all(expected[c.interval, c.open_time] == c for c in state.current.values())


async def produce_book_deltas(stream: Stream, n: int) -> int:
    """``n`` BOOK_DELTA events of btc-usdt in one transaction; the partition's end after."""
    producer = AIOKafkaProducer(
        bootstrap_servers=stream.bootstrap, transactional_id=f"test-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for _ in range(n):
                seq = stream.seq["btc-usdt"] = stream.seq["btc-usdt"] + 1
                delta = BookDelta("BTCUSDT", seq, 0, stream.ts["btc-usdt"], Side.BUY, 1, 1)
                sent = await producer.send(stream.topic, encode(delta), partition=0)
        return (await sent).offset + 1
    finally:
        await producer.stop()

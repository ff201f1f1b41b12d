"""The engine's Redis publisher on a real Redis: pub/sub messages built from the events'
Kafka encodings are the very bytes ``encode_events`` gives (what the gateway and the
clients decode)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from cex.bench.engine_service import workload
from cex.core.events import BookDelta, Event, Side, TradeExecuted, encode
from cex.core.matching import MatchingEngine
from cex.engine import metrics
from cex.engine import publisher as publisher_module
from cex.engine.publisher import Committed, RedisPublisher
from cex.infra import redis as keys
from tests.engine.harness import MARKET, market_config


async def _messages(pubsub: aioredis.client.PubSub, count: int) -> dict[str, list[bytes]]:
    got: dict[str, list[bytes]] = {}
    async with asyncio.timeout(10):
        while sum(len(v) for v in got.values()) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                got.setdefault(message["channel"].decode(), []).append(message["data"])
    return got


@pytest.mark.parametrize("per_call", [1000, 2], ids=["one-call", "calls-of-2-messages"])
async def test_pubsub_messages_from_the_kafka_encodings_are_the_events_encoding(
    redis_client: aioredis.Redis,
    redis_prefix: str,
    per_call: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also when a batch's messages take several script calls (a backlog's big batch)."""
    monkeypatch.setattr(publisher_module, "_MESSAGES_PER_CALL", per_call)
    config = market_config()
    engine = MatchingEngine(config)
    events: list[Event] = []
    for offset, command in enumerate(workload(config, 200, seed=8)):
        events += engine.apply(command, offset)
    trades = [e for e in events if type(e) is TradeExecuted]
    assert trades
    user = trades[0].taker_user_id
    mine = [
        e
        for e in events
        if user
        in {
            getattr(e, "user_id", None),
            getattr(e, "maker_user_id", None),
            getattr(e, "taker_user_id", None),
        }
    ]

    pubsub = redis_client.pubsub()
    trades_channel = keys.trades_channel(redis_prefix, MARKET)
    user_channel = keys.user_channel(redis_prefix, user)
    await pubsub.subscribe(trades_channel, user_channel)
    publisher = RedisPublisher(
        redis_client, redis_prefix, MARKET, config.symbol, book_seq=0, bids=[], asks=[]
    )
    publisher.start()
    try:
        # Once from the Kafka encodings, once encoding the events itself: the same bytes.
        await publisher.submit(Committed(events, None, [encode(e) for e in events]))
        await publisher.submit(Committed(events[:0], None, []))
        await publisher.submit(Committed(events))
        got = await _messages(pubsub, 4)
    finally:
        await publisher.close()
        await pubsub.aclose()
    assert got[trades_channel] == [keys.encode_events(trades)] * 2
    assert got[user_channel] == [keys.encode_events(mine)] * 2


def _book_of(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], seq: int
) -> dict[bytes, bytes]:
    book = {b"seq": str(seq).encode()}
    book |= {f"b:{price}".encode(): str(qty).encode() for price, qty in bids}
    book |= {f"a:{price}".encode(): str(qty).encode() for price, qty in asks}
    return book


async def test_a_redis_that_lost_its_scripts_still_gets_every_batch(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """A batch is one script call (book delta and messages); a Redis that lost its scripts
    (restarted; here SCRIPT FLUSH) gets the script again on the next call: no error, the
    book key ends equal to the engine's book, every batch's depth message is published."""
    config = market_config()
    engine = MatchingEngine(config)
    batches: list[list[Event]] = []
    commands = list(workload(config, 300, seed=3))
    for start in range(0, 300, 100):
        batch: list[Event] = []
        for offset in range(start, start + 100):
            batch += engine.apply(commands[offset], offset)
        batches.append(batch)
    book = keys.book_key(redis_prefix, MARKET)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.depth_channel(redis_prefix, MARKET))
    publisher = RedisPublisher(
        redis_client, redis_prefix, MARKET, config.symbol, book_seq=0, bids=[], asks=[]
    )
    await publisher.write_book()
    metrics.REDIS_ERRORS.labels(MARKET)  # the series exists from here

    def errors() -> float | None:
        return REGISTRY.get_sample_value("cex_engine_redis_errors_total", {"market": MARKET})

    errors_before = errors()
    publisher.start()
    try:
        await publisher.submit(Committed(batches[0]))
        async with asyncio.timeout(10):
            while await redis_client.hget(book, "seq") != str(publisher.book_seq).encode():
                await asyncio.sleep(0.01)
        assert publisher.book_seq > 0
        await redis_client.script_flush()
        for batch in batches[1:]:
            await publisher.submit(Committed(batch))
        depth_messages = await _messages(pubsub, 3)
    finally:
        await publisher.close()
        await pubsub.aclose()
    last_delta = max(e.seq for e in batches[2] if isinstance(e, BookDelta))
    assert await redis_client.hgetall(book) == _book_of(
        engine.depth(Side.BUY), engine.depth(Side.SELL), last_delta
    )
    assert len(next(iter(depth_messages.values()))) == 3
    assert await redis_client.script_exists(publisher._publish_batch.sha) == [True]
    assert not publisher._book_dirty
    assert errors() == errors_before  # a missing script is no Redis error

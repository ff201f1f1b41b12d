"""The engine's Redis publisher on a real Redis: pub/sub messages built from the events'
Kafka encodings are the very bytes ``encode_events`` gives (what the gateway and the
clients decode)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from cex.bench.engine_service import workload
from cex.core.events import Event, TradeExecuted, encode
from cex.core.matching import MatchingEngine
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


async def test_pubsub_messages_from_the_kafka_encodings_are_the_events_encoding(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
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

"""Smoke tests on the real Redis: pub/sub delivers to a subscriber, keys are isolated."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis


async def test_pubsub_round_trip(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    channel = f"{redis_prefix}:trades"
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    try:
        confirmation = await pubsub.get_message(timeout=5)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"

        receivers = await redis_client.publish(channel, b"trade-1")
        assert receivers == 1

        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        assert message["channel"] == channel.encode()
        assert message["data"] == b"trade-1"
    finally:
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()


async def test_prefixed_keys_round_trip(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    key = f"{redis_prefix}:snapshot:btc-usdt"
    await redis_client.set(key, b"\x00\x01state")
    assert await redis_client.get(key) == b"\x00\x01state"
    assert await redis_client.exists(f"{redis_prefix}:snapshot:eth-usdt") == 0

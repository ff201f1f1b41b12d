"""After its commit, settlement publishes each user's events (account channel) and their
user data update (events, orders and balances as committed), in that order."""

from __future__ import annotations

import asyncio
import uuid

from cex.core.events import TradeExecuted
from cex.infra import redis as keys
from cex.settlement.service import SettlementSettings, SettlementWorker
from tests.settlement.harness import Exchange, running
from tests.settlement.test_refusals import BTC, USDT


async def test_each_user_hears_their_settled_events_orders_and_balances(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    sell = await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                          timeInForce="GTC", quantity="0.02", price="30000")  # fmt: skip
    buy = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                         timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match_and_publish()

    infra = ex.infra.model_copy(update={"redis_prefix": f"test-{uuid.uuid4().hex[:8]}"})
    prefix = infra.redis_prefix
    redis = keys.client(infra)
    pubsub = redis.pubsub()
    channels = [
        keys.account_channel(prefix, alice), keys.userdata_channel(prefix, alice),
        keys.account_channel(prefix, bob), keys.userdata_channel(prefix, bob),
    ]  # fmt: skip
    await pubsub.subscribe(*channels)
    try:
        worker = SettlementWorker(infra, SettlementSettings(poll_ms=50))
        async with running(worker):
            await ex.wait_settled()
        received: list[tuple[str, bytes]] = []
        async with asyncio.timeout(10):
            while len(received) < 4:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    received.append((message["channel"].decode(), message["data"]))
    finally:
        await pubsub.aclose()
        await redis.aclose()

    by_channel = dict(received)
    order = [channel for channel, _ in received]
    for user in (alice, bob):
        # The events first (RESULT/FULL waiters), then the user data stream's update.
        assert order.index(keys.account_channel(prefix, user)) < order.index(
            keys.userdata_channel(prefix, user)
        )
    alice_events = keys.decode_events(by_channel[keys.account_channel(prefix, alice)])
    trades = [e for e in alice_events if isinstance(e, TradeExecuted)]
    assert [(t.maker_order_id, t.taker_order_id) for t in trades] == [(sell, buy)]

    update = keys.decode_user_data(by_channel[keys.userdata_channel(prefix, alice)])
    assert isinstance(update, keys.UserUpdate)
    assert update.events == alice_events
    assert {o.order_id: o.status for o in update.orders} == {buy: "FILLED"}
    stored = {asset: await ex.balance(alice, asset) for asset in ("BTC", "USDT")}
    assert {b.asset: (b.available, b.locked) for b in update.balances} == stored

    bob_update = keys.decode_user_data(by_channel[keys.userdata_channel(prefix, bob)])
    assert isinstance(bob_update, keys.UserUpdate)
    assert {o.order_id: o.status for o in bob_update.orders} == {sell: "PARTIALLY_FILLED"}
    assert [type(e) for e in bob_update.events if isinstance(e, TradeExecuted)] == [TradeExecuted]

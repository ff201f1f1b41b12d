"""Settlement's pipeline (cex.settlement.service): a reader per market's partition feeding
one bounded buffer, one transaction at a time, the publisher behind it in commit order."""

from __future__ import annotations

import asyncio
import uuid

from cex.audit.check import run as audit
from cex.core.events import Event, TradeExecuted
from cex.infra import redis as keys
from cex.settlement.service import SettlementSettings, SettlementWorker
from tests.settlement.harness import Exchange, running
from tests.settlement.test_refusals import BTC, USDT

ETH = 100_000_000  # the ledger's ETH units (examples/eth-usdt.yaml: basePrecision 8)


async def test_tiny_batches_over_two_busy_markets_settle_and_publish_in_order(
    ex: Exchange,
) -> None:
    """Batches of 3 events (a buffer of 6) over both markets: the readers stop and resume
    on the bound many times; every event is applied once in seq order, and each user hears
    their events in the order the engine emitted them, batch after batch."""
    alice = await ex.user("alice@example.com", USDT=100_000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC, ETH=10 * ETH)
    for i in range(6):
        await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                       timeInForce="GTC", quantity="0.01", price=str(30000 + i))  # fmt: skip
        await ex.place(user_id=bob, symbol="ETHUSDT", side="SELL", type="LIMIT",
                       timeInForce="GTC", quantity="0.1", price=str(2000 + i))  # fmt: skip
    await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="IOC", quantity="0.06", price="30010")  # fmt: skip
    await ex.place(user_id=alice, symbol="ETHUSDT", side="BUY", type="LIMIT",
                   timeInForce="IOC", quantity="0.6", price="2010")  # fmt: skip
    await ex.match_and_publish()
    assert sum(isinstance(e, TradeExecuted) for e in ex.events) == 12

    infra = ex.infra.model_copy(update={"redis_prefix": f"test-{uuid.uuid4().hex[:8]}"})
    redis = keys.client(infra)
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.account_channel(infra.redis_prefix, alice))
    try:
        worker = SettlementWorker(infra, SettlementSettings(poll_ms=20, batch_max=3))
        async with running(worker):
            await ex.wait_settled()
        heard: list[Event] = []
        mine = [e for e in ex.events if alice in _users(e)]
        async with asyncio.timeout(10):
            while len(heard) < len(mine):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    heard.extend(keys.decode_events(message["data"]))
    finally:
        await pubsub.aclose()
        await redis.aclose()

    total = sum(1 for _ in ex.produced)
    assert worker.events_seen == total
    assert worker.last_result.skipped == 0
    # Per market, alice heard her events in the engine's order, each once.
    for market in ("BTCUSDT", "ETHUSDT"):
        assert [e for e in heard if e.market == market] == [e for e in mine if e.market == market]
    assert await ex.pool.fetchval("SELECT count(*) FROM trades") == 12
    snapshots = [engine.snapshot() for engine in ex.engines.values()]
    assert await audit(ex.dsn, snapshots) == []


def _users(event: Event) -> set[int]:
    return set(keys.events_by_user([event]))

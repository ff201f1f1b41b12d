"""The lifecycle worker and settlement never deadlock (one lock order:
`cex.infra.transactions`), on real Postgres.

The race: a GTT order trades at the moment its expiry comes due. Settlement locks the order,
then its balances, then writes the trade, whose foreign key takes a share lock on the
market row. The lifecycle worker used to lock the market first (to number the ORDER_EXPIRE
command), then the order: each waited for the other and Postgres killed one of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cex.core.events import Side
from cex.lifecycle.service import send_due_expiries
from cex.settlement.batch import Delivered, Settler, load_fee_user, load_markets
from tests.fixtures import STORE_CLOCK_MS, NewTopicFactory
from tests.settlement.harness import Exchange, exchange

BTC = 100_000_000
USDT = 1_000_000


@pytest.fixture
async def ex(
    exchange_dsn: str, kafka_bootstrap: str, new_topic: NewTopicFactory
) -> AsyncIterator[Exchange]:
    topic = await new_topic("executions", partitions=2)
    async with exchange(exchange_dsn, kafka_bootstrap, topic) as the_exchange:
        yield the_exchange


async def waiting_for_locks(conn: asyncpg.Connection, count: int) -> None:
    """Until `count` backends of this database wait for a lock."""
    async with asyncio.timeout(10):
        while (
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            < count
        ):
            await asyncio.sleep(0.01)


async def test_gtt_expiry_and_settling_its_trade_do_not_deadlock(ex: Exchange) -> None:
    seller = await ex.user("seller@example.com", BTC=BTC)
    buyer = await ex.user("buyer@example.com", USDT=10_000 * USDT)
    gtt = await ex.place(user_id=seller, symbol="BTCUSDT", side="SELL", type="LIMIT",
                         timeInForce="GTT", goodTillDate=STORE_CLOCK_MS + 1_000,
                         quantity="0.02", price="30000")  # fmt: skip
    await ex.match()
    opened = [Delivered(0, i, e) for i, e in enumerate(ex.events)]
    await ex.place(user_id=buyer, symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match()
    trade = [Delivered(0, len(opened) + i, e) for i, e in enumerate(ex.events[len(opened) :])]

    settlement = await asyncpg.connect(ex.dsn)
    gate = await asyncpg.connect(ex.dsn)
    try:
        settler = Settler(await load_markets(settlement), await load_fee_user(settlement))
        await settler.apply(settlement, opened)  # the GTT order rests, NEW

        # Hold settlement between its order locks and its balance locks, so that the
        # lifecycle pass starts while settlement holds the order.
        held = gate.transaction()
        await held.start()
        await gate.execute(
            "SELECT 1 FROM balances WHERE user_id = $1 AND asset = 'BTC' FOR UPDATE", seller
        )
        settling = asyncio.create_task(settler.apply(settlement, trade))
        await waiting_for_locks(gate, 1)
        expiring = asyncio.create_task(send_due_expiries(ex.pool, STORE_CLOCK_MS + 5_000))
        await waiting_for_locks(gate, 2)
        await held.rollback()

        settled, expired = await asyncio.gather(settling, expiring, return_exceptions=True)
    finally:
        await settlement.close()
        await gate.close()

    assert not isinstance(settled, BaseException), settled
    assert not isinstance(expired, BaseException), expired
    assert settled.trades == 1
    # The order, partly filled, is still due: its expiry goes through the engine.
    assert expired == 1
    row = await ex.pool.fetchrow("SELECT status, side, expire_requested FROM orders WHERE id = $1",
                                 gtt)  # fmt: skip
    assert (row["status"], Side(row["side"]), row["expire_requested"]) == (
        "PARTIALLY_FILLED", Side.SELL, True,
    )  # fmt: skip

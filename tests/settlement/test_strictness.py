"""Settlement's strictness: a terminal order never keeps funds locked (but for an amend the
engine has not seen), and the registry's market status follows the engine's."""

from __future__ import annotations

import pytest

from cex.audit.check import run as audit
from cex.core.events import MarketStatus, MarketStatusChanged
from cex.settlement.batch import Delivered
from cex.settlement.errors import InconsistentEvent
from cex.trading.validation import AmendRequest, validate_amend
from tests.settlement.harness import Exchange
from tests.settlement.test_refusals import cancelled, opened, settler, snapshot_of_db

BTC = 100_000_000
USDT = 1_000_000


async def test_a_terminal_event_leaving_funds_locked_is_refused(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    order = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                           timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    async with ex.pool.acquire() as conn:
        s = await settler(conn)
        await s.apply(conn, [Delivered(0, 0, opened(1, order, alice, 300 * USDT))])
        before = await snapshot_of_db(conn)
        # Cancelled, but only 200 of its 300 USDT come back: 100 would stay locked forever.
        with pytest.raises(InconsistentEvent, match="still locked"):
            await s.apply(conn, [Delivered(0, 1, cancelled(2, order, alice, 200 * USDT))])
        assert await snapshot_of_db(conn) == before
        await s.apply(conn, [Delivered(0, 1, cancelled(2, order, alice, 300 * USDT))])
    assert await ex.balance(alice, "USDT") == (1000 * USDT, 0)
    assert await audit(ex.dsn) == []


async def test_an_amend_the_engine_never_saw_keeps_its_lock_until_refused(
    ex: Exchange,
) -> None:
    """The one legitimate leftover: an amend's additional lock the engine had not seen when
    the order filled; the engine refuses the amend and its refusal returns the lock."""
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    bob = await ex.user("bob@example.com", BTC=BTC)
    order = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                           timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match()
    opening = list(ex.events)
    async with ex.pool.acquire() as conn:
        s = await settler(conn)
        await s.apply(conn, [Delivered(0, i, e) for i, e in enumerate(opening)])
        # Bob fills her order in the engine; settlement has not seen it when she amends.
        await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                       timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
        await ex.match()
        request = AmendRequest(user_id=alice, symbol="BTCUSDT", orderId=order, newQty="0.02")
        amended = await ex.store.amend(
            validate_amend(request, ex.store.market_for_symbol("BTCUSDT"))
        )
        assert amended["additional_locked"] == 300 * USDT
        await ex.match()  # the engine refuses the amend of a filled order
        rest = ex.events[len(opening) :]
        deliveries = [Delivered(0, len(opening) + i, e) for i, e in enumerate(rest)]
        await s.apply(conn, deliveries)
    assert await ex.pool.fetchval("SELECT status FROM orders WHERE id = $1", order) == "FILLED"
    assert await ex.pool.fetchval("SELECT locked_remaining FROM orders WHERE id = $1", order) == 0
    assert await ex.balance(alice, "USDT") == (700 * USDT, 0)
    assert await audit(ex.dsn) == []


async def test_the_market_status_follows_the_engine(ex: Exchange) -> None:
    def status(seq: int, value: MarketStatus) -> Delivered:
        return Delivered(0, seq - 1, MarketStatusChanged("BTCUSDT", seq, seq, 0, value))

    async def stored(name: str = "btc-usdt") -> str:
        return str(await ex.pool.fetchval("SELECT status FROM markets WHERE name = $1", name))

    async with ex.pool.acquire() as conn:
        s = await settler(conn)
        await s.apply(conn, [status(1, MarketStatus.HALTED)])
        assert await stored() == "HALTED"
        await s.apply(conn, [status(2, MarketStatus.TRADING), status(3, MarketStatus.CANCEL_ONLY)])
        assert await stored() == "CANCEL_ONLY"
        assert await stored("eth-usdt") == "TRADING"
        # A market removed from the cluster stays DELETED while its engine drains.
        await ex.pool.execute("UPDATE markets SET status = 'DELETED' WHERE name = 'btc-usdt'")
        await s.apply(conn, [status(4, MarketStatus.CANCEL_ONLY)])
        assert await stored() == "DELETED"

"""Self-trade prevention through settlement: MATCH_PREVENTED becomes exactly one
``prevented_matches`` row per event, moves no money, survives redelivery unchanged, and a
prevented match that contradicts the orders is refused.

btc-usdt (examples/): tick 0.1 USDT (30000 = 300_000 ticks), lot 0.00001 BTC (0.01 =
1_000 lots).
"""

from __future__ import annotations

import pytest

from cex.audit.check import run as audit
from cex.core.events import MatchPrevented, StpMode
from cex.settlement.batch import Delivered, Settler, load_fee_user, load_markets
from cex.settlement.errors import InconsistentEvent, UnknownOrder
from tests.settlement.harness import Exchange

BTC = 100_000_000
USDT = 1_000_000


async def _rows(ex: Exchange) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in await ex.pool.fetch(
            "SELECT market, prevented_match_id, user_id, taker_order_id, maker_order_id, price,"
            " prevented_qty, stp_mode, ts FROM prevented_matches ORDER BY 1, 2"
        )
    ]


async def test_each_prevented_match_is_stored_once_and_moves_no_money(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", BTC=1 * BTC, USDT=10_000 * USDT)

    def order(side: str, qty: str, price: str, stp: str) -> dict[str, str | int]:
        return dict(user_id=alice, symbol="BTCUSDT", side=side, type="LIMIT",
                    timeInForce="GTC", quantity=qty, price=price,
                    selfTradePreventionMode=stp)  # fmt: skip

    ask1 = await ex.place(**order("SELL", "0.01", "30000", "NONE"))
    # EXPIRE_TAKER: the buy expires, ask1 (1000 lots) stays.
    t1 = await ex.place(**order("BUY", "0.005", "30000", "EXPIRE_TAKER"))
    ask2 = await ex.place(**order("SELL", "0.02", "30010", "NONE"))
    # DECREMENT: 500 lots leave both; the buy reaches 0 and expires, ask1 keeps 500.
    t2 = await ex.place(**order("BUY", "0.005", "30000", "DECREMENT"))
    # EXPIRE_MAKER: ask1 (500 left) then ask2 (2000) expire; the buy rests.
    t3 = await ex.place(**order("BUY", "0.03", "30010", "EXPIRE_MAKER"))
    records = await ex.match_and_publish()
    await ex.settle()

    prevented = [e for e in ex.events if isinstance(e, MatchPrevented)]
    assert [(e.taker_order_id, e.maker_order_id, e.price, e.prevented_qty, e.stp_mode)
            for e in prevented] == [
        (t1, ask1, 300_000, 1_000, StpMode.EXPIRE_TAKER),
        (t2, ask1, 300_000, 500, StpMode.DECREMENT),
        (t3, ask1, 300_000, 500, StpMode.EXPIRE_MAKER),
        (t3, ask2, 300_100, 2_000, StpMode.EXPIRE_MAKER),
    ]  # fmt: skip
    expected = [
        ("btc-usdt", e.seq, alice, e.taker_order_id, e.maker_order_id, e.price,
         e.prevented_qty, e.stp_mode.value, e.ts)
        for e in prevented
    ]  # fmt: skip
    assert await _rows(ex) == expected
    ids = [ask1, ask2, t1, t2, t3]
    statuses = dict(await ex.pool.fetch("SELECT id, status FROM orders WHERE id = ANY($1)", ids))
    assert statuses == {ask1: "EXPIRED", ask2: "EXPIRED", t1: "EXPIRED", t2: "EXPIRED",
                        t3: "NEW"}  # fmt: skip
    # No money moved: only t3's 0.03 × 30010 is still locked, nothing traded.
    assert await ex.balance(alice, "BTC") == (1 * BTC, 0)
    assert await ex.balance(alice, "USDT") == (10_000 * USDT - 900_300_000, 900_300_000)
    assert await ex.pool.fetchval("SELECT count(*) FROM trades") == 0

    # Redelivered, twice, then settlement restarted from offset 0: nothing changes.
    await ex.publish(records)
    await ex.publish(records[: len(records) // 2])
    await ex.pool.execute("UPDATE settlement_progress SET next_offset = 0")
    worker = await ex.settle()
    assert worker.last_result.applied == 0
    assert await _rows(ex) == expected
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []


async def test_a_contradicting_prevented_match_is_refused(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", BTC=1 * BTC, USDT=1000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    ask = await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                         timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    bid = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                         timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    own_ask = await ex.place(user_id=alice, symbol="BTCUSDT", side="SELL", type="LIMIT",
                             timeInForce="GTC", quantity="0.01", price="31000")  # fmt: skip

    def prevented(taker: int, maker: int, user: int) -> Delivered:
        event = MatchPrevented("BTCUSDT", 1, 0, 0, taker, user, maker, user, 300_000, 1_000,
                               StpMode.EXPIRE_TAKER)  # fmt: skip
        return Delivered(0, 0, event)

    async with ex.pool.acquire() as conn:
        s = Settler(await load_markets(conn), await load_fee_user(conn))
        with pytest.raises(UnknownOrder):
            await s.apply(conn, [prevented(bid, ask + 1000, alice)])
        with pytest.raises(InconsistentEvent):  # the maker is another user's order
            await s.apply(conn, [prevented(bid, ask, alice)])
        with pytest.raises(InconsistentEvent):  # both sell: no match to prevent
            await s.apply(conn, [prevented(own_ask, own_ask, alice)])
        assert await ex.settled_seq("btc-usdt") == 0
    assert await _rows(ex) == []

"""Settlement end to end on the real stack: trading API → engine core → Kafka → settlement.

btc-usdt (examples/): BTC has 8 decimals, USDT 6; tick 0.1 USDT, lot 0.00001 BTC;
maker and taker fees 0.1 %, rounded up, in the asset received.
"""

from __future__ import annotations

import pytest

from cex.audit.check import run as audit
from cex.core.events import TradeExecuted
from tests.settlement.harness import Exchange

BTC = 100_000_000  # satoshi per BTC
USDT = 1_000_000  # micro-USDT per USDT


def fee(amount: int) -> int:
    return -(-amount // 1000)  # 0.1 %, rounded up


#: Batches written in one statement (a few rows), or by COPY (from 0 entries on).
WRITES = pytest.mark.parametrize("copy_from_entries", [1000, 0], ids=["statement", "copy"])


@WRITES
async def test_a_full_flow_settles_exactly_and_passes_the_audit(
    ex: Exchange, copy_from_entries: int
) -> None:
    alice = await ex.user("alice@example.com", USDT=10_000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    fee_user = await ex.pool.fetchval("SELECT id FROM users WHERE kind = 'FEE'")

    # Bob offers 0.1 BTC at 30000 and 0.1 at 30010; Alice buys 0.15 up to 30010 (taker),
    # then rests 0.05 more at 29000 and cancels it; Bob cancels his rest.
    ask1 = await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                          timeInForce="GTC", quantity="0.1", price="30000")  # fmt: skip
    ask2 = await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                          timeInForce="GTC", quantity="0.1", price="30010")  # fmt: skip
    take = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                          timeInForce="GTC", quantity="0.15", price="30010")  # fmt: skip
    rest = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                          timeInForce="GTC", quantity="0.05", price="29000")  # fmt: skip
    await ex.match_and_publish()
    await ex.settle(copy_from_entries=copy_from_entries)

    trades = [e for e in ex.events if isinstance(e, TradeExecuted)]
    assert [(t.price, t.qty) for t in trades] == [(300_000, 10_000), (300_100, 5_000)]
    statuses = dict(
        await ex.pool.fetch("SELECT id, status FROM orders WHERE id = ANY($1)", [ask1, ask2, take])
    )
    assert statuses == {ask1: "FILLED", ask2: "PARTIALLY_FILLED", take: "FILLED"}

    await ex.cancel(alice, "BTCUSDT", rest)
    await ex.cancel(bob, "BTCUSDT", ask2)
    await ex.match_and_publish()
    await ex.settle(copy_from_entries=copy_from_entries)

    # Alice paid 0.1 × 30000 + 0.05 × 30010 and got 0.15 BTC minus the taker fee; her
    # limit at 30010 for the first 0.1 filled at 30000: the saving came back on FILLED.
    paid = 3000 * USDT + 1500_500_000
    got = 15_000_000
    assert await ex.balance(alice, "USDT") == (10_000 * USDT - paid, 0)
    assert await ex.balance(alice, "BTC") == (got - fee(10_000_000) - fee(5_000_000), 0)
    assert await ex.balance(bob, "BTC") == (1 * BTC - got, 0)
    assert await ex.balance(bob, "USDT") == (
        3000 * USDT - fee(3000 * USDT) + 1500_500_000 - fee(1500_500_000),
        0,
    )
    assert await ex.balance(fee_user, "USDT") == (fee(3000 * USDT) + fee(1500_500_000), 0)
    assert await ex.balance(fee_user, "BTC") == (fee(10_000_000) + fee(5_000_000), 0)

    rows = await ex.pool.fetch(
        "SELECT id, status, filled_qty, cumulative_quote, locked_remaining, reason FROM orders"
        " ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        (ask1, "FILLED", 10_000, 3000 * USDT, 0, None),
        (ask2, "CANCELED", 5_000, 1500_500_000, 0, "USER"),
        (take, "FILLED", 15_000, paid, 0, None),
        (rest, "CANCELED", 0, 0, 0, "USER"),
    ]
    assert await ex.pool.fetchval("SELECT count(*) FROM trades") == 2
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []


@WRITES
async def test_a_redelivered_batch_changes_nothing(ex: Exchange, copy_from_entries: int) -> None:
    alice = await ex.user("alice@example.com", USDT=10_000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    for i in range(20):
        await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                       timeInForce="GTC", quantity="0.001", price=str(30000 + i))  # fmt: skip
    await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="MARKET",
                   quoteOrderQty="400")  # fmt: skip
    records = await ex.match_and_publish()
    await ex.settle(copy_from_entries=copy_from_entries)
    before = await _state(ex)

    # The same events again, twice, in new Kafka transactions (a redelivery from the
    # broker's point of view), then settlement restarted from scratch on them.
    await ex.publish(records)
    await ex.publish(records[: len(records) // 2])
    await ex.pool.execute("UPDATE settlement_progress SET next_offset = 0")
    worker = await ex.settle(copy_from_entries=copy_from_entries)

    assert await _state(ex) == before
    assert worker.last_result.applied == 0
    assert await audit(ex.dsn) == []


async def _state(ex: Exchange) -> dict[str, object]:
    return {
        "balances": [tuple(r) for r in await ex.pool.fetch(
            "SELECT user_id, asset, available, locked FROM balances ORDER BY 1, 2")],
        "orders": [tuple(r) for r in await ex.pool.fetch(
            "SELECT id, status, filled_qty, cumulative_quote, locked_remaining FROM orders"
            " ORDER BY id")],
        "trades": await ex.pool.fetchval("SELECT count(*) FROM trades"),
        "entries": await ex.pool.fetchval("SELECT count(*) FROM ledger_entries"),
        "progress": [tuple(r) for r in await ex.pool.fetch(
            "SELECT market, last_seq FROM settlement_progress")],
    }  # fmt: skip

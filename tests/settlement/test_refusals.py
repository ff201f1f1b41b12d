"""What settlement refuses (and leaves untouched), and what `cex check` catches."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from cex.audit.check import run as audit
from cex.core.errors import InvalidTransition
from cex.core.events import (
    CancelReason,
    OrderCancelled,
    OrderOpened,
    OrderStatus,
    Side,
)
from cex.settlement.batch import Delivered, Settler, load_fee_user, load_markets
from cex.settlement.errors import InconsistentEvent, SequenceGap, UnknownOrder
from tests.settlement.harness import Exchange

BTC = 100_000_000
USDT = 1_000_000


async def snapshot_of_db(conn: asyncpg.Connection) -> list[object]:
    return [
        [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in ("balances", "settlement_progress", "trades")
    ] + [
        [tuple(r) for r in await conn.fetch(
            "SELECT id, status, locked_remaining, filled_qty FROM orders ORDER BY id")],
        await conn.fetchval("SELECT count(*) FROM ledger_entries"),
    ]  # fmt: skip


async def settler(conn: asyncpg.Connection) -> Settler:
    return Settler(await load_markets(conn), await load_fee_user(conn))


def opened(seq: int, order_id: int, user_id: int, locked: int) -> OrderOpened:
    return OrderOpened(
        "BTCUSDT", seq, seq, 0, order_id, user_id, Side.BUY, OrderStatus.NEW, 0, 10, locked, 0,
        "c", 300_000, True,
    )  # fmt: skip


def cancelled(seq: int, order_id: int, user_id: int, released: int) -> OrderCancelled:
    return OrderCancelled(
        "BTCUSDT", seq, seq, 0, order_id, user_id, Side.BUY, OrderStatus.CANCELED, 0, 0, 0,
        released, CancelReason.USER,
    )  # fmt: skip


async def test_an_impossible_transition_is_refused_and_changes_nothing(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    order = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                           timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    locked = 300 * USDT
    async with ex.pool.acquire() as conn:
        s = await settler(conn)
        before = await snapshot_of_db(conn)

        # PENDING → CANCELED skips the engine's acceptance: not in the table.
        with pytest.raises(InvalidTransition):
            await s.apply(conn, [Delivered(0, 0, cancelled(1, order, alice, locked))])
        assert await snapshot_of_db(conn) == before

        # Opened then cancelled is fine; a second cancel of a CANCELED order is refused,
        # and the whole batch around it is rolled back.
        await s.apply(
            conn,
            [
                Delivered(0, 0, opened(1, order, alice, locked)),
                Delivered(0, 1, cancelled(2, order, alice, locked)),
            ],
        )
        after_cancel = await snapshot_of_db(conn)
        with pytest.raises(InvalidTransition):
            await s.apply(conn, [Delivered(0, 2, cancelled(3, order, alice, 0))])
        assert await snapshot_of_db(conn) == after_cancel
    assert await ex.balance(alice, "USDT") == (1000 * USDT, 0)
    assert await audit(ex.dsn) == []


async def test_gaps_unknown_orders_and_contradictions_are_refused(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    order = await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                           timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    async with ex.pool.acquire() as conn:
        s = await settler(conn)
        before = await snapshot_of_db(conn)
        with pytest.raises(SequenceGap):
            await s.apply(conn, [Delivered(0, 0, opened(2, order, alice, 300 * USDT))])
        with pytest.raises(UnknownOrder):
            await s.apply(conn, [Delivered(0, 0, opened(1, order + 1000, alice, 0))])
        with pytest.raises(InconsistentEvent):  # another user's order
            await s.apply(conn, [Delivered(0, 0, opened(1, order, alice + 1, 300 * USDT))])
        with pytest.raises(InconsistentEvent):  # the engine claims more locked than there is
            await s.apply(conn, [Delivered(0, 0, opened(1, order, alice, 301 * USDT))])
        with pytest.raises(InconsistentEvent):  # released more than locked
            await s.apply(
                conn,
                [
                    Delivered(0, 0, opened(1, order, alice, 300 * USDT)),
                    Delivered(0, 1, cancelled(2, order, alice, 301 * USDT)),
                ],
            )
        assert await snapshot_of_db(conn) == before


async def test_check_detects_a_corrupted_balance(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=1000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                   timeInForce="GTC", quantity="0.02", price="30000")  # fmt: skip
    await ex.place(user_id=alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
                   timeInForce="GTC", quantity="0.01", price="30000")  # fmt: skip
    await ex.match_and_publish()
    await ex.settle()
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []
    assert _cex_check(ex.dsn).returncode == 0

    await ex.pool.execute(
        "UPDATE balances SET available = available + 1 WHERE user_id = $1 AND asset = 'BTC'",
        alice,
    )
    await ex.pool.execute(
        "UPDATE balances SET locked = locked - 5, available = available + 5"
        " WHERE user_id = $1 AND asset = 'BTC'",
        bob,
    )
    found = {v.check for v in await audit(ex.dsn)}
    assert found == {"conservation", "ledger-vs-balance", "locked-vs-orders"}
    result = _cex_check(ex.dsn)
    assert result.returncode == 1
    assert f"user {alice} BTC" in result.stdout
    assert "[locked-vs-orders]" in result.stdout


async def test_check_compares_the_engine_book_with_the_open_orders(ex: Exchange) -> None:
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    order = await ex.place(user_id=bob, symbol="BTCUSDT", side="SELL", type="LIMIT",
                           timeInForce="GTC", quantity="0.02", price="30000")  # fmt: skip
    await ex.match_and_publish()
    snapshot = ex.engines["btc-usdt"].snapshot()
    assert {v.check for v in await audit(ex.dsn, [snapshot])} == {"engine-book"}  # not settled
    await ex.settle()
    assert await audit(ex.dsn, [snapshot]) == []

    await ex.pool.execute("UPDATE orders SET filled_qty = 1 WHERE id = $1", order)
    violations = await audit(ex.dsn, [snapshot])
    assert [v.check for v in violations] == ["engine-book"]
    assert f"order {order}" in violations[0].detail


def _cex_check(dsn: str) -> subprocess.CompletedProcess[str]:
    cex = os.path.join(os.path.dirname(sys.executable), "cex")
    return subprocess.run(
        [cex, "check", "--dsn", dsn], capture_output=True, text=True, check=False, timeout=60
    )

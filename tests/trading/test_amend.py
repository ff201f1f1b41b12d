"""Amending an open order through the engine: the trading API locks what an increase needs
in the same transaction as the ORDER_AMEND command; the engine's answer, settled, leaves the
ledger balanced and the locked funds equal to what open orders need.

btc-usdt (examples/): tick 0.1 USDT, lot 0.00001 BTC, min notional 5 USDT; USDT has 6
decimals, BTC 8.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cex.audit.check import run as audit
from cex.core.events import CommandRejected, OrderAmend, OrderUpdated, UpdateCause, decode_command
from cex.trading.app import create_app
from cex.trading.errors import TradingError
from cex.trading.store import OrderStore
from cex.trading.validation import AmendRequest, OrderRequest, validate, validate_amend
from tests.fixtures import NewTopicFactory, funded_user
from tests.settlement.harness import Exchange, exchange

BTC = 100_000_000
USDT = 1_000_000


def limit(user_id: int, side: str, qty: str, price: str, cid: str | None = None) -> OrderRequest:
    return OrderRequest(
        user_id=user_id, symbol="BTCUSDT", side=side, type="LIMIT", newClientOrderId=cid,
        timeInForce="GTC", quantity=qty, price=price,
    )  # fmt: skip


async def place(store: OrderStore, request: OrderRequest) -> dict[str, object]:
    return await store.place(validate(request, store.market_for_symbol("BTCUSDT")))


async def place_open(store: OrderStore, request: OrderRequest) -> dict[str, object]:
    """Placed, and NEW as settlement makes it when the engine opened it."""
    row = await place(store, request)
    await store.pool.execute("UPDATE orders SET status = 'NEW' WHERE id = $1", row["id"])
    return row


async def amend(store: OrderStore, user_id: int, **fields: object) -> dict[str, object]:
    request = AmendRequest(user_id=user_id, symbol="BTCUSDT", **fields)  # type: ignore[arg-type]
    return await store.amend(validate_amend(request, store.market_for_symbol("BTCUSDT")))


async def balance(store: OrderStore, user_id: int, asset: str) -> tuple[int, int]:
    row = await store.pool.fetchrow(
        "SELECT available, locked FROM balances WHERE user_id = $1 AND asset = $2", user_id, asset
    )
    return (int(row["available"]), int(row["locked"]))


async def amend_commands(store: OrderStore) -> list[OrderAmend]:
    rows = await store.pool.fetch(
        "SELECT payload FROM outbox WHERE kind = 'ORDER_AMEND' ORDER BY command_seq"
    )
    commands = [decode_command(r["payload"]) for r in rows]
    assert all(isinstance(c, OrderAmend) for c in commands)
    return commands  # type: ignore[return-value]


# ---------------------------------------------------------------------- the store


async def test_an_increase_locks_the_difference_in_one_transaction(order_store: OrderStore) -> None:
    alice = await funded_user(order_store.pool, "alice@example.com", "USDT", 100 * USDT)
    order = await place_open(order_store, limit(alice, "BUY", "0.001", "10000", "a1"))  # 10 USDT

    row = await amend(order_store, alice, origClientOrderId="a1", newQty="0.002",
                      newPrice="12000")  # fmt: skip

    # 0.002 × 12000 = 24 USDT needed, 10 held: 14 more.
    assert row["additional_locked"] == 14 * USDT
    assert (row["locked"], row["locked_remaining"]) == (24 * USDT, 24 * USDT)
    assert await balance(order_store, alice, "USDT") == (76 * USDT, 24 * USDT)
    stored = await order_store.pool.fetchrow(
        "SELECT locked, locked_remaining, price, quantity FROM orders WHERE id = $1", order["id"]
    )
    # Price and quantity change when the engine's answer is settled, the funds now.
    assert tuple(int(v) for v in stored.values()) == (24 * USDT, 24 * USDT, 100_000, 100)
    [command] = await amend_commands(order_store)
    assert (command.order_id, command.user_id, command.new_quantity, command.new_price,
            command.additional_locked) == (order["id"], alice, 200, 120_000, 14 * USDT)  # fmt: skip
    entries = await order_store.pool.fetch(
        "SELECT j.reference, e.bucket, e.amount FROM ledger_entries e"
        " JOIN journals j ON j.id = e.journal_id WHERE j.reference LIKE 'amend:%'"
        " ORDER BY e.bucket"
    )
    assert [(e["bucket"], int(e["amount"])) for e in entries] == [
        ("AVAILABLE", -14 * USDT),
        ("LOCKED", 14 * USDT),
    ]
    seqs = [r[0] for r in await order_store.pool.fetch("SELECT command_seq FROM outbox ORDER BY 1")]
    assert seqs == [1, 2]


async def test_a_sell_increase_locks_base_and_a_decrease_locks_nothing(
    order_store: OrderStore,
) -> None:
    bob = await funded_user(order_store.pool, "bob@example.com", "BTC", 1 * BTC)
    order = await place_open(order_store, limit(bob, "SELL", "0.1", "30000"))

    up = await amend(order_store, bob, orderId=order["id"], newQty="0.25")
    assert up["additional_locked"] == 15_000_000
    assert await balance(order_store, bob, "BTC") == (75_000_000, 25_000_000)

    down = await amend(order_store, bob, orderId=order["id"], newQty="0.05")
    assert down["additional_locked"] == 0
    assert await balance(order_store, bob, "BTC") == (75_000_000, 25_000_000)  # engine releases
    assert [c.additional_locked for c in await amend_commands(order_store)] == [15_000_000, 0]


async def test_an_unfunded_amend_changes_nothing(order_store: OrderStore) -> None:
    carol = await funded_user(order_store.pool, "carol@example.com", "USDT", 15 * USDT)
    order = await place_open(order_store, limit(carol, "BUY", "0.001", "10000"))

    with pytest.raises(TradingError) as caught:
        await amend(order_store, carol, orderId=order["id"], newQty="0.002")  # 10 more, 5 free

    assert (caught.value.code, caught.value.msg) == (
        -2010,
        "Account has insufficient balance for requested action.",
    )
    assert await balance(order_store, carol, "USDT") == (5 * USDT, 10 * USDT)
    assert await amend_commands(order_store) == []
    assert (
        await order_store.pool.fetchval(
            "SELECT locked_remaining FROM orders WHERE id = $1", order["id"]
        )
        == 10 * USDT
    )
    assert (
        await order_store.pool.fetchval(
            "SELECT next_command_seq FROM markets WHERE name = 'btc-usdt'"
        )
        == 2
    )


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"newQty": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"newQty": "9000.00001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"newQty": "9" * 30}, -1013, "Filter failure: LOT_SIZE"),
        ({"newQty": "0.0001"}, -1013, "Filter failure: NOTIONAL"),  # 1 USDT < 5
        ({"newPrice": "10000.05"}, -1013, "Filter failure: PRICE_FILTER"),
        ({"newPrice": "9" * 30}, -1013, "Filter failure: PRICE_FILTER"),
        ({"newPrice": "922337203685477580.7", "newQty": "9000"}, -1013, "NOTIONAL"),
        ({"newQty": "0.001"}, -2038, "nothing to change"),
        ({}, -1102, "'newQty'"),
        ({"newQty": "-1"}, -1100, "'newQty'"),
    ],
)
async def test_bad_amends_get_a_specific_error_and_change_nothing(
    order_store: OrderStore, fields: dict[str, object], code: int, message: str
) -> None:
    dave = await funded_user(order_store.pool, "dave@example.com", "USDT", 100 * USDT)
    order = await place_open(order_store, limit(dave, "BUY", "0.001", "10000"))

    with pytest.raises(TradingError) as caught:
        await amend(order_store, dave, orderId=order["id"], **fields)

    assert caught.value.code == code
    assert message in caught.value.msg
    assert await amend_commands(order_store) == []
    assert await balance(order_store, dave, "USDT") == (90 * USDT, 10 * USDT)


async def test_only_the_users_own_open_order_in_that_market_can_be_amended(
    order_store: OrderStore,
) -> None:
    erin = await funded_user(order_store.pool, "erin@example.com", "USDT", 100 * USDT)
    mallory = await funded_user(order_store.pool, "mallory@example.com", "USDT", 100 * USDT)
    order = await place_open(order_store, limit(erin, "BUY", "0.001", "10000", "e1"))

    for user, fields, symbol in (
        (mallory, {"orderId": order["id"]}, "BTCUSDT"),
        (mallory, {"origClientOrderId": "e1"}, "BTCUSDT"),
        (erin, {"orderId": order["id"] + 1}, "BTCUSDT"),
    ):
        with pytest.raises(TradingError, match="Unknown order sent"):
            request = AmendRequest(user_id=user, symbol=symbol, newQty="0.002", **fields)  # type: ignore[arg-type]
            await order_store.amend(validate_amend(request, order_store.market_for_symbol(symbol)))
    with pytest.raises(TradingError, match="Unknown order sent"):
        request = AmendRequest(user_id=erin, symbol="ETHUSDT", origClientOrderId="e1",
                               newQty="0.02")  # fmt: skip
        await order_store.amend(validate_amend(request, order_store.market_for_symbol("ETHUSDT")))
    await order_store.pool.execute(
        "UPDATE orders SET status = 'CANCELED', locked_remaining = 0 WHERE id = $1", order["id"]
    )
    with pytest.raises(TradingError, match="Unknown order sent"):
        await amend(order_store, erin, orderId=order["id"], newQty="0.0005")
    assert await amend_commands(order_store) == []
    assert await balance(order_store, mallory, "USDT") == (100 * USDT, 0)


async def test_a_cancel_only_market_accepts_decreases_only(order_store: OrderStore) -> None:
    frank = await funded_user(order_store.pool, "frank@example.com", "USDT", 100 * USDT)
    order = await place_open(order_store, limit(frank, "BUY", "0.002", "10000"))
    await order_store.pool.execute(
        "UPDATE markets SET status = 'CANCEL_ONLY' WHERE name = 'btc-usdt'"
    )

    with pytest.raises(TradingError, match="Market is closed"):
        await amend(order_store, frank, orderId=order["id"], newQty="0.003")
    with pytest.raises(TradingError, match="Market is closed"):
        await amend(order_store, frank, orderId=order["id"], newPrice="9000")
    await amend(order_store, frank, orderId=order["id"], newQty="0.001")
    assert [c.new_quantity for c in await amend_commands(order_store)] == [100]
    assert await balance(order_store, frank, "USDT") == (80 * USDT, 20 * USDT)


async def test_the_http_amend_endpoint(order_store: OrderStore) -> None:
    gina = await funded_user(order_store.pool, "gina@example.com", "USDT", 100 * USDT)
    await place_open(order_store, limit(gina, "BUY", "0.001", "10000", "g1"))
    app = create_app(store=order_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://trading") as client:
        ok = await client.post(
            "/internal/v1/orders/amend",
            params={"user_id": gina, "symbol": "BTCUSDT", "origClientOrderId": "g1",
                    "newQty": "0.003"},
        )  # fmt: skip
        too_big_id = await client.post(
            "/internal/v1/orders/amend",
            params={"user_id": gina, "symbol": "BTCUSDT", "orderId": 2**63, "newQty": "0.003"},
        )
        looked_up = await client.get(
            "/internal/v1/order",
            params={"user_id": gina, "symbol": "BTCUSDT", "origClientOrderId": "g1"},
        )
    assert ok.status_code == 200
    body = ok.json()
    assert body["amendment"] == {"newQty": "0.00300", "newPrice": None,
                                 "additionalLocked": "20.000000"}  # fmt: skip
    assert (body["clientOrderId"], body["origQty"], body["lockedRemaining"]) == (
        "g1", "0.00100", "30.000000",
    )  # fmt: skip
    assert too_big_id.json()["code"] == -1100
    assert looked_up.json()["orderId"] == body["orderId"]


async def test_a_pending_order_may_be_reduced_but_not_increased(order_store: OrderStore) -> None:
    """A PENDING order's create may never reach the engine (the lifecycle worker expires
    it, releasing all it holds): an additional lock then would be released twice."""
    ivy = await funded_user(order_store.pool, "ivy@example.com", "USDT", 100 * USDT)
    order = await place(order_store, limit(ivy, "BUY", "0.002", "10000"))

    with pytest.raises(TradingError) as caught:
        await amend(order_store, ivy, orderId=order["id"], newQty="0.003")
    assert (caught.value.code, caught.value.msg) == (
        -2038,
        "Order amend rejected: the order is not open yet; retry.",
    )
    assert await balance(order_store, ivy, "USDT") == (80 * USDT, 20 * USDT)

    await amend(order_store, ivy, orderId=order["id"], newQty="0.001")
    assert [c.additional_locked for c in await amend_commands(order_store)] == [0]


# ---------------------------------------------------------------------- through the engine


@pytest.fixture
async def ex(
    exchange_dsn: str, kafka_bootstrap: str, new_topic: NewTopicFactory
) -> AsyncIterator[Exchange]:
    topic = await new_topic("executions", partitions=2)
    async with exchange(exchange_dsn, kafka_bootstrap, topic) as the_exchange:
        yield the_exchange


async def settle(ex: Exchange) -> None:
    await ex.match_and_publish()
    await ex.settle()


async def test_amends_settle_exactly_and_pass_the_audit(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=10_000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    buy = await place(ex.store, limit(alice, "BUY", "0.1", "20000"))  # 2000 USDT
    await settle(ex)

    await amend(ex.store, alice, orderId=buy["id"], newQty="0.2")  # +2000
    await settle(ex)
    await amend(ex.store, alice, orderId=buy["id"], newPrice="25000")  # +1000
    await settle(ex)
    row = await ex.pool.fetchrow("SELECT * FROM orders WHERE id = $1", buy["id"])
    assert (row["status"], row["price"], row["quantity"], int(row["locked_remaining"])) == (
        "NEW", 250_000, 20_000, 5000 * USDT,
    )  # fmt: skip
    assert await ex.balance(alice, "USDT") == (5000 * USDT, 5000 * USDT)

    await amend(ex.store, alice, orderId=buy["id"], newQty="0.1")  # keeps priority, frees 2500
    await settle(ex)
    assert await ex.balance(alice, "USDT") == (7500 * USDT, 2500 * USDT)
    updates = [e for e in ex.events if isinstance(e, OrderUpdated) and e.cause is UpdateCause.AMEND]
    assert [(u.locked_added, u.released) for u in updates] == [
        (2000 * USDT, 0), (1000 * USDT, 0), (0, 2500 * USDT),
    ]  # fmt: skip

    await place(ex.store, limit(bob, "SELL", "0.1", "25000"))
    await settle(ex)
    assert (await ex.pool.fetchval("SELECT status FROM orders WHERE id = $1", buy["id"])) == (
        "FILLED"
    )
    assert await ex.balance(alice, "USDT") == (7500 * USDT, 0)
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []


async def test_an_amend_the_engine_refuses_returns_its_additional_lock(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=10_000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    buy = await place(ex.store, limit(alice, "BUY", "0.1", "20000"))
    await settle(ex)

    # Bob's sell reaches the engine first and fills the order; the amend then finds no
    # open order there and is refused: its 1000 USDT come back.
    await place(ex.store, limit(bob, "SELL", "0.1", "20000"))
    row = await amend(ex.store, alice, orderId=buy["id"], newPrice="30000")
    assert row["additional_locked"] == 1000 * USDT
    assert await ex.balance(alice, "USDT") == (7000 * USDT, 3000 * USDT)
    await settle(ex)

    [refused] = [e for e in ex.events if isinstance(e, CommandRejected)]
    assert (refused.order_id, refused.released) == (buy["id"], 1000 * USDT)
    order = await ex.pool.fetchrow("SELECT status, locked_remaining FROM orders WHERE id = $1",
                                   buy["id"])  # fmt: skip
    assert (order["status"], int(order["locked_remaining"])) == ("FILLED", 0)
    assert await ex.balance(alice, "USDT") == (8000 * USDT, 0)
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []


async def test_two_amends_in_flight_never_unbalance_the_ledger(ex: Exchange) -> None:
    """The second amend is computed from the database before the first is settled: the
    engine refuses it if its funds fall short, and settlement returns them."""
    alice = await ex.user("alice@example.com", USDT=10_000 * USDT)
    buy = await place(ex.store, limit(alice, "BUY", "0.1", "20000"))
    await settle(ex)

    await amend(ex.store, alice, orderId=buy["id"], newQty="0.2")  # +2000 (4000 held)
    await amend(ex.store, alice, orderId=buy["id"], newPrice="25000")  # stale: 0.1 × 25000
    await settle(ex)

    # The engine applied the first; the second needed 0.2 × 25000 = 5000 > 4000: refused.
    refused = [e for e in ex.events if isinstance(e, CommandRejected)]
    assert [r.released for r in refused] == [0]
    row = await ex.pool.fetchrow("SELECT price, quantity, locked_remaining FROM orders")
    assert (row["price"], row["quantity"], int(row["locked_remaining"])) == (
        200_000, 20_000, 4000 * USDT,
    )  # fmt: skip
    assert await ex.balance(alice, "USDT") == (6000 * USDT, 4000 * USDT)
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []


async def test_an_amend_that_crosses_trades_at_the_makers_price(ex: Exchange) -> None:
    alice = await ex.user("alice@example.com", USDT=10_000 * USDT)
    bob = await ex.user("bob@example.com", BTC=1 * BTC)
    buy = await place(ex.store, limit(alice, "BUY", "0.1", "20000"))
    await place(ex.store, limit(bob, "SELL", "0.1", "24000"))
    await settle(ex)

    row = await amend(ex.store, alice, orderId=buy["id"], newPrice="25000")
    assert row["additional_locked"] == 500 * USDT
    await settle(ex)

    # Filled at 24000: 2400 USDT spent of the 2500 locked, 100 back with the fill.
    order = await ex.pool.fetchrow(
        "SELECT status, price, locked_remaining FROM orders WHERE id = $1", buy["id"]
    )
    assert (order["status"], order["price"], int(order["locked_remaining"])) == (
        "FILLED", 250_000, 0,
    )  # fmt: skip
    assert await ex.balance(alice, "USDT") == (7600 * USDT, 0)
    assert await audit(ex.dsn, [ex.engines["btc-usdt"].snapshot()]) == []

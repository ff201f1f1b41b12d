"""The trading API's order order_store on the real Postgres: funds locked, PENDING order and
outbox row in one transaction; concurrency can never spend the same funds twice."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from cex.core.events import CancelAll, OrderCancel, OrderCreate, decode_command
from cex.core.market import MarketConfig
from cex.infra import registry
from cex.trading.app import create_app
from cex.trading.errors import TradingError
from cex.trading.store import OrderStore, _Pending, create_order_pool
from cex.trading.validation import OrderRequest, validate
from tests.fixtures import example_specs, funded_user

USDT = 1_000_000  # micro-USDT per USDT


async def balance(pool: asyncpg.Pool, user_id: int, asset: str) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT available, locked FROM balances WHERE user_id = $1 AND asset = $2", user_id, asset
    )
    return (int(row["available"]), int(row["locked"])) if row else (0, 0)


def sell(user_id: int, cid: str, qty: str = "0.001", price: str = "10000") -> OrderRequest:
    return OrderRequest(
        user_id=user_id, symbol="BTCUSDT", side="SELL", type="LIMIT", newClientOrderId=cid,
        timeInForce="GTC", quantity=qty, price=price,
    )  # fmt: skip


def buy(user_id: int, cid: str, qty: str = "0.001", price: str = "10000") -> OrderRequest:
    return OrderRequest(
        user_id=user_id, symbol="BTCUSDT", side="BUY", type="LIMIT", newClientOrderId=cid,
        timeInForce="GTC", quantity=qty, price=price,
    )  # fmt: skip


async def place(order_store: OrderStore, request: OrderRequest) -> dict[str, object]:
    return await order_store.place(validate(request, order_store.market_for_symbol(request.symbol)))


async def test_placing_locks_funds_and_writes_order_outbox_and_ledger(
    order_store: OrderStore,
) -> None:
    alice = await funded_user(order_store.pool, "alice@example.com", "USDT", 100 * USDT)

    row = await place(order_store, buy(alice, "a1"))

    assert row["status"] == "PENDING"
    assert (row["locked_asset"], row["locked"]) == ("USDT", 10 * USDT)
    assert await balance(order_store.pool, alice, "USDT") == (90 * USDT, 10 * USDT)
    outbox = await order_store.pool.fetch("SELECT * FROM outbox WHERE market = 'btc-usdt'")
    assert [(r["command_seq"], r["kind"], r["order_id"]) for r in outbox] == [
        (1, "ORDER_CREATE", row["id"])
    ]
    command = decode_command(outbox[0]["payload"])
    assert isinstance(command, OrderCreate)
    assert (command.market, command.order_id, command.user_id, command.locked) == (
        "BTCUSDT",
        row["id"],
        alice,
        10 * USDT,
    )
    assert (command.price, command.quantity, command.ts) == (100000, 100, 1_700_000_000_000)
    entries = await order_store.pool.fetch(
        "SELECT e.bucket, e.amount FROM ledger_entries e JOIN journals j ON j.id = e.journal_id"
        " WHERE j.kind = 'ORDER_LOCK' ORDER BY e.bucket"
    )
    assert [(e["bucket"], int(e["amount"])) for e in entries] == [
        ("AVAILABLE", -10 * USDT),
        ("LOCKED", 10 * USDT),
    ]


async def test_insufficient_funds_changes_nothing(order_store: OrderStore) -> None:
    bob = await funded_user(order_store.pool, "bob@example.com", "USDT", 5 * USDT)

    with pytest.raises(TradingError) as caught:
        await place(order_store, buy(bob, "b1"))  # needs 10 USDT

    assert (caught.value.code, caught.value.msg) == (
        -2010,
        "Account has insufficient balance for requested action.",
    )
    assert await balance(order_store.pool, bob, "USDT") == (5 * USDT, 0)
    assert await order_store.pool.fetchval("SELECT count(*) FROM orders") == 0
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox") == 0


def batches_of_many() -> float:
    """Batches of more than one order committed so far (the store's histogram)."""
    count = REGISTRY.get_sample_value("cex_trading_batch_orders_count") or 0.0
    single = REGISTRY.get_sample_value("cex_trading_batch_orders_bucket", {"le": "1.0"}) or 0.0
    return count - single


async def test_concurrent_orders_never_spend_the_same_funds(order_store: OrderStore) -> None:
    carol = await funded_user(order_store.pool, "carol@example.com", "USDT", 100 * USDT)
    others = [
        await funded_user(order_store.pool, f"u{i}@example.com", "USDT", 10 * USDT)
        for i in range(20)
    ]
    shared_before = batches_of_many()
    # 300 concurrent orders of 10 USDT from carol (funds for 10) and one each from others.
    requests = [buy(carol, f"c{i}") for i in range(300)] + [
        buy(user, f"o{user}") for user in others
    ]
    outcomes = await asyncio.gather(
        *(place(order_store, r) for r in requests), return_exceptions=True
    )

    carol_ok = [o for o in outcomes[:300] if isinstance(o, dict)]
    carol_refused = [o for o in outcomes[:300] if isinstance(o, TradingError)]
    assert len(carol_ok) == 10
    assert len(carol_refused) == 290
    assert all(e.code == -2010 for e in carol_refused)
    # Other users' orders in the same batches were not failed by carol's.
    assert all(isinstance(o, dict) for o in outcomes[300:])
    assert await balance(order_store.pool, carol, "USDT") == (0, 100 * USDT)
    shared = batches_of_many() - shared_before
    assert shared > 0, "requests were gathered into shared transactions"
    seqs = [r[0] for r in await order_store.pool.fetch("SELECT command_seq FROM outbox ORDER BY 1")]
    assert seqs == list(range(1, 31)), "command numbers are gap-free per market"


def batches_by_way() -> dict[str, float]:
    return {
        way: REGISTRY.get_sample_value("cex_trading_batches_total", {"way": way}) or 0.0
        for way in ("one_statement", "careful")
    }


async def ledger_matches_balances(pool: asyncpg.Pool) -> None:
    """Every user's balances equal their ledger entries (deposits and order locks)."""
    mismatched = await pool.fetch(
        "SELECT b.user_id, b.asset FROM balances b LEFT JOIN ("
        "  SELECT user_id, asset,"
        "         sum(amount) FILTER (WHERE bucket = 'AVAILABLE') AS available,"
        "         sum(amount) FILTER (WHERE bucket = 'LOCKED') AS locked"
        "  FROM ledger_entries WHERE user_id IS NOT NULL GROUP BY 1, 2) l USING (user_id, asset)"
        " WHERE b.available <> coalesce(l.available, 0) OR b.locked <> coalesce(l.locked, 0)"
    )
    assert mismatched == []


async def test_a_batch_is_placed_in_one_statement_numbered_in_batch_order(
    order_store: OrderStore,
) -> None:
    users = [
        await funded_user(order_store.pool, f"w{i}@example.com", "USDT", 100 * USDT)
        for i in range(6)
    ]
    config = order_store.market_for_symbol("BTCUSDT")
    pendings = [
        _Pending(validate(buy(u, f"w{i}", qty=f"0.00{i % 3 + 1}"), config),
                 asyncio.get_running_loop().create_future())
        for i, u in enumerate(users * 2)
    ]  # fmt: skip
    before = batches_by_way()

    await order_store._commit_with_retry(pendings)

    after = batches_by_way()
    assert (after["one_statement"] - before["one_statement"], after["careful"]) == (
        1, before["careful"],
    )  # fmt: skip
    rows = [p.future.result() for p in pendings]
    outbox = await order_store.pool.fetch(
        "SELECT command_seq, order_id, payload FROM outbox ORDER BY command_seq"
    )
    assert [(r["command_seq"], r["order_id"]) for r in outbox] == [
        (i + 1, row["id"]) for i, row in enumerate(rows)
    ]
    assert [decode_command(r["payload"]).locked for r in outbox] == [  # type: ignore[union-attr]
        row["locked"] for row in rows
    ]
    for i, user in enumerate(users):  # each user's two orders, locked together
        locked = int(rows[i]["locked"]) + int(rows[i + 6]["locked"])
        assert await balance(order_store.pool, user, "USDT") == (100 * USDT - locked, locked)
    assert (
        await order_store.pool.fetchval(
            "SELECT next_command_seq FROM markets WHERE name = 'btc-usdt'"
        )
        == 13
    )
    await ledger_matches_balances(order_store.pool)


async def test_orders_a_balance_cannot_all_cover_are_funded_in_arrival_order(
    order_store: OrderStore,
) -> None:
    """A balance short for all its orders of a batch: its orders are funded one by one in
    arrival order (a later, smaller one still fits); the batch's other orders are placed in
    the one statement."""
    fay = await funded_user(order_store.pool, "fay@example.com", "USDT", 25 * USDT)
    gil = await funded_user(order_store.pool, "gil@example.com", "USDT", 100 * USDT)
    config = order_store.market_for_symbol("BTCUSDT")
    requests = [
        buy(fay, "f1", qty="0.001"),  # 10 USDT
        buy(gil, "g1", qty="0.002"),  # 20 USDT
        buy(fay, "f2", qty="0.002"),  # 20 USDT: does not fit after f1
        buy(fay, "f3", qty="0.001"),  # 10 USDT: fits
        buy(fay, "f4", qty="0.001"),  # 10 USDT: does not fit
    ]
    pendings = [
        _Pending(validate(r, config), asyncio.get_running_loop().create_future()) for r in requests
    ]
    before = batches_by_way()

    await order_store._commit_with_retry(pendings)

    after = batches_by_way()
    assert after["one_statement"] - before["one_statement"] == 1
    assert after["careful"] - before["careful"] == 1
    outcomes = [p.future.exception() or p.future.result() for p in pendings]
    assert [isinstance(o, dict) for o in outcomes] == [True, True, False, True, False]
    assert [o.code for o in outcomes if isinstance(o, TradingError)] == [-2010, -2010]
    assert await balance(order_store.pool, fay, "USDT") == (5 * USDT, 20 * USDT)
    assert await balance(order_store.pool, gil, "USDT") == (80 * USDT, 20 * USDT)
    outbox = await order_store.pool.fetch("SELECT command_seq, order_id FROM outbox ORDER BY 1")
    # gil's order was committed first, fay's two by the careful transaction after it.
    placed = [o["id"] for o in (outcomes[1], outcomes[0], outcomes[3])]  # type: ignore[index]
    assert [(r["command_seq"], r["order_id"]) for r in outbox] == [
        (1, placed[0]), (2, placed[1]), (3, placed[2]),
    ]  # fmt: skip
    await ledger_matches_balances(order_store.pool)


async def test_batches_on_generic_plans_place_and_refuse_as_on_custom_plans(
    exchange_dsn: str,
) -> None:
    """The API's batch pool runs the batch statements' generic plans: batches of every
    size place, fund and number exactly, a short balance takes the careful way, and a
    market that stopped trading refuses."""
    # Two connections, one held by the registry follower: a market found halted is
    # reloaded only once the careful batch gave its connection back (else: a hang).
    pool = await create_order_pool(exchange_dsn, max_size=2)
    batch_pool = await create_order_pool(exchange_dsn, max_size=2, generic_plans=True)
    store = OrderStore(pool, batch_pool=batch_pool, clock_ms=lambda: 1_700_000_000_000)
    await store.start()
    try:
        assert await batch_pool.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        users = [await funded_user(pool, f"g{i}@example.com", "USDT", 100 * USDT) for i in range(9)]
        config = store.market_for_symbol("BTCUSDT")
        placed = 0
        for k, size in enumerate((1, 2, 5, 9, 3, 7, 9)):  # one generic plan, every array size
            pendings = [
                _Pending(validate(buy(users[i], f"g{k}-{i}"), config),
                         asyncio.get_running_loop().create_future())
                for i in range(size)
            ]  # fmt: skip
            await store._commit_with_retry(pendings)
            assert all(p.future.result()["status"] == "PENDING" for p in pendings)
            placed += size
        # users[0] placed 7 orders of 10 USDT: 30 left, so 3 of the next 4 fit.
        short = [
            _Pending(validate(buy(users[0], f"short{i}"), config),
                     asyncio.get_running_loop().create_future())
            for i in range(4)
        ]  # fmt: skip
        await store._commit_with_retry(short)
        assert [p.future.exception() is None for p in short] == [True, True, True, False]
        placed += 3
        seqs = [r[0] for r in await pool.fetch("SELECT command_seq FROM outbox ORDER BY 1")]
        assert seqs == list(range(1, placed + 1))
        assert await balance(pool, users[0], "USDT") == (0, 100 * USDT)
        await ledger_matches_balances(pool)

        await pool.execute("UPDATE markets SET status = 'HALTED' WHERE name = 'btc-usdt'")
        with pytest.raises(TradingError, match="Market is closed"):
            await place(store, buy(users[1], "halted"))
        assert await pool.fetchval("SELECT count(*) FROM outbox") == placed
    finally:
        await store.stop()
        await batch_pool.close()
        await pool.close()


async def test_a_client_order_id_of_an_open_order_is_a_duplicate(order_store: OrderStore) -> None:
    dave = await funded_user(order_store.pool, "dave@example.com", "USDT", 100 * USDT)

    # Five at once (one batch or several): exactly one is placed.
    outcomes = await asyncio.gather(
        *(place(order_store, buy(dave, "same")) for _ in range(5)), return_exceptions=True
    )
    later = await asyncio.gather(place(order_store, buy(dave, "same")), return_exceptions=True)

    placed = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in [*outcomes, *later] if isinstance(o, TradingError)]
    assert len(placed) == 1
    assert [(e.code, e.msg) for e in refused] == [(-2010, "Duplicate order sent.")] * 5
    assert await balance(order_store.pool, dave, "USDT") == (90 * USDT, 10 * USDT)
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_in_one_batch_the_first_of_two_same_client_ids_is_placed(
    order_store: OrderStore,
) -> None:
    dave = await funded_user(order_store.pool, "dave@example.com", "USDT", 100 * USDT)
    first = validate(buy(dave, "twin", qty="0.001"), order_store.market_for_symbol("BTCUSDT"))
    second = validate(buy(dave, "twin", qty="0.002"), order_store.market_for_symbol("BTCUSDT"))
    pendings = [_Pending(o, asyncio.get_running_loop().create_future()) for o in (first, second)]

    await order_store._commit_with_retry(pendings)

    assert pendings[0].future.result()["quantity"] == 100
    assert isinstance(pendings[1].future.exception(), TradingError)
    assert pendings[1].future.exception().msg == "Duplicate order sent."  # type: ignore[union-attr]
    assert await balance(order_store.pool, dave, "USDT") == (90 * USDT, 10 * USDT)


async def test_a_closed_orders_client_id_may_be_reused_and_lookups_prefer_the_open_one(
    order_store: OrderStore,
) -> None:
    ivy = await funded_user(order_store.pool, "ivy@example.com", "USDT", 100 * USDT)
    old = await place(order_store, buy(ivy, "again"))
    await order_store.pool.execute(  # as settlement does once the engine cancelled it
        "UPDATE orders SET status = 'CANCELED', locked_remaining = 0 WHERE id = $1", old["id"]
    )
    new = await place(order_store, buy(ivy, "again", qty="0.002"))

    assert new["id"] != old["id"]
    found = await order_store.get(ivy, "BTCUSDT", None, "again")
    assert (found["id"], found["status"]) == (new["id"], "PENDING")
    assert (await order_store.get(ivy, "BTCUSDT", old["id"], None))["status"] == "CANCELED"
    # Both given: they must name the same order.
    with pytest.raises(TradingError, match="Unknown order"):
        await order_store.get(ivy, "BTCUSDT", old["id"], "other")

    cancelled = await order_store.cancel(ivy, "BTCUSDT", None, "again")
    assert cancelled["id"] == new["id"]
    await order_store.pool.execute(
        "UPDATE orders SET status = 'CANCELED', locked_remaining = 0 WHERE id = $1", new["id"]
    )
    # Both closed: the most recent one.
    assert (await order_store.get(ivy, "BTCUSDT", None, "again"))["id"] == new["id"]
    with pytest.raises(TradingError, match="Unknown order"):
        await order_store.cancel(ivy, "BTCUSDT", None, "again")


async def test_lookups_never_reach_another_users_or_markets_order(order_store: OrderStore) -> None:
    jack = await funded_user(order_store.pool, "jack@example.com", "USDT", 100 * USDT)
    kate = await funded_user(order_store.pool, "kate@example.com", "USDT", 100 * USDT)
    jacks = await place(order_store, buy(jack, "shared"))
    kates = await place(order_store, buy(kate, "shared"))  # same id, another user: fine

    assert (await order_store.get(kate, "BTCUSDT", None, "shared"))["id"] == kates["id"]
    for lookup in (
        order_store.get(kate, "BTCUSDT", jacks["id"], None),
        order_store.cancel(kate, "BTCUSDT", jacks["id"], None),
        order_store.get(jack, "ETHUSDT", None, "shared"),
        order_store.cancel(jack, "ETHUSDT", jacks["id"], None),
    ):
        with pytest.raises(TradingError, match="Unknown order"):
            await lookup
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox") == 2


async def test_one_poisoned_order_fails_alone_and_its_batch_is_placed(
    order_store: OrderStore,
) -> None:
    users = [
        await funded_user(order_store.pool, f"p{i}@example.com", "BTC", 10**8) for i in range(40)
    ]
    config = order_store.market_for_symbol("BTCUSDT")
    good = [validate(sell(u, f"s{u}"), config) for u in users]
    # A SELL whose price overflows the bigint column: validation refuses it, so craft it.
    poisoned = dataclasses.replace(good[0], client_order_id="poison", price=2**63)
    batch = [*good[:20], poisoned, *good[20:]]
    pendings = [_Pending(o, asyncio.get_running_loop().create_future()) for o in batch]

    await order_store._commit_with_retry(pendings)

    assert pendings[20].future.exception() is not None
    results = [p.future.result() for i, p in enumerate(pendings) if i != 20]
    assert all(r["status"] == "PENDING" for r in results)
    assert await order_store.pool.fetchval("SELECT count(*) FROM orders") == 40
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox") == 40
    seqs = [r[0] for r in await order_store.pool.fetch("SELECT command_seq FROM outbox ORDER BY 1")]
    assert seqs == list(range(1, 41))
    # The poisoned order's user locked only what their good order needs.
    assert await balance(order_store.pool, users[0], "BTC") == (10**8 - 100_000, 100_000)


async def test_market_buy_by_quantity_locks_all_available(order_store: OrderStore) -> None:
    erin = await funded_user(order_store.pool, "erin@example.com", "USDT", 42 * USDT)
    request = OrderRequest(
        user_id=erin, symbol="BTCUSDT", side="BUY", type="MARKET", newClientOrderId="m1",
        quantity="0.01",
    )  # fmt: skip
    row = await place(order_store, request)
    assert row["locked"] == 42 * USDT
    assert await balance(order_store.pool, erin, "USDT") == (0, 42 * USDT)


async def test_halted_market_refuses_new_orders(order_store: OrderStore) -> None:
    frank = await funded_user(order_store.pool, "frank@example.com", "USDT", 100 * USDT)
    await order_store.pool.execute("UPDATE markets SET status = 'HALTED' WHERE name = 'btc-usdt'")

    with pytest.raises(TradingError, match="Market is closed"):
        await place(order_store, buy(frank, "f1"))
    assert await balance(order_store.pool, frank, "USDT") == (100 * USDT, 0)


async def test_cancel_goes_through_the_engine_after_the_create(order_store: OrderStore) -> None:
    gina = await funded_user(order_store.pool, "gina@example.com", "USDT", 100 * USDT)
    first = await place(order_store, buy(gina, "g1"))
    await place(order_store, buy(gina, "g2"))

    await order_store.cancel(gina, "BTCUSDT", None, "g1")
    await order_store.cancel_all(gina, "BTCUSDT")

    rows = await order_store.pool.fetch(
        "SELECT command_seq, payload FROM outbox ORDER BY command_seq"
    )
    commands = [decode_command(r["payload"]) for r in rows]
    assert [type(c).__name__ for c in commands] == [
        "OrderCreate",
        "OrderCreate",
        "OrderCancel",
        "CancelAll",
    ]
    assert isinstance(commands[2], OrderCancel)
    assert commands[2].order_id == first["id"]
    assert isinstance(commands[3], CancelAll)
    assert commands[3].user_id == gina
    # Funds stay locked until the engine's answer is settled.
    assert await balance(order_store.pool, gina, "USDT") == (80 * USDT, 20 * USDT)


async def test_unknown_order_cancel_changes_nothing(order_store: OrderStore) -> None:
    with pytest.raises(TradingError) as caught:
        await order_store.cancel(12345, "BTCUSDT", 999, None)
    assert (caught.value.code, caught.value.msg) == (-2011, "Unknown order sent.")
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert (
        await order_store.pool.fetchval(
            "SELECT next_command_seq FROM markets WHERE name = 'btc-usdt'"
        )
        == 1
    )


async def test_http_errors_are_binance_shaped(order_store: OrderStore) -> None:
    app = create_app(store=order_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://trading") as client:
        unknown = await client.post(
            "/internal/v1/orders",
            json={"user_id": 1, "symbol": "NOPE", "side": "BUY", "type": "LIMIT",
                  "newClientOrderId": "x", "timeInForce": "GTC", "quantity": "1",
                  "price": "1"},
        )  # fmt: skip
        off_grid = await client.post(
            "/internal/v1/orders",
            json={"user_id": 1, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                  "newClientOrderId": "x", "timeInForce": "GTC", "quantity": "0.001",
                  "price": "10000.05"},
        )  # fmt: skip
    assert (unknown.status_code, unknown.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert off_grid.json() == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
    assert await order_store.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_markets_registered_or_halted_later_are_seen_without_a_restart(
    order_store: OrderStore,
) -> None:
    """The operator registers markets while the trading API runs: a NOTIFY reloads them."""
    spec = example_specs()["eth-usdt"] | {"symbol": "SOLUSDT", "base": "SOL"}
    with pytest.raises(TradingError):
        order_store.market_for_symbol("SOLUSDT")
    async with order_store.pool.acquire() as conn:
        await registry.register_market(conn, MarketConfig.from_spec("sol-usdt", spec), spec)
    for _ in range(100):
        if "SOLUSDT" in order_store.by_symbol:
            break
        await asyncio.sleep(0.05)
    assert order_store.market_for_symbol("SOLUSDT").name == "sol-usdt"

    async with order_store.pool.acquire() as conn:
        halted = spec | {"status": "Halted"}
        await registry.register_market(conn, MarketConfig.from_spec("sol-usdt", halted), halted)
    for _ in range(100):
        if order_store.by_symbol["SOLUSDT"].status == "HALTED":
            break
        await asyncio.sleep(0.05)
    assert not order_store.by_symbol["SOLUSDT"].accepts_orders


async def test_http_huge_values_are_filter_failures_and_a_client_id_is_generated(
    order_store: OrderStore,
) -> None:
    lena = await funded_user(order_store.pool, "lena@example.com", "BTC", 10**8)
    app = create_app(store=order_store)
    transport = httpx.ASGITransport(app=app)
    order = {"user_id": lena, "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
             "timeInForce": "GTC", "quantity": "0.001"}  # fmt: skip
    async with httpx.AsyncClient(transport=transport, base_url="http://trading") as client:
        huge = await client.post("/internal/v1/orders", json=order | {"price": "9" * 25})
        gtd = await client.post(
            "/internal/v1/orders",
            json=order | {"price": "10000", "timeInForce": "GTT", "goodTillDate": 2**64},
        )
        placed = await client.post("/internal/v1/orders", json=order | {"price": "10000"})
        other_user = await client.get(
            f"/internal/v1/orders/{placed.json()['orderId']}",
            params={"user_id": lena + 1, "symbol": "BTCUSDT"},
        )
    assert (huge.status_code, huge.json()) == (
        400,
        {"code": -1013, "msg": "Filter failure: PRICE_FILTER"},
    )
    assert (gtd.status_code, gtd.json()["code"]) == (400, -1100)
    assert placed.status_code == 201
    generated = placed.json()["clientOrderId"]
    assert len(generated) == 22
    assert generated.isalnum()
    assert other_user.json() == {"code": -2011, "msg": "Unknown order sent."}


async def test_http_batch_places_each_order_or_says_why_not(order_store: OrderStore) -> None:
    """What the public API sends when several placements wait: one outcome per order, in
    order; a refused order refuses nothing else."""
    mia = await funded_user(order_store.pool, "mia@example.com", "USDT", 100 * 10**6)
    order = {"user_id": mia, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
             "timeInForce": "GTC", "quantity": "0.001", "price": "20000"}  # fmt: skip
    app = create_app(store=order_store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://trading") as client:
        response = await client.post("/internal/v1/orders/batch", json=[
            order | {"newClientOrderId": "a"},
            order | {"newClientOrderId": "b", "price": "20000.05"},  # off the tick grid
            order | {"newClientOrderId": "c", "quantity": "1"},  # 20,000 USDT: not funded
            order | {"newClientOrderId": "d", "symbol": "NOPE"},
            order | {"newClientOrderId": "e"},
        ])  # fmt: skip
        malformed = await client.post("/internal/v1/orders/batch", json=[{"user_id": "x"}])
    outcomes = response.json()
    assert [o.get("clientOrderId") for o in outcomes] == ["a", None, None, None, "e"]
    assert [(o.get("code"), o.get("status")) for o in outcomes[1:4]] == [
        (-1013, 400), (-2010, 400), (-1121, 400)]  # fmt: skip
    assert outcomes[2]["msg"] == "Account has insufficient balance for requested action."
    assert (malformed.status_code, malformed.json()["code"]) == (400, -1130)
    assert await order_store.pool.fetchval("SELECT count(*) FROM orders") == 2


async def test_http_placement_errors_name_the_parameter_and_change_nothing(
    order_store: OrderStore,
) -> None:
    """The placement lane (msgspec, no FastAPI per request) answers bad bodies as the
    FastAPI routes do: a missing field is mandatory (-1102), a wrong one illegal (-1100)."""
    app = create_app(store=order_store)
    transport = httpx.ASGITransport(app=app)
    order = {"user_id": 1, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
             "timeInForce": "GTC", "quantity": "0.001", "price": "10000"}  # fmt: skip
    async with httpx.AsyncClient(transport=transport, base_url="http://trading") as client:
        missing = await client.post(
            "/internal/v1/orders", json={k: v for k, v in order.items() if k != "symbol"}
        )
        wrong_type = await client.post("/internal/v1/orders", json=order | {"user_id": "x"})
        malformed = await client.post("/internal/v1/orders", content=b"{not json")
        healthz = await client.get("/healthz")  # every other route is FastAPI's
    assert (missing.status_code, missing.json()) == (400, {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    })  # fmt: skip
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (400, -1100)
    assert "'user_id'" in wrong_type.json()["msg"]
    assert (malformed.status_code, malformed.json()["code"]) == (400, -1100)
    assert healthz.json() == {"status": "ok"}
    assert await order_store.pool.fetchval("SELECT count(*) FROM orders") == 0


async def test_batches_in_flight_together_number_each_markets_commands_without_gaps(
    order_store: OrderStore,
) -> None:
    """Small batches, several at once: each writes its orders before it takes the market
    rows, which number its commands; every placed order has one command, numbered 1..n
    per market in commit order, and the funds locked are exactly the orders'."""
    store = OrderStore(order_store.pool, max_batch=4, workers=4)
    await store.start()
    try:
        users = [
            await funded_user(order_store.pool, f"n{i}@example.com", "USDT", 1000 * USDT)
            for i in range(10)
        ]
        requests = [
            dataclasses.replace(buy(users[i % 10], f"n{i}"), symbol=("BTCUSDT", "ETHUSDT")[i % 2])
            for i in range(120)
        ]
        rows = await asyncio.gather(*(place(store, r) for r in requests))
    finally:
        await store.stop()
    for market in ("btc-usdt", "eth-usdt"):
        outbox = await order_store.pool.fetch(
            "SELECT command_seq, order_id FROM outbox WHERE market = $1 ORDER BY command_seq",
            market,
        )
        placed = sorted(r["id"] for r in rows if r["market"] == market)
        assert [r["command_seq"] for r in outbox] == list(range(1, 61))
        assert sorted(r["order_id"] for r in outbox) == placed
        assert (
            await order_store.pool.fetchval(
                "SELECT next_command_seq FROM markets WHERE name = $1", market
            )
            == 61
        )
    locked = await order_store.pool.fetchval(
        "SELECT sum(locked) FROM balances WHERE user_id = ANY($1::bigint[])", users
    )
    assert locked == sum(int(r["locked"]) for r in rows)

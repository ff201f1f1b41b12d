"""Draining a deleted market on real Postgres (`cex.infra.provisioning.begin_drain`, called
by the operator on every poll): a CANCEL_ALL only for an open order that no CANCEL_ALL of
the drain reaches, never again for one waiting to be settled."""

from __future__ import annotations

import asyncpg

from cex.core.events import CancelAll, MarketControl, decode_command
from cex.core.market import MarketConfig
from cex.infra import provisioning, registry
from cex.infra.settings import InfraSettings
from cex.trading.store import OrderStore
from cex.trading.validation import OrderRequest, validate
from tests.fixtures import example_specs, funded_user

USDT = 1_000_000


async def _place(store: OrderStore, user: int, client_id: str) -> int:
    request = OrderRequest(
        user_id=user, symbol="BTCUSDT", side="BUY", type="LIMIT", newClientOrderId=client_id,
        timeInForce="GTC", quantity="0.01", price="20000",
    )  # fmt: skip
    placed = await store.place(validate(request, store.market_for_symbol("BTCUSDT")))
    return int(placed["id"])


async def _commands_after(pool: asyncpg.Pool, seq: int) -> list[object]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE market = 'btc-usdt' AND command_seq > $1"
        " ORDER BY command_seq",
        seq,
    )
    return [decode_command(r["payload"]) for r in rows]


async def _last_seq(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT max(command_seq) FROM outbox"))


async def test_cancel_all_is_sent_again_only_for_an_order_it_cannot_reach(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    pool = order_store.pool
    alice = await funded_user(pool, "alice@example.com", "USDT", 1_000 * USDT)
    bob = await funded_user(pool, "bob@example.com", "USDT", 1_000 * USDT)
    await _place(order_store, alice, "a1")
    bobs = await _place(order_store, bob, "b1")

    start = await _last_seq(pool)
    assert await provisioning.begin_drain(exchange_settings, "btc-usdt") == 2
    first = await _commands_after(pool, start)
    assert [type(c) for c in first] == [MarketControl, CancelAll, CancelAll]
    assert [c.user_id for c in first[1:]] == [alice, bob]  # type: ignore[attr-defined]

    # Polls while the engine's cancellations wait for settlement: the orders are still open
    # here, but the CANCEL_ALLs already queued reach them; nothing is sent again.
    seen = await _last_seq(pool)
    for _ in range(3):
        assert await provisioning.begin_drain(exchange_settings, "btc-usdt") == 0
    assert await provisioning.open_orders(exchange_settings, "btc-usdt") == 2
    assert await _last_seq(pool) == seen

    # An order of Bob's numbered after his CANCEL_ALL (as if written by a trading API that
    # had not seen the drain): that one, and only that one, gets another CANCEL_ALL.
    async with pool.acquire() as conn, conn.transaction():
        moved = await conn.fetchval(
            "UPDATE markets SET next_command_seq = next_command_seq + 1"
            " WHERE name = 'btc-usdt' RETURNING next_command_seq - 1"
        )
        await conn.execute(
            "UPDATE outbox SET command_seq = $1 WHERE order_id = $2 AND kind = 'ORDER_CREATE'",
            moved,
            bobs,
        )
    assert await provisioning.begin_drain(exchange_settings, "btc-usdt") == 1
    again = await _commands_after(pool, moved)
    assert [(type(c), c.user_id) for c in again] == [(CancelAll, bob)]  # type: ignore[attr-defined]
    assert await provisioning.begin_drain(exchange_settings, "btc-usdt") == 0

    # Re-created, then deleted again: a new drain reaches every open order afresh.
    spec = example_specs()["btc-usdt"]
    async with pool.acquire() as conn:
        await registry.register_market(conn, MarketConfig.from_spec("btc-usdt", spec), spec)
    start = await _last_seq(pool)
    assert await provisioning.begin_drain(exchange_settings, "btc-usdt") == 2
    users = [c.user_id for c in await _commands_after(pool, start) if isinstance(c, CancelAll)]
    assert users == [alice, bob]

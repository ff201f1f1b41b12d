"""The market registry on real Postgres: partitions, the genesis spec, and changes of fees
or status queued for the engine as commands, exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cex.core.events import (
    CancelAll,
    MarketControl,
    MarketControlAction,
    decode_command,
)
from cex.core.market import MarketConfig, config_update
from cex.infra import provisioning, registry
from cex.infra.settings import InfraSettings
from tests.fixtures import example_specs

NOW = 1_700_000_000_000
BTC_USDT = example_specs()["btc-usdt"]


@pytest.fixture
async def conn(exchange_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(exchange_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _register(
    conn: asyncpg.Connection, spec: dict[str, Any], **kwargs: Any
) -> registry.Registration:
    return await registry.register_market(
        conn, MarketConfig.from_spec("btc-usdt", spec), spec, now_ms=NOW, **kwargs
    )


async def _outbox(conn: asyncpg.Connection, market: str = "btc-usdt") -> list[Any]:
    rows = await conn.fetch(
        "SELECT command_seq, kind, payload FROM outbox WHERE market = $1 ORDER BY command_seq",
        market,
    )
    return [(r["command_seq"], r["kind"], decode_command(r["payload"])) for r in rows]


async def test_an_unchanged_spec_changes_nothing(
    conn: asyncpg.Connection,
) -> None:
    spec = BTC_USDT
    first = await _register(conn, spec)
    again = await _register(conn, spec)
    assert (first.partition, again.partition) == (0, 0)
    assert again.commands == ()
    assert await _outbox(conn) == []


async def test_fee_and_status_changes_are_queued_once_fees_first(
    conn: asyncpg.Connection,
) -> None:
    genesis = BTC_USDT
    changed = genesis | {"makerFee": "0.0005", "takerFee": "0.002", "status": "Halted"}

    registration = await _register(conn, changed)
    assert registration.genesis_spec == genesis
    assert registration.commands == (
        config_update(MarketConfig.from_spec("btc-usdt", changed), NOW),
        MarketControl(market="BTCUSDT", ts=NOW, action=MarketControlAction.HALT),
    )
    assert await _outbox(conn) == [
        (1, "CONFIG_UPDATE", registration.commands[0]),
        (2, "MARKET_CONTROL", registration.commands[1]),
    ]
    # Running it again (an operator restarted mid-reconcile) queues nothing more.
    assert (await _register(conn, changed)).commands == ()
    assert len(await _outbox(conn)) == 2
    row = await conn.fetchrow(
        "SELECT status, next_command_seq FROM markets WHERE name = $1", "btc-usdt"
    )
    assert (row["status"], row["next_command_seq"]) == ("HALTED", 3)

    resumed = await _register(conn, changed | {"status": "Trading"})
    assert resumed.commands == (
        MarketControl(market="BTCUSDT", ts=NOW, action=MarketControlAction.RESUME),
    )


async def test_identity_changes_are_refused_and_change_nothing(
    conn: asyncpg.Connection,
) -> None:
    spec = BTC_USDT
    with pytest.raises(ValueError, match="identity fields cannot change"):
        await _register(conn, spec | {"lotSize": "0.0001", "minQty": "0.0001"})
    stored = await conn.fetchval("SELECT spec FROM markets WHERE name = 'btc-usdt'")
    assert '"lotSize": "0.00001"' in stored
    assert await _outbox(conn) == []


async def test_drain_marks_deleted_cancels_every_user_and_recreation_resumes(
    exchange_settings: InfraSettings,
    conn: asyncpg.Connection,
) -> None:
    for user_id, email in ((101, "a@example.com"), (102, "b@example.com")):
        await conn.execute("INSERT INTO users (id, email) VALUES ($1, $2)", user_id, email)
    # Two open orders of user 1 and one of user 2, plus a filled one of user 2.
    for order_id, user_id, status in ((10, 101, "NEW"), (11, 101, "PENDING"),
                                      (12, 102, "NEW"), (13, 102, "FILLED")):  # fmt: skip
        await conn.execute(
            "INSERT INTO orders (id, market, user_id, client_order_id, side, type,"
            " time_in_force, price, quantity, stp_mode, status, locked_asset, locked,"
            " locked_remaining, created_ms) VALUES ($1, 'btc-usdt', $2, $3, 'BUY', 'LIMIT',"
            " 'GTC', 1, 1, 'NONE', $4, 'USDT', 0, 0, 0)",
            order_id, user_id, f"c{order_id}", status,
        )  # fmt: skip

    assert await provisioning.begin_drain(exchange_settings, "btc-usdt") == 2
    assert await provisioning.open_orders(exchange_settings, "btc-usdt") == 3
    commands = [command for _, _, command in await _outbox(conn)]
    assert [type(c) for c in commands] == [MarketControl, CancelAll, CancelAll]
    assert commands[0].action == MarketControlAction.CANCEL_ONLY
    assert [c.user_id for c in commands[1:]] == [101, 102]
    assert (await registry.load_markets(conn))["btc-usdt"].status == registry.DELETED
    assert not (await registry.load_markets(conn))["btc-usdt"].accepts_orders

    # Re-created: the same partition, and the engine is told to trade again.
    again = await _register(conn, BTC_USDT)
    assert again.partition == 0
    assert again.commands[-1].action == MarketControlAction.RESUME
    # A market that was never registered has nothing to drain.
    assert await provisioning.begin_drain(exchange_settings, "doge-usdt") is None


async def test_market_state_counts_undelivered_changes(
    conn: asyncpg.Connection,
) -> None:
    await _register(conn, BTC_USDT | {"takerFee": "0.003"})
    state = await registry.market_state(conn, "btc-usdt")
    assert state == registry.MarketState(partition=0, status="TRADING", pending_changes=1)
    await conn.execute("UPDATE outbox SET published = true")
    assert (await registry.market_state(conn, "btc-usdt")).pending_changes == 0
    assert await registry.market_state(conn, "nope") is None


async def test_a_market_owned_by_another_resource_is_refused_until_deleted(
    exchange_settings: InfraSettings, conn: asyncpg.Connection
) -> None:
    """Two Markets of one name in two namespaces must not share a registry row."""
    first = await _register(conn, BTC_USDT, owner="team-a/btc-usdt")
    with pytest.raises(registry.OwnerConflict, match="team-a/btc-usdt"):
        await _register(conn, BTC_USDT | {"takerFee": "0.005"}, owner="team-b/btc-usdt")
    assert await registry.market_owner(conn, "btc-usdt") == "team-a/btc-usdt"
    assert await _outbox(conn) == []  # the refused change queued nothing
    # Deleting the duplicate must not drain the market it was refused.
    assert (
        await provisioning.begin_drain(exchange_settings, "btc-usdt", owner="team-b/btc-usdt")
        is None
    )
    assert (await registry.market_state(conn, "btc-usdt")).status == "TRADING"

    # Once the owner deleted it, another resource may take the name (and its partition).
    assert (
        await provisioning.begin_drain(exchange_settings, "btc-usdt", owner="team-a/btc-usdt") == 0
    )
    taken = await _register(conn, BTC_USDT, owner="team-b/btc-usdt")
    assert taken.partition == first.partition
    assert await registry.market_owner(conn, "btc-usdt") == "team-b/btc-usdt"

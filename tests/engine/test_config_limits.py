"""A Market's mutable limits reach its engine: a change registered through the registry (the
path the operator and the local stack provision by) is queued as a command the engine
applies, so the engine validates orders against the limits the trading API uses."""

from __future__ import annotations

from typing import Any

import asyncpg

from cex.core.events import (
    ConfigUpdatedV2,
    OrderCreate,
    OrderOpened,
    OrderRejected,
    OrderType,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
    decode_command,
)
from cex.core.market import MarketConfig, config_update
from cex.core.matching import MatchingEngine
from cex.core.money import parse_units
from cex.infra import registry
from tests.fixtures import example_specs

NOW = 1_700_000_000_000


def _buy(config: MarketConfig, order_id: int, price: str, qty: str) -> OrderCreate:
    price_ticks = config.price_to_ticks(price)
    lots = parse_units(qty, config.lot_size, field="quantity")  # no bounds: the engine's job
    return OrderCreate(
        market=config.symbol,
        ts=NOW,
        order_id=order_id,
        client_order_id="",
        user_id=1,
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=price_ticks,
        quantity=lots,
        quote_order_qty=None,
        stop_price=None,
        expire_at=None,
        stp_mode=StpMode.NONE,
        locked=config.notional(price_ticks, lots),
    )


async def test_changed_limits_travel_to_the_engine(exchange_dsn: str) -> None:
    genesis: dict[str, Any] = example_specs()["btc-usdt"]
    changed = genesis | {"minNotional": "1", "maxQty": "20000"}
    conn = await asyncpg.connect(exchange_dsn)
    try:
        config = MarketConfig.from_spec("btc-usdt", genesis)
        await registry.register_market(conn, config, genesis, now_ms=NOW)
        await registry.register_market(
            conn, MarketConfig.from_spec("btc-usdt", changed), changed, now_ms=NOW
        )
        rows = await conn.fetch("SELECT payload FROM outbox ORDER BY command_seq")
    finally:
        await conn.close()

    engine = MatchingEngine(config)  # an engine replaying from the genesis spec
    small = _buy(config, 1, "2", "1")  # 2 USDT: below the old minNotional (5), above the new
    large = _buy(config, 2, "0.1", "15000")  # above the old maxQty (9000), below the new
    refused = MatchingEngine(config).apply(small, 0)
    assert isinstance(refused[0], OrderRejected)
    assert refused[0].reason is RejectReason.MIN_NOTIONAL  # what the engine did before

    offset, events = 0, []
    for row in rows:
        events = engine.apply(decode_command(row["payload"]), offset)
        offset += 1
    assert [type(e) for e in events] == [ConfigUpdatedV2]
    for order in (small, large):
        opened = engine.apply(order, offset)
        offset += 1
        assert isinstance(opened[0], OrderOpened), opened
    assert engine.config.min_notional_units == 1_000_000
    assert engine.config.max_qty_lots == 20000 * 10**5

    # A stricter limit applies too: the same small order is now refused by the engine.
    stricter = engine.config.with_limits(
        min_qty_lots=engine.config.min_qty_lots,
        max_qty_lots=engine.config.max_qty_lots,
        min_notional_units=10_000_000,
    )
    engine.apply(config_update(stricter, NOW), offset)
    refused = engine.apply(_buy(config, 3, "2", "1"), offset + 1)
    assert isinstance(refused[0], OrderRejected)
    assert refused[0].reason is RejectReason.MIN_NOTIONAL

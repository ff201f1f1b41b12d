"""The order shapes the trading API and the engine share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cex.core.events import OrderType, TimeInForce
from cex.core.order_rules import SHAPES, OrderLimits, in_int64, numbers_in_int64, shape_breach

from .helpers import config

GTC, IOC, FOK, GTT = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTT


@dataclass(frozen=True)
class _Order:
    type: OrderType
    time_in_force: TimeInForce
    price: int | None = None
    quantity: int | None = None
    quote_order_qty: int | None = None
    stop_price: int | None = None
    expire_at: int | None = None


def _breach(order_type: OrderType, tif: TimeInForce = GTC, **fields: int | None) -> str | None:
    return shape_breach(_Order(order_type, tif, **fields))


def test_every_order_type_has_a_shape() -> None:
    assert set(SHAPES) == set(OrderType)


@pytest.mark.parametrize(
    ("order_type", "tif", "fields", "breach"),
    [
        (OrderType.LIMIT, GTC, {"price": 1, "quantity": 1}, None),
        (OrderType.LIMIT, GTC, {"quantity": 1}, "price"),
        (OrderType.LIMIT, GTC, {"price": 1}, "quantity"),
        (
            OrderType.LIMIT,
            GTC,
            {"price": 1, "quantity": 1, "quote_order_qty": 5},
            "quote_order_qty",
        ),
        (OrderType.LIMIT, GTC, {"price": 1, "quantity": 1, "stop_price": 1}, "stop_price"),
        (OrderType.LIMIT, GTT, {"price": 1, "quantity": 1}, "expire_at"),
        (OrderType.LIMIT, GTT, {"price": 1, "quantity": 1, "expire_at": 9}, None),
        (OrderType.LIMIT, FOK, {"price": 1, "quantity": 1, "expire_at": 9}, "expire_at"),
        (OrderType.LIMIT_MAKER, IOC, {"price": 1, "quantity": 1}, "time_in_force"),
        (OrderType.STOP_LOSS_LIMIT, FOK, {"price": 1, "quantity": 1}, "stop_price"),
        (OrderType.STOP_LOSS_LIMIT, FOK, {"price": 1, "quantity": 1, "stop_price": 2}, None),
        (OrderType.MARKET, IOC, {"quantity": 1}, None),
        (OrderType.MARKET, IOC, {"quote_order_qty": 1}, None),
        (OrderType.MARKET, IOC, {"quantity": 1, "quote_order_qty": 1}, "quantity"),
        (OrderType.MARKET, IOC, {}, "quantity"),
        (OrderType.MARKET, FOK, {"quantity": 1}, "time_in_force"),
        (OrderType.MARKET, IOC, {"price": 1, "quantity": 1}, "price"),
        (OrderType.STOP_LOSS, GTC, {"quantity": 1}, "stop_price"),
        (OrderType.STOP_LOSS, GTC, {"quantity": 1, "stop_price": 3}, None),
    ],
)
def test_shape_breach_names_the_first_wrong_field(
    order_type: OrderType, tif: TimeInForce, fields: dict[str, int], breach: str | None
) -> None:
    assert _breach(order_type, tif, **fields) == breach


def test_bounds() -> None:
    assert in_int64(None)
    assert in_int64(1)
    assert in_int64(2**63 - 1)
    assert not in_int64(0)
    assert not in_int64(2**63)
    assert numbers_in_int64(_Order(OrderType.LIMIT, GTC, price=1, quantity=2**63 - 1))
    assert not numbers_in_int64(_Order(OrderType.MARKET, IOC, quote_order_qty=0))
    limits = OrderLimits.of(config(min_qty="0.002", max_qty="1", min_notional="5"))
    assert (limits.min_qty_lots, limits.max_qty_lots, limits.min_notional_units) == (
        2,
        1000,
        5_000_000,
    )
    assert limits.qty_in_bounds(2)
    assert not limits.qty_in_bounds(1)
    assert not limits.qty_in_bounds(1001)
    assert limits.meets_min_notional(5_000_000)
    assert not limits.meets_min_notional(4_999_999)

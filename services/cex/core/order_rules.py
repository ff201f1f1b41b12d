"""Order-shape rules: which fields each order type and time in force needs, and their bounds.

Written once, used twice: by the trading API (``cex.trading.validation``), which turns a
breach into Binance's error for the field, and by the matching engine, which refuses a
create that breaks them (``ORDER_REJECTED``: MALFORMED_COMMAND, OFF_GRID,
QTY_OUT_OF_BOUNDS, MIN_NOTIONAL) in case a command reached it without that validation.

=================  =========  ==========  ===============================  ================
type               price      stop price  quantity                         time in force
=================  =========  ==========  ===============================  ================
LIMIT              required   —           required                         GTC IOC FOK GTT
LIMIT_MAKER        required   —           required                         GTC GTT
STOP_LOSS_LIMIT    required   required    required                         GTC IOC FOK GTT
MARKET             —          —           quantity *or* quote_order_qty    IOC (GTC)
STOP_LOSS          —          required    quantity *or* quote_order_qty    GTC (IOC)
=================  =========  ==========  ===============================  ================

* A client chooses the time in force of the limit types only (LIMIT and STOP_LOSS_LIMIT
  must say it; LIMIT_MAKER defaults to GTC); a MARKET order is IOC and a STOP_LOSS GTC (the
  engine accepts either for both).
* GTT, and only GTT, carries ``expire_at`` (Binance ``goodTillDate``).
* Prices, stop prices and quantities are positive 64-bit integers (ticks, lots); a quantity
  lies within the market's ``[min_qty, max_qty]``; a limit order's notional (price ×
  quantity) and a ``quote_order_qty`` reach ``min_notional``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from cex.core.events import OrderType, TimeInForce
from cex.core.market import MAX_INT64, MarketConfig

__all__ = [
    "SHAPES",
    "OrderFields",
    "OrderLimits",
    "OrderShape",
    "expiry_required",
    "in_int64",
    "numbers_in_int64",
    "shape_breach",
]

_GTC, _IOC, _FOK, _GTT = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTT


@dataclass(frozen=True, slots=True)
class OrderShape:
    """The fields one order type takes (see the table in the module docstring)."""

    #: ``price`` is required (a limit type); otherwise it must be absent.
    limit_price: bool
    #: ``stop_price`` is required; otherwise it must be absent.
    stop_price: bool
    #: exactly one of ``quantity`` / ``quote_order_qty``; otherwise ``quantity`` only.
    by_quote: bool
    #: every time in force the order type accepts.
    time_in_force: tuple[TimeInForce, ...]
    #: what applies when the client names none (None: the client must name one).
    default_time_in_force: TimeInForce | None


SHAPES: Final[dict[OrderType, OrderShape]] = {
    OrderType.LIMIT: OrderShape(True, False, False, (_GTC, _IOC, _FOK, _GTT), None),
    OrderType.LIMIT_MAKER: OrderShape(True, False, False, (_GTC, _GTT), _GTC),
    OrderType.STOP_LOSS_LIMIT: OrderShape(True, True, False, (_GTC, _IOC, _FOK, _GTT), None),
    OrderType.MARKET: OrderShape(False, False, True, (_GTC, _IOC), _IOC),
    OrderType.STOP_LOSS: OrderShape(False, True, True, (_GTC, _IOC), _GTC),
}


def expiry_required(tif: TimeInForce) -> bool:
    """Whether an order of this time in force carries an expiry (and only then)."""
    return tif is _GTT


class OrderFields(Protocol):
    """What :func:`shape_breach` reads of an order (``OrderCreate`` has all of it)."""

    @property
    def type(self) -> OrderType: ...
    @property
    def time_in_force(self) -> TimeInForce: ...
    @property
    def price(self) -> int | None: ...
    @property
    def quantity(self) -> int | None: ...
    @property
    def quote_order_qty(self) -> int | None: ...
    @property
    def stop_price(self) -> int | None: ...
    @property
    def expire_at(self) -> int | None: ...


def shape_breach(order: OrderFields) -> str | None:
    """The first field that breaks the shape of the order's type (missing, not allowed, or
    a time in force the type does not take), or ``None`` when the shape is right."""
    shape = SHAPES[order.type]
    if (order.price is None) == shape.limit_price:
        return "price"
    if (order.stop_price is None) == shape.stop_price:
        return "stop_price"
    quantity, quote_order_qty = order.quantity, order.quote_order_qty
    if shape.by_quote:
        if (quantity is None) == (quote_order_qty is None):
            return "quantity"
    elif quantity is None:
        return "quantity"
    elif quote_order_qty is not None:
        return "quote_order_qty"
    tif = order.time_in_force
    if tif not in shape.time_in_force:
        return "time_in_force"
    if (order.expire_at is not None) != (tif is _GTT):
        return "expire_at"
    return None


def numbers_in_int64(order: OrderFields) -> bool:
    """Whether every price, stop price, quantity and quote amount the order has is a
    positive 64-bit integer (ticks, lots, quote units)."""
    return (
        in_int64(order.price)
        and in_int64(order.quantity)
        and in_int64(order.stop_price)
        and in_int64(order.quote_order_qty)
    )


def in_int64(value: int | None) -> bool:
    """A price, stop price, quantity or quote amount: absent, or in ``1..2**63-1``."""
    return value is None or 0 < value <= MAX_INT64


@dataclass(frozen=True, slots=True)
class OrderLimits:
    """A market's order bounds in market units (the config's are decimals: converting them
    on every order would be slow)."""

    min_qty_lots: int
    max_qty_lots: int
    min_notional_units: int

    @classmethod
    def of(cls, config: MarketConfig) -> OrderLimits:
        return cls(config.min_qty_lots, config.max_qty_lots, config.min_notional_units)

    def qty_in_bounds(self, lots: int) -> bool:
        """A quantity within ``[min_qty, max_qty]``."""
        return self.min_qty_lots <= lots <= self.max_qty_lots

    def meets_min_notional(self, quote_units: int) -> bool:
        """A notional (or ``quote_order_qty``) at least ``min_notional``."""
        return quote_units >= self.min_notional_units

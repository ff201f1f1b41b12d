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
from typing import Final

from cex.core.events import OrderType, TimeInForce
from cex.core.market import MAX_INT64, MarketConfig

__all__ = [
    "SHAPES",
    "OrderLimits",
    "OrderShape",
    "expiry_required",
    "in_int64",
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


def shape_breach(
    order_type: OrderType,
    tif: TimeInForce,
    *,
    price: int | None,
    quantity: int | None,
    quote_order_qty: int | None,
    stop_price: int | None,
    expire_at: int | None,
) -> str | None:
    """The first field that breaks the shape of ``order_type`` (missing, not allowed, or a
    time in force the type does not take), or ``None`` when the shape is right."""
    shape = SHAPES[order_type]
    if (price is None) == shape.limit_price:
        return "price"
    if (stop_price is None) == shape.stop_price:
        return "stop_price"
    if shape.by_quote:
        if (quantity is None) == (quote_order_qty is None):
            return "quantity"
    elif quantity is None:
        return "quantity"
    elif quote_order_qty is not None:
        return "quote_order_qty"
    if tif not in shape.time_in_force:
        return "time_in_force"
    if (expire_at is not None) != expiry_required(tif):
        return "expire_at"
    return None


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

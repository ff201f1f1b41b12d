"""Order requests → engine commands: parsing and checks against the market config.

Pure: no database, no clock (the caller passes `ts`). Parameter names follow the Binance
Spot API so the public API passes requests through unchanged. What is checked here is
what can be known without the book: grid, bounds, notional (at the limit price), the
combination of fields each order type needs. Funds are checked under row locks in the store.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cex.core.errors import (
    AmountError,
    AmountOutOfBounds,
    MalformedAmount,
    NegativeAmount,
    OffGridAmount,
    TooManyDigits,
    ZeroAmount,
)
from cex.core.events import OrderType, Side, StpMode, TimeInForce
from cex.core.market import MarketConfig
from cex.trading import errors

#: The funds a market order by quantity needs are unknown before it matches: it locks the
#: whole available balance, spends what it needs, and the engine's terminal event releases
#: the rest (DESIGN.md §6: the engine never spends more than what was locked).
LOCK_ALL_AVAILABLE = -1

E = TypeVar("E", bound=enum.Enum)

_CLIENT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/")


@dataclass(frozen=True)
class OrderRequest:
    """What a client sent, as strings (Binance parameter names)."""

    user_id: int
    symbol: str
    side: str
    type: str
    newClientOrderId: str
    timeInForce: str | None = None
    quantity: str | None = None
    quoteOrderQty: str | None = None
    price: str | None = None
    stopPrice: str | None = None
    goodTillDate: int | None = None
    selfTradePreventionMode: str | None = None


@dataclass(frozen=True)
class ValidOrder:
    """A checked order in market units, ready to be funded and sent to the engine."""

    user_id: int
    market: str
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int | None
    quantity: int | None
    quote_order_qty: int | None
    stop_price: int | None
    expire_at: int | None
    stp_mode: StpMode
    locked_asset: str
    lock: int  # smallest units of locked_asset, or LOCK_ALL_AVAILABLE


_LIMIT_TYPES = {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT}
_TIFS = {
    OrderType.LIMIT: {"GTC", "IOC", "FOK", "GTT"},
    OrderType.STOP_LOSS_LIMIT: {"GTC", "IOC", "FOK", "GTT"},
    OrderType.LIMIT_MAKER: {"GTC", "GTT"},
}


def validate(request: OrderRequest, config: MarketConfig) -> ValidOrder:
    """The checked order, or a TradingError saying exactly what is wrong."""
    if request.user_id <= 0:
        raise errors.illegal_value("user_id")
    side = _enum(Side, request.side, "side", -1117)
    order_type = _enum(OrderType, request.type, "orderType", -1116)
    client_order_id = request.newClientOrderId
    if not 1 <= len(client_order_id) <= 36 or not set(client_order_id) <= _CLIENT_ID_CHARS:
        raise errors.illegal_value("newClientOrderId")
    stp = StpMode.EXPIRE_MAKER
    if request.selfTradePreventionMode is not None:
        stp = _enum(StpMode, request.selfTradePreventionMode, "selfTradePreventionMode", -1171)

    price = stop = quantity = quote_qty = expire_at = None
    if order_type in _LIMIT_TYPES:
        if request.timeInForce is None and order_type is not OrderType.LIMIT_MAKER:
            raise errors.mandatory("timeInForce")
        tif_text = request.timeInForce or "GTC"
        if tif_text not in _TIFS[order_type]:
            raise errors.invalid_enum(-1115, "timeInForce")
        tif = TimeInForce(tif_text)
        price = _amount(lambda: config.price_to_ticks(_required(request.price, "price")),
                        "price", "PRICE_FILTER")  # fmt: skip
        quantity = _quantity(request.quantity, config)
        if request.quoteOrderQty is not None:
            raise errors.not_required("quoteOrderQty", order_type.value)
        if config.notional(price, quantity) < config.min_notional_units:
            raise errors.filter_failure("NOTIONAL")
    else:  # MARKET, STOP_LOSS: no price, one of quantity / quoteOrderQty
        if request.price is not None:
            raise errors.not_required("price", order_type.value)
        tif = TimeInForce.IOC if order_type is OrderType.MARKET else TimeInForce.GTC
        if (request.quantity is None) == (request.quoteOrderQty is None):
            raise errors.mandatory("quantity' or 'quoteOrderQty")
        if request.quantity is not None:
            quantity = _quantity(request.quantity, config)
        else:
            quote_qty = _amount(lambda: config.quote_to_units(request.quoteOrderQty or ""),
                                "quoteOrderQty", "NOTIONAL")  # fmt: skip
            if quote_qty < config.min_notional_units:
                raise errors.filter_failure("NOTIONAL")
    if order_type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT):
        stop = _amount(lambda: config.price_to_ticks(_required(request.stopPrice, "stopPrice"),
                                                     field="stopPrice"),
                       "stopPrice", "PRICE_FILTER")  # fmt: skip
    elif request.stopPrice is not None:
        raise errors.not_required("stopPrice", order_type.value)
    if tif is TimeInForce.GTT:
        if request.goodTillDate is None:
            raise errors.mandatory("goodTillDate")
        expire_at = request.goodTillDate
    elif request.goodTillDate is not None:
        raise errors.not_required("goodTillDate", tif.value)

    if side is Side.BUY:
        locked_asset = config.quote
        if price is not None and quantity is not None:
            lock = config.notional(price, quantity)
        elif quote_qty is not None:
            lock = quote_qty
        else:
            lock = LOCK_ALL_AVAILABLE
    else:
        locked_asset = config.base
        lock = config.base_units(quantity) if quantity is not None else LOCK_ALL_AVAILABLE

    return ValidOrder(
        user_id=request.user_id,
        market=config.name,
        client_order_id=client_order_id,
        side=side,
        type=order_type,
        time_in_force=tif,
        price=price,
        quantity=quantity,
        quote_order_qty=quote_qty,
        stop_price=stop,
        expire_at=expire_at,
        stp_mode=stp,
        locked_asset=locked_asset,
        lock=lock,
    )


def _required(value: str | None, param: str) -> str:
    if value is None or value == "":
        raise errors.mandatory(param)
    return value


def _quantity(text: str | None, config: MarketConfig) -> int:
    if text is None:
        raise errors.mandatory("quantity")
    return _amount(lambda: config.qty_to_lots(text), "quantity", "LOT_SIZE")


def _amount(parse: Callable[[], int], param: str, filter_name: str) -> int:
    """Run a core parser; map its precise error to Binance's code for that failure."""
    try:
        value = parse()
    except (MalformedAmount, TooManyDigits):
        raise errors.illegal_value(param) from None
    except NegativeAmount:
        raise errors.illegal_value(param) from None
    except (ZeroAmount, OffGridAmount, AmountOutOfBounds):
        raise errors.filter_failure(filter_name) from None
    except AmountError:
        raise errors.illegal_value(param) from None
    return value


def _enum(kind: type[E], value: str, what: str, code: int) -> E:
    try:
        return kind(value)
    except ValueError:
        raise errors.invalid_enum(code, what) from None

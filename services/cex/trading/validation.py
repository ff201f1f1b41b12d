"""Order requests → engine commands: parsing and checks against the market config.

Pure: no database, no clock (the caller passes `ts`). Parameter names follow the Binance
Spot API so the public API passes requests through unchanged. What is checked here is
what can be known without the book: grid, bounds, notional (at the limit price), the
combination of fields each order type needs — the rules of `cex.core.order_rules`, which
the engine applies too; this module maps a breach to Binance's error for the parameter.
Funds are checked under row locks in the store.
"""

from __future__ import annotations

import enum
import functools
import secrets
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
from cex.core.market import MAX_INT64, MarketConfig
from cex.core.order_rules import SHAPES, OrderLimits, expiry_required, in_int64
from cex.trading import errors

#: The funds a market order by quantity needs are unknown before it matches: it locks the
#: whole available balance, spends what it needs, and the engine's terminal event releases
#: the rest (DESIGN.md §6: the engine never spends more than what was locked).
LOCK_ALL_AVAILABLE = -1

E = TypeVar("E", bound=enum.Enum)

_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_CLIENT_ID_CHARS = frozenset(_ALPHANUMERIC + "-_.:/")
#: Length of a generated client order id (Binance's are 22 characters of [A-Za-z0-9]).
GENERATED_CLIENT_ID_LENGTH = 22

#: Every amount of money an order carries (its lock, a notional, ``quoteOrderQty``) goes on
#: the wire as a 64-bit integer (msgpack) and into ``numeric(38, 0)`` columns; prices and
#: quantities are ``bigint``. Anything larger is refused here, at the edge, never by a
#: failed write (which would fail every order of its batch).
MAX_ORDER_AMOUNT = MAX_INT64

#: Parsed prices and quantities kept (`_parsed_price`, `_parsed_quantity`), each.
PARSED_CACHE_SIZE = 4096


def new_client_order_id() -> str:
    """A random client order id as Binance generates them: 22 characters of [A-Za-z0-9]."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(GENERATED_CLIENT_ID_LENGTH))


@dataclass(frozen=True)
class OrderRequest:
    """What a client sent, as strings (Binance parameter names)."""

    user_id: int
    symbol: str
    side: str
    type: str
    newClientOrderId: str | None = None  # generated when absent
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


_LIMIT_TYPES = frozenset(t for t, shape in SHAPES.items() if shape.limit_price)


def validate(request: OrderRequest, config: MarketConfig) -> ValidOrder:
    """The checked order, or a TradingError saying exactly what is wrong."""
    check_user_id(request.user_id)
    side = _enum(Side, request.side, "side", -1117)
    order_type = _enum(OrderType, request.type, "orderType", -1116)
    client_order_id = request.newClientOrderId
    if client_order_id is None:
        client_order_id = new_client_order_id()
    elif not 1 <= len(client_order_id) <= 36 or not set(client_order_id) <= _CLIENT_ID_CHARS:
        raise errors.illegal_value("newClientOrderId")
    stp = StpMode.EXPIRE_MAKER
    if request.selfTradePreventionMode is not None:
        stp = _enum(StpMode, request.selfTradePreventionMode, "selfTradePreventionMode", -1171)

    shape = SHAPES[order_type]
    price = stop = quantity = quote_qty = expire_at = None
    if shape.limit_price:  # the client names the time in force of the limit types
        default_tif = shape.default_time_in_force
        if request.timeInForce is None and default_tif is None:
            raise errors.mandatory("timeInForce")
        tif_text = request.timeInForce or default_tif or TimeInForce.GTC  # "" counts as GTC
        if tif_text not in shape.time_in_force:
            raise errors.invalid_enum(-1115, "timeInForce")
        tif = TimeInForce(tif_text)
        price = _price(request.price, config, "price")
        quantity = _quantity(request.quantity, config)
        if request.quoteOrderQty is not None:
            raise errors.not_required("quoteOrderQty", order_type.value)
        check_notional(price, quantity, config)
    else:  # MARKET, STOP_LOSS: no price, one of quantity / quoteOrderQty
        if request.price is not None:
            raise errors.not_required("price", order_type.value)
        assert shape.by_quote
        assert shape.default_time_in_force is not None
        tif = shape.default_time_in_force
        if (request.quantity is None) == (request.quoteOrderQty is None):
            raise errors.mandatory("quantity' or 'quoteOrderQty")
        if request.quantity is not None:
            quantity = _quantity(request.quantity, config)
        else:
            quote_qty = _amount(lambda: config.quote_to_units(request.quoteOrderQty or ""),
                                "quoteOrderQty", "NOTIONAL")  # fmt: skip
            if not _in_notional_bounds(quote_qty, config):
                raise errors.filter_failure("NOTIONAL")
    if shape.stop_price:
        stop = _price(request.stopPrice, config, "stopPrice")
    elif request.stopPrice is not None:
        raise errors.not_required("stopPrice", order_type.value)
    if expiry_required(tif):
        if request.goodTillDate is None:
            raise errors.mandatory("goodTillDate")
        if not 0 < request.goodTillDate <= MAX_INT64:
            raise errors.illegal_value("goodTillDate")
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
        if lock > MAX_ORDER_AMOUNT:
            raise errors.filter_failure("LOT_SIZE")

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


def check_user_id(user_id: int) -> None:
    """The caller's user id (the public API takes it from authentication): a positive
    64-bit integer."""
    if isinstance(user_id, bool) or not 0 < user_id <= MAX_INT64:
        raise errors.illegal_value("user_id")


def check_notional(price: int, quantity: int, config: MarketConfig) -> int:
    """``price × quantity`` in quote units, within ``[min_notional, MAX_ORDER_AMOUNT]``."""
    notional = config.notional(price, quantity)
    if not _in_notional_bounds(notional, config):
        raise errors.filter_failure("NOTIONAL")
    return notional


def _in_notional_bounds(quote_units: int, config: MarketConfig) -> bool:
    """At least the market's ``min_notional``, at most what fits the wire."""
    return quote_units <= MAX_ORDER_AMOUNT and OrderLimits.of(config).meets_min_notional(
        quote_units
    )


def _price(text: str | None, config: MarketConfig, param: str) -> int:
    """A price (or stop price) in ticks: on the tick grid, positive, a 64-bit integer."""
    return _parsed_price(_required(text, param), config, param)


# Prices and quantities repeat (levels near the book, round sizes), and a decimal parse is
# a third of an order's validation: a market's parsed values are kept (by the config, so a
# changed config parses anew). A refused value raises, which is never kept.
@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parsed_price(text: str, config: MarketConfig, param: str) -> int:
    ticks = _amount(lambda: config.price_to_ticks(text, field=param), param, "PRICE_FILTER")
    if not in_int64(ticks):
        raise errors.filter_failure("PRICE_FILTER")
    return ticks


def _required(value: str | None, param: str) -> str:
    if value is None or value == "":
        raise errors.mandatory(param)
    return value


def _quantity(text: str | None, config: MarketConfig, param: str = "quantity") -> int:
    """A quantity in lots, within the market's [min_qty, max_qty] (which config validation
    keeps within 64 bits)."""
    if text is None:
        raise errors.mandatory(param)
    return _parsed_quantity(text, config, param)


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parsed_quantity(text: str, config: MarketConfig, param: str) -> int:
    return _amount(lambda: config.qty_to_lots(text, field=param), param, "LOT_SIZE")


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
    member = _MEMBERS[kind].get(value)
    if member is None:
        raise errors.invalid_enum(code, what)
    return member  # type: ignore[return-value]


#: Enum members by value (a dict lookup; calling the enum class costs several times more).
_MEMBERS: dict[type[enum.Enum], dict[str, enum.Enum]] = {
    kind: {m.value: m for m in kind} for kind in (Side, OrderType, StpMode)
}


# ---------------------------------------------------------------------- amend


@dataclass(frozen=True)
class AmendRequest:
    """Change an open limit order's quantity and/or price (Binance ``newQty``; ``newPrice``
    is ours). One of ``orderId`` / ``origClientOrderId`` names the order."""

    user_id: int
    symbol: str
    orderId: int | None = None
    origClientOrderId: str | None = None
    newQty: str | None = None
    newPrice: str | None = None


@dataclass(frozen=True)
class ValidAmend:
    user_id: int
    market: str
    order_id: int | None
    client_order_id: str | None
    new_quantity: int | None  # lots, the new total quantity (filled part included)
    new_price: int | None  # ticks


def validate_amend(request: AmendRequest, config: MarketConfig) -> ValidAmend:
    """What can be checked without the order: the ids and the grid and bounds of the new
    quantity (LOT_SIZE) and price (PRICE_FILTER)."""
    check_user_id(request.user_id)
    if request.orderId is not None and not 0 < request.orderId <= MAX_INT64:
        raise errors.illegal_value("orderId")
    client_order_id = request.origClientOrderId or None
    if client_order_id is not None and (
        len(client_order_id) > 36 or not set(client_order_id) <= _CLIENT_ID_CHARS
    ):
        raise errors.illegal_value("origClientOrderId")
    if request.orderId is None and client_order_id is None:
        raise errors.mandatory("orderId' or 'origClientOrderId")
    if request.newQty is None and request.newPrice is None:
        raise errors.mandatory("newQty")
    new_quantity = None if request.newQty is None else _quantity(request.newQty, config, "newQty")
    new_price = None if request.newPrice is None else _price(request.newPrice, config, "newPrice")
    return ValidAmend(
        user_id=request.user_id,
        market=config.name,
        order_id=request.orderId,
        client_order_id=client_order_id,
        new_quantity=new_quantity,
        new_price=new_price,
    )


def amend_lock(
    amend: ValidAmend,
    *,
    side: Side,
    order_type: OrderType,
    price: int | None,
    quantity: int | None,
    filled: int,
    locked_remaining: int,
    config: MarketConfig,
) -> int:
    """The funds to lock on top of ``locked_remaining`` for ``amend`` of this open order:
    what its new remaining quantity needs at its new price (quote units for a buy, base
    units for a sell) minus what it holds; 0 for a decrease. Refuses what the engine would.

    The order's state is the database's, which may lag the engine's (fills not settled yet):
    the engine checks again with its own and refuses an amend its funds do not cover, and
    settlement then returns the additional lock (COMMAND_REJECTED ``released``).
    """
    if order_type not in _LIMIT_TYPES or price is None or quantity is None:
        raise errors.amend_rejected("only limit orders can be amended")
    new_qty = quantity if amend.new_quantity is None else amend.new_quantity
    new_price = price if amend.new_price is None else amend.new_price
    if new_qty == quantity and new_price == price:
        raise errors.amend_rejected("nothing to change")
    if new_qty <= filled:
        raise errors.amend_rejected("newQty must exceed the executed quantity")
    check_notional(new_price, new_qty, config)
    remaining = new_qty - filled
    required = config.notional(new_price, remaining) if side is Side.BUY else (
        config.base_units(remaining))  # fmt: skip
    if required > MAX_ORDER_AMOUNT:
        raise errors.filter_failure("NOTIONAL" if side is Side.BUY else "LOT_SIZE")
    return max(0, required - locked_remaining)

"""Market-data arithmetic: rolling-window statistics, averages and aggregate trades.

Pure functions over integers in market units (price ticks, quantity lots, quote smallest
units); the public API's queries feed them and format nothing themselves. Decimals only
appear in what is formatted for output, never a float.

Rules (as Binance's ``/api/v3/ticker/24hr``, ``/ticker``, ``/avgPrice``, ``/aggTrades``):

* ``priceChange = lastPrice - openPrice`` at the tick's precision; ``priceChangePercent``
  is ``priceChange / openPrice × 100`` quantized to 3 decimals (ROUND_HALF_UP).
* ``weightedAvgPrice = quoteVolume / volume`` and the average price of ``avgPrice`` are
  exact quotients quantized (ROUND_HALF_UP) to :func:`average_places` decimals: the quote
  asset's precision, or the tick's if finer.
* A window without a trade has Binance's zero shape: every price, quantity and volume
  ``0`` at its precision, ``firstId = lastId = -1``, ``count = 0``; only ``lastPrice`` and
  ``prevClosePrice`` carry the last price before the window (0 if the market never traded).
* An aggregate trade is a maximal run of trades with consecutive ids from the same taker
  order at the same price and time. Its id ``a`` is the id of its first trade (``f``), so
  "aggregate id ≥ fromId" means "first trade id ≥ fromId".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal

from cex.core.market import MarketConfig
from cex.core.money import MAX_DIGITS

__all__ = [
    "AggTrade",
    "Book",
    "Fill",
    "WindowStats",
    "aggregate",
    "average_places",
    "average_price",
    "percent_change",
    "price_at_average_places",
    "price_places",
    "rolling_open_time",
    "rolling_ticker",
    "same_aggregate",
    "window_ms",
]

TickerType = Literal["FULL", "MINI"]
TickerKind = Literal["24hr", "rolling"]

_PERCENT = Decimal("0.001")
_MINUTE_MS = 60_000
#: windowSize units and how many of each Binance accepts (``1m``..``59m``, ``1h``..``23h``,
#: ``1d``..``7d``; units cannot be combined).
_WINDOW_UNITS = {"m": (59, _MINUTE_MS), "h": (23, 60 * _MINUTE_MS), "d": (7, 1440 * _MINUTE_MS)}


def _places(step: Decimal) -> int:
    exponent = step.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def price_places(config: MarketConfig) -> int:
    """Decimals of a price on the market's tick grid."""
    return _places(config.tick_size)


def average_places(config: MarketConfig) -> int:
    """Decimals of an average price: the quote precision, or the tick's if that is finer
    (so that an average is never coarser than a traded price)."""
    return max(config.quote_precision, price_places(config))


def _format(value: Decimal, places: int) -> str:
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS + 10
        quantized = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        return f"{quantized:.{places}f}"


def average_price(config: MarketConfig, quote_units: int, volume_lots: int) -> str:
    """``quote / base``: ``quote_units`` (quote smallest units) over ``volume_lots``, exact
    then quantized to :func:`average_places`; ``0`` when nothing traded."""
    places = average_places(config)
    if volume_lots == 0:
        return _format(Decimal(0), places)
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS + 10
        quote = Decimal(quote_units).scaleb(-config.quote_precision)
        base = Decimal(volume_lots) * config.lot_size
        return _format(quote / base, places)


def price_at_average_places(config: MarketConfig, price_ticks: int) -> str:
    """A traded price written like an average price (same number of decimals)."""
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS + 10
        return _format(Decimal(price_ticks) * config.tick_size, average_places(config))


def percent_change(open_ticks: int, last_ticks: int) -> str:
    """``(last - open) / open × 100`` at 3 decimals (ROUND_HALF_UP); ``0.000`` if open is 0."""
    if open_ticks == 0:
        return "0.000"
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS + 10
        change = Decimal(last_ticks - open_ticks) * 100 / Decimal(open_ticks)
        return f"{change.quantize(_PERCENT, rounding=ROUND_HALF_UP):.3f}"


def window_ms(text: str) -> int | None:
    """A ``windowSize`` (``1m``..``59m``, ``1h``..``23h``, ``1d``..``7d``) in ms; None if
    it is not one of those."""
    if len(text) < 2 or text[-1] not in _WINDOW_UNITS:
        return None
    digits = text[:-1]
    if not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        return None
    most, unit_ms = _WINDOW_UNITS[text[-1]]
    count = int(digits)
    return count * unit_ms if count <= most else None


# --------------------------------------------------------------------------- tickers


@dataclass(frozen=True)
class WindowStats:
    """The trades of one market in a window ``[open_time, close_time]``, in market units.

    ``first_id``/``last_id`` are None when no trade fell in the window (then the price
    fields are meaningless and ignored); ``prev_close_ticks`` is the price of the last trade
    before the window, None if there was none.
    """

    count: int
    first_id: int | None
    last_id: int | None
    open_ticks: int
    high_ticks: int
    low_ticks: int
    last_ticks: int
    last_lots: int
    volume_lots: int
    quote_units: int
    prev_close_ticks: int | None


@dataclass(frozen=True)
class Book:
    """Best bid and ask (price ticks, quantity lots); ``(0, 0)`` for an empty side."""

    bid: tuple[int, int] = (0, 0)
    ask: tuple[int, int] = (0, 0)


def rolling_ticker(
    config: MarketConfig,
    stats: WindowStats,
    *,
    open_time: int,
    close_time: int,
    kind: TickerKind,
    type_: TickerType,
    book: Book | None = None,
) -> dict[str, object]:
    """The ticker object of ``/api/v3/ticker/24hr`` (``kind="24hr"``, which also has
    ``prevClosePrice``, ``lastQty`` and the book's best levels) or ``/api/v3/ticker``
    (``kind="rolling"``), FULL or MINI, with Binance's field order."""
    traded = stats.first_id is not None
    prev_close = stats.prev_close_ticks or 0
    if traded:
        open_, high, low, last = (
            stats.open_ticks, stats.high_ticks, stats.low_ticks, stats.last_ticks,
        )  # fmt: skip
        last_lots = stats.last_lots
    else:
        open_, high, low, last, last_lots = 0, 0, 0, prev_close, 0
    price = config.format_price
    qty = config.format_qty
    change = last - open_ if traded else 0
    out: dict[str, object] = {"symbol": config.symbol}
    if type_ == "FULL":
        out["priceChange"] = price(change)
        out["priceChangePercent"] = percent_change(open_, last) if traded else "0.000"
        out["weightedAvgPrice"] = average_price(config, stats.quote_units, stats.volume_lots)
        if kind == "24hr":
            levels = book or Book()
            out["prevClosePrice"] = price(prev_close)
            out["lastPrice"] = price(last)
            out["lastQty"] = qty(last_lots)
            out["bidPrice"] = price(levels.bid[0])
            out["bidQty"] = qty(levels.bid[1])
            out["askPrice"] = price(levels.ask[0])
            out["askQty"] = qty(levels.ask[1])
    out["openPrice"] = price(open_)
    out["highPrice"] = price(high)
    out["lowPrice"] = price(low)
    if type_ == "MINI" or kind == "rolling":
        out["lastPrice"] = price(last)
    out["volume"] = qty(stats.volume_lots)
    out["quoteVolume"] = config.format_quote(stats.quote_units)
    out["openTime"] = open_time
    out["closeTime"] = close_time
    out["firstId"] = stats.first_id if stats.first_id is not None else -1
    out["lastId"] = stats.last_id if stats.last_id is not None else -1
    out["count"] = stats.count
    return out


def rolling_open_time(close_time: int, window: int) -> int:
    """``/api/v3/ticker``'s window start: ``close_time - window`` rounded down to a minute."""
    return (close_time - window) // _MINUTE_MS * _MINUTE_MS


# --------------------------------------------------------------------------- aggTrades


@dataclass(frozen=True)
class Fill:
    """One trade as aggregation needs it."""

    trade_id: int
    price_ticks: int
    qty_lots: int
    ts: int
    buyer_maker: bool
    taker_order_id: int


@dataclass(frozen=True)
class AggTrade:
    """Consecutive fills of one taker order at one price and time; ``agg_id == first_id``."""

    agg_id: int
    price_ticks: int
    qty_lots: int
    first_id: int
    last_id: int
    ts: int
    buyer_maker: bool

    def to_binance(self, config: MarketConfig) -> dict[str, object]:
        return {
            "a": self.agg_id,
            "p": config.format_price(self.price_ticks),
            "q": config.format_qty(self.qty_lots),
            "f": self.first_id,
            "l": self.last_id,
            "T": self.ts,
            "m": self.buyer_maker,
            "M": True,
        }


def same_aggregate(earlier: Fill, later: Fill) -> bool:
    """Whether ``later`` (the next trade id after ``earlier``) continues its aggregate."""
    return (
        later.trade_id == earlier.trade_id + 1
        and later.taker_order_id == earlier.taker_order_id
        and later.price_ticks == earlier.price_ticks
        and later.ts == earlier.ts
    )


def aggregate(fills: Iterable[Fill]) -> list[AggTrade]:
    """Aggregate ``fills`` given in ascending trade id order."""
    out: list[AggTrade] = []
    previous: Fill | None = None
    for fill in fills:
        if previous is not None and same_aggregate(previous, fill):
            last = out[-1]
            out[-1] = AggTrade(
                agg_id=last.agg_id,
                price_ticks=last.price_ticks,
                qty_lots=last.qty_lots + fill.qty_lots,
                first_id=last.first_id,
                last_id=fill.trade_id,
                ts=last.ts,
                buyer_maker=last.buyer_maker,
            )
        else:
            out.append(
                AggTrade(
                    agg_id=fill.trade_id,
                    price_ticks=fill.price_ticks,
                    qty_lots=fill.qty_lots,
                    first_id=fill.trade_id,
                    last_id=fill.trade_id,
                    ts=fill.ts,
                    buyer_maker=fill.buyer_maker,
                )
            )
        previous = fill
    return out

"""The JSON payloads of Binance's market streams, built from market units (pure).

Prices and quantities are decimal strings at the market's tick and lot precisions
(``MarketConfig.format_*``), never floats. Event times are milliseconds: a trade's is the
``ts`` of the command that made it (the engine never reads a clock); the periodic and
depth events get the time they are pushed, given by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cex.core import tickers
from cex.core.events import Side, TradeExecuted
from cex.core.market import MarketConfig
from cex.gateway.book import Diff

__all__ = [
    "agg_trades",
    "avg_price",
    "book_ticker",
    "depth_update",
    "mini_ticker",
    "partial_depth",
    "ticker",
    "trade",
]

Json = dict[str, Any]


def _levels(config: MarketConfig, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
    return [[config.format_price(p), config.format_qty(q)] for p, q in levels]


def depth_update(config: MarketConfig, diff: Diff, now_ms: int) -> Json:
    return {
        "e": "depthUpdate",
        "E": now_ms,
        "s": config.symbol,
        "U": diff.first_update_id,
        "u": diff.seq,
        "b": _levels(config, diff.bids),
        "a": _levels(config, diff.asks),
    }


def partial_depth(
    config: MarketConfig, seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]
) -> Json:
    return {"lastUpdateId": seq, "bids": _levels(config, bids), "asks": _levels(config, asks)}


def book_ticker(config: MarketConfig, seq: int, bid: tuple[int, int], ask: tuple[int, int]) -> Json:
    return {
        "u": seq,
        "s": config.symbol,
        "b": config.format_price(bid[0]),
        "B": config.format_qty(bid[1]),
        "a": config.format_price(ask[0]),
        "A": config.format_qty(ask[1]),
    }


def trade(config: MarketConfig, event: TradeExecuted) -> Json:
    buyer_maker = event.taker_side is Side.SELL
    buyer, seller = (
        (event.maker_order_id, event.taker_order_id)
        if buyer_maker
        else (event.taker_order_id, event.maker_order_id)
    )
    return {
        "e": "trade",
        "E": event.ts,
        "s": config.symbol,
        "t": event.trade_id,
        "p": config.format_price(event.price),
        "q": config.format_qty(event.qty),
        "b": buyer,
        "a": seller,
        "T": event.ts,
        "m": buyer_maker,
        "M": True,
    }


def fill(event: TradeExecuted) -> tickers.Fill:
    return tickers.Fill(
        trade_id=event.trade_id,
        price_ticks=event.price,
        qty_lots=event.qty,
        ts=event.ts,
        buyer_maker=event.taker_side is Side.SELL,
        taker_order_id=event.taker_order_id,
    )


def agg_trades(config: MarketConfig, events: list[TradeExecuted]) -> list[Json]:
    """The aggregate trades of a run of trades, numbered as REST ``/api/v3/aggTrades``
    numbers them (``a`` = the first trade's id; :func:`cex.core.tickers.aggregate`). The
    engine publishes a command's trades together, so an aggregate is never split between
    two messages."""
    out = []
    for agg in tickers.aggregate(fill(e) for e in events):
        out.append({
            "e": "aggTrade",
            "E": agg.ts,
            "s": config.symbol,
            **agg.to_binance(config),
        })  # fmt: skip
    return out


#: REST 24hr ticker field → stream field.
_TICKER_FIELDS = {
    "priceChange": "p",
    "priceChangePercent": "P",
    "weightedAvgPrice": "w",
    "prevClosePrice": "x",
    "lastPrice": "c",
    "lastQty": "Q",
    "bidPrice": "b",
    "bidQty": "B",
    "askPrice": "a",
    "askQty": "A",
    "openPrice": "o",
    "highPrice": "h",
    "lowPrice": "l",
    "volume": "v",
    "quoteVolume": "q",
    "openTime": "O",
    "closeTime": "C",
    "firstId": "F",
    "lastId": "L",
    "count": "n",
}
_MINI_FIELDS = ("c", "o", "h", "l", "v", "q")


def ticker(
    config: MarketConfig,
    stats: tickers.WindowStats,
    *,
    open_time: int,
    close_time: int,
    bid: tuple[int, int],
    ask: tuple[int, int],
) -> Json:
    """``24hrTicker``: the REST ``/ticker/24hr`` figures (``cex.core.tickers``) under the
    stream's one-letter names."""
    rest = tickers.rolling_ticker(
        config, stats, open_time=open_time, close_time=close_time, kind="24hr", type_="FULL",
        book=tickers.Book(bid=bid, ask=ask),
    )  # fmt: skip
    out: Json = {"e": "24hrTicker", "E": close_time, "s": config.symbol}
    for name, short in _TICKER_FIELDS.items():
        out[short] = rest[name]
    return out


def mini_ticker(full: Json) -> Json:
    """``24hrMiniTicker`` from a ``24hrTicker``."""
    out: Json = {"e": "24hrMiniTicker", "E": full["E"], "s": full["s"]}
    for short in _MINI_FIELDS:
        out[short] = full[short]
    return out


def avg_price(
    config: MarketConfig,
    quote_units: int,
    volume_lots: int,
    last: tuple[int, int] | None,
    now_ms: int,
) -> Json:
    """``avgPrice``: as REST ``/api/v3/avgPrice`` over 5 minutes (the last price when
    nothing traded in them); ``T`` the last trade's time."""
    if volume_lots:
        price = tickers.average_price(config, quote_units, volume_lots)
    else:
        price = tickers.price_at_average_places(config, last[0] if last else 0)
    return {
        "e": "avgPrice",
        "E": now_ms,
        "s": config.symbol,
        "i": "5m",
        "w": price,
        "T": last[1] if last else 0,
    }

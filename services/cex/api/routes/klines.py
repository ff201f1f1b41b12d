"""Klines: `GET /api/v3/klines` and `/api/v3/uiKlines` (weight 2), as Binance serves them.

Rows are `[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades,
takerBuyBaseVolume, takerBuyQuoteVolume, "0"]`, decimals at the market's tick, lot and
quote precisions. Candles come from two places (`cex.infra.redis`): Redis holds the
current candle of every interval and the versions the persister has not written yet;
Postgres holds the rest. Redis is read first, then Postgres (the persister commits before
it deletes from Redis), and for each open time the version with the highest `last_seq`
wins: no gap and no double at the seam. Periods without trades have no candle.

`timeZone` (hours or hours:minutes in [-12:00, +14:00]) interprets the intervals in that
zone; `startTime`/`endTime` stay UTC. The stored candles are UTC; when the zone moves an
interval's boundaries (e.g. `1d` at +8), its candles are rebuilt from the finest stored
interval whose periods nest in them (`cex.core.candles.regroup`). `uiKlines` answers the
same rows as `klines`.

Selection: with `startTime`, the first `limit` candles opening at or after it (and at or
before `endTime`); otherwise the last `limit` candles opening at or before `endTime` (or
now).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from cex.api import errors, schemas
from cex.api.deps import State, public
from cex.api.params import Param, Params, openapi
from cex.api.state import ApiState
from cex.core import candles as cc
from cex.core.market import MarketConfig
from cex.infra.redis import read_recent_candles

router = APIRouter(prefix="/api/v3", tags=["Market data"])

#: Finer intervals a zone-shifted interval can be rebuilt from, coarsest first.
_BASES = ("1h", "30m", "15m", "5m", "3m", "1m")
_FIXED_MAX = 12 * cc.HOUR  # fixed intervals up to 12h nest in an hour-aligned day
_COLUMNS = (
    "interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,"
    " taker_buy_volume, taker_buy_quote, first_trade_id, last_trade_id, last_seq"
)

PARAMS = openapi(
    Param("symbol", required=True, description="The symbol, e.g. BTCUSDT."),
    Param("interval", required=True, enum=cc.INTERVALS, description="Kline interval."),
    Param("startTime", "integer", description="First open time (ms, UTC, inclusive)."),
    Param("endTime", "integer", description="Last open time (ms, UTC, inclusive)."),
    Param("timeZone", description='Offset from UTC, e.g. "0" (default), "8", "-1:30".'),
    Param("limit", "integer", description="Default 500, at most 1000."),
)


def kline_row(config: MarketConfig, c: cc.Candle) -> list[Any]:
    return [
        c.open_time,
        config.format_price(c.open),
        config.format_price(c.high),
        config.format_price(c.low),
        config.format_price(c.close),
        config.format_qty(c.volume),
        c.close_time,
        config.format_quote(c.quote_volume),
        c.trades,
        config.format_qty(c.taker_buy_volume),
        config.format_quote(c.taker_buy_quote),
        "0",
    ]


def _base(interval: str, offset: int) -> str:
    """The stored interval to read: `interval` itself when the zone keeps its boundaries."""
    length = cc.interval_ms(interval)
    if offset == 0 or (length <= _FIXED_MAX and offset % length == 0):
        return interval
    for base in _BASES:
        size = cc.interval_ms(base)
        if offset % size == 0 and (length > _FIXED_MAX or length % size == 0):
            return base
    return "1m"  # offsets are whole minutes


def _candle(row: Any) -> cc.Candle:
    return cc.Candle(
        row["interval"], row["open_time"], row["close_time"], row["open"], row["high"],
        row["low"], row["close"], int(row["volume"]), int(row["quote_volume"]), row["trades"],
        int(row["taker_buy_volume"]), int(row["taker_buy_quote"]), row["first_trade_id"],
        row["last_trade_id"], row["last_seq"],
    )  # fmt: skip


async def _stored(
    state: ApiState, market: str, interval: str, lo: int, hi: int, limit: int | None, desc: bool
) -> list[cc.Candle]:
    """Candles of `interval` opening in [lo, hi], Redis first then Postgres, newest
    version of each; at most `limit` from each end Postgres is asked for."""
    recent = await read_recent_candles(state.redis, state.settings.redis_prefix, market, interval)
    order = "DESC" if desc else "ASC"
    rows = await state.pool.fetch(
        f"SELECT {_COLUMNS} FROM candles WHERE market = $1 AND interval = $2"
        f" AND open_time BETWEEN $3 AND $4 ORDER BY open_time {order}"
        + (" LIMIT $5" if limit is not None else ""),
        market, interval, lo, hi, *([limit] if limit is not None else []),
    )  # fmt: skip
    found: dict[int, cc.Candle] = {}
    for candle in [*(_candle(r) for r in rows), *recent]:
        if not lo <= candle.open_time <= hi:
            continue
        known = found.get(candle.open_time)
        if known is None or known.last_seq < candle.last_seq:
            found[candle.open_time] = candle
    return [found[t] for t in sorted(found)]


async def read_klines(
    state: ApiState, market: str, interval: str, *, start: int | None, end: int | None,
    limit: int, offset: int,
) -> list[cc.Candle]:  # fmt: skip
    top = end if end is not None else max(state.clock_ms(), 0)
    base = _base(interval, offset)
    if base == interval:
        if start is not None:
            found = await _stored(state, market, interval, start, top, limit, desc=False)
            return found[:limit]
        found = await _stored(state, market, interval, 0, top, limit, desc=True)
        return found[-limit:]
    span = (limit + 1) * cc.interval_ms(interval)
    if start is not None:
        lo = cc.open_time(interval, start, offset)
        if lo < start:
            lo = cc.next_open(interval, lo, offset)
        hi = min(cc.close_time(interval, cc.open_time(interval, top, offset), offset), lo + span)
        parts = await _stored(state, market, base, lo, hi, None, desc=False)
        grouped = [c for c in cc.regroup(interval, parts, offset) if lo <= c.open_time <= top]
        return grouped[:limit]
    hi = cc.close_time(interval, cc.open_time(interval, top, offset), offset)
    lo = cc.open_time(interval, max(hi - span, 0), offset)
    parts = await _stored(state, market, base, lo, hi, None, desc=False)
    grouped = [c for c in cc.regroup(interval, parts, offset) if lo <= c.open_time <= top]
    return grouped[-limit:]


async def _klines(state: ApiState, p: Params) -> list[list[Any]]:
    config = state.markets.get(p.required_text("symbol")).config
    interval = p.required_text("interval")
    if not cc.is_interval(interval):
        raise errors.invalid_interval()
    start = p.integer("startTime", low=0)
    end = p.integer("endTime", low=0)
    zone = p.text("timeZone")
    offset = 0 if zone is None else cc.parse_time_zone(zone)
    if offset is None:
        raise errors.invalid_parameter("timeZone")
    limit = p.integer("limit")
    if limit is not None and limit < 1:
        raise errors.invalid_parameter("limit")
    limit = min(limit or 500, 1000)
    if start is not None and end is not None and start > end:
        return []
    found = await read_klines(
        state, config.name, interval, start=start, end=end, limit=limit, offset=offset
    )
    return [kline_row(config, c) for c in found]


@router.get(
    "/klines",
    summary="Kline/candlestick bars (weight 2)",
    openapi_extra=PARAMS,
    responses=schemas.documented(list[schemas.Kline], "Candles, oldest first", *schemas.PUBLIC),
)
async def klines(state: State, p: Annotated[Params, public(2)]) -> list[list[Any]]:
    return await _klines(state, p)


@router.get(
    "/uiKlines",
    summary="Klines for charts (weight 2): the same rows as /klines",
    openapi_extra=PARAMS,
    responses=schemas.documented(list[schemas.Kline], "Candles, oldest first", *schemas.PUBLIC),
)
async def ui_klines(state: State, p: Annotated[Params, public(2)]) -> list[list[Any]]:
    return await _klines(state, p)

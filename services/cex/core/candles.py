"""Candles (klines): Binance's 16 intervals, built from TRADE_EXECUTED events. Pure.

Intervals and their open times
------------------------------
``1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M`` (:data:`INTERVALS`, case-sensitive
as in Binance's API). A candle covers ``[open_time, close_time]`` in milliseconds since the
epoch, ``close_time = next open time - 1`` (Binance's convention). Open times are aligned
in UTC, or in the fixed offset ``offset_ms`` east of UTC (Binance's ``timeZone``
parameter: the intervals are interpreted in that zone, the times stay UTC):

* fixed-length intervals up to ``1d``: multiples of the length since the (local) epoch;
* ``3d``: multiples of three days since 1970-01-01 (local). Binance's public documentation
  does not state the anchor of ``3d``; the epoch is the natural one for a fixed length and
  what its ``3d`` candles follow as far as we can tell;
* ``1w``: Monday 00:00 (local), as documented by Binance (1970-01-05 is a Monday);
* ``1M``: the first day of the calendar month, 00:00 (local).

Units and fields
----------------
Prices in ticks (open, high, low, close), volumes in lots (``volume``,
``taker_buy_volume``), quote volumes in the quote asset's smallest unit
(``quote_volume``, ``taker_buy_quote``), ``trades`` the count, ``first_trade_id`` /
``last_trade_id`` the market's trade ids, ``last_seq`` the ``seq`` of the last trade in it
(a newer version of the same candle has a higher ``last_seq``). "Taker buy" volumes are
the trades whose taker bought (Binance's meaning).

Idempotent aggregation
----------------------
:class:`CandleState` holds, for one market, the current (latest) candle of every interval
and ``last_seq``, the seq of the last trade applied. :func:`apply` folds trades in:
a trade with ``seq <= last_seq`` (redelivered or older) changes nothing. A trade opening a
new period closes the interval's current candle (``closed=True``) and starts a new one.
Periods without trades have no candle. The state is plain data (:func:`encode_state`,
:func:`decode_state`), so stopping, storing and resuming anywhere gives the same candles as
one uninterrupted run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from cex.core.events import Side, TradeExecuted

__all__ = [
    "INTERVALS",
    "Candle",
    "CandleState",
    "Update",
    "aggregate",
    "apply",
    "close_time",
    "combine",
    "copy_state",
    "decode_candle",
    "decode_state",
    "encode_candle",
    "encode_state",
    "interval_ms",
    "is_interval",
    "new_state",
    "next_open",
    "open_time",
    "parse_time_zone",
    "regroup",
]

SECOND: Final = 1000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY
#: 1970-01-01 was a Thursday; weeks start on Monday, 4 days later.
_MONDAY_SHIFT: Final = 4 * DAY

#: Fixed lengths (ms); ``1M`` has none.
_LENGTHS: Final[dict[str, int]] = {
    "1s": SECOND,
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "2h": 2 * HOUR,
    "4h": 4 * HOUR,
    "6h": 6 * HOUR,
    "8h": 8 * HOUR,
    "12h": 12 * HOUR,
    "1d": DAY,
    "3d": 3 * DAY,
    "1w": WEEK,
}
INTERVALS: Final[tuple[str, ...]] = (*_LENGTHS, "1M")


def is_interval(name: str) -> bool:
    return name in _LENGTHS or name == "1M"


def interval_ms(interval: str) -> int:
    """The length of a fixed interval; for ``1M`` the longest month (31 days)."""
    return _LENGTHS.get(interval, 31 * DAY)


# --------------------------------------------------------------------------- calendar


def _civil_from_days(days: int) -> tuple[int, int]:
    """(year, month) of a day number since 1970-01-01 (Howard Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month


def _days_from_civil(year: int, month: int) -> int:
    """Day number since 1970-01-01 of the first day of ``month`` of ``year``."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def open_time(interval: str, ts: int, offset_ms: int = 0) -> int:
    """The open time (UTC ms) of the ``interval`` candle containing ``ts``, periods aligned
    in the zone ``offset_ms`` east of UTC."""
    local = ts + offset_ms
    if interval == "1M":
        year, month = _civil_from_days(local // DAY)
        return _days_from_civil(year, month) * DAY - offset_ms
    length = _LENGTHS[interval]
    if interval == "1w":
        return (local - _MONDAY_SHIFT) // length * length + _MONDAY_SHIFT - offset_ms
    return local // length * length - offset_ms


def next_open(interval: str, opened: int, offset_ms: int = 0) -> int:
    """The open time of the period after the one opening at ``opened``."""
    if interval == "1M":
        year, month = _civil_from_days((opened + offset_ms) // DAY)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return _days_from_civil(year, month) * DAY - offset_ms
    return opened + _LENGTHS[interval]


def close_time(interval: str, opened: int, offset_ms: int = 0) -> int:
    """Binance's close time: the last millisecond of the period."""
    return next_open(interval, opened, offset_ms) - 1


_TIME_ZONE = re.compile(r"^([+-])?([0-9]{1,2})(?::([0-9]{2}))?$")


def parse_time_zone(text: str) -> int | None:
    """Binance's ``timeZone`` (``"8"``, ``"+8"``, ``"-1:30"``, ``"05:45"``) → offset in ms
    east of UTC; ``None`` when malformed or outside [-12:00, +14:00]."""
    match = _TIME_ZONE.match(text)
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if minutes >= 60:
        return None
    offset = hours * HOUR + minutes * MINUTE
    if sign == "-":
        offset = -offset
    if not -12 * HOUR <= offset <= 14 * HOUR:
        return None
    return offset


# --------------------------------------------------------------------------- candles


class Candle(msgspec.Struct, frozen=True, gc=False):
    """One candle of one interval. ``closed``: a later trade opened the next period."""

    interval: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote: int
    first_trade_id: int
    last_trade_id: int
    last_seq: int
    closed: bool = False


def _first(interval: str, opened: int, trade: TradeExecuted) -> Candle:
    buy = trade.taker_side is Side.BUY
    return Candle(
        interval=interval,
        open_time=opened,
        close_time=close_time(interval, opened),
        open=trade.price,
        high=trade.price,
        low=trade.price,
        close=trade.price,
        volume=trade.qty,
        quote_volume=trade.quote_amount,
        trades=1,
        taker_buy_volume=trade.qty if buy else 0,
        taker_buy_quote=trade.quote_amount if buy else 0,
        first_trade_id=trade.trade_id,
        last_trade_id=trade.trade_id,
        last_seq=trade.seq,
    )


def _add(candle: Candle, trade: TradeExecuted) -> Candle:
    buy = trade.taker_side is Side.BUY
    return msgspec.structs.replace(
        candle,
        high=max(candle.high, trade.price),
        low=min(candle.low, trade.price),
        close=trade.price,
        volume=candle.volume + trade.qty,
        quote_volume=candle.quote_volume + trade.quote_amount,
        trades=candle.trades + 1,
        taker_buy_volume=candle.taker_buy_volume + (trade.qty if buy else 0),
        taker_buy_quote=candle.taker_buy_quote + (trade.quote_amount if buy else 0),
        last_trade_id=trade.trade_id,
        last_seq=trade.seq,
    )


def combine(interval: str, opened: int, parts: Sequence[Candle], offset_ms: int = 0) -> Candle:
    """One candle of ``interval`` opening at ``opened`` from finer candles of its period
    (any order): open of the first, close of the last, extremes, sums."""
    ordered = sorted(parts, key=lambda c: c.open_time)
    first, last = ordered[0], ordered[-1]
    return Candle(
        interval=interval,
        open_time=opened,
        close_time=close_time(interval, opened, offset_ms),
        open=first.open,
        high=max(c.high for c in ordered),
        low=min(c.low for c in ordered),
        close=last.close,
        volume=sum(c.volume for c in ordered),
        quote_volume=sum(c.quote_volume for c in ordered),
        trades=sum(c.trades for c in ordered),
        taker_buy_volume=sum(c.taker_buy_volume for c in ordered),
        taker_buy_quote=sum(c.taker_buy_quote for c in ordered),
        first_trade_id=min(c.first_trade_id for c in ordered),
        last_trade_id=max(c.last_trade_id for c in ordered),
        last_seq=max(c.last_seq for c in ordered),
        closed=last.closed,
    )


def regroup(interval: str, candles: Iterable[Candle], offset_ms: int) -> list[Candle]:
    """Candles of ``interval`` in the zone ``offset_ms`` from finer UTC candles whose
    periods nest in it (ascending by open time)."""
    buckets: dict[int, list[Candle]] = {}
    for candle in candles:
        buckets.setdefault(open_time(interval, candle.open_time, offset_ms), []).append(candle)
    return [combine(interval, t, buckets[t], offset_ms) for t in sorted(buckets)]


# --------------------------------------------------------------------------- state


class CandleState(msgspec.Struct, gc=False):
    """One market's aggregation state: the latest candle of each interval (by name) and
    the seq of the last trade applied (0 before any)."""

    last_seq: int = 0
    current: dict[str, Candle] = msgspec.field(default_factory=dict)


class Update(msgspec.Struct, frozen=True, gc=False):
    """What :func:`apply` changed: candles closed by new periods, then the new versions of
    the current candles, both in :data:`INTERVALS` order per trade."""

    closed: list[Candle]
    current: list[Candle]

    @property
    def candles(self) -> list[Candle]:
        return [*self.closed, *self.current]


def new_state() -> CandleState:
    return CandleState()


def copy_state(state: CandleState) -> CandleState:
    """A copy :func:`apply` can change without changing ``state`` (candles are immutable:
    apply replaces them in the dict, so a new dict suffices)."""
    return CandleState(state.last_seq, dict(state.current))


def apply(state: CandleState, trades: Iterable[TradeExecuted]) -> Update:
    """Fold ``trades`` (one market's, in seq order) into ``state`` in place. Trades whose
    seq is not above ``state.last_seq`` are skipped. Returns the closed candles and the
    final version of every current candle that changed."""
    closed: list[Candle] = []
    changed: dict[str, Candle] = {}
    current = state.current
    for trade in trades:
        if trade.seq <= state.last_seq:
            continue
        for interval in INTERVALS:
            candle = current.get(interval)
            opened = open_time(interval, trade.ts)
            if candle is None or opened > candle.open_time:
                if candle is not None:
                    closed.append(msgspec.structs.replace(candle, closed=True))
                candle = _first(interval, opened, trade)
            else:
                # A trade never goes back in time (ts comes from the commands, in order);
                # if it did, it would count in the current period rather than be lost.
                candle = _add(candle, trade)
            current[interval] = candle
            changed[interval] = candle
        state.last_seq = trade.seq
    return Update(closed, [changed[i] for i in INTERVALS if i in changed])


def aggregate(trades: Iterable[TradeExecuted]) -> dict[tuple[str, int], Candle]:
    """Every candle of every interval of a trade stream, by (interval, open time); the
    latest ones are open (``closed=False``). The reference for checks and rebuilds."""
    state = new_state()
    update = apply(state, trades)
    out = {(c.interval, c.open_time): c for c in update.closed}
    out.update({(c.interval, c.open_time): c for c in state.current.values()})
    return out


# --------------------------------------------------------------------------- codec

#: JSON, not MessagePack: quote volumes are unbounded integers.
_candle_decoder = msgspec.json.Decoder(Candle)
_state_decoder = msgspec.json.Decoder(CandleState)
_encoder = msgspec.json.Encoder()


def encode_candle(candle: Candle) -> bytes:
    return _encoder.encode(candle)


def decode_candle(data: bytes) -> Candle:
    return _candle_decoder.decode(data)


def encode_state(state: CandleState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> CandleState:
    return _state_decoder.decode(data)

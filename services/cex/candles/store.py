"""The ``candles`` table (migrations 0001, 0007): upserts and reads shared by the
persister and ``cex candles rebuild``."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from cex.core.candles import Candle
from cex.core.events import Side, TradeExecuted

__all__ = ["COLUMNS", "candle_of", "load_candles", "load_trades", "newest", "upsert"]

COLUMNS = (
    "interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,"
    " taker_buy_volume, taker_buy_quote, first_trade_id, last_trade_id, last_seq"
)

_UPSERT = f"""
INSERT INTO candles (market, {COLUMNS})
SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
    $7::bigint[], $8::bigint[], $9::numeric[], $10::numeric[], $11::bigint[], $12::numeric[],
    $13::numeric[], $14::bigint[], $15::bigint[], $16::bigint[])
ON CONFLICT (market, interval, open_time) DO UPDATE SET
    close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high,
    low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume,
    quote_volume = EXCLUDED.quote_volume, trades = EXCLUDED.trades,
    taker_buy_volume = EXCLUDED.taker_buy_volume, taker_buy_quote = EXCLUDED.taker_buy_quote,
    first_trade_id = EXCLUDED.first_trade_id, last_trade_id = EXCLUDED.last_trade_id,
    last_seq = EXCLUDED.last_seq
"""
#: Only a newer version replaces a stored candle (the persister: idempotent, restart-safe).
UPSERT_NEWER = _UPSERT + "WHERE candles.last_seq < EXCLUDED.last_seq"
_NAMES = [name.strip() for name in COLUMNS.split(",")]
#: Any different version replaces it (a rebuild from the trades table, the truth).
UPSERT_DIFFERENT = (
    _UPSERT
    + f"WHERE ({', '.join('candles.' + n for n in _NAMES)})"
    + f" IS DISTINCT FROM ({', '.join('EXCLUDED.' + n for n in _NAMES)})"
)


def newest(candles: Iterable[Candle]) -> dict[tuple[str, int], Candle]:
    """One version per (interval, open time): the highest ``last_seq``."""
    out: dict[tuple[str, int], Candle] = {}
    for candle in candles:
        key = (candle.interval, candle.open_time)
        if key not in out or out[key].last_seq < candle.last_seq:
            out[key] = candle
    return out


async def upsert(
    conn: asyncpg.Connection | asyncpg.Pool, market: str, candles: Iterable[Candle], *,
    newer_only: bool = True,
) -> str:  # fmt: skip
    rows = list(newest(candles).values())
    if not rows:
        return "INSERT 0 0"
    columns = [[getattr(c, name) for c in rows] for name in _NAMES]
    return str(
        await conn.execute(UPSERT_NEWER if newer_only else UPSERT_DIFFERENT, market, *columns)
    )


def candle_of(row: asyncpg.Record) -> Candle:
    return Candle(
        interval=row["interval"],
        open_time=row["open_time"],
        close_time=row["close_time"],
        open=row["open"],
        high=row["high"],
        low=row["low"],
        close=row["close"],
        volume=int(row["volume"]),
        quote_volume=int(row["quote_volume"]),
        trades=row["trades"],
        taker_buy_volume=int(row["taker_buy_volume"]),
        taker_buy_quote=int(row["taker_buy_quote"]),
        first_trade_id=row["first_trade_id"],
        last_trade_id=row["last_trade_id"],
        last_seq=row["last_seq"],
    )


async def load_candles(conn: asyncpg.Connection | asyncpg.Pool, market: str) -> list[Candle]:
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM candles WHERE market = $1", market)
    return [candle_of(r) for r in rows]


async def load_trades(conn: asyncpg.Connection, market: str, symbol: str) -> list[TradeExecuted]:
    """The market's settled trades in seq order, as the TRADE_EXECUTED events they came
    from (the fields candles use; the others zero)."""
    rows = await conn.fetch(
        "SELECT trade_id, price, qty, quote_amount, taker_side, seq, ts FROM trades"
        " WHERE market = $1 ORDER BY seq",
        market,
    )
    return [
        TradeExecuted(
            symbol,
            r["seq"],
            0,
            r["ts"],
            r["trade_id"],
            r["price"],
            r["qty"],
            int(r["quote_amount"]),
            0,
            Side(r["taker_side"]),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        for r in rows
    ]

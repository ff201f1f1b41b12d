"""The public API's market-data reads: the engine's L2 book in Redis, trades in Postgres.

Each function returns market units (ticks, lots, quote units) or `cex.core.tickers` values;
formatting is the route's business (`cex.api.routes.market`).

* The book: one `HGETALL` of `{prefix}:book:{market}` (atomic in Redis), so the `seq` read
  is exactly the book's, and a depth diff stream can chain onto it.
* Tickers: one statement for any number of markets (`unnest` + `LATERAL`), each market's
  window aggregated over `trades_ts (market, ts)`, its first, last and previous trades
  looked up by primary key.
* Aggregate trades: trades are read in chunks in the walk's order and grouped by
  `cex.core.tickers.aggregate`; a walk stops as soon as the last aggregate it returns is
  known to be complete (the next trade starts another one), so an aggregate of any size is
  returned whole and the work is bounded by what is returned. The reads of one walk share
  one snapshot (a read-only REPEATABLE READ transaction).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from cex.core.tickers import AggTrade, Book, Fill, aggregate, same_aggregate
from cex.infra import marketstats
from cex.infra.redis import book_key, parse_book

INT64_MAX = 2**63 - 1
#: Trades read per round trip once a walk needs more than its first `limit + 1`.
CHUNK = 1000
TRADE_COLUMNS = "trade_id, price, qty, quote_amount, ts, taker_side"
FILL_COLUMNS = "trade_id, price, qty, ts, taker_side, taker_order_id"


# --------------------------------------------------------------------------- the book


@dataclass(frozen=True)
class L2Book:
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]

    def best(self) -> Book:
        return Book(
            bid=self.bids[0] if self.bids else (0, 0),
            ask=self.asks[0] if self.asks else (0, 0),
        )


async def read_books(redis: aioredis.Redis, prefix: str, markets: list[str]) -> list[L2Book]:
    """The L2 books of `markets` (Market names), one atomic HGETALL each, one round trip.
    A market whose engine has not written its book yet has seq 0 and no levels."""
    async with redis.pipeline(transaction=False) as pipe:
        for market in markets:
            pipe.hgetall(book_key(prefix, market))
        replies = await pipe.execute()
    return [L2Book(*parse_book(fields)) for fields in replies]


# --------------------------------------------------------------------------- trades


async def recent_trades(pool: asyncpg.Pool, market: str, limit: int) -> list[asyncpg.Record]:
    """The `limit` most recent trades, oldest first."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT {TRADE_COLUMNS} FROM trades WHERE market = $1 ORDER BY trade_id DESC LIMIT $2",
        market, limit,
    )  # fmt: skip
    return rows[::-1]


async def trades_from(
    pool: asyncpg.Pool, market: str, from_id: int, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` trades with id ≥ `from_id`, oldest first."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT {TRADE_COLUMNS} FROM trades WHERE market = $1 AND trade_id >= $2 "
        "ORDER BY trade_id LIMIT $3",
        market, from_id, limit,
    )  # fmt: skip
    return rows


# --------------------------------------------------------------------------- tickers

window_stats = marketstats.window_stats


async def last_prices(pool: asyncpg.Pool, markets: list[str]) -> dict[str, int | None]:
    """Each market's last trade price (ticks), None if it never traded."""
    rows = await pool.fetch(
        """
        SELECT m.name, l.price FROM unnest($1::text[]) AS m(name)
        LEFT JOIN LATERAL (
            SELECT price FROM trades WHERE market = m.name ORDER BY trade_id DESC LIMIT 1
        ) l ON true
        """,
        markets,
    )
    return {row["name"]: row["price"] for row in rows}


@dataclass(frozen=True)
class Average:
    quote_units: int
    volume_lots: int
    #: The last trade of the market (price ticks, ts), in the window or not; None if none.
    last: tuple[int, int] | None


async def average(pool: asyncpg.Pool, market: str, since: int, until: int) -> Average:
    """Volume and quote volume of the trades with `since ≤ ts ≤ until`, and the last trade."""
    row = await pool.fetchrow(
        """
        SELECT w.volume, w.quote, l.price, l.ts FROM (
            SELECT coalesce(sum(qty), 0) AS volume, coalesce(sum(quote_amount), 0) AS quote
            FROM trades WHERE market = $1 AND ts >= $2 AND ts <= $3
        ) w
        LEFT JOIN LATERAL (
            SELECT price, ts FROM trades WHERE market = $1 ORDER BY trade_id DESC LIMIT 1
        ) l ON true
        """,
        market, since, until,
    )  # fmt: skip
    assert row is not None
    last = (row["price"], row["ts"]) if row["price"] is not None else None
    return Average(int(row["quote"]), int(row["volume"]), last)


# --------------------------------------------------------------------------- aggTrades

NextChunk = Callable[[int], Awaitable[list[Fill]]]


def _fill(row: asyncpg.Record) -> Fill:
    return Fill(
        trade_id=row["trade_id"],
        price_ticks=row["price"],
        qty_lots=row["qty"],
        ts=row["ts"],
        buyer_maker=row["taker_side"] == "SELL",
        taker_order_id=row["taker_order_id"],
    )


async def _walk(
    next_chunk: NextChunk, limit: int, *, descending: bool, previous: Fill | None = None
) -> list[AggTrade]:
    """The first `limit` whole aggregates met by the walk, oldest first. `previous` is the
    trade just before an ascending walk's start: trades continuing its aggregate are
    skipped (that aggregate's id is below the start)."""
    taken: list[Fill] = []
    groups = 0
    last = previous
    want = limit + 1
    while True:
        chunk = await next_chunk(want)
        for fill in chunk:
            if last is None or not (
                same_aggregate(fill, last) if descending else same_aggregate(last, fill)
            ):
                groups += 1
                if groups > limit:
                    break
            if groups:
                taken.append(fill)
            last = fill
        if groups > limit or len(chunk) < want:
            break
        want = CHUNK
    if descending:
        taken.reverse()
    return aggregate(taken)


async def agg_trades(
    pool: asyncpg.Pool,
    market: str,
    *,
    limit: int,
    from_id: int | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[AggTrade]:
    """Aggregate trades, oldest first: from aggregate id `from_id`, or the oldest with
    `start ≤ T ≤ end` when `start` is given, or the most recent up to `end` (or at all)."""
    select = f"SELECT {FILL_COLUMNS} FROM trades WHERE market = $1 AND "
    # One snapshot for every read of the walk: trades settled meanwhile are not half-seen.
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        if from_id is not None:
            row = await conn.fetchrow(
                select + "trade_id < $2 ORDER BY trade_id DESC LIMIT 1", market, from_id
            )
            after = from_id - 1

            async def by_id(n: int) -> list[Fill]:
                nonlocal after
                rows = await conn.fetch(
                    select + "trade_id > $2 ORDER BY trade_id LIMIT $3", market, after, n
                )
                after = rows[-1]["trade_id"] if rows else after
                return [_fill(r) for r in rows]

            previous = _fill(row) if row is not None else None
            return await _walk(by_id, limit, descending=False, previous=previous)

        if start is not None:
            cursor = (start, -1)
            until = INT64_MAX if end is None else end

            async def by_time(n: int) -> list[Fill]:
                nonlocal cursor
                rows = await conn.fetch(
                    select + "ts >= $2 AND ts <= $3 AND (ts, trade_id) > ($2, $4) "
                    "ORDER BY ts, trade_id LIMIT $5",
                    market, cursor[0], until, cursor[1], n,
                )  # fmt: skip
                if rows:
                    cursor = (rows[-1]["ts"], rows[-1]["trade_id"])
                return [_fill(r) for r in rows]

            return await _walk(by_time, limit, descending=False)

        if end is not None:
            back = (end, INT64_MAX)

            async def back_by_time(n: int) -> list[Fill]:
                nonlocal back
                rows = await conn.fetch(
                    select + "ts <= $2 AND (ts, trade_id) < ($2, $3) "
                    "ORDER BY ts DESC, trade_id DESC LIMIT $4",
                    market, back[0], back[1], n,
                )  # fmt: skip
                if rows:
                    back = (rows[-1]["ts"], rows[-1]["trade_id"])
                return [_fill(r) for r in rows]

            return await _walk(back_by_time, limit, descending=True)

        before = INT64_MAX

        async def back_by_id(n: int) -> list[Fill]:
            nonlocal before
            rows = await conn.fetch(
                select + "trade_id < $2 ORDER BY trade_id DESC LIMIT $3", market, before, n
            )
            before = rows[-1]["trade_id"] if rows else before
            return [_fill(r) for r in rows]

        return await _walk(back_by_id, limit, descending=True)

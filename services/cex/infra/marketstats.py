"""Trade statistics over a time window, per market, from settlement's `trades` table: the
24 h and rolling tickers of the REST API and the WebSocket gateway, one query for any
number of markets."""

from __future__ import annotations

import asyncpg

from cex.core.tickers import WindowStats

INT64_MAX = 2**63 - 1

_STATS = """
SELECT m.name, s.n, s.first_id, s.last_id, s.high, s.low, s.volume, s.quote,
       o.price AS open, l.price AS last, l.qty AS last_qty, pc.price AS prev_close
FROM unnest($1::text[]) AS m(name)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(trade_id) AS first_id, max(trade_id) AS last_id,
           max(price) AS high, min(price) AS low,
           coalesce(sum(qty), 0) AS volume, coalesce(sum(quote_amount), 0) AS quote
    FROM trades WHERE market = m.name AND ts >= $2 AND ts <= $3
) s
LEFT JOIN trades o ON o.market = m.name AND o.trade_id = s.first_id
LEFT JOIN trades l ON l.market = m.name AND l.trade_id = s.last_id
LEFT JOIN LATERAL (
    SELECT price FROM trades
    WHERE market = m.name AND trade_id < coalesce(s.first_id, $4) AND ts < $2
    ORDER BY trade_id DESC LIMIT 1
) pc ON true
"""


async def window_stats(
    pool: asyncpg.Pool, markets: list[str], open_time: int, close_time: int
) -> dict[str, WindowStats]:
    """Each market's trades with `open_time ≤ ts ≤ close_time`, and the price of the last
    trade before them (`prevClosePrice`)."""
    rows = await pool.fetch(_STATS, markets, open_time, close_time, INT64_MAX)
    return {
        row["name"]: WindowStats(
            count=row["n"],
            first_id=row["first_id"],
            last_id=row["last_id"],
            open_ticks=row["open"] or 0,
            high_ticks=row["high"] or 0,
            low_ticks=row["low"] or 0,
            last_ticks=row["last"] or 0,
            last_lots=row["last_qty"] or 0,
            volume_lots=int(row["volume"]),
            quote_units=int(row["quote"]),
            prev_close_ticks=row["prev_close"],
        )
        for row in rows
    }


async def spans(
    pool: asyncpg.Pool, markets: list[str], since: int, until: int
) -> dict[str, tuple[int, int, tuple[int, int] | None]]:
    """Each market's (volume in lots, quote amount) of its trades with `since ≤ ts ≤ until`,
    and its last trade's (price ticks, ts) or None (the average price, `avgPrice`)."""
    rows = await pool.fetch(
        """
        SELECT m.name, a.volume, a.quote, lt.price, lt.ts
        FROM unnest($1::text[]) AS m(name)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(qty), 0) AS volume, coalesce(sum(quote_amount), 0) AS quote
            FROM trades WHERE market = m.name AND ts >= $2 AND ts <= $3
        ) a
        LEFT JOIN LATERAL (
            SELECT price, ts FROM trades WHERE market = m.name ORDER BY trade_id DESC LIMIT 1
        ) lt ON true
        """,
        markets, since, until,
    )  # fmt: skip
    return {
        row["name"]: (
            int(row["volume"]),
            int(row["quote"]),
            (row["price"], row["ts"]) if row["price"] is not None else None,
        )
        for row in rows
    }

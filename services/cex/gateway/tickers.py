"""Rolling 24 h tickers and 5 min average prices, from the ``trades`` table.

One statement for every market, run about once a second while anybody listens to a
ticker or average-price stream, shared by all clients (the figures are REST's: the same
rules in :mod:`cex.core.tickers`). Pushes:

* ``<symbol>@ticker`` / ``<symbol>@miniTicker`` / ``<symbol>@avgPrice``: every refresh;
* ``!ticker@arr`` / ``!miniTicker@arr``: the tickers whose figures changed since the last
  refresh (all of them on the first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from cex.core.tickers import WindowStats
from cex.gateway import payloads
from cex.gateway.feed import MarketFeed
from cex.gateway.hub import Hub

__all__ = ["TickerBoard", "fetch"]

DAY_MS = 86_400_000
AVG_MS = 5 * 60_000
INT64_MAX = 2**63 - 1

_QUERY = """
SELECT m.name, s.n, s.first_id, s.last_id, s.high, s.low, s.volume, s.quote,
       o.price AS open, l.price AS last, l.qty AS last_qty, pc.price AS prev_close,
       a.volume AS avg_volume, a.quote AS avg_quote, lt.price AS lt_price, lt.ts AS lt_ts
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
CROSS JOIN LATERAL (
    SELECT coalesce(sum(qty), 0) AS volume, coalesce(sum(quote_amount), 0) AS quote
    FROM trades WHERE market = m.name AND ts >= $5 AND ts <= $3
) a
LEFT JOIN LATERAL (
    SELECT price, ts FROM trades WHERE market = m.name ORDER BY trade_id DESC LIMIT 1
) lt ON true
"""


@dataclass(frozen=True)
class MarketFigures:
    stats: WindowStats
    avg_quote: int
    avg_volume: int
    last: tuple[int, int] | None


async def fetch(pool: asyncpg.Pool, markets: list[str], now_ms: int) -> dict[str, MarketFigures]:
    rows = await pool.fetch(_QUERY, markets, now_ms - DAY_MS, now_ms, INT64_MAX, now_ms - AVG_MS)
    return {
        row["name"]: MarketFigures(
            stats=WindowStats(
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
            ),
            avg_quote=int(row["avg_quote"]),
            avg_volume=int(row["avg_volume"]),
            last=(row["lt_price"], row["lt_ts"]) if row["lt_price"] is not None else None,
        )
        for row in rows
    }


_VOLATILE = ("E", "O", "C")


class TickerBoard:
    """Pushes the ticker streams from one :func:`fetch` (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._previous: dict[str, dict[str, Any]] = {}

    def wanted(self, feeds: Mapping[str, MarketFeed]) -> bool:
        """Whether anybody listens to a stream a refresh would feed."""
        if self.hub.has("!ticker@arr") or self.hub.has("!miniTicker@arr"):
            return True
        for feed in feeds.values():
            lower = feed.config.symbol.lower()
            for suffix in ("@ticker", "@miniTicker", "@avgPrice"):
                if self.hub.has(lower + suffix):
                    return True
        return False

    def push(
        self,
        feeds: Mapping[str, MarketFeed],
        figures: Mapping[str, MarketFigures],
        now_ms: int,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        changed_full: list[dict[str, Any]] = []
        changed_mini: list[dict[str, Any]] = []
        for name, feed in sorted(feeds.items()):
            found = figures.get(name)
            if found is None:
                continue
            config = feed.config
            lower = config.symbol.lower()
            bid, ask = feed.book.best()
            full = payloads.ticker(
                config, found.stats, open_time=now_ms - DAY_MS, close_time=now_ms, bid=bid, ask=ask
            )
            mini = payloads.mini_ticker(full)
            self.hub.publish(lower + "@ticker", full)
            self.hub.publish(lower + "@miniTicker", mini)
            self.hub.publish(
                lower + "@avgPrice",
                payloads.avg_price(config, found.avg_quote, found.avg_volume, found.last, now_ms),
            )
            steady = {k: v for k, v in full.items() if k not in _VOLATILE}
            if self._previous.get(name) != steady:
                self._previous[name] = steady
                changed_full.append(full)
                changed_mini.append(mini)
        if changed_full:
            self.hub.publish("!ticker@arr", changed_full)
            self.hub.publish("!miniTicker@arr", changed_mini)

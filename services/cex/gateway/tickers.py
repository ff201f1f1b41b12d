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
from cex.infra import marketstats

__all__ = ["TickerBoard", "fetch"]

DAY_MS = 86_400_000
AVG_MS = 5 * 60_000
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class MarketFigures:
    stats: WindowStats
    avg_quote: int
    avg_volume: int
    last: tuple[int, int] | None


async def fetch(pool: asyncpg.Pool, markets: list[str], now_ms: int) -> dict[str, MarketFigures]:
    """The 24 h statistics and the 5-minute average of every market (two queries)."""
    day = await marketstats.window_stats(pool, markets, now_ms - DAY_MS, now_ms)
    recent = await marketstats.spans(pool, markets, now_ms - AVG_MS, now_ms)
    return {
        name: MarketFigures(stats=stats, avg_quote=recent[name][1],
                            avg_volume=recent[name][0], last=recent[name][2])
        for name, stats in day.items()
    }  # fmt: skip


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

"""One market's live data in the gateway: its book, diff windows, partial books, book
ticker and trades, turned into stream payloads for the hub.

The service hands it the engine's messages (:meth:`MarketFeed.on_depth`,
:meth:`MarketFeed.on_trades`) and, when it asks for one, the book key's contents
(:meth:`MarketFeed.on_book`). Depth pushes are throttled, not ticked: the first change
after a quiet period is pushed at once, later ones at most once per period (100 ms for
``@100ms`` streams, 1000 ms otherwise), and nothing is pushed when nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from cex.core.events import TradeExecuted
from cex.core.market import MarketConfig
from cex.gateway import metrics, payloads
from cex.gateway.book import Book, Diff, DiffWindow
from cex.gateway.hub import Hub
from cex.infra.redis import DepthUpdate

__all__ = ["MarketFeed"]

log = logging.getLogger(__name__)
PERIODS_MS = (100, 1000)
PARTIAL_LEVELS = (5, 10, 20)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class MarketFeed:
    def __init__(
        self,
        config: MarketConfig,
        hub: Hub,
        *,
        request_resync: Callable[[MarketFeed], None],
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.config = config
        self.hub = hub
        self.request_resync = request_resync
        self.clock_ms = clock_ms
        self.book = Book()
        #: Updates received while the book waits for a resync.
        self.waiting: list[DepthUpdate] = []
        self.resyncing = False
        self.last_trade_id: int | None = None
        self.best: tuple[tuple[int, int], tuple[int, int]] | None = None
        lower = config.symbol.lower()
        self.depth_streams = {1000: f"{lower}@depth", 100: f"{lower}@depth@100ms"}
        self.partial_streams = {
            period: [(n, f"{lower}@depth{n}" + ("@100ms" if period == 100 else ""))
                     for n in PARTIAL_LEVELS]
            for period in PERIODS_MS
        }  # fmt: skip
        self.trade_stream = f"{lower}@trade"
        self.agg_stream = f"{lower}@aggTrade"
        self.book_ticker_stream = f"{lower}@bookTicker"
        self.kline_prefix = f"{lower}@kline_"
        #: (interval, open time) → the last trade id sent for that candle.
        self._klines_sent: dict[tuple[str, int], int] = {}
        self._windows = {period: DiffWindow() for period in PERIODS_MS}
        #: Whether the partial books of a period changed since their last push.
        self._dirty = dict.fromkeys(PERIODS_MS, False)
        self._last_push = dict.fromkeys(PERIODS_MS, 0.0)
        self._timers: dict[int, asyncio.TimerHandle | None] = dict.fromkeys(PERIODS_MS)

    # ------------------------------------------------------------------ depth

    def on_depth(self, update: DepthUpdate) -> None:
        if self.resyncing:
            self.waiting.append(update)
            return
        state = self.book.check(update.prev_seq, update.seq)
        if state == "stale":
            return
        if state == "gap":
            if self.book.synced:
                log.info(
                    "depth gap, resyncing",
                    extra={"market": self.config.name, "at": self.book.seq,
                           "update": [update.prev_seq, update.seq]},
                )  # fmt: skip
            self.waiting.append(update)
            self.resyncing = True
            self.request_resync(self)
            return
        diff = Diff(update.prev_seq, update.seq, update.bids, update.asks)
        self.book.apply(diff)
        self._changed(diff)

    def on_book(self, seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """The book key's contents, read after a resync was requested: take them if newer
        (which breaks the diff chain: :mod:`cex.gateway.book`), then apply the updates that
        waited, dropping those the key already covers. One that still does not chain on
        is dropped too: the key is the truth, and if it lags behind pub/sub the periodic
        check resyncs again once it has caught up."""
        self.resyncing = False
        was_synced = self.book.synced
        if self.book.resync(seq, bids, asks):
            if was_synced:
                metrics.RESYNCS.labels(self.config.name).inc()
            for period in PERIODS_MS:
                self._windows[period].clear()
                self._dirty[period] = True
                self._schedule(period)
        self._book_ticker()
        waiting, self.waiting = sorted(self.waiting, key=lambda u: u.seq), []
        for update in waiting:
            if self.book.check(update.prev_seq, update.seq) == "applied":
                diff = Diff(update.prev_seq, update.seq, update.bids, update.asks)
                self.book.apply(diff)
                self._changed(diff)

    def _changed(self, diff: Diff) -> None:
        """Push what ``diff`` (already in the book) changed."""
        for period in PERIODS_MS:
            if self.hub.has(self.depth_streams[period]):
                self._windows[period].add(diff)
                self._schedule(period)
            if any(self.hub.has(name) for _, name in self.partial_streams[period]):
                self._dirty[period] = True
                self._schedule(period)
        self._book_ticker()

    def _book_ticker(self) -> None:
        best = self.book.best()
        if best != self.best:
            self.best = best
            if self.hub.has(self.book_ticker_stream):
                self.hub.publish(self.book_ticker_stream, self.book_ticker())

    def book_ticker(self) -> payloads.Json:
        bid, ask = self.book.best()
        return payloads.book_ticker(self.config, self.book.seq, bid, ask)

    def partial(self, levels: int) -> payloads.Json:
        bids, asks = self.book.top(levels)
        return payloads.partial_depth(self.config, self.book.seq, bids, asks)

    def _schedule(self, period: int) -> None:
        if self._timers[period] is not None:
            return
        due = self._last_push[period] + period / 1000
        now = time.monotonic()
        if now >= due:
            self._flush(period)
        else:
            loop = asyncio.get_running_loop()
            self._timers[period] = loop.call_at(loop.time() + (due - now), self._flush, period)

    def _flush(self, period: int) -> None:
        self._timers[period] = None
        self._last_push[period] = time.monotonic()
        diff = self._windows[period].take()
        if diff is not None:
            self.hub.publish(
                self.depth_streams[period],
                payloads.depth_update(self.config, diff, self.clock_ms()),
            )
        if self._dirty[period]:
            self._dirty[period] = False
            if not self.book.synced:
                return
            for levels, name in self.partial_streams[period]:
                if self.hub.has(name):
                    self.hub.publish(name, self.partial(levels))

    def close(self) -> None:
        for period, timer in self._timers.items():
            if timer is not None:
                timer.cancel()
                self._timers[period] = None

    # ------------------------------------------------------------------ trades

    def on_trades(self, events: list[TradeExecuted]) -> None:
        if not events:
            return
        first = events[0].trade_id
        if self.last_trade_id is not None and first > self.last_trade_id + 1:
            metrics.TRADE_GAPS.labels(self.config.name).inc(first - self.last_trade_id - 1)
        if self.last_trade_id is not None and events[-1].trade_id <= self.last_trade_id:
            return  # a repeat
        self.last_trade_id = events[-1].trade_id
        if self.hub.has(self.trade_stream):
            for event in events:
                self.hub.publish(self.trade_stream, payloads.trade(self.config, event))
        if self.hub.has(self.agg_stream):
            for agg in payloads.agg_trades(self.config, events):
                self.hub.publish(self.agg_stream, agg)

    # ------------------------------------------------------------------ klines

    def on_candles(self, message: dict[str, object]) -> None:
        """One message of the candle channel (:mod:`cex.infra.redis`): each ``k`` object
        to ``<symbol>@kline_<interval>``, unless an equal or newer version of that candle
        was sent already (a restarted aggregator may repeat itself)."""
        event_time = message.get("E")
        klines = message.get("klines")
        if not isinstance(klines, list):
            return
        for kline in klines:
            key = (str(kline["i"]), int(kline["t"]))
            last_id = int(kline["L"])
            sent = self._klines_sent.get(key)
            if sent is not None and last_id < sent:
                continue
            self._klines_sent[key] = last_id
            if len(self._klines_sent) > 4096:  # forget the oldest candles
                for old in sorted(self._klines_sent, key=lambda k: k[1])[:1024]:
                    del self._klines_sent[old]
            stream = self.kline_prefix + key[0]
            if self.hub.has(stream):
                payload = {"e": "kline", "E": event_time, "s": self.config.symbol, "k": kline}
                self.hub.publish(stream, payload)

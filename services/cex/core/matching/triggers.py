"""What waits for a condition: stop orders (the last trade price) and GTT expiries (time).

Three heaps of ``(key, acceptance seq, order id)``: buy stops lowest stop first, sell stops
highest first (negated), GTT orders earliest ``expire_at`` first. An entry is *live* while its
order is open with the same acceptance seq (and, for a stop, still waiting); a cancelled,
filled or triggered order leaves a dead entry behind, skipped when it surfaces (lazy
deletion, O(log n) per order). A market where stops and GTT orders are placed and cancelled
far from their trigger would let dead entries pile up for ever, so each heap is compacted
(dead entries dropped, in place) when it grows past twice its live entries at the last
compaction plus a margin: the cost is amortised O(1) per push and a heap never holds more
than about twice its live orders.

Time comes in the commands (``ts``); nothing here reads a clock.
"""

from __future__ import annotations

import heapq
from typing import Final

from cex.core.matching.book import Order, by_seq

__all__ = ["Triggers"]

#: Dead entries tolerated before the first compaction (small heaps are never compacted).
COMPACT_MARGIN: Final = 64

Entry = tuple[int, int, int]  # (key, acceptance seq, order id)


class Triggers:
    """The stop and GTT heaps of one engine, over its registry of open orders."""

    __slots__ = ("_limits", "_orders", "buy_stops", "expiries", "sell_stops")

    def __init__(self, orders: dict[int, Order]) -> None:
        self._orders = orders  # the engine's registry of open orders (shared, not copied)
        self.buy_stops: list[Entry] = []  # (stop, seq, id): the lowest stop on top
        self.sell_stops: list[Entry] = []  # (-stop, seq, id): the highest stop on top
        self.expiries: list[Entry] = []  # (expire_at, seq, id): the earliest on top
        # Length above which each heap is compacted, by id() of the heap's list.
        self._limits = {id(h): COMPACT_MARGIN for h in (self.buy_stops, self.sell_stops)}
        self._limits[id(self.expiries)] = COMPACT_MARGIN

    # ------------------------------------------------------------------ adding

    def add_stop(self, o: Order) -> None:
        stop = o.stop_price
        assert stop is not None
        if o.is_buy:
            self._push(self.buy_stops, (stop, o.seq, o.id))
        else:
            self._push(self.sell_stops, (-stop, o.seq, o.id))

    def add_expiry(self, o: Order) -> None:
        assert o.expire_at is not None
        self._push(self.expiries, (o.expire_at, o.seq, o.id))

    def _push(self, heap: list[Entry], entry: Entry) -> None:
        heapq.heappush(heap, entry)
        if len(heap) > self._limits[id(heap)]:
            self._compact(heap)

    def _compact(self, heap: list[Entry]) -> None:
        """Drop the dead entries of ``heap`` in place; the next compaction waits until it
        doubles again (amortised O(1) per push)."""
        orders = self._orders
        stops = heap is not self.expiries
        live = []
        for entry in heap:
            o = orders.get(entry[2])
            if o is not None and o.seq == entry[1] and not (stops and o.working):
                live.append(entry)
        heap[:] = live
        heapq.heapify(heap)
        self._limits[id(heap)] = 2 * len(live) + COMPACT_MARGIN

    # ------------------------------------------------------------------ firing

    def triggered(self, last_price: int) -> list[Order]:
        """Pop every waiting stop whose condition the last trade price meets (sell: last ≤
        stop, buy: last ≥ stop), in acceptance order."""
        orders = self._orders
        fired: list[Order] = []
        for heap, sign in ((self.sell_stops, -1), (self.buy_stops, 1)):
            while heap:
                key, seq, oid = heap[0]
                o = orders.get(oid)
                if o is None or o.seq != seq or o.working:
                    heapq.heappop(heap)  # dead
                    continue
                stop = key * sign
                if (last_price <= stop) if sign < 0 else (last_price >= stop):
                    heapq.heappop(heap)
                    fired.append(o)
                else:
                    break
        fired.sort(key=by_seq)
        return fired

    def due(self, ts: int) -> list[Order]:
        """Pop every open GTT order with ``expire_at <= ts``, earliest first."""
        heap, orders = self.expiries, self._orders
        expired: list[Order] = []
        while heap and heap[0][0] <= ts:
            _, seq, oid = heapq.heappop(heap)
            o = orders.get(oid)
            if o is not None and o.seq == seq:
                expired.append(o)
        return expired

    def has_stops(self) -> bool:
        return bool(self.buy_stops or self.sell_stops)

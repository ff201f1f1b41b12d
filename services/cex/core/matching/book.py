"""The order book of one market: price levels, best prices, insert and remove, depth.

Each side is a ``dict`` price → level, a level a ``dict`` order id → order in arrival order
(FIFO: time priority within a price), with the level's aggregated quantity kept in a second
``dict`` (what L2 depth and ``BOOK_DELTA`` report). The best price is found through a heap
with lazy deletion: a price whose level is gone stays in the heap until it surfaces (then it
is popped) or until stale prices outnumber live ones (then the heap is rebuilt), so every
operation is O(log levels) amortised and the heap never grows beyond twice the levels.

The book knows nothing of events, funds or matching rules: :mod:`.sweep` takes liquidity,
the engine emits the events. The two hottest paths, the sweep and a price amend that does
not cross, change the containers (``bids``, ``bid_qty``, ``bid_heap``...) directly, with
the same steps as :meth:`Book.insert` and :meth:`Book.remove` (a method call is ~5 % of
such a command); every other change goes through this module's operations, and
:meth:`Book.check` states what they all keep consistent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from cex.core.errors import EngineStateError
from cex.core.events import OrderType, Side, StpMode, TimeInForce

__all__ = ["Book", "Order"]

_BUY = Side.BUY


class Order:
    """An open order (resting on the book, or a stop waiting for its trigger)."""

    __slots__ = (
        "budget",
        "cid",
        "expire_at",
        "filled",
        "id",
        "is_buy",
        "locked",
        "opened",
        "price",
        "quantity",
        "remaining",
        "seq",
        "side",
        "stop_price",
        "stp",
        "tif",
        "type",
        "user",
        "working",
    )

    def __init__(
        self,
        id: int,
        user: int,
        cid: str,
        side: Side,
        type: OrderType,
        tif: TimeInForce,
        price: int | None,
        quantity: int,
        budget: int | None,
        stop_price: int | None,
        expire_at: int | None,
        stp: StpMode,
        locked: int,
        seq: int,
    ) -> None:
        self.id = id
        self.user = user
        self.cid = cid
        self.side = side
        self.is_buy = side is _BUY
        self.type = type
        self.tif = tif
        self.price = price  # limit price in ticks; None for market orders
        self.quantity = quantity  # total lots ordered (0 for a market order by quote amount)
        self.remaining = quantity  # lots still open
        self.filled = 0  # lots filled so far
        self.budget = budget  # quote_order_qty still to spend / receive, else None
        self.stop_price = stop_price
        self.expire_at = expire_at
        self.stp = stp
        self.locked = locked  # funds still locked: quote units (buy) / base units (sell)
        self.seq = seq  # acceptance sequence number, unique in this engine
        self.working = stop_price is None  # False while a stop waits for its trigger
        self.opened = False  # ORDER_OPENED has been emitted


def by_seq(o: Order) -> int:
    """Sort key: acceptance order."""
    return o.seq


class Book:
    """Both sides of one market's book (see the module docstring)."""

    __slots__ = ("ask_heap", "ask_qty", "asks", "bid_heap", "bid_qty", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, dict[int, Order]] = {}
        self.asks: dict[int, dict[int, Order]] = {}
        self.bid_qty: dict[int, int] = {}
        self.ask_qty: dict[int, int] = {}
        self.bid_heap: list[int] = []  # negated prices: the best bid on top
        self.ask_heap: list[int] = []

    # ------------------------------------------------------------------ best prices

    def best_bid(self) -> int | None:
        heap, levels = self.bid_heap, self.bids
        while heap and -heap[0] not in levels:
            heapq.heappop(heap)
        return -heap[0] if heap else None

    def best_ask(self) -> int | None:
        heap, levels = self.ask_heap, self.asks
        while heap and heap[0] not in levels:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def crosses(self, is_buy: bool, price: int) -> bool:
        """Whether an order at ``price`` on that side would meet the opposite best price."""
        if is_buy:
            best = self.best_ask()
            return best is not None and best <= price
        best = self.best_bid()
        return best is not None and best >= price

    # ------------------------------------------------------------------ changes

    def insert(self, o: Order) -> int:
        """Put working limit order ``o`` at the back of its level; the level's new quantity."""
        price = o.price
        assert price is not None
        if o.is_buy:
            levels, qtys = self.bids, self.bid_qty
        else:
            levels, qtys = self.asks, self.ask_qty
        level = levels.get(price)
        if level is None:
            levels[price] = {o.id: o}
            qtys[price] = qty = o.remaining
            if o.is_buy:
                heap = self.bid_heap
                heapq.heappush(heap, -price)
            else:
                heap = self.ask_heap
                heapq.heappush(heap, price)
            if len(heap) > 2 * len(levels) + 64:  # too many stale prices: rebuild
                self.rebuild_heap(o.is_buy)
        else:
            level[o.id] = o
            qtys[price] = qty = qtys[price] + o.remaining
        return qty

    def remove(self, o: Order) -> int:
        """Take working order ``o`` off its level; the level's new quantity (0: gone)."""
        price = o.price
        assert price is not None
        if o.is_buy:
            levels, qtys = self.bids, self.bid_qty
        else:
            levels, qtys = self.asks, self.ask_qty
        level = levels[price]
        del level[o.id]
        if level:
            qtys[price] = qty = qtys[price] - o.remaining
            return qty
        del levels[price]
        del qtys[price]
        return 0

    def reduce(self, o: Order, new_remaining: int) -> int:
        """Shrink ``o`` in place (it keeps its priority); the level's new quantity."""
        price = o.price
        assert price is not None
        qtys = self.bid_qty if o.is_buy else self.ask_qty
        qtys[price] = qty = qtys[price] - (o.remaining - new_remaining)
        o.remaining = new_remaining
        return qty

    def rebuild_heap(self, bids: bool) -> None:
        """Drop the stale prices of one side's heap (in place: the engine holds the list)."""
        if bids:
            self.bid_heap[:] = [-p for p in self.bids]
            heapq.heapify(self.bid_heap)
        else:
            self.ask_heap[:] = list(self.asks)
            heapq.heapify(self.ask_heap)

    # ------------------------------------------------------------------ read access

    def depth(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """Aggregated levels ``(price_ticks, qty_lots)``, best first."""
        if side is _BUY:
            prices = sorted(self.bid_qty, reverse=True)
            qty = self.bid_qty
        else:
            prices = sorted(self.ask_qty)
            qty = self.ask_qty
        if limit is not None:
            prices = prices[:limit]
        return [(p, qty[p]) for p in prices]

    def in_priority(self, side: Side) -> Iterator[Order]:
        """The orders of one side in matching priority: best price first, then time."""
        levels = self.bids if side is _BUY else self.asks
        for price in sorted(levels, reverse=side is _BUY):
            yield from levels[price].values()

    def __len__(self) -> int:
        """Orders on the book (both sides)."""
        return sum(len(level) for level in self.bids.values()) + sum(
            len(level) for level in self.asks.values()
        )

    def check(self, orders: dict[int, Order], k: int, b: int) -> None:
        """Raise :class:`EngineStateError` if the book is inconsistent: levels and aggregates
        disagree, an order is misplaced or short of funds, the book is crossed, or a heap
        does not yield the best price. ``k``/``b``: quote units per tick × lot, base units
        per lot."""
        for levels, qtys, is_buy in (
            (self.bids, self.bid_qty, True),
            (self.asks, self.ask_qty, False),
        ):
            if set(levels) != set(qtys):
                raise EngineStateError("levels and aggregated quantities disagree")
            for price, level in levels.items():
                if not level:
                    raise EngineStateError(f"empty level {price}")
                if qtys[price] != sum(o.remaining for o in level.values()):
                    raise EngineStateError(f"aggregate of level {price} is wrong")
                for oid, o in level.items():
                    if o.id != oid or o.price != price or o.is_buy != is_buy or not o.working:
                        raise EngineStateError(f"order {oid} misplaced")
                    if orders.get(oid) is not o or o.remaining <= 0:
                        raise EngineStateError(f"order {oid} not registered or empty")
                    need = price * o.remaining * k if is_buy else o.remaining * b
                    if o.locked < need:
                        raise EngineStateError(f"order {oid} has less locked than it needs")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise EngineStateError(f"crossed book: {bid} >= {ask}")
        if bid != (max(self.bids) if self.bids else None):
            raise EngineStateError("best bid heap is wrong")
        if ask != (min(self.asks) if self.asks else None):
            raise EngineStateError("best ask heap is wrong")

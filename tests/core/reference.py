"""A deliberately simple reference matching model: one flat list, re-sorted at every step.

It implements the engine's documented rules (price-time priority, maker price, GTC / IOC /
FOK, LIMIT_MAKER, market orders by quantity capped by their locked funds, cancels, amends,
self-trade prevention and the matches it prevents) the obvious way, with none of the
engine's data structures, so that property tests can compare the two on random command
streams.
"""

from __future__ import annotations

from dataclasses import dataclass

from cex.core.events import (
    CancelAll,
    Command,
    OrderAmend,
    OrderCancel,
    OrderCreate,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
)

Trade = tuple[int, int, int, int, int, int]  # price, qty, maker id, taker id, maker fee, taker fee
#: A self-trade prevention decision: taker id, maker id, maker price, maker's prevented qty, mode.
Prevented = tuple[int, int, int, int, StpMode]


@dataclass
class Order:
    id: int
    user: int
    cid: str
    side: Side
    price: int | None
    quantity: int
    remaining: int
    locked: int
    stp: StpMode
    priority: int
    filled: int = 0
    post_only: bool = False


def _fee(amount: int, ppm: int) -> int:
    return -(-amount * ppm // 1_000_000)


class Reference:
    def __init__(self, k: int, b: int, maker_ppm: int, taker_ppm: int, max_lots: int) -> None:
        self.k, self.b = k, b
        self.maker_ppm, self.taker_ppm = maker_ppm, taker_ppm
        self.max_lots = max_lots
        self.book: list[Order] = []
        self.clock = 0
        self.trades: list[Trade] = []
        self.prevented: list[Prevented] = []

    # -- queries

    def side(self, side: Side) -> list[tuple[int, int, int]]:
        """(price, id, remaining) in priority order, like ``MatchingEngine.book_orders``."""
        orders = [o for o in self.book if o.side is side]
        orders.sort(key=lambda o: ((-o.price if side is Side.BUY else o.price), o.priority))  # type: ignore[operator]
        return [(o.price, o.id, o.remaining) for o in orders]  # type: ignore[misc]

    def _find(self, oid: int | None) -> Order | None:
        return next((o for o in self.book if o.id == oid), None)

    def _makers(self, taker: Order) -> list[Order]:
        def crosses(m: Order) -> bool:
            if taker.price is None:
                return True
            return m.price <= taker.price if taker.side is Side.BUY else m.price >= taker.price  # type: ignore[operator]

        makers = [m for m in self.book if m.side is not taker.side and crosses(m)]
        if taker.side is Side.BUY:
            makers.sort(key=lambda m: (m.price, m.priority))
        else:
            makers.sort(key=lambda m: (-m.price, m.priority))  # type: ignore[operator]
        return makers

    def _rest(self, o: Order) -> None:
        self.clock += 1
        o.priority = self.clock
        self.book.append(o)

    # -- commands

    def apply(self, c: Command) -> None:
        if isinstance(c, OrderCreate):
            self._create(c)
        elif isinstance(c, OrderCancel):
            o = self._find(c.order_id)
            if o is not None and o.user == c.user_id:
                self.book.remove(o)
        elif isinstance(c, CancelAll):
            self.book = [o for o in self.book if o.user != c.user_id]
        elif isinstance(c, OrderAmend):
            self._amend(c)

    def _create(self, c: OrderCreate) -> None:
        if self._find(c.order_id) is not None:
            return  # duplicate id: refused
        assert c.quantity is not None
        post_only = c.type is OrderType.LIMIT_MAKER
        o = Order(c.order_id, c.user_id, c.client_order_id, c.side, c.price, c.quantity,
                  c.quantity, c.locked, c.stp_mode, 0, post_only=post_only)  # fmt: skip
        if c.type is OrderType.LIMIT_MAKER and self._makers(o):
            return  # post-only would take
        if c.time_in_force is TimeInForce.FOK and not self._fok_fillable(o):
            return
        expired = self._match(o)
        rests = c.price is not None and c.time_in_force in (TimeInForce.GTC, TimeInForce.GTT)
        if not expired and o.remaining and rests:
            self._rest(o)

    def _fok_fillable(self, o: Order) -> bool:
        need = o.remaining
        for m in self._makers(o):
            if m.user == o.user and o.stp is not StpMode.NONE:
                if o.stp is StpMode.EXPIRE_MAKER:
                    continue
                return False
            need -= m.remaining
            if need <= 0:
                return True
        return False

    def _match(self, t: Order) -> bool:
        """Match taker ``t``; True if its rest must expire (STP, funds)."""
        while t.remaining:
            makers = self._makers(t)
            if not makers:
                return False
            m = makers[0]
            assert m.price is not None
            q = min(t.remaining, m.remaining)
            if m.user == t.user and t.stp is not StpMode.NONE:
                # Binance's makerPreventedQuantity: the maker's remaining, or what DECREMENT
                # takes off both orders.
                prevented = q if t.stp is StpMode.DECREMENT else m.remaining
                self.prevented.append((t.id, m.id, m.price, prevented, t.stp))
                if t.stp in (StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH):
                    self.book.remove(m)
                    if t.stp is StpMode.EXPIRE_MAKER:
                        continue
                    return True
                if t.stp is StpMode.EXPIRE_TAKER:
                    return True
                # DECREMENT: the prevented quantity leaves both orders, the maker's funds too
                m.remaining -= q
                m.quantity -= q
                m.locked -= m.price * q * self.k if m.side is Side.BUY else q * self.b
                t.remaining -= q
                t.quantity -= q
                if m.remaining == 0:
                    self.book.remove(m)
                if t.remaining == 0:
                    return True
                continue
            if t.price is None and t.side is Side.BUY:  # market buy: capped by its funds
                q = min(q, t.locked // (m.price * self.k))
                if q == 0:
                    return True
            quote, base = m.price * q * self.k, q * self.b
            if t.side is Side.BUY:
                t.locked -= quote
                m.locked -= base
                fees = (_fee(quote, self.maker_ppm), _fee(base, self.taker_ppm))
            else:
                t.locked -= base
                m.locked -= quote
                fees = (_fee(base, self.maker_ppm), _fee(quote, self.taker_ppm))
            self.trades.append((m.price, q, m.id, t.id, *fees))
            t.remaining -= q
            t.filled += q
            m.remaining -= q
            m.filled += q
            if m.remaining == 0:
                self.book.remove(m)
        return False

    def _amend(self, c: OrderAmend) -> None:
        o = self._find(c.order_id)
        if o is None or o.user != c.user_id:
            return
        assert o.price is not None
        new_qty = o.quantity if c.new_quantity is None else c.new_quantity
        new_price = o.price if c.new_price is None else c.new_price
        if new_qty <= o.filled or (new_qty == o.quantity and new_price == o.price):
            return
        if new_qty > self.max_lots or new_price <= 0:
            return
        remaining = new_qty - o.filled
        required = new_price * remaining * self.k if o.side is Side.BUY else remaining * self.b
        if o.locked + c.additional_locked < required:
            return
        keeps = new_price == o.price and new_qty < o.quantity
        if not keeps and o.post_only:
            probe = Order(0, o.user, "", o.side, new_price, 1, 1, 0, o.stp, 0)
            if self._makers(probe):
                return
        o.locked = required
        o.quantity, o.remaining, o.price = new_qty, remaining, new_price
        if keeps:
            return
        self.book.remove(o)
        if not self._match(o) and o.remaining:
            self._rest(o)

"""What settlement will do with the events, as a checker: state machine and money rules."""

from __future__ import annotations

from cex.core.events import (
    Command,
    CommandRejected,
    Event,
    ExpireReason,
    MatchPrevented,
    OrderAmend,
    OrderCancelled,
    OrderCreate,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderUpdated,
    Side,
    StpMode,
    TradeExecuted,
    UpdateCause,
)
from cex.core.orders import TERMINAL, transition, trigger_of

OrderEvent = OrderOpened | OrderUpdated | OrderCancelled | OrderExpired | OrderRejected


class Ledger:
    """Follows every order through its events and checks that nothing is lost or invented."""

    def __init__(self, k: int, b: int) -> None:
        self.k, self.b = k, b
        self.status: dict[int, OrderStatus] = {}
        self.locked: dict[int, int] = {}
        self.filled: dict[int, int] = {}
        self.side: dict[int, Side] = {}
        self.quantity: dict[int, int | None] = {}
        self.seq = 0
        self.trade_id = 0

    def open_locked(self) -> dict[int, int]:
        return {o: v for o, v in self.locked.items() if self.status[o] not in TERMINAL}

    def check(self, command: Command, offset: int, events: list[Event]) -> None:
        if isinstance(command, OrderCreate) and command.order_id not in self.status:
            oid = command.order_id
            self.status[oid] = OrderStatus.PENDING
            self.locked[oid] = command.locked
            self.filled[oid] = 0
            self.side[oid] = command.side
            self.quantity[oid] = command.quantity
        stp_orders: set[int] = set()  # orders named by this command's MATCH_PREVENTED so far
        for e in events:
            assert e.seq == self.seq + 1, "seq must be gap-free"
            self.seq = e.seq
            assert (e.offset, e.ts) == (offset, command.ts)
            if isinstance(e, TradeExecuted):
                self._trade(e)
            elif isinstance(e, MatchPrevented):
                self._prevented(e)
                stp_orders.update((e.maker_order_id, e.taker_order_id))
            elif isinstance(e, CommandRejected):
                released = command.additional_locked if isinstance(command, OrderAmend) else 0
                assert e.released == max(released, 0)
            elif isinstance(e, OrderEvent):
                if (isinstance(e, OrderExpired) and e.reason is ExpireReason.STP) or (
                    isinstance(e, OrderUpdated) and e.cause is UpdateCause.STP_DECREMENT
                ):
                    assert e.order_id in stp_orders, "an STP effect without its MATCH_PREVENTED"
                self._order(e, command)
        if isinstance(command, OrderCreate):
            # every create is answered: the order left PENDING (or was a duplicate)
            assert self.status[command.order_id] is not OrderStatus.PENDING

    def _trade(self, t: TradeExecuted) -> None:
        assert t.trade_id == self.trade_id + 1
        self.trade_id = t.trade_id
        for oid in (t.maker_order_id, t.taker_order_id):
            assert oid in self.status, "a trade names an unknown order"
            assert self.status[oid] not in TERMINAL
        assert self.status[t.maker_order_id] is not OrderStatus.PENDING
        assert t.quote_amount == t.price * t.qty * self.k
        assert t.base_amount == t.qty * self.b
        buyer, seller = (
            (t.taker_order_id, t.maker_order_id)
            if t.taker_side is Side.BUY
            else (t.maker_order_id, t.taker_order_id)
        )
        assert self.side[buyer] is Side.BUY
        assert self.side[seller] is Side.SELL
        self.locked[buyer] -= t.quote_amount
        self.locked[seller] -= t.base_amount
        assert self.locked[buyer] >= 0, "spent more than locked"
        assert self.locked[seller] >= 0, "spent more than locked"
        for oid in (buyer, seller):
            self.filled[oid] += t.qty
        assert 0 <= t.buyer_fee <= t.base_amount
        assert 0 <= t.seller_fee <= t.quote_amount

    def _prevented(self, p: MatchPrevented) -> None:
        for oid in (p.maker_order_id, p.taker_order_id):
            assert oid in self.status, "a prevented match names an unknown order"
            assert self.status[oid] not in TERMINAL
        assert self.status[p.maker_order_id] is not OrderStatus.PENDING
        assert p.maker_user_id == p.taker_user_id, "self-trade prevention is per user"
        assert self.side[p.maker_order_id] is not self.side[p.taker_order_id]
        assert p.stp_mode is not StpMode.NONE
        assert p.prevented_qty > 0
        assert p.price > 0

    def _order(self, e: OrderEvent, command: Command) -> None:
        oid = e.order_id
        assert oid in self.status, "an event names an unknown order"
        assert e.side is self.side[oid]
        new = transition(self.status[oid], trigger_of(e))
        assert new is e.status, (self.status[oid], e)
        self.status[oid] = new
        added = e.locked_added if isinstance(e, OrderUpdated) else 0
        expected = self.locked[oid] + added - e.released
        assert e.locked_remaining == expected, ("locked funds not conserved", e, expected)
        assert e.released >= 0
        assert e.locked_remaining >= 0
        self.locked[oid] = expected
        assert e.filled_qty == self.filled[oid], "filled_qty must be the sum of its trades"
        if new in TERMINAL:
            assert e.locked_remaining == 0
            assert e.remaining_qty == 0
        else:
            # open orders have something left, except market orders by quote amount
            assert e.remaining_qty > 0 or self.quantity[oid] is None
        if isinstance(e, OrderUpdated) and e.cause == "AMEND":
            assert isinstance(command, OrderAmend)
            self.quantity[oid] = command.new_quantity or self.quantity[oid]
        qty = self.quantity[oid]
        if qty is not None:
            assert e.filled_qty + e.remaining_qty <= qty

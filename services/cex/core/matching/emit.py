"""Small factories for the engine's order events: each takes the order it describes and
names every number a caller could swap, so no call site lines up 15 positional fields.

An order event describes its order *after* the event (``events._OrderEvent``), so the
factories read ``filled``, ``remaining``, ``locked`` and ``price`` from the :class:`Order`:
update the order first, then build its event. ``market, seq, offset, ts`` come first in
every event, in that order, and are passed positionally.

The sweep's inner loop (trades and their makers' updates) and ``BOOK_DELTA`` build their
structs directly: they are the hot path (a Python call costs ~10 % of a trade), and the
example tests compare every field of every event.
"""

from __future__ import annotations

from typing import Final

from cex.core.events import (
    CancelReason,
    CommandKind,
    CommandRejected,
    ExpireReason,
    MatchPrevented,
    OrderCancelled,
    OrderCreate,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderUpdated,
    RejectReason,
    UpdateCause,
)
from cex.core.matching.book import Order
from cex.core.orders import TRANSITIONS, Trigger

__all__ = [
    "cancelled",
    "command_rejected",
    "expired",
    "opened",
    "prevented",
    "rejected",
    "updated",
]

# Module constants, not ``OrderStatus.X`` (an enum attribute costs a descriptor lookup);
# the terminal ones are where the transition table of ``cex.core.orders`` leads.
_NEW: Final = OrderStatus.NEW
_PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
_CANCELED: Final = TRANSITIONS[OrderStatus.NEW, Trigger.CANCEL]
_EXPIRED: Final = TRANSITIONS[OrderStatus.NEW, Trigger.EXPIRE]
_REJECTED: Final = TRANSITIONS[OrderStatus.PENDING, Trigger.REJECT]


def opened(market: str, seq: int, offset: int, ts: int, o: Order) -> OrderOpened:
    """``o`` rests: on the book (working) or as a stop waiting for its trigger."""
    return OrderOpened(
        market, seq, offset, ts, o.id, o.user, o.side, _PARTIAL if o.filled else _NEW,
        o.filled, o.remaining, o.locked, 0, o.cid, o.price, o.working,
    )  # fmt: skip


def updated(
    market: str,
    seq: int,
    offset: int,
    ts: int,
    o: Order,
    status: OrderStatus,
    cause: UpdateCause,
    *,
    released: int = 0,
    locked_added: int = 0,
) -> OrderUpdated:
    """``o`` changed (traded, amended, decremented, triggered) and is now in ``status``."""
    return OrderUpdated(
        market, seq, offset, ts, o.id, o.user, o.side, status, o.filled, o.remaining,
        o.locked, released, cause, o.price, locked_added,
    )  # fmt: skip


def cancelled(
    market: str, seq: int, offset: int, ts: int, o: Order, reason: CancelReason, *, released: int
) -> OrderCancelled:
    """``o`` is cancelled (terminal): nothing remains open or locked."""
    return OrderCancelled(
        market, seq, offset, ts, o.id, o.user, o.side, _CANCELED, o.filled,
        0, 0, released, reason,
    )  # fmt: skip


def expired(
    market: str, seq: int, offset: int, ts: int, o: Order, reason: ExpireReason, *, released: int
) -> OrderExpired:
    """``o`` (or its unfilled rest) expires (terminal): nothing remains open or locked."""
    return OrderExpired(
        market, seq, offset, ts, o.id, o.user, o.side, _EXPIRED, o.filled,
        0, 0, released, reason,
    )  # fmt: skip


def rejected(
    market: str, seq: int, offset: int, ts: int, c: OrderCreate, reason: RejectReason
) -> OrderRejected:
    """The create ``c`` is refused: the order never traded; all it locked is released."""
    return OrderRejected(
        market, seq, offset, ts, c.order_id, c.user_id, c.side, _REJECTED,
        0, 0, 0, max(c.locked, 0), reason,
    )  # fmt: skip


def command_rejected(
    market: str,
    seq: int,
    offset: int,
    ts: int,
    kind: CommandKind,
    reason: RejectReason,
    *,
    order_id: int | None,
    user_id: int | None,
    released: int,
) -> CommandRejected:
    return CommandRejected(market, seq, offset, ts, kind, reason, order_id, user_id, released)


def prevented(
    market: str, seq: int, offset: int, ts: int, taker: Order, maker: Order, *, qty: int
) -> MatchPrevented:
    """Self-trade prevention stopped ``taker`` meeting ``maker`` (at the maker's price);
    ``qty``: the maker's quantity that did not trade."""
    assert maker.price is not None
    return MatchPrevented(
        market, seq, offset, ts, taker.id, taker.user, maker.id, maker.user, maker.price,
        qty, taker.stp,
    )  # fmt: skip

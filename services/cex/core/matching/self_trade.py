"""Self-trade prevention: what happens when a taker meets a resting order of its own user.

Binance semantics; the *taker's* mode decides, same user = self:

* ``EXPIRE_TAKER``: the taker's rest expires, the maker stays untouched.
* ``EXPIRE_MAKER``: the maker expires and the taker goes on to the next maker.
* ``EXPIRE_BOTH``: both expire.
* ``DECREMENT``: both lose the smaller of the two remaining quantities (no trade; the
  prevented quantity leaves both orders, so their ``quantity`` shrinks too); whichever
  reaches zero expires (both if equal). A maker that survives gets
  ORDER_UPDATED(STP_DECREMENT) releasing the funds of the removed quantity; a taker that
  survives keeps its funds locked until it ends. A taker by quote amount loses what its
  budget could have paid at the maker's price; one that cannot pay a single lot ends as when
  its budget runs out: no match was prevented, nothing is emitted.
* ``NONE``: they trade.

Every decision first emits MATCH_PREVENTED (taker, maker, the maker's price, the maker's
prevented quantity, the mode), then the events it causes: the maker's ORDER_EXPIRED(STP) or
ORDER_UPDATED(STP_DECREMENT) at once; the taker's ORDER_EXPIRED(STP) is its final event,
emitted by the engine once the sweep ends. A FOK taker counts STP: a self-match under any
mode but NONE and EXPIRE_MAKER makes it unfillable (:func:`blocks_fill_or_kill`).

The sweep calls :func:`prevent` only on the (rare) self-match branch of its loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cex.core.events import Event, ExpireReason, OrderStatus, StpMode, UpdateCause
from cex.core.matching import emit
from cex.core.matching.book import Order

if TYPE_CHECKING:
    from cex.core.matching.engine import MatchingEngine

__all__ = ["BUDGET_SPENT", "GO_ON", "TAKER_EXPIRES", "blocks_fill_or_kill", "prevent"]

#: What the sweep does after a prevention: go on to the next maker ...
GO_ON: Final = 0
#: ... stop, and the taker's rest expires (STP) ...
TAKER_EXPIRES: Final = 1
#: ... or stop because the taker's quote budget cannot pay one lot (nothing was prevented).
BUDGET_SPENT: Final = 2


def blocks_fill_or_kill(stp: StpMode) -> bool:
    """Whether meeting one's own order makes a FOK taker unfillable (EXPIRE_MAKER only
    removes the maker; the taker goes on)."""
    return stp is not StpMode.EXPIRE_MAKER


def prevent(
    engine: MatchingEngine, taker: Order, maker: Order, qty: int, out: list[Event]
) -> tuple[int, int, bool]:
    """Apply the taker's STP mode to one of its own makers it met for ``qty`` lots.

    The taker's ``remaining`` (or ``budget``, by quote amount) must be current. Returns
    ``(next step, lots that left the maker's level, whether the maker is closed)``; a closed
    maker is still on its level: the sweep takes it off with the others it finished.
    """
    stp = taker.stp
    price = maker.price
    assert price is not None
    market, offset, ts = engine._market, engine._offset, engine._ts
    if stp is StpMode.EXPIRE_TAKER:
        engine._seq = seq = engine._seq + 1
        out.append(emit.prevented(market, seq, offset, ts, taker, maker, qty=maker.remaining))
        return TAKER_EXPIRES, 0, False
    if stp is StpMode.DECREMENT:
        k = engine._k
        budget = taker.budget
        removed = qty
        if budget is not None:  # no money moves, so only a quote budget limits it
            afford = budget // (price * k)
            if afford < removed:
                removed = afford
                if removed == 0:
                    return BUDGET_SPENT, 0, False
        engine._seq = seq = engine._seq + 1
        out.append(emit.prevented(market, seq, offset, ts, taker, maker, qty=removed))
        # The prevented quantity leaves both orders for good.
        maker.remaining -= removed
        maker.quantity -= removed
        if budget is not None:
            taker.budget = budget = budget - price * removed * k
        else:
            taker.remaining -= removed
            taker.quantity -= removed
        closed = maker.remaining == 0
        if closed:
            engine._emit_terminal_expired(out, maker, ExpireReason.STP)
        else:
            freed = price * removed * k if maker.is_buy else removed * engine._b
            maker.locked -= freed
            engine._seq = seq = engine._seq + 1
            status = OrderStatus.PARTIALLY_FILLED if maker.filled else OrderStatus.NEW
            out.append(
                emit.updated(
                    market, seq, offset, ts, maker, status, UpdateCause.STP_DECREMENT,
                    released=freed,
                )
            )  # fmt: skip
        taker_done = taker.remaining == 0 if budget is None else budget < price * k
        return (TAKER_EXPIRES if taker_done else GO_ON), removed, closed
    # EXPIRE_MAKER or EXPIRE_BOTH: the maker's rest expires.
    engine._seq = seq = engine._seq + 1
    removed = maker.remaining
    out.append(emit.prevented(market, seq, offset, ts, taker, maker, qty=removed))
    maker.remaining = 0
    engine._emit_terminal_expired(out, maker, ExpireReason.STP)
    return (TAKER_EXPIRES if stp is StpMode.EXPIRE_BOTH else GO_ON), removed, True

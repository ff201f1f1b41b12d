"""The taker sweep: one incoming order takes liquidity from the opposite side of the book.

Trades happen at the maker's price, best price first, then time. A limit taker sweeps
levels up to its limit price; a market order until its quantity, its locked funds or its
quote budget (``quote_order_qty``) is used up, or the book runs out. Each trade emits
TRADE_EXECUTED, then its maker's ORDER_UPDATED; each level touched emits one BOOK_DELTA
once the sweep leaves it. Fees are charged in the asset received, rounded up.

The engine never spends more than an order's ``locked`` funds: a market buy by quantity
stops when its funds cannot pay one more lot (LOCKED_EXHAUSTED), a market order by quote
amount when its budget cannot (then it is FILLED, or EXPIRED if it could not buy anything).

This is the engine's hot path: the engine's state is read into locals once, the loop
builds its events directly, and only the rare self-match branch calls out
(:mod:`.self_trade`).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Final

from cex.core.events import (
    BookDelta,
    Event,
    ExpireReason,
    OrderStatus,
    OrderUpdated,
    Side,
    StpMode,
    TradeExecuted,
    UpdateCause,
)
from cex.core.matching.book import Book, Order
from cex.core.matching.self_trade import BUDGET_SPENT, GO_ON, blocks_fill_or_kill, prevent

if TYPE_CHECKING:
    from cex.core.matching.engine import MatchingEngine

__all__ = ["fill_or_kill_fillable", "sweep"]

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_FILLED: Final = OrderStatus.FILLED
_PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
_STP_NONE: Final = StpMode.NONE
_CAUSE_TRADE: Final = UpdateCause.TRADE
_X_NO_LIQUIDITY: Final = ExpireReason.MARKET_NO_LIQUIDITY
_X_STP: Final = ExpireReason.STP
_X_LOCKED: Final = ExpireReason.LOCKED_EXHAUSTED
_PPM: Final = 1_000_000
#: Stands for "no quantity limit" while a market order by quote amount matches.
_UNLIMITED: Final = 1 << 126


def sweep(engine: MatchingEngine, o: Order, out: list[Event]) -> ExpireReason | None:
    """Match taker ``o`` against the book.

    Returns why the rest of ``o`` must expire (STP, LOCKED_EXHAUSTED, and for a market
    order by quote amount MARKET_NO_LIQUIDITY), or ``None`` when it matched normally: the
    caller then rests, fills or expires ``o.remaining``. A market order by quote amount
    (``remaining`` always 0) returns ``None`` when its budget is spent, i.e. it cannot pay
    one more lot at the best price: it is FILLED.
    """
    book = engine._book
    is_buy = o.is_buy
    if is_buy:
        levels, qtys, heap = book.asks, book.ask_qty, book.ask_heap
    else:
        levels, qtys, heap = book.bids, book.bid_qty, book.bid_heap
    limit = o.price
    k, b = engine._k, engine._b
    market = engine._market
    offset, ts = engine._offset, engine._ts
    maker_ppm, taker_ppm = engine._maker_ppm, engine._taker_ppm
    orders, cids = engine._orders, engine._cids
    user, stp = o.user, o.stp
    budget = o.budget
    # Only market buys (and market orders by quote amount) can run out of money here;
    # a limit buy's locked funds always cover its remaining quantity at its limit.
    capped = limit is None and (is_buy or budget is not None)
    remaining = _UNLIMITED if budget is not None else o.remaining
    taker_side = o.side
    maker_side = _SELL if is_buy else _BUY
    reason: ExpireReason | None = None
    spent = False
    seq = engine._seq
    trade_id = engine._trade_id
    last = engine._last_price
    heappop = heapq.heappop
    while remaining > 0:
        if not heap:
            break
        top = heap[0]
        best = top if is_buy else -top
        level = levels.get(best)
        if level is None:
            heappop(heap)
            continue
        if limit is not None and (best > limit if is_buy else best < limit):
            break
        done: list[Order] = []
        level_qty = qtys[best]
        stop_all = False
        for maker in level.values():
            q = maker.remaining
            if remaining < q:
                q = remaining
            if maker.user == user and stp is not _STP_NONE:
                # The taker's state is current in the order while STP decides.
                if budget is None:
                    o.remaining = remaining
                else:
                    o.budget = budget
                engine._seq = seq
                step, removed, closed = prevent(engine, o, maker, q, out)
                seq = engine._seq
                if budget is None:
                    remaining = o.remaining
                else:
                    budget = o.budget
                level_qty -= removed
                if closed:
                    done.append(maker)
                if step == GO_ON:
                    continue
                if step == BUDGET_SPENT:
                    spent = True
                else:
                    reason = _X_STP
                stop_all = True
                break
            if capped:
                unit = best * k
                if budget is None:  # market buy by quantity: its locked funds cap it
                    if o.locked < q * unit:
                        q = o.locked // unit
                        if q == 0:
                            reason = _X_LOCKED
                            stop_all = True
                            break
                else:  # by quote amount: the budget caps it, a sell also its base
                    afford = budget // unit
                    afford_base = afford if is_buy else o.locked // b
                    if afford < q or afford_base < q:
                        q = afford if afford < afford_base else afford_base
                        if q == 0:
                            if afford == 0:
                                spent = True
                            else:
                                reason = _X_LOCKED
                            stop_all = True
                            break
            # A trade at the maker's price.
            quote = best * q * k
            base = q * b
            trade_id += 1
            seq += 1
            if is_buy:
                taker_fee = -(-base * taker_ppm // _PPM)
                maker_fee = -(-quote * maker_ppm // _PPM)
                o.locked -= quote
                maker.locked -= base
            else:
                taker_fee = -(-quote * taker_ppm // _PPM)
                maker_fee = -(-base * maker_ppm // _PPM)
                o.locked -= base
                maker.locked -= quote
            if budget is not None:
                budget -= quote
            else:
                remaining -= q
            o.filled += q
            maker.filled += q
            maker.remaining -= q
            level_qty -= q
            # Fields in order: trade_id, price, qty, quote_amount, base_amount, taker_side,
            # maker order and user, taker order and user, maker_fee, taker_fee.
            out.append(
                TradeExecuted(
                    market, seq, offset, ts, trade_id, best, q, quote, base, taker_side,
                    maker.id, maker.user, o.id, user, maker_fee, taker_fee,
                )
            )  # fmt: skip
            seq += 1
            # The maker's ORDER_UPDATED; fields in order: status, filled_qty, remaining_qty,
            # locked_remaining, released, cause, price, locked_added.
            if maker.remaining == 0:
                released = maker.locked
                maker.locked = 0
                done.append(maker)
                out.append(
                    OrderUpdated(
                        market, seq, offset, ts, maker.id, maker.user, maker_side, _FILLED,
                        maker.filled, 0, 0, released, _CAUSE_TRADE, best, 0,
                    )
                )  # fmt: skip
            else:
                out.append(
                    OrderUpdated(
                        market, seq, offset, ts, maker.id, maker.user, maker_side, _PARTIAL,
                        maker.filled, maker.remaining, maker.locked, 0, _CAUSE_TRADE, best, 0,
                    )
                )  # fmt: skip
            last = best
            if remaining == 0 or maker.remaining:
                # Done, or capped by its funds: look at this maker again (not the next).
                break
        # Apply the level's changes after iterating over it.
        for maker in done:
            del level[maker.id]
            del orders[maker.id]
            if maker.cid:
                del cids[maker.user, maker.cid]
        if level:
            if level_qty != qtys[best]:
                qtys[best] = level_qty
                seq += 1
                out.append(BookDelta(market, seq, offset, ts, maker_side, best, level_qty))
        else:
            del levels[best]
            del qtys[best]
            heappop(heap)
            seq += 1
            out.append(BookDelta(market, seq, offset, ts, maker_side, best, 0))
        if stop_all:
            break
    engine._seq = seq
    engine._trade_id = trade_id
    engine._last_price = last
    if budget is not None:
        o.budget = budget
        if reason is None:
            if not spent:
                reason = _X_NO_LIQUIDITY
            elif not o.filled:
                reason = _X_LOCKED
    else:
        o.remaining = remaining
    return reason


def fill_or_kill_fillable(book: Book, o: Order) -> bool:
    """Dry run: could ``o`` fill completely now, STP included? Changes nothing."""
    price = o.price
    assert price is not None
    need = o.remaining
    user, stp = o.user, o.stp
    if o.is_buy:
        levels = book.asks
        prices = sorted(p for p in levels if p <= price)
    else:
        levels = book.bids
        prices = sorted((p for p in levels if p >= price), reverse=True)
    for p in prices:
        for maker in levels[p].values():
            if maker.user == user and stp is not _STP_NONE:
                if blocks_fill_or_kill(stp):
                    return False  # EXPIRE_TAKER / EXPIRE_BOTH / DECREMENT cut the taker
                continue  # EXPIRE_MAKER: the maker would expire; the taker goes on
            need -= maker.remaining
            if need <= 0:
                return True
    return False

"""Settlement's money rules: replaying engine events onto the orders they name.

Pure functions of the events and the orders as stored; no I/O. ``cex.settlement`` loads
the orders a batch names, calls :func:`replay`, and writes what it returns (order rows,
journals, trades, prevented matches, market statuses). ``cex.lifecycle`` calls
:func:`expire_unpublished` for a stale PENDING order whose create never left the outbox.

Rules
-----
* Every order event moves its order through the transition table (``cex.core.orders``);
  the new state must be the one the event states.
* Locked funds of an order move with the same deltas as the ``LOCKED`` balance they come
  from: a trade spends ``quote_amount`` (buyer) or ``base_amount`` (seller), a release
  (``released`` of an order event or of a refused amend's ``COMMAND_REJECTED``) returns
  that much. So "locked == what open orders still need" holds by construction.
* The engine's own ``locked_remaining`` is checked against the result: the order may hold
  *more* (an amend's additional lock the trading API added and the engine has not seen
  yet), never less. An order the event leaves terminal may still hold funds only in that
  race — the engine then refuses the amend and its ``COMMAND_REJECTED`` returns them — so
  what it holds is reported in :attr:`Replay.leftovers`, and :func:`check_leftovers`
  refuses any amount the order's amend locks do not explain: a terminal order that still
  locks funds would otherwise lock them forever.
* A trade or prevented match names two orders of the market that are not terminal, on
  opposite sides, of the users it names. A prevented match moves no money.
* ``MARKET_STATUS_CHANGED`` sets the market's status (the last one of the batch wins).

Errors (permanent: the same input fails the same way)::

    CoreError
    └── SettlementRuleError       an event that cannot be settled on the stored orders
        ├── UnknownOrder          it names an order that is not stored
        └── InconsistentEvent     it contradicts the stored order (market, user, side,
                                  status, filled quantity, locked funds)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cex.core.errors import CoreError
from cex.core.events import (
    CommandRejected,
    Event,
    MarketStatus,
    MarketStatusChanged,
    MatchPrevented,
    OrderCancelled,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderUpdated,
    Side,
    TradeExecuted,
    UpdateCause,
)
from cex.core.ledger import (
    Bucket,
    Journal,
    JournalKind,
    check_balanced,
    journal_for,
    locked_asset,
    move_journal,
)
from cex.core.orders import TERMINAL, Trigger, transition, trigger_of

__all__ = [
    "STALE_PENDING",
    "InconsistentEvent",
    "OrderState",
    "Replay",
    "SettledMarket",
    "SettlementRuleError",
    "UnknownOrder",
    "check_leftovers",
    "expire_unpublished",
    "order_ids_of",
    "replay",
]

OrderEvent = OrderOpened | OrderUpdated | OrderCancelled | OrderExpired | OrderRejected
_ORDER_EVENTS = (OrderOpened, OrderUpdated, OrderCancelled, OrderExpired, OrderRejected)

#: The reason stored on a PENDING order expired because its create never left the outbox.
STALE_PENDING = "STALE_PENDING"


class SettlementRuleError(CoreError):
    """An event that cannot be settled on the stored orders. Permanent."""


class UnknownOrder(SettlementRuleError):
    pass


class InconsistentEvent(SettlementRuleError):
    pass


class SettledMarket(Protocol):
    """What the rules need to know about a market (``cex.settlement``'s ``MarketInfo``)."""

    @property
    def name(self) -> str: ...  # the registry name, stored on orders

    @property
    def base(self) -> str: ...

    @property
    def quote(self) -> str: ...


@dataclass(slots=True)
class OrderState:
    """An order as stored, the part settlement reads and writes."""

    id: int
    market: str  # registry name
    user_id: int
    side: Side
    status: OrderStatus
    locked_asset: str
    locked_remaining: int
    filled_qty: int
    cumulative_quote: int
    reason: str | None = None
    price: int | None = None
    quantity: int | None = None


@dataclass
class Replay:
    """What a batch of events does, to be written in one transaction."""

    journals: list[Journal] = field(default_factory=list)
    trades: list[tuple[SettledMarket, TradeExecuted]] = field(default_factory=list)
    prevented: list[tuple[SettledMarket, MatchPrevented]] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)  # ids of the orders to write
    statuses: dict[str, MarketStatus] = field(default_factory=dict)  # by market name
    #: Orders an event left terminal with funds still locked: id → amount.
    leftovers: dict[int, int] = field(default_factory=dict)


def order_ids_of(events: Iterable[Event]) -> set[int]:
    """The orders ``events`` name: those :func:`replay` needs."""
    ids: set[int] = set()
    for event in events:
        if isinstance(event, TradeExecuted | MatchPrevented):
            ids.add(event.maker_order_id)
            ids.add(event.taker_order_id)
        elif isinstance(event, _ORDER_EVENTS):
            ids.add(event.order_id)
        elif isinstance(event, CommandRejected) and event.released:
            if event.order_id is None:
                raise InconsistentEvent(f"{event.market}:{event.seq}: release without order")
            ids.add(event.order_id)
    return ids


def replay(
    events: Iterable[tuple[SettledMarket, Event]],
    orders: dict[int, OrderState],
    fee_user_id: int,
) -> Replay:
    """Apply ``events`` (each with its market, in seq order) to ``orders`` (updated in
    place); returns the journals, trades, prevented matches, changed orders and market
    statuses to write. Raises :class:`SettlementRuleError` on any contradiction."""
    out = Replay()
    for market, event in events:
        journal: Journal | None = None
        if isinstance(event, TradeExecuted):
            _trade(market, event, orders)
            out.changed.add(event.maker_order_id)
            out.changed.add(event.taker_order_id)
            out.trades.append((market, event))
            journal = journal_for(event, market, fee_user_id)
        elif isinstance(event, _ORDER_EVENTS):
            order = _order_event(market, event, orders)
            out.changed.add(order.id)
            if order.status in TERMINAL and order.locked_remaining:
                out.leftovers[order.id] = order.locked_remaining
            journal = journal_for(event, market, fee_user_id)
        elif isinstance(event, MatchPrevented):
            _prevented(market, event, orders)
            out.prevented.append((market, event))
        elif isinstance(event, CommandRejected) and event.released:
            assert event.order_id is not None  # order_ids_of refuses it
            order = _order(orders, event.order_id, market, event)
            if order.user_id != event.user_id:
                raise InconsistentEvent(f"{event.market}:{event.seq}: user mismatch")
            _spend(order, event.released, event)
            out.changed.add(order.id)
            journal = journal_for(event, market, fee_user_id, order.side)
        elif isinstance(event, MarketStatusChanged):
            out.statuses[market.name] = event.status
        # book deltas and config changes: nothing to settle
        if journal is not None:
            check_balanced(journal)
            out.journals.append(journal)
    return out


def check_leftovers(leftovers: Mapping[int, int], amend_locks: Mapping[int, int]) -> None:
    """Refuse funds left locked on a terminal order (:attr:`Replay.leftovers`) beyond what
    amends of that order added (``amend_locks``: id → additional funds locked by amends;
    the engine may not have seen them when the order ended)."""
    for order_id, amount in sorted(leftovers.items()):
        if amount > amend_locks.get(order_id, 0):
            raise InconsistentEvent(
                f"order {order_id} ended with {amount} still locked"
                f" (its amends locked {amend_locks.get(order_id, 0)})"
            )


def expire_unpublished(order: OrderState) -> Journal | None:
    """Expire a PENDING order whose create never reached the engine (``order`` is updated
    in place): everything it locks goes back to available. Returns the release journal,
    ``None`` if it locked nothing."""
    if order.status is not OrderStatus.PENDING or order.filled_qty:
        raise InconsistentEvent(f"order {order.id} is {order.status}: its create was not lost")
    order.status = transition(order.status, Trigger.EXPIRE)
    released, order.locked_remaining = order.locked_remaining, 0
    order.reason = STALE_PENDING
    if not released:
        return None
    return move_journal(
        JournalKind.ORDER_RELEASE, f"order:{order.id}:stale", order.user_id,
        order.locked_asset, released, Bucket.LOCKED, Bucket.AVAILABLE,
    )  # fmt: skip


# ---------------------------------------------------------------------- the rules


def _order(
    orders: dict[int, OrderState], order_id: int, market: SettledMarket, event: Event
) -> OrderState:
    order = orders.get(order_id)
    if order is None:
        raise UnknownOrder(f"{event.market}:{event.seq}: no order {order_id} in the database")
    if order.market != market.name:
        raise InconsistentEvent(
            f"{event.market}:{event.seq}: order {order_id} belongs to {order.market}"
        )
    if order.locked_asset != locked_asset(order.side, market):
        raise InconsistentEvent(f"order {order_id} locks {order.locked_asset}")
    return order


def _spend(order: OrderState, amount: int, event: Event) -> None:
    order.locked_remaining -= amount
    if order.locked_remaining < 0:
        raise InconsistentEvent(
            f"{event.market}:{event.seq}: order {order.id} would lock"
            f" {order.locked_remaining} (< 0)"
        )


def _trade(market: SettledMarket, event: TradeExecuted, orders: dict[int, OrderState]) -> None:
    maker = _order(orders, event.maker_order_id, market, event)
    taker = _order(orders, event.taker_order_id, market, event)
    if maker.user_id != event.maker_user_id or taker.user_id != event.taker_user_id:
        raise InconsistentEvent(f"{event.market}:{event.seq}: trade users mismatch")
    if taker.side is not event.taker_side or maker.side is event.taker_side:
        raise InconsistentEvent(f"{event.market}:{event.seq}: trade sides mismatch")
    for order in (maker, taker):
        if order.status in TERMINAL:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: trade on order {order.id} in {order.status}"
            )
        order.cumulative_quote += event.quote_amount
        _spend(order, event.quote_amount if order.side is Side.BUY else event.base_amount, event)


def _prevented(market: SettledMarket, event: MatchPrevented, orders: dict[int, OrderState]) -> None:
    """Two open orders of its user on opposite sides (the taker may still be PENDING: its
    first event comes later in the command)."""
    maker = _order(orders, event.maker_order_id, market, event)
    taker = _order(orders, event.taker_order_id, market, event)
    if not maker.user_id == taker.user_id == event.maker_user_id == event.taker_user_id:
        raise InconsistentEvent(f"{event.market}:{event.seq}: prevented match users mismatch")
    if maker.side is taker.side:
        raise InconsistentEvent(f"{event.market}:{event.seq}: prevented match sides mismatch")
    for order in (maker, taker):
        if order.status in TERMINAL:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: prevented match on order {order.id} in {order.status}"
            )


def _order_event(
    market: SettledMarket, event: OrderEvent, orders: dict[int, OrderState]
) -> OrderState:
    order = _order(orders, event.order_id, market, event)
    if order.user_id != event.user_id or order.side is not event.side:
        raise InconsistentEvent(f"{event.market}:{event.seq}: order {order.id} user/side mismatch")
    new = transition(order.status, trigger_of(event))
    if new is not event.status:
        raise InconsistentEvent(
            f"{event.market}:{event.seq}: order {order.id} {order.status} → {new}"
            f" but the event says {event.status}"
        )
    if event.filled_qty < order.filled_qty:
        raise InconsistentEvent(f"{event.market}:{event.seq}: filled_qty went down")
    order.status = new
    order.filled_qty = event.filled_qty
    _spend(order, event.released, event)
    if order.locked_remaining < event.locked_remaining:
        raise InconsistentEvent(
            f"{event.market}:{event.seq}: order {order.id} has {order.locked_remaining}"
            f" locked, the engine counts {event.locked_remaining}"
        )
    if isinstance(event, OrderCancelled | OrderExpired | OrderRejected):
        order.reason = event.reason.value
    elif isinstance(event, OrderUpdated) and event.cause is UpdateCause.AMEND:
        order.price = event.price
        order.quantity = event.filled_qty + event.remaining_qty
    return order

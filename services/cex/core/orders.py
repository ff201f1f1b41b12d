"""The order state machine (DESIGN.md §6), shared by the engine's tests and settlement.

::

    PENDING ──OPEN──────────▶ NEW ──PARTIAL_FILL──▶ PARTIALLY_FILLED ──FILL──▶ FILLED
       │  ──PARTIAL_FILL──────────────────────────▶ (taker partly filled, rests)
       │  ──FILL──▶ FILLED            NEW / PARTIALLY_FILLED ──MODIFY──▶ (same state)
       │  ──EXPIRE──▶ EXPIRED         NEW / PARTIALLY_FILLED ──CANCEL──▶ CANCELED
       └──REJECT──▶ REJECTED          NEW / PARTIALLY_FILLED ──EXPIRE──▶ EXPIRED

``PENDING → EXPIRED`` covers both an order that expired on arrival (IOC, market, STP...) and
a stale PENDING order the lifecycle worker expires before its create was ever published.
Terminal states (FILLED, CANCELED, EXPIRED, REJECTED) accept nothing: any trigger raises
:class:`~cex.core.errors.InvalidTransition`, never silently ignored.

:func:`trigger_of` maps each engine order event to its trigger, so a consumer applies
``new = transition(old, trigger_of(event))`` and can check ``new == event.status``.
"""

from __future__ import annotations

import enum
from typing import Final

from cex.core.errors import InvalidTransition
from cex.core.events import (
    OrderCancelled,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderUpdated,
    UpdateCause,
)

__all__ = ["TERMINAL", "TRANSITIONS", "Trigger", "transition", "trigger_of"]


class Trigger(enum.StrEnum):
    OPEN = "OPEN"  # accepted, rests with nothing filled (book or stop)
    PARTIAL_FILL = "PARTIAL_FILL"  # traded, something remains open
    FILL = "FILL"  # traded, nothing remains
    MODIFY = "MODIFY"  # amend, STP decrement, stop triggered: status unchanged
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    REJECT = "REJECT"


_S = OrderStatus
_T = Trigger

#: (state, trigger) → next state. Anything absent is an impossible transition.
TRANSITIONS: Final[dict[tuple[OrderStatus, Trigger], OrderStatus]] = {
    (_S.PENDING, _T.OPEN): _S.NEW,
    (_S.PENDING, _T.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.PENDING, _T.FILL): _S.FILLED,
    (_S.PENDING, _T.EXPIRE): _S.EXPIRED,
    (_S.PENDING, _T.REJECT): _S.REJECTED,
    (_S.NEW, _T.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.NEW, _T.FILL): _S.FILLED,
    (_S.NEW, _T.MODIFY): _S.NEW,
    (_S.NEW, _T.CANCEL): _S.CANCELED,
    (_S.NEW, _T.EXPIRE): _S.EXPIRED,
    (_S.PARTIALLY_FILLED, _T.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _T.FILL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _T.MODIFY): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _T.CANCEL): _S.CANCELED,
    (_S.PARTIALLY_FILLED, _T.EXPIRE): _S.EXPIRED,
}

#: States no trigger leaves.
TERMINAL: Final = frozenset({_S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED})


def transition(state: OrderStatus, trigger: Trigger) -> OrderStatus:
    """The state after ``trigger``; raises :class:`InvalidTransition` if impossible."""
    try:
        return TRANSITIONS[state, trigger]
    except KeyError:
        raise InvalidTransition(state, trigger) from None


OrderEvent = OrderOpened | OrderUpdated | OrderCancelled | OrderExpired | OrderRejected


def trigger_of(event: OrderEvent) -> Trigger:
    """The trigger an engine order event applies to its order."""
    if isinstance(event, OrderOpened):
        return Trigger.OPEN if event.status is OrderStatus.NEW else Trigger.PARTIAL_FILL
    if isinstance(event, OrderUpdated):
        if event.cause is UpdateCause.TRADE:
            return Trigger.FILL if event.status is OrderStatus.FILLED else Trigger.PARTIAL_FILL
        return Trigger.MODIFY
    if isinstance(event, OrderCancelled):
        return Trigger.CANCEL
    if isinstance(event, OrderExpired):
        return Trigger.EXPIRE
    return Trigger.REJECT

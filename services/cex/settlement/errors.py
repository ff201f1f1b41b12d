"""The exception tree of settlement.

::

    SettlementError
    ├── PermanentSettlementError     the stream and the database disagree: stop, never guess
    │   ├── SequenceGap              an event's seq is not last_seq + 1 for its market
    │   ├── UnknownMarket            an event for a market (or partition) not in the registry
    │   ├── UnknownOrder             an event names an order the database does not have
    │   └── InconsistentEvent        an event contradicts the stored order (user, side,
    │                                status, locked funds) or cannot be settled
    └── RetryableSettlementError     the batch failed for a transient reason (deadlock,
                                     serialization failure, lost connection): retry it

Core errors raised while settling (``InvalidTransition``, ``LedgerError``) are permanent
too. A failed batch rolls back entirely: nothing of it is applied, the progress row does not
move, and the next attempt starts from the same events.
"""

from __future__ import annotations


class SettlementError(Exception):
    """Base of every settlement error."""


class PermanentSettlementError(SettlementError):
    """Settling cannot go on without a human: the same input fails the same way."""


class SequenceGap(PermanentSettlementError):
    pass


class UnknownMarket(PermanentSettlementError):
    pass


class UnknownOrder(PermanentSettlementError):
    pass


class InconsistentEvent(PermanentSettlementError):
    pass


class RetryableSettlementError(SettlementError):
    """A transient failure; the batch can be applied again as it is."""

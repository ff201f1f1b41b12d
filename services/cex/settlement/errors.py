"""The exception tree of settlement.

::

    SettlementError
    ├── PermanentSettlementError     the stream and the database disagree: stop, never guess
    │   ├── SequenceGap              an event's seq is not last_seq + 1 for its market
    │   ├── UnknownMarket            an event for a market (or partition) not in the registry
    │   └── InconsistentDatabase     the database lacks what settling needs (the fee
    │                                account, a balance row)
    └── RetryableSettlementError     the batch failed for a transient reason (deadlock,
                                     serialization failure, lost connection): retry it

Core errors raised while settling are permanent too: the money rules' own
(``cex.core.settlement``: ``UnknownOrder``, an event naming an order the database does not
have; ``InconsistentEvent``, an event contradicting the stored order: user, side, status,
locked funds), ``InvalidTransition`` and ``LedgerError``. The first two are re-exported here.

A failed batch rolls back entirely: nothing of it is applied, the progress row does not
move, and the next attempt starts from the same events.
"""

from __future__ import annotations

from cex.core.settlement import InconsistentEvent, UnknownOrder

__all__ = [
    "InconsistentDatabase",
    "InconsistentEvent",
    "PermanentSettlementError",
    "RetryableSettlementError",
    "SequenceGap",
    "SettlementError",
    "UnknownMarket",
    "UnknownOrder",
]


class SettlementError(Exception):
    """Base of every settlement error."""


class PermanentSettlementError(SettlementError):
    """Settling cannot go on without a human: the same input fails the same way."""


class SequenceGap(PermanentSettlementError):
    pass


class UnknownMarket(PermanentSettlementError):
    pass


class InconsistentDatabase(PermanentSettlementError):
    pass


class RetryableSettlementError(SettlementError):
    """A transient failure; the batch can be applied again as it is."""

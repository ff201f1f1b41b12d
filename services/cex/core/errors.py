"""The exception tree of ``cex.core``.

``cex.core`` does no I/O, so nothing it raises is worth retrying: every error below is
*permanent* — the same input fails the same way every time. Adapters that need a
retryable/permanent split (Kafka, Postgres, Redis) define their retryable errors in
``cex.infra``; they may wrap a core error but must not retry it.

::

    CoreError                      base of everything raised by cex.core
    ├── AmountError (ValueError)   a decimal string or amount refused at an edge
    │   ├── MalformedAmount        not a plain decimal string ("1e5", "NaN", " 1", "")
    │   ├── TooManyDigits          more significant digits than MAX_DIGITS
    │   ├── NegativeAmount         below zero
    │   ├── ZeroAmount             zero where zero is meaningless
    │   ├── OffGridAmount          not a whole multiple of the tick / lot / asset unit
    │   └── AmountOutOfBounds      outside the configured [minimum, maximum]
    ├── MarketConfigError (ValueError)   a market configuration that cannot be traded
    ├── SchemaError (ValueError)   bytes that are not a valid command / event / snapshot
    │   └── SnapshotError          an engine snapshot that cannot be restored
    ├── InvalidTransition          an order state transition the state machine forbids
    └── EngineStateError           the engine's invariants are broken (a bug, never input)

Bad *commands* never raise inside the matching engine: it answers them with
``ORDER_REJECTED`` / ``COMMAND_REJECTED`` events and changes nothing. Exceptions are for
edges (parsing, configuration, decoding) and for impossible states.

Every ``AmountError`` carries ``field`` (the name of the offending field, e.g. ``"price"``)
and ``value`` (what was given) so that an API layer can map it to a precise client error.
"""

from __future__ import annotations

__all__ = [
    "AmountError",
    "AmountOutOfBounds",
    "CoreError",
    "EngineStateError",
    "InvalidTransition",
    "MalformedAmount",
    "MarketConfigError",
    "NegativeAmount",
    "OffGridAmount",
    "SchemaError",
    "SnapshotError",
    "TooManyDigits",
    "ZeroAmount",
]


class CoreError(Exception):
    """Base class of every error raised by ``cex.core``. All of them are permanent."""


class AmountError(CoreError, ValueError):
    """A decimal string or amount was refused. ``field`` names it, ``value`` is the input."""

    def __init__(self, field: str, value: object, message: str) -> None:
        super().__init__(f"{field}: {message} (got {value!r})")
        self.field = field
        self.value = value


class MalformedAmount(AmountError):
    """Not a plain decimal string: exponents, signs other than '-', spaces, NaN, ∞, ''."""


class TooManyDigits(AmountError):
    """More significant digits than the core accepts (see ``money.MAX_DIGITS``)."""


class NegativeAmount(AmountError):
    """Below zero."""


class ZeroAmount(AmountError):
    """Zero where zero has no meaning (a price, a quantity, a tick size...)."""


class OffGridAmount(AmountError):
    """Not a whole multiple of its step (tick size, lot size or asset smallest unit)."""


class AmountOutOfBounds(AmountError):
    """Outside the configured bounds (e.g. below ``min_qty`` or above ``max_qty``)."""


class MarketConfigError(CoreError, ValueError):
    """A market configuration that cannot be traded exactly (see ``market.MarketConfig``)."""


class SchemaError(CoreError, ValueError):
    """Bytes that do not decode to a known command, event or snapshot of this version."""


class SnapshotError(SchemaError):
    """An engine snapshot that does not decode or contradicts itself: the engine's state must
    then be rebuilt from its input instead (it is only ever a shortcut)."""


class InvalidTransition(CoreError):
    """An order state transition that ``orders.TRANSITIONS`` does not allow."""

    def __init__(self, state: object, trigger: object) -> None:
        super().__init__(f"no transition from {state} on {trigger}")
        self.state = state
        self.trigger = trigger


class EngineStateError(CoreError):
    """The engine found its own state inconsistent. A bug or corrupted snapshot, never input."""

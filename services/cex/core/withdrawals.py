"""Withdrawal requests: their state machine and the ledger postings each step causes.

Pure functions, no I/O; ``cex.infra.accounts`` loads the request, asks here what to do and
writes the result. Amounts are integers in the asset's smallest unit.

States
------
::

    PENDING ──complete──▶ COMPLETED     (terminal; complete again: same state, no money)
       │
       └────reject─────▶ REJECTED       (terminal; reject again: same state, no money)

Completing a rejected request or rejecting a completed one is an
:class:`~cex.core.errors.InvalidTransition`.

Postings (one journal each, balanced per asset by construction)
---------------------------------------------------------------
* request, ``WITHDRAWAL_LOCK``::

      user AVAILABLE asset  -amount
      user LOCKED    asset  +amount

* complete, ``WITHDRAWAL`` (the funds leave the exchange)::

      user LOCKED    asset  -amount
      EXTERNAL       asset  +amount

* reject, ``WITHDRAWAL_RELEASE``::

      user LOCKED    asset  -amount
      user AVAILABLE asset  +amount

While a request is PENDING its amount is part of the user's locked funds (``cex check``
expects it there beside what open orders need).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from cex.core.errors import InvalidTransition
from cex.core.ledger import Bucket, LedgerError, Posting, imbalances

__all__ = [
    "TRANSITIONS",
    "Action",
    "Status",
    "Step",
    "WithdrawalJournal",
    "WithdrawalJournalKind",
    "complete_journal",
    "journal_for",
    "lock_journal",
    "reference",
    "reject_journal",
    "transition",
]


class Status(enum.StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"


class Action(enum.StrEnum):
    COMPLETE = "COMPLETE"
    REJECT = "REJECT"


class WithdrawalJournalKind(enum.StrEnum):
    WITHDRAWAL_LOCK = "WITHDRAWAL_LOCK"
    WITHDRAWAL = "WITHDRAWAL"
    WITHDRAWAL_RELEASE = "WITHDRAWAL_RELEASE"


class WithdrawalJournal(NamedTuple):
    kind: WithdrawalJournalKind
    reference: str
    postings: tuple[Posting, ...]

    def balance_deltas(self) -> dict[int, tuple[int, int]]:
        """``user_id → (available delta, locked delta)`` of this journal."""
        deltas: dict[int, tuple[int, int]] = {}
        for user_id, bucket, _asset, amount in self.postings:
            if user_id is None:
                continue
            available, locked = deltas.get(user_id, (0, 0))
            if bucket is Bucket.LOCKED:
                locked += amount
            else:
                available += amount
            deltas[user_id] = (available, locked)
        return deltas


class Step(NamedTuple):
    """What an action does to a request: its next status and whether money moves."""

    status: Status
    moves_money: bool


#: (status, action) → next status. Repeating the action that made a request final is
#: allowed and moves nothing (idempotent operators); anything missing is invalid.
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (Status.PENDING, Action.COMPLETE): Status.COMPLETED,
    (Status.PENDING, Action.REJECT): Status.REJECTED,
    (Status.COMPLETED, Action.COMPLETE): Status.COMPLETED,
    (Status.REJECTED, Action.REJECT): Status.REJECTED,
}


def transition(status: Status, action: Action) -> Step:
    """The step ``action`` takes from ``status``; raises ``InvalidTransition``."""
    target = TRANSITIONS.get((status, action))
    if target is None:
        raise InvalidTransition(status, action)
    return Step(target, moves_money=status is Status.PENDING)


def reference(request_id: int) -> str:
    """The journal reference (and the `withdrawals.external_id`) of request ``request_id``."""
    return f"withdrawal-request:{request_id}"


def _journal(
    kind: WithdrawalJournalKind, ref: str, postings: tuple[Posting, ...]
) -> WithdrawalJournal:
    if imbalances(postings):
        raise LedgerError(f"journal {ref} does not balance")  # pragma: no cover - by design
    return WithdrawalJournal(kind, ref, postings)


def _positive(amount: int) -> None:
    if amount <= 0:
        raise LedgerError(f"withdrawal amount must be positive, got {amount}")


def lock_journal(ref: str, user_id: int, asset: str, amount: int) -> WithdrawalJournal:
    """``WITHDRAWAL_LOCK``: available → locked."""
    _positive(amount)
    return _journal(
        WithdrawalJournalKind.WITHDRAWAL_LOCK,
        ref,
        (
            Posting(user_id, Bucket.AVAILABLE, asset, -amount),
            Posting(user_id, Bucket.LOCKED, asset, amount),
        ),
    )


def complete_journal(ref: str, user_id: int, asset: str, amount: int) -> WithdrawalJournal:
    """``WITHDRAWAL``: locked → EXTERNAL."""
    _positive(amount)
    return _journal(
        WithdrawalJournalKind.WITHDRAWAL,
        ref,
        (
            Posting(user_id, Bucket.LOCKED, asset, -amount),
            Posting(None, Bucket.EXTERNAL, asset, amount),
        ),
    )


def reject_journal(ref: str, user_id: int, asset: str, amount: int) -> WithdrawalJournal:
    """``WITHDRAWAL_RELEASE``: locked → available."""
    _positive(amount)
    return _journal(
        WithdrawalJournalKind.WITHDRAWAL_RELEASE,
        ref,
        (
            Posting(user_id, Bucket.LOCKED, asset, -amount),
            Posting(user_id, Bucket.AVAILABLE, asset, amount),
        ),
    )


def journal_for(
    action: Action, ref: str, user_id: int, asset: str, amount: int
) -> WithdrawalJournal:
    """The journal of completing or rejecting a PENDING request."""
    if action is Action.COMPLETE:
        return complete_journal(ref, user_id, asset, amount)
    return reject_journal(ref, user_id, asset, amount)

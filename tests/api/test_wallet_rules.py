"""The pure withdrawal rules (`cex.core.withdrawals`): the state machine and its postings."""

from __future__ import annotations

import pytest

from cex.core.errors import InvalidTransition
from cex.core.ledger import Bucket, LedgerError, Posting, imbalances
from cex.core.withdrawals import (
    Action,
    Status,
    WithdrawalJournalKind,
    complete_journal,
    lock_journal,
    reject_journal,
    transition,
)


def test_transitions_are_idempotent_and_final() -> None:
    assert transition(Status.PENDING, Action.COMPLETE) == (Status.COMPLETED, True)
    assert transition(Status.PENDING, Action.REJECT) == (Status.REJECTED, True)
    assert transition(Status.COMPLETED, Action.COMPLETE) == (Status.COMPLETED, False)
    assert transition(Status.REJECTED, Action.REJECT) == (Status.REJECTED, False)
    with pytest.raises(InvalidTransition):
        transition(Status.COMPLETED, Action.REJECT)
    with pytest.raises(InvalidTransition):
        transition(Status.REJECTED, Action.COMPLETE)


def test_postings_move_the_right_buckets_and_balance() -> None:
    lock = lock_journal("r", 7, "BTC", 5)
    assert lock.kind is WithdrawalJournalKind.WITHDRAWAL_LOCK
    assert lock.postings == (Posting(7, Bucket.AVAILABLE, "BTC", -5),
                             Posting(7, Bucket.LOCKED, "BTC", 5))  # fmt: skip
    assert lock.balance_deltas() == {7: (-5, 5)}
    done = complete_journal("r", 7, "BTC", 5)
    assert done.kind is WithdrawalJournalKind.WITHDRAWAL
    assert done.postings == (Posting(7, Bucket.LOCKED, "BTC", -5),
                             Posting(None, Bucket.EXTERNAL, "BTC", 5))  # fmt: skip
    assert done.balance_deltas() == {7: (0, -5)}
    back = reject_journal("r", 7, "BTC", 5)
    assert back.balance_deltas() == {7: (5, -5)}
    for journal in (lock, done, back):
        assert imbalances(journal.postings) == {}
    for amount in (0, -1):
        with pytest.raises(LedgerError):
            lock_journal("r", 7, "BTC", amount)

"""The ledger rules: which double-entry postings each engine event causes (DESIGN.md §3, §6).

Pure functions of one event and the little context settlement has about it (the market's
base and quote assets, the fee account, the locked asset of an order). No I/O.

Accounts
--------
An account is ``(user_id, bucket, asset)``. Buckets are a user's ``AVAILABLE`` and
``LOCKED`` funds and ``EXTERNAL`` (the world outside the exchange, ``user_id`` ``None``),
used by deposits and withdrawals only. The fee account is the ``AVAILABLE`` bucket of the
user whose kind is ``FEE``. A posting's ``amount`` is a signed integer in the asset's
smallest unit: positive credits the account, negative debits it.

Rules
-----
* ``TRADE_EXECUTED`` (one ``TRADE`` journal, six postings at most, zero amounts omitted)::

      buyer  LOCKED    quote  -quote_amount
      seller AVAILABLE quote  +(quote_amount - seller_fee)
      fee    AVAILABLE quote  +seller_fee
      seller LOCKED    base   -base_amount
      buyer  AVAILABLE base   +(base_amount - buyer_fee)
      fee    AVAILABLE base   +buyer_fee

* An order event with ``released > 0`` (and ``COMMAND_REJECTED`` returning a refused
  amend's ``additional_locked``), one ``ORDER_RELEASE`` journal::

      user LOCKED    locked_asset  -released
      user AVAILABLE locked_asset  +released

  The locked asset is the quote for a buy and the base for a sell.

* ``ORDER_LOCK`` (an order placed, or an amend raising what it needs), ``DEPOSIT`` and
  ``WITHDRAWAL`` (the world outside is the ``EXTERNAL`` account)::

      user AVAILABLE asset  -amount      EXTERNAL asset -amount      user AVAILABLE -amount
      user LOCKED    asset  +amount      user AVAILABLE +amount      EXTERNAL asset +amount

Every journal built here sums to zero per asset by construction; :func:`imbalances` and
:func:`check_balanced` verify it for any list of postings (settlement calls it on every
journal before writing, ``cex check`` on every stored journal).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from cex.core.errors import CoreError
from cex.core.events import (
    CommandRejected,
    Event,
    OrderCancelled,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderUpdated,
    Side,
    TradeExecuted,
)

__all__ = [
    "Bucket",
    "Journal",
    "JournalKind",
    "LedgerError",
    "MarketAssets",
    "Posting",
    "amend_lock_reference",
    "balance_deltas",
    "check_balanced",
    "imbalances",
    "journal_for",
    "locked_asset",
    "move_journal",
    "order_lock_journal",
    "release_journal",
    "trade_journal",
    "transfer_journal",
]


class LedgerError(CoreError):
    """A journal that does not balance, or an event whose postings cannot be computed
    (negative amounts, a fee larger than the amount it is charged on). Permanent."""


class Bucket(enum.StrEnum):
    AVAILABLE = "AVAILABLE"
    LOCKED = "LOCKED"
    EXTERNAL = "EXTERNAL"


class JournalKind(enum.StrEnum):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    ORDER_LOCK = "ORDER_LOCK"
    ORDER_RELEASE = "ORDER_RELEASE"
    TRADE = "TRADE"


class Posting(NamedTuple):
    """One ledger entry: ``amount`` (signed) on account ``(user_id, bucket, asset)``."""

    user_id: int | None
    bucket: Bucket
    asset: str
    amount: int


class Journal(NamedTuple):
    """One movement of money: postings that sum to zero per asset."""

    kind: JournalKind
    reference: str
    postings: tuple[Posting, ...]


class MarketAssets(Protocol):
    """What the rules need from a market: its assets (``MarketConfig`` qualifies)."""

    @property
    def base(self) -> str: ...

    @property
    def quote(self) -> str: ...


_AVAILABLE = Bucket.AVAILABLE
_LOCKED = Bucket.LOCKED

_ORDER_EVENTS = (OrderOpened, OrderUpdated, OrderCancelled, OrderExpired, OrderRejected)


def locked_asset(side: Side, market: MarketAssets) -> str:
    """The asset an order locks: quote for a buy, base for a sell."""
    return market.quote if side is Side.BUY else market.base


def trade_reference(market: str, trade_id: int) -> str:
    return f"trade:{market}:{trade_id}"


def release_reference(market: str, seq: int) -> str:
    return f"release:{market}:{seq}"


def trade_journal(trade: TradeExecuted, market: MarketAssets, fee_user_id: int) -> Journal:
    """The ``TRADE`` journal of one execution (see the module docstring)."""
    quote_amount, base_amount = trade.quote_amount, trade.base_amount
    if trade.taker_side is Side.BUY:
        buyer, seller = trade.taker_user_id, trade.maker_user_id
        buyer_fee, seller_fee = trade.taker_fee, trade.maker_fee
    else:
        buyer, seller = trade.maker_user_id, trade.taker_user_id
        buyer_fee, seller_fee = trade.maker_fee, trade.taker_fee
    if quote_amount <= 0 or base_amount <= 0:
        raise LedgerError(f"trade {trade.market}:{trade.trade_id}: amounts must be positive")
    if not 0 <= seller_fee <= quote_amount or not 0 <= buyer_fee <= base_amount:
        raise LedgerError(f"trade {trade.market}:{trade.trade_id}: fee out of range")
    quote, base = market.quote, market.base
    candidates = (
        Posting(buyer, _LOCKED, quote, -quote_amount),
        Posting(seller, _AVAILABLE, quote, quote_amount - seller_fee),
        Posting(fee_user_id, _AVAILABLE, quote, seller_fee),
        Posting(seller, _LOCKED, base, -base_amount),
        Posting(buyer, _AVAILABLE, base, base_amount - buyer_fee),
        Posting(fee_user_id, _AVAILABLE, base, buyer_fee),
    )
    return Journal(
        JournalKind.TRADE,
        trade_reference(trade.market, trade.trade_id),
        tuple(p for p in candidates if p.amount),
    )


def move_journal(
    kind: JournalKind,
    reference: str,
    user_id: int,
    asset: str,
    amount: int,
    source: Bucket,
    target: Bucket,
) -> Journal:
    """A journal moving ``amount`` (positive) of ``asset`` between two of a user's buckets."""
    if amount <= 0:
        raise LedgerError(f"journal {reference}: an amount must be positive, got {amount}")
    return Journal(
        kind,
        reference,
        (Posting(user_id, source, asset, -amount), Posting(user_id, target, asset, amount)),
    )


def order_lock_journal(reference: str, user_id: int, asset: str, amount: int) -> Journal:
    """``ORDER_LOCK``: what an order (or an amend raising it) needs, available → locked.
    References: ``order:<id>`` at entry, ``amend:<order id>:<command seq>`` for an amend."""
    return move_journal(JournalKind.ORDER_LOCK, reference, user_id, asset, amount,
                        _AVAILABLE, _LOCKED)  # fmt: skip


def amend_lock_reference(order_id: int, command_seq: int) -> str:
    return f"amend:{order_id}:{command_seq}"


def transfer_journal(kind: JournalKind, external_id: str, user_id: int, asset: str,
                     amount: int) -> Journal:  # fmt: skip
    """``DEPOSIT`` (the world → the user's available funds) or ``WITHDRAWAL`` (back), the
    reference being the transfer's external id."""
    if amount <= 0:
        raise LedgerError(f"{kind.value.lower()} {external_id!r}: amount must be positive")
    if kind is JournalKind.DEPOSIT:
        sign = 1
    elif kind is JournalKind.WITHDRAWAL:
        sign = -1
    else:
        raise LedgerError(f"{kind} is not a transfer")
    return Journal(
        kind,
        external_id,
        (
            Posting(None, Bucket.EXTERNAL, asset, -sign * amount),
            Posting(user_id, _AVAILABLE, asset, sign * amount),
        ),
    )


def release_journal(market: str, seq: int, user_id: int, asset: str, released: int) -> Journal:
    """The ``ORDER_RELEASE`` journal returning ``released`` from locked to available."""
    return move_journal(JournalKind.ORDER_RELEASE, release_reference(market, seq), user_id,
                        asset, released, _LOCKED, _AVAILABLE)  # fmt: skip


def journal_for(
    event: Event,
    market: MarketAssets,
    fee_user_id: int,
    order_side: Side | None = None,
) -> Journal | None:
    """The journal one engine event causes, or ``None`` when it moves no money.

    ``order_side`` is the side of the order a ``COMMAND_REJECTED`` refers to (its event
    has no side); it is only needed when that event releases something.
    """
    if isinstance(event, TradeExecuted):
        return trade_journal(event, market, fee_user_id)
    if isinstance(event, _ORDER_EVENTS):
        if event.released < 0:
            raise LedgerError(f"{event.market}:{event.seq}: negative release")
        if not event.released:
            return None
        asset = locked_asset(event.side, market)
        return release_journal(event.market, event.seq, event.user_id, asset, event.released)
    if isinstance(event, CommandRejected):
        if event.released < 0:
            raise LedgerError(f"{event.market}:{event.seq}: negative release")
        if not event.released:
            return None
        if event.user_id is None or order_side is None:
            raise LedgerError(
                f"{event.market}:{event.seq}: a release needs the order's user and side"
            )
        asset = locked_asset(order_side, market)
        return release_journal(event.market, event.seq, event.user_id, asset, event.released)
    return None


def imbalances(postings: Iterable[Posting]) -> dict[str, int]:
    """Per asset, the non-zero sums of ``postings`` (empty when they balance)."""
    sums: dict[str, int] = {}
    for posting in postings:
        sums[posting.asset] = sums.get(posting.asset, 0) + posting.amount
    return {asset: total for asset, total in sums.items() if total}


def check_balanced(journal: Journal) -> None:
    """Raise :class:`LedgerError` unless ``journal`` sums to zero per asset and is sane:
    no zero posting, user accounts for AVAILABLE/LOCKED only, no user on EXTERNAL."""
    for posting in journal.postings:
        if posting.amount == 0:
            raise LedgerError(f"journal {journal.reference}: zero posting {posting}")
        if (posting.bucket is Bucket.EXTERNAL) != (posting.user_id is None):
            raise LedgerError(f"journal {journal.reference}: bad account {posting}")
    unbalanced = imbalances(journal.postings)
    if unbalanced:
        raise LedgerError(f"journal {journal.reference} does not balance: {unbalanced}")


class Postings(Protocol):
    """Anything made of postings: a :class:`Journal`, a withdrawal's journal."""

    @property
    def postings(self) -> tuple[Posting, ...]: ...


def balance_deltas(journals: Iterable[Postings]) -> dict[tuple[int, str], tuple[int, int]]:
    """Aggregate user postings into ``(user_id, asset) → (available delta, locked delta)``.

    EXTERNAL postings have no balance row and are left out. Pairs whose deltas are both
    zero are dropped.
    """
    available: dict[tuple[int, str], int] = {}
    locked: dict[tuple[int, str], int] = {}
    for journal in journals:
        for user_id, bucket, asset, amount in journal.postings:
            if user_id is None:
                continue
            key = (user_id, asset)
            if bucket is _LOCKED:
                locked[key] = locked.get(key, 0) + amount
            else:
                available[key] = available.get(key, 0) + amount
    result: dict[tuple[int, str], tuple[int, int]] = {}
    for key in available.keys() | locked.keys():
        pair = (available.get(key, 0), locked.get(key, 0))
        if pair != (0, 0):
            result[key] = pair
    return result

"""The gateway's copy of one market's L2 book, and the diff windows of the depth streams
(pure, no I/O: the feed gives it the engine's updates and the book key's contents).

Rules (DESIGN.md §5; names as in :mod:`cex.infra.redis`):

* An update applies when its ``prev_seq`` equals the book's ``seq``; then the book is at
  the update's ``seq``. An update whose ``seq`` is not above the book's is old news and
  dropped. Any other update means pub/sub lost something in between: the book must be
  resynced from the book key (:meth:`Book.resync`); updates that arrive meanwhile wait,
  and after the resync those whose ``seq`` is not above the key's are dropped.
* A resync breaks the diff chain on purpose: the next diff pushed starts at the key's
  ``seq + 1``, so every client sees ``U ≠ previous u + 1`` (or, if it took its REST
  snapshot during the gap, a first event with ``U > lastUpdateId + 1``) and starts over
  from a new snapshot, as Binance's procedure says. Pushing "the difference between the
  old book and the key's" instead would look seamless but be wrong for a client whose
  snapshot fell inside the gap: a level that appeared and vanished within the gap is in
  neither book, so nothing would ever remove it from that client's.

Binance's diff events map onto the chain as ``U = prev_seq + 1`` and ``u = seq``; REST
``/api/v3/depth`` answers the key's ``seq`` as ``lastUpdateId``, so the documented
procedure (drop ``u ≤ lastUpdateId``, the first event has ``U ≤ lastUpdateId + 1 ≤ u``,
then each ``U`` is the previous ``u + 1``) holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Applied", "Book", "Diff", "DiffWindow"]

Levels = list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Diff:
    """Changed levels (new quantity in lots, 0 = removed) taking the book from ``prev_seq``
    to ``seq``: bids best first, asks best first."""

    prev_seq: int
    seq: int
    bids: Levels
    asks: Levels

    @property
    def first_update_id(self) -> int:
        """Binance's ``U``."""
        return self.prev_seq + 1


Applied = Literal["applied", "stale", "gap"]


@dataclass
class Book:
    """One market's levels at ``seq`` (price ticks → quantity lots)."""

    seq: int = -1
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    @property
    def synced(self) -> bool:
        return self.seq >= 0

    def check(self, prev_seq: int, seq: int) -> Applied:
        """Whether an update ``prev_seq → seq`` applies now, is stale, or reveals a gap."""
        if not self.synced:
            return "gap"
        if seq <= self.seq:
            return "stale"
        return "applied" if prev_seq == self.seq else "gap"

    def apply(self, diff: Diff) -> None:
        """Apply an update that :meth:`check` said applies."""
        assert diff.prev_seq == self.seq, (diff.prev_seq, self.seq)
        _merge(self.bids, diff.bids)
        _merge(self.asks, diff.asks)
        self.seq = diff.seq

    def resync(self, seq: int, bids: Levels, asks: Levels) -> bool:
        """Replace the book with the key's (at ``seq``) unless it is not newer; whether it
        was replaced."""
        if seq <= self.seq:
            return False
        self.seq, self.bids, self.asks = seq, dict(bids), dict(asks)
        return True

    def top(self, levels: int) -> tuple[Levels, Levels]:
        """The best ``levels`` bids and asks."""
        bids = sorted(self.bids.items(), reverse=True)[:levels]
        asks = sorted(self.asks.items())[:levels]
        return bids, asks

    def best(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Best bid and ask, ``(0, 0)`` for an empty side."""
        bid = max(self.bids.items()) if self.bids else (0, 0)
        ask = min(self.asks.items()) if self.asks else (0, 0)
        return bid, ask


def _merge(side: dict[int, int], levels: Levels) -> None:
    for price, qty in levels:
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)


class DiffWindow:
    """The diffs of one push period merged into one: the last quantity of each level
    wins, ``prev_seq`` is the first diff's, ``seq`` the last's. Diffs must be added in
    chain order (each one's ``prev_seq`` is the previous one's ``seq``)."""

    __slots__ = ("_asks", "_bids", "prev_seq", "seq")

    def __init__(self) -> None:
        self.prev_seq = -1
        self.seq = -1
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}

    def __bool__(self) -> bool:
        return self.seq >= 0

    def clear(self) -> None:
        """Forget the window (the chain it continues was broken by a resync)."""
        self.prev_seq = self.seq = -1
        self._bids, self._asks = {}, {}

    def add(self, diff: Diff) -> None:
        if self.seq < 0:
            self.prev_seq = diff.prev_seq
        elif diff.prev_seq != self.seq:
            raise ValueError(f"diff {diff.prev_seq}→{diff.seq} does not follow {self.seq}")
        self.seq = diff.seq
        self._bids.update(diff.bids)
        self._asks.update(diff.asks)

    def take(self) -> Diff | None:
        """The merged diff (None if empty), and start a new window."""
        if self.seq < 0:
            return None
        diff = Diff(
            self.prev_seq,
            self.seq,
            sorted(self._bids.items(), reverse=True),
            sorted(self._asks.items()),
        )
        self.prev_seq = self.seq = -1
        self._bids, self._asks = {}, {}
        return diff

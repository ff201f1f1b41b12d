"""The gateway's book: applying the engine's updates, resyncing on gaps, and the merged
diff windows a Binance client chains onto REST's lastUpdateId."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cex.gateway.book import Book, Diff, DiffWindow


def test_apply_stale_and_gap() -> None:
    book = Book()
    assert book.check(0, 3) == "gap"  # never synced
    assert book.resync(3, [(100, 2)], [(101, 1)])
    assert book.check(3, 5) == "applied"
    book.apply(Diff(3, 5, [(100, 0), (99, 4)], []))
    assert (book.seq, book.bids, book.asks) == (5, {99: 4}, {101: 1})
    assert book.check(3, 5) == "stale"
    assert book.check(1, 4) == "stale"
    assert book.check(7, 9) == "gap"


def test_resync_replaces_only_with_a_newer_book() -> None:
    book = Book()
    assert book.resync(5, [(100, 2), (99, 1)], [(101, 1)])
    assert book.resync(9, [(100, 3), (98, 7)], [])
    assert (book.seq, book.bids, book.asks) == (9, {100: 3, 98: 7}, {})
    assert not book.resync(8, [], [])  # older than the book: ignored
    assert not book.resync(9, [], [])
    assert book.seq == 9


def test_window_merges_in_chain_order() -> None:
    window = DiffWindow()
    assert not window
    window.add(Diff(4, 6, [(100, 1)], [(105, 2)]))
    window.add(Diff(6, 9, [(100, 0), (99, 3)], []))
    with pytest.raises(ValueError, match="does not follow"):
        window.add(Diff(10, 11, [], []))
    assert window.take() == Diff(4, 9, [(100, 0), (99, 3)], [(105, 2)])
    assert window.take() is None


class Engine:
    """The truth: a book and its key, moved by random batches (update = one batch)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seq = 0
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def batch(self) -> Diff:
        prev = self.seq
        self.seq += self.rng.randint(1, 4)  # other events take seqs too
        changes: dict[str, dict[int, int]] = {"b": {}, "a": {}}
        for _ in range(self.rng.randint(1, 4)):
            side = self.rng.choice("ba")
            price = self.rng.randint(90, 99) if side == "b" else self.rng.randint(100, 110)
            qty = self.rng.choice([0, 0, 1, 2, 5])
            changes[side][price] = qty
        for price, qty in changes["b"].items():
            _set(self.bids, price, qty)
        for price, qty in changes["a"].items():
            _set(self.asks, price, qty)
        return Diff(prev, self.seq, sorted(changes["b"].items(), reverse=True),
                    sorted(changes["a"].items()))  # fmt: skip


def _set(side: dict[int, int], price: int, qty: int) -> None:
    if qty:
        side[price] = qty
    else:
        side.pop(price, None)


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), drop=st.floats(0, 0.5), flush_every=st.integers(1, 6),
       snapshot_at=st.integers(0, 30))  # fmt: skip
def test_client_converges_despite_drops(
    seed: int, drop: float, flush_every: int, snapshot_at: int
) -> None:
    """Pub/sub drops updates at random; the gateway resyncs from the key, which breaks the
    chain of pushed diffs. A client that follows Binance's procedure (REST snapshot =
    the key; drop u <= lastUpdateId; the first event has U <= lastUpdateId+1 <= u, then
    U = previous u + 1, else start over from a new snapshot) ends with the engine's book,
    wherever its snapshots fall."""
    rng = random.Random(seed)
    engine = Engine(rng)
    gateway = Book()
    gateway.resync(engine.seq, [], [])
    window = DiffWindow()
    client: Book | None = None
    first = True
    restarts = 0

    def snapshot() -> Book:
        book = Book()
        book.resync(engine.seq, list(engine.bids.items()), list(engine.asks.items()))
        return book

    def receive(event: Diff) -> None:
        nonlocal client, first, restarts
        if client is None:
            return  # buffered until its snapshot: none yet
        if event.seq <= client.seq:
            return
        ok = (event.first_update_id <= client.seq + 1 if first
              else event.first_update_id == client.seq + 1)  # fmt: skip
        if not ok:
            restarts += 1
            client, first = snapshot(), True  # start over
            return
        first = False
        for price, qty in event.bids:
            _set(client.bids, price, qty)
        for price, qty in event.asks:
            _set(client.asks, price, qty)
        client.seq = event.seq

    for step in range(40):
        diff = engine.batch()
        if step == snapshot_at:
            client = snapshot()
        if rng.random() < drop:
            continue  # lost on pub/sub
        state = gateway.check(diff.prev_seq, diff.seq)
        if state == "gap":
            assert gateway.resync(engine.seq, list(engine.bids.items()),
                                  list(engine.asks.items()))  # fmt: skip
            window.clear()
        elif state == "applied":
            gateway.apply(diff)
            window.add(diff)
        if step % flush_every == 0 and (merged := window.take()) is not None:
            receive(merged)
    # The last updates arrive (or the periodic check resyncs), then one more change.
    if gateway.resync(engine.seq, list(engine.bids.items()), list(engine.asks.items())):
        window.clear()
    if (merged := window.take()) is not None:
        receive(merged)
    last = engine.batch()
    gateway.apply(last)
    receive(last)
    if client is None:
        client = snapshot()
    assert (client.seq, client.bids, client.asks) == (engine.seq, engine.bids, engine.asks)
    assert (gateway.seq, gateway.bids, gateway.asks) == (engine.seq, engine.bids, engine.asks)
    if drop == 0:
        assert restarts == 0

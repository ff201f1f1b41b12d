"""Engine snapshots: the full state of one engine as deterministic bytes, and back.

A snapshot holds the config (with its status), the counters (next seq, trade id,
acceptance seq), the last trade price, the last input offset and ``ts``, and every open
order in a canonical order: bids best-first in time priority, then asks likewise, then
waiting stops in acceptance order. Equal states give equal bytes, so a replayed engine can
be compared byte for byte with the one that wrote the snapshot.

:func:`load` raises :class:`~cex.core.errors.SnapshotError` for anything that is not a
snapshot of this version or that contradicts itself; the engine service then rebuilds the
state from its input instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from cex.core.errors import SnapshotError
from cex.core.events import OrderType, Side, StpMode, TimeInForce
from cex.core.market import MarketConfig
from cex.core.matching.book import Order, by_seq

if TYPE_CHECKING:
    from cex.core.matching.engine import MatchingEngine

__all__ = ["SNAPSHOT_VERSION", "dump", "load"]

SNAPSHOT_VERSION: Final = 1


class OrderState(msgspec.Struct, frozen=True, array_like=True):
    """One open order inside a snapshot."""

    id: int
    user: int
    cid: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price: int | None
    quantity: int
    remaining: int
    filled: int
    budget: int | None
    stop_price: int | None
    expire_at: int | None
    stp: StpMode
    locked: int
    seq: int
    working: bool
    opened: bool


class Snapshot(
    msgspec.Struct, frozen=True, array_like=True, tag=f"ENGINE_SNAPSHOT.v{SNAPSHOT_VERSION}"
):
    """The full state of one engine (see the module docstring for the order of ``orders``)."""

    config: MarketConfig
    next_seq: int
    next_trade_id: int
    next_order_seq: int
    last_price: int | None
    last_offset: int
    last_ts: int
    orders: list[OrderState]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def canonical_orders(engine: MatchingEngine) -> list[OrderState]:
    """Every open order of ``engine`` in the snapshot's canonical order."""
    book = engine._book
    result = [_state(o) for o in book.in_priority(Side.BUY)]
    result += [_state(o) for o in book.in_priority(Side.SELL)]
    stops = sorted((o for o in engine._orders.values() if not o.working), key=by_seq)
    result += [_state(o) for o in stops]
    return result


def dump(engine: MatchingEngine) -> bytes:
    """The full state of ``engine`` as deterministic bytes."""
    return _encoder.encode(
        Snapshot(
            config=engine._config,
            next_seq=engine._seq + 1,
            next_trade_id=engine._trade_id + 1,
            next_order_seq=engine._order_seq + 1,
            last_price=engine._last_price,
            last_offset=engine._offset,
            last_ts=engine._ts,
            orders=canonical_orders(engine),
        )
    )


def load(engine_class: type[MatchingEngine], data: bytes) -> MatchingEngine:
    """An engine in exactly the state :func:`dump` captured."""
    try:
        snap = _decoder.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise SnapshotError(f"not an engine snapshot: {exc}") from exc
    engine = engine_class(snap.config)
    engine._trade_id = snap.next_trade_id - 1
    engine._order_seq = snap.next_order_seq - 1
    engine._last_price = snap.last_price
    engine._offset = snap.last_offset
    engine._ts = snap.last_ts
    book, triggers = engine._book, engine._triggers
    for s in snap.orders:
        o = Order(
            s.id, s.user, s.cid, s.side, s.type, s.tif, s.price, s.quantity, s.budget,
            s.stop_price, s.expire_at, s.stp, s.locked, s.seq,
        )  # fmt: skip
        o.remaining = s.remaining
        o.filled = s.filled
        o.working = s.working
        o.opened = s.opened
        if o.id in engine._orders:
            raise SnapshotError(f"snapshot lists order {o.id} twice")
        engine._register(o)
        if o.working:
            if o.price is None:
                raise SnapshotError(f"snapshot books order {o.id} without a price")
            book.insert(o)
        else:
            if o.stop_price is None:
                raise SnapshotError(f"snapshot has order {o.id} waiting without a stop")
            triggers.add_stop(o)
    engine._seq = snap.next_seq - 1
    return engine


def _state(o: Order) -> OrderState:
    return OrderState(
        o.id, o.user, o.cid, o.side, o.type, o.tif, o.price, o.quantity, o.remaining, o.filled,
        o.budget, o.stop_price, o.expire_at, o.stp, o.locked, o.seq, o.working, o.opened,
    )  # fmt: skip

"""Redis keys, channels and payloads shared by their writers and readers.

Every key and channel starts with ``InfraSettings.redis_prefix`` (``{prefix}`` below), so
that several stacks or tests can share one Redis.

Keys written by the matching engine of ``{market}`` (its Market resource name, e.g.
``btc-usdt``):

``{prefix}:snapshot:{market}``  (string, :class:`EngineSnapshot` as MessagePack)
    The engine's state at an input offset whose Kafka transaction has committed.
``{prefix}:book:{market}``  (hash)
    The L2 book: field ``seq`` (the ``seq`` of the last BOOK_DELTA event applied), fields
    ``b:<price_ticks>`` / ``a:<price_ticks>`` → aggregated quantity in lots (decimal
    ASCII). Read it with :func:`parse_book`.

Pub/sub channels, published by the engine after each committed Kafka transaction, in
stream order. Pub/sub may drop messages: readers detect gaps and resync from the key.

``{prefix}:depth:{market}``  (:class:`DepthUpdate` as MessagePack)
    The levels changed by one committed batch (new quantity, 0 = level removed).
    ``prev_seq`` is the book ``seq`` the update applies on: a reader whose book is at
    another seq resyncs from ``{prefix}:book:{market}`` (and drops updates whose ``seq`` is
    not above the key's).
``{prefix}:trades:{market}``  (list of TRADE_EXECUTED events, :func:`encode_events`)
``{prefix}:status:{market}``  (list of MARKET_STATUS_CHANGED / CONFIG_UPDATED events)
``{prefix}:user:{user_id}``  (list of events of one user, any market)
    The order events (ORDER_*) of the user's orders, the trades where the user is maker or
    taker, and the COMMAND_REJECTED answers to the user's commands.

Published by settlement after the database transaction that applied them committed:

``{prefix}:account:{user_id}``  (list of events of one user, any market)
    The same kinds of events as ``{prefix}:user:{user_id}``, once settled: balances and
    order rows already reflect them when they arrive (RESULT / FULL responses, user data
    streams). A redelivered batch may publish an event twice: dedupe by ``(market, seq)``.

Each event carries its market and gap-free ``seq``, so a reader can also detect drops on
the trade and user channels.
"""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from cex.core.events import BookDelta, Event, TradeExecuted
from cex.infra.settings import InfraSettings

__all__ = [
    "DepthUpdate",
    "EngineSnapshot",
    "account_channel",
    "book_key",
    "client",
    "decode_depth",
    "decode_events",
    "decode_snapshot",
    "depth_channel",
    "encode",
    "encode_events",
    "events_by_user",
    "parse_book",
    "snapshot_key",
    "status_channel",
    "trades_channel",
    "user_channel",
]


def client(settings: InfraSettings) -> aioredis.Redis:
    """An asyncio Redis client for ``settings.redis_url`` (bytes in, bytes out)."""
    return aioredis.Redis.from_url(settings.redis_url)


# --------------------------------------------------------------------------- names


def snapshot_key(prefix: str, market: str) -> str:
    return f"{prefix}:snapshot:{market}"


def book_key(prefix: str, market: str) -> str:
    return f"{prefix}:book:{market}"


def depth_channel(prefix: str, market: str) -> str:
    return f"{prefix}:depth:{market}"


def trades_channel(prefix: str, market: str) -> str:
    return f"{prefix}:trades:{market}"


def status_channel(prefix: str, market: str) -> str:
    return f"{prefix}:status:{market}"


def user_channel(prefix: str, user_id: int) -> str:
    return f"{prefix}:user:{user_id}"


def account_channel(prefix: str, user_id: int) -> str:
    return f"{prefix}:account:{user_id}"


def events_by_user(events: list[Event]) -> dict[int, list[Event]]:
    """The events each user should hear about: their order events, the trades they are on
    (both sides), the refusals of their commands. Market-wide events go to nobody."""
    users: dict[int, list[Event]] = {}
    for event in events:
        if isinstance(event, TradeExecuted):
            users.setdefault(event.maker_user_id, []).append(event)
            if event.taker_user_id != event.maker_user_id:
                users.setdefault(event.taker_user_id, []).append(event)
            continue
        user_id = getattr(event, "user_id", None)
        if user_id is not None and not isinstance(event, BookDelta):
            users.setdefault(user_id, []).append(event)
    return users


# --------------------------------------------------------------------------- payloads


class EngineSnapshot(msgspec.Struct, frozen=True, tag="ENGINE_SERVICE_SNAPSHOT.v1"):
    """What the engine service stores in ``{prefix}:snapshot:{market}``.

    * ``next_offset``: the first input offset (of ``orders``, ``partition``) the state has
      not applied; every offset below it is covered by a committed transaction.
    * ``next_seq``: the ``seq`` of the next event.
    * ``book_seq``: the ``seq`` of the last BOOK_DELTA applied (0 before any).
    * ``engine``: the core's own snapshot (``MatchingEngine.snapshot()``).
    """

    market: str
    partition: int
    next_offset: int
    next_seq: int
    book_seq: int
    engine: bytes


class DepthUpdate(msgspec.Struct, frozen=True, array_like=True):
    """Levels changed by one committed batch: ``(price_ticks, qty_lots)``, bids descending,
    asks ascending; ``prev_seq`` → ``seq`` as for the book key."""

    market: str
    prev_seq: int
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode
_events_decoder = msgspec.msgpack.Decoder(list[Event])
_depth_decoder = msgspec.msgpack.Decoder(DepthUpdate)
_snapshot_decoder = msgspec.msgpack.Decoder(EngineSnapshot)


def encode_events(events: list[Event]) -> bytes:
    return _encoder.encode(events)


def decode_events(data: bytes) -> list[Event]:
    return _events_decoder.decode(data)


def decode_depth(data: bytes) -> DepthUpdate:
    return _depth_decoder.decode(data)


def decode_snapshot(data: bytes) -> EngineSnapshot:
    return _snapshot_decoder.decode(data)


def parse_book(
    fields: dict[bytes, bytes],
) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """``HGETALL`` of a book key → ``(seq, bids best first, asks best first)``."""
    seq = int(fields.get(b"seq", b"0"))
    bids: list[tuple[int, int]] = []
    asks: list[tuple[int, int]] = []
    for name, value in fields.items():
        if name.startswith(b"b:"):
            bids.append((int(name[2:]), int(value)))
        elif name.startswith(b"a:"):
            asks.append((int(name[2:]), int(value)))
    bids.sort(reverse=True)
    asks.sort()
    return seq, bids, asks

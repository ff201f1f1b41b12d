"""Everything the engine writes to Redis, strictly after the Kafka transaction it describes
committed: snapshots, the L2 book key and the pub/sub channels (names and payloads in
:mod:`cex.infra.redis`).

The engine loop hands each committed batch to :meth:`RedisPublisher.submit`; one task
writes them in order, a batch in one script call (:data:`_PUBLISH_BATCH`): its book delta
and all its pub/sub messages in one round trip and one reply. The same writes as a
pipeline of commands cost a reply parsed in Python per message (redis-py), work that ran
on the engine's loop between the steps of the next Kafka transaction: with it, beginning
a transaction took 1-2 ms (p50) instead of 0.1-0.2, under load.

Redis being slow or down never stops matching: writes that fail are counted and logged,
and the book key is rewritten whole at the next success.

All writes are guarded against an older engine instance (a fenced zombie that has not
noticed yet) overwriting newer data: the snapshot is replaced only by one with a higher
``next_offset`` and the book key only by a version with a higher ``seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from cex.core.events import (
    BookDelta,
    CommandRejected,
    ConfigUpdated,
    ConfigUpdatedV2,
    Event,
    MarketStatusChanged,
    MatchPrevented,
    Side,
    TradeExecuted,
)
from cex.engine import metrics
from cex.infra import redis as keys

log = logging.getLogger(__name__)

# One batch: ARGV = [n, expected seq, new seq, n level arguments (field, qty; qty '0'
# deletes), then channel, message pairs]. The book key's delta is applied only on top of
# the expected seq (n = 0: no delta); every message is published either way. Returns 1 if
# the delta was applied, 0 if the key was elsewhere, -1 if there was none.
_PUBLISH_BATCH = """
local n = tonumber(ARGV[1])
local applied = -1
if n > 0 then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
  if cur == tonumber(ARGV[2]) then
    for i = 4, 3 + n, 2 do
      if ARGV[i + 1] == '0' then redis.call('HDEL', KEYS[1], ARGV[i])
      else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
    end
    redis.call('HSET', KEYS[1], 'seq', ARGV[3])
    applied = 1
  else
    applied = 0
  end
end
for i = 4 + n, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return applied
"""
# Messages per script call beyond the first (a huge batch, e.g. a backlog): Redis runs a
# script alone, so a call is kept to ~1,000 messages (as settlement's publisher does).
_MESSAGES_PER_CALL = 1000

# Book key, whole: replace unless a newer version (higher seq) is there already.
_REPLACE_BOOK = """
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
  if cur > tonumber(ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'seq', ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# Snapshot: hash {next_offset, data}; replaced only by a snapshot further in the input.
_WRITE_SNAPSHOT = """
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'next_offset') or '-1')
  if cur >= tonumber(ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'next_offset', ARGV[1], 'data', ARGV[2])
return 1
"""


async def load_snapshot(
    client: aioredis.Redis, prefix: str, market: str
) -> keys.EngineSnapshot | None:
    """The stored snapshot, or None if there is none (or it is unreadable: logged)."""
    key = keys.snapshot_key(prefix, market)
    try:
        data = await client.hget(key, "data")
    except ResponseError:  # not a hash: not ours to read
        log.warning("snapshot key %s is not a hash; ignoring it", key)
        return None
    if data is None:
        return None
    try:
        return keys.decode_snapshot(data)  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("snapshot at %s does not decode (%s); ignoring it", key, exc)
        return None


async def delete_snapshot(client: aioredis.Redis, prefix: str, market: str) -> None:
    await client.delete(keys.snapshot_key(prefix, market))


@dataclass
class Committed:
    """One committed batch: its events and, when it is time, a snapshot to store.
    ``encoded``, if given, holds each event's bytes as produced to Kafka: pub/sub messages
    are built from them instead of encoding every event a second time."""

    events: list[Event]
    snapshot: keys.EngineSnapshot | None = None
    encoded: list[bytes] | None = None


# A list of the events' own encodings (msgspec.Raw) packs to the same bytes as
# ``keys.encode_events`` of the events: a MessagePack array is its header, then its items.
_pack = msgspec.msgpack.Encoder().encode


class RedisPublisher:
    """Writes committed batches to Redis in order (see the module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        market: str,
        symbol: str,
        *,
        book_seq: int,
        bids: list[tuple[int, int]],
        asks: list[tuple[int, int]],
        queue_size: int = 256,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.market = market
        self.symbol = symbol
        self.book_seq = book_seq
        self.bids = dict(bids)
        self.asks = dict(asks)
        self._book_key = keys.book_key(prefix, market)
        self._snapshot_key = keys.snapshot_key(prefix, market)
        self._depth = keys.depth_channel(prefix, market)
        self._trades = keys.trades_channel(prefix, market)
        self._market = keys.status_channel(prefix, market)
        self._publish_batch = client.register_script(_PUBLISH_BATCH)
        self._replace_book = client.register_script(_REPLACE_BOOK)
        self._write_snapshot = client.register_script(_WRITE_SNAPSHOT)
        self._queue: asyncio.Queue[Committed | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._book_dirty = True  # rewrite the whole key first
        self.last_snapshot_at = time.monotonic()
        self.snapshots_written = 0
        metrics.SNAPSHOT_AGE.labels(market).set_function(
            lambda: time.monotonic() - self.last_snapshot_at
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"redis-publisher-{self.market}")

    async def submit(self, item: Committed) -> None:
        """Queue a committed batch (waits when Redis is far behind: backpressure)."""
        if self._task is not None and self._task.done():
            self._task.result()  # re-raise what killed it
        await self._queue.put(item)

    async def close(self, drain_s: float = 10.0) -> None:
        """Write what is queued (for up to ``drain_s`` seconds), then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(self._task, drain_s)
        except TimeoutError:
            log.warning("redis publisher did not drain within %.0f s", drain_s)
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def write_book(self) -> None:
        """Rewrite the book key whole from the mirror (at recovery, and after errors)."""
        args: list[str | int] = [self.book_seq]
        for price, qty in self.bids.items():
            args += [f"b:{price}", qty]
        for price, qty in self.asks.items():
            args += [f"a:{price}", qty]
        await self._replace_book(keys=[self._book_key], args=args)
        self._book_dirty = False

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            try:
                await self._write(item)
            except (RedisError, OSError) as exc:
                metrics.REDIS_ERRORS.labels(self.market).inc()
                self._book_dirty = True
                log.warning("redis write failed: %s", exc)

    async def _write(self, item: Committed) -> None:
        prev_seq = self.book_seq
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        trades: list[msgspec.Raw] = []
        status: list[msgspec.Raw] = []
        users: dict[int, list[msgspec.Raw]] = defaultdict(list)
        encoded = item.encoded if item.encoded is not None else map(keys.encode, item.events)
        for event, data in zip(item.events, encoded, strict=True):
            kind = type(event)
            if kind is BookDelta:
                for side, price, qty in _levels(event):
                    (bids if side is Side.BUY else asks)[price] = qty
                self.book_seq = event.seq
                continue
            raw = msgspec.Raw(data)
            if kind is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                trades.append(raw)
                users[event.maker_user_id].append(raw)
                if event.taker_user_id != event.maker_user_id:
                    users[event.taker_user_id].append(raw)
            elif kind is MarketStatusChanged or kind is ConfigUpdated or kind is ConfigUpdatedV2:
                status.append(raw)
            elif kind is CommandRejected:
                assert isinstance(event, CommandRejected)
                if event.user_id is not None:
                    users[event.user_id].append(raw)
            elif kind is MatchPrevented:  # concerns the taker's and the maker's user
                assert isinstance(event, MatchPrevented)
                users[event.taker_user_id].append(raw)
                if event.maker_user_id != event.taker_user_id:
                    users[event.maker_user_id].append(raw)
            else:
                users[event.user_id].append(raw)  # type: ignore[union-attr,index]
        self._mirror(bids, asks)

        changed = bool(bids or asks)
        levels: list[str | int] = []
        if changed and not self._book_dirty:
            levels += [a for p, q in bids.items() for a in (f"b:{p}", q)]
            levels += [a for p, q in asks.items() for a in (f"a:{p}", q)]
        messages: list[str | bytes] = []
        if changed:
            update = keys.DepthUpdate(
                self.symbol,
                prev_seq,
                self.book_seq,
                sorted(bids.items(), reverse=True),
                sorted(asks.items()),
            )
            messages += [self._depth, keys.encode(update)]
        if trades:
            messages += [self._trades, _pack(trades)]
        if status:
            messages += [self._market, _pack(status)]
        for user_id, raws in users.items():
            messages += [keys.user_channel(self.prefix, user_id), _pack(raws)]
        step = 2 * _MESSAGES_PER_CALL
        chunks = [messages[i : i + step] for i in range(0, len(messages), step)] or [[]]
        for index, chunk in enumerate(chunks):
            delta = levels if index == 0 else []
            if not delta and not chunk:
                continue
            args = [len(delta), prev_seq, self.book_seq, *delta, *chunk]
            applied = await self._publish_batch(keys=[self._book_key], args=args)
            if delta and applied != 1:
                self._book_dirty = True  # the key is not at prev_seq: rewritten below
        if self._book_dirty:
            await self.write_book()
        if item.snapshot is not None:
            await self._store_snapshot(item.snapshot)

    def _mirror(self, bids: dict[int, int], asks: dict[int, int]) -> None:
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, qty in changes.items():
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)

    async def _store_snapshot(self, snapshot: keys.EngineSnapshot) -> None:
        started = time.perf_counter()
        written = await self._write_snapshot(
            keys=[self._snapshot_key], args=[snapshot.next_offset, keys.encode(snapshot)]
        )
        metrics.SNAPSHOT_SECONDS.labels(self.market).observe(time.perf_counter() - started)
        self.last_snapshot_at = time.monotonic()
        self.snapshots_written += 1
        if written != 1:
            log.warning("a newer snapshot is stored already", extra={"at": snapshot.next_offset})


def _levels(event: Event) -> list[tuple[Side, int, int]]:
    """The ``(side, price, qty)`` levels one BOOK_DELTA sets (one level per event, or the
    bids/asks lists of the first version of the schema)."""
    side = getattr(event, "side", None)
    if side is not None:
        return [(side, event.price, event.qty)]  # type: ignore[union-attr,list-item]
    levels = [(Side.BUY, p, q) for p, q in getattr(event, "bids", ())]
    return levels + [(Side.SELL, p, q) for p, q in getattr(event, "asks", ())]

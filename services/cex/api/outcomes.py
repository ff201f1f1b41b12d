"""The engine's outcome of an order, for RESULT and FULL responses.

Settlement publishes each user's events on `{prefix}:account:{user_id}` after the database
transaction that applied them committed (`cex.infra.redis`), so when a response reports an
outcome, balances and order queries already show it. One pattern subscription per API
process receives them; a request that waits registers for its user *before* the order is
placed (so no event can slip past), then picks its order's events by id. All events of one
command are published in one message, so the first message naming the order holds its
whole taker outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cex.core.events import CommandRejected, Event, TradeExecuted
from cex.infra import redis as keys

log = logging.getLogger(__name__)


class Waiter:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.arrived = asyncio.Event()

    def events_of(self, order_id: int) -> list[Event] | None:
        """The events of the first message that names `order_id`, or None if none yet."""
        for batch in self.batches:
            mine = [e for e in batch if _concerns(e, order_id)]
            if mine:
                return mine
        return None

    async def wait_for(self, order_id: int, seconds: float) -> list[Event] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            found = self.events_of(order_id)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)


def _concerns(event: Event, order_id: int) -> bool:
    if isinstance(event, TradeExecuted):
        return order_id in (event.taker_order_id, event.maker_order_id)
    if isinstance(event, CommandRejected):
        return event.order_id == order_id
    return getattr(event, "order_id", None) == order_id


class OrderOutcomes:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._channel_prefix = keys.account_channel(prefix, 0)[:-1].encode()
        self._waiters: dict[int, set[Waiter]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="order-outcomes")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.contextmanager
    def watch(self, user_id: int) -> Iterator[Waiter]:
        waiter = Waiter()
        self._waiters[user_id].add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters[user_id]
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[user_id]

    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._channel_prefix + b"*")
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                log.warning("user event subscription failed; retrying", exc_info=exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            user_id = int(channel[len(self._channel_prefix) :])
        except ValueError:
            return
        waiters = self._waiters.get(user_id)
        if not waiters:
            return  # nobody waits: not even decoded
        try:
            events = keys.decode_events(data)
        except Exception:
            log.warning("undecodable user event on %r", channel)
            return
        for waiter in waiters:
            waiter.batches.append(events)
            waiter.arrived.set()

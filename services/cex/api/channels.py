"""Per-user Redis channels (`{prefix}:account:{user}`, `{prefix}:userdata:{user}`) for the
listeners of this process: one pattern subscription per channel family, not one per user;
a message of a user nobody here listens to is dropped undecoded.

`keep_alive` subscriptions stay up with no listener (RESULT / FULL answers register just
before placing an order and must not wait for a subscription); the others subscribe when
the first listener comes and unsubscribe when the last one goes (user data streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class UserChannels(Generic[T]):
    def __init__(
        self,
        client: aioredis.Redis,
        channel_of: Callable[[int], str],
        decode: Callable[[bytes], T],
        *,
        keep_alive: bool = False,
    ) -> None:
        self.client = client
        self._prefix = channel_of(0)[:-1].encode()  # the channel name without the user id
        self._decode = decode
        self._keep_alive = keep_alive
        self._listeners: dict[int, set[Callable[[T], None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Subscribe now (and wait until Redis confirmed it, for up to 10 s)."""
        if self._task is None or self._task.done():
            self._subscribed.clear()
            self._task = asyncio.create_task(self._listen(), name=f"channels {self._prefix!r}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 10)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def listen(self, user_id: int, listener: Callable[[T], None]) -> None:
        """Deliver `user_id`'s messages to `listener` (once subscribed: see `start`)."""
        self._listeners.setdefault(user_id, set()).add(listener)

    async def add(self, user_id: int, listener: Callable[[T], None]) -> None:
        """`listen`, subscribing first if nobody was listening."""
        self.listen(user_id, listener)
        await self.start()

    def forget(self, user_id: int, listener: Callable[[T], None]) -> None:
        listeners = self._listeners.get(user_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[user_id]

    async def remove(self, user_id: int, listener: Callable[[T], None]) -> None:
        """`forget`, unsubscribing when nobody listens any more (unless kept alive)."""
        self.forget(user_id, listener)
        if not self._listeners and not self._keep_alive:
            await self.stop()

    async def _listen(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._prefix + b"*")
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                log.warning("subscription to %r failed; retrying", self._prefix, exc_info=exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            user_id = int(channel[len(self._prefix) :])
        except ValueError:
            return
        listeners = self._listeners.get(user_id)
        if not listeners:
            return
        try:
            message = self._decode(data)
        except Exception:
            log.warning("undecodable message on %r", channel)
            return
        for listener in list(listeners):
            listener(message)

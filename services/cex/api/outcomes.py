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
from collections.abc import Iterator

import redis.asyncio as aioredis

from cex.api.channels import UserChannels
from cex.core.events import CommandRejected, Event, TradeExecuted
from cex.infra import redis as keys

log = logging.getLogger(__name__)


class Waiter:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.arrived = asyncio.Event()

    def deliver(self, events: list[Event]) -> None:
        self.batches.append(events)
        self.arrived.set()

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
        self._channels = UserChannels(
            client, lambda user: keys.account_channel(prefix, user), keys.decode_events,
            keep_alive=True,
        )  # fmt: skip

    async def start(self) -> None:
        await self._channels.start()

    async def stop(self) -> None:
        await self._channels.stop()

    @contextlib.contextmanager
    def watch(self, user_id: int) -> Iterator[Waiter]:
        waiter = Waiter()
        self._channels.listen(user_id, waiter.deliver)
        try:
            yield waiter
        finally:
            self._channels.forget(user_id, waiter.deliver)

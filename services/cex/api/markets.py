"""The markets the public API serves: the registry, followed live (LISTEN + periodic reload)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from cex.api import errors
from cex.core.market import MarketConfig
from cex.infra import registry


class MarketDirectory:
    def __init__(self) -> None:
        self.by_name: dict[str, registry.RegisteredMarket] = {}
        self.by_symbol: dict[str, registry.RegisteredMarket] = {}
        self._task: asyncio.Task[None] | None = None

    def update(self, markets: dict[str, registry.RegisteredMarket]) -> None:
        listed = {name: m for name, m in markets.items() if m.status != registry.DELETED}
        self.by_name = listed
        self.by_symbol = {m.config.symbol: m for m in listed.values()}

    async def start(self, pool: asyncpg.Pool) -> None:
        self.update(await registry.load_markets(pool))
        self._task = asyncio.create_task(registry.follow_markets(pool, self.update))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def get(self, symbol: str) -> registry.RegisteredMarket:
        market = self.by_symbol.get(symbol)
        if market is None:
            raise errors.invalid_symbol()
        return market

    def config(self, symbol: str) -> MarketConfig:
        return self.get(symbol).config

    def sorted(self) -> list[registry.RegisteredMarket]:
        return [self.by_symbol[s] for s in sorted(self.by_symbol)]

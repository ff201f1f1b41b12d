"""What every request handler shares: pools, clients, the market directory, the limiter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from cex.api.auth import KeyCache
from cex.api.markets import MarketDirectory
from cex.api.outcomes import OrderOutcomes
from cex.api.ratelimit import Limits, RateLimiter
from cex.api.settings import ApiSettings
from cex.api.trading_client import TradingClient
from cex.infra import apikeys
from cex.infra.postgres import create_pool
from cex.infra.secretbox import SecretBox


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class ApiState:
    settings: ApiSettings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    box: SecretBox
    markets: MarketDirectory
    trading: TradingClient
    limiter: RateLimiter
    outcomes: OrderOutcomes
    keys: KeyCache
    clock_ms: Callable[[], int] = field(default=wall_clock_ms)

    @classmethod
    async def open(cls, settings: ApiSettings) -> ApiState:
        pool = await create_pool(settings.postgres_dsn, min_size=2, max_size=20)
        # A blocking pool: a burst of requests waits for a connection instead of failing.
        # `from_pool`: the client owns the pool, so closing the client closes its connections.
        client = aioredis.Redis.from_pool(
            aioredis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=256, timeout=10
            )
        )
        box = SecretBox()
        await apikeys.seal_plaintext(pool, box)
        limits = Limits(
            settings.api_weight_per_minute, settings.api_orders_per_10s,
            settings.api_orders_per_day,
        )  # fmt: skip
        state = cls(
            settings=settings,
            pool=pool,
            redis=client,
            box=box,
            markets=MarketDirectory(),
            trading=TradingClient(settings.trading_url),
            limiter=RateLimiter(client, settings.redis_prefix, limits),
            outcomes=OrderOutcomes(client, settings.redis_prefix),
            keys=KeyCache(pool, box),
        )
        await state.markets.start(pool)
        await state.trading.start()
        await state.outcomes.start()
        await state.keys.start()
        return state

    async def close(self) -> None:
        await self.keys.stop()
        await self.outcomes.stop()
        await self.trading.close()
        await self.markets.stop()
        await self.redis.aclose()
        await self.pool.close()

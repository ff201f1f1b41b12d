"""``cex serve candle-persist``: candles pending in Redis → the ``candles`` table.

Every ``CEX_CANDLE_PERSIST_INTERVAL_S`` (or at once when the last round found work), for
every registered market: read the pending hashes of all intervals
(``{prefix}:candles:pending:{market}:{interval}``, filled by the aggregator), upsert what
they hold in one statement (by ``(market, interval, open_time)``, only over a stored
version with a lower ``last_seq``), commit, then delete each field that still holds the
version just written (a newer one written meanwhile stays for the next round).

Restart-safe and idempotent: a kill -9 before the commit leaves the fields in Redis; after
it, the next round upserts them again (nothing changes: same ``last_seq``) and deletes
them. Readers look at Redis before Postgres, so a candle is always in one or the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.exceptions import RedisError

from cex.candles.store import upsert
from cex.core import candles
from cex.infra import redis as keys
from cex.infra.registry import load_markets
from cex.infra.runtime import WorkerContext, metrics_port, run_worker
from cex.infra.settings import InfraSettings

log = logging.getLogger("cex.candles.persister")

WRITTEN = Counter("cex_candle_persist_candles_total", "Candle versions written", ["market"])
ROUNDS = Counter("cex_candle_persist_rounds_total", "Flush rounds that found candles")
ERRORS = Counter("cex_candle_persist_errors_total", "Rounds failed (retried)")
ROUND_SECONDS = Histogram(
    "cex_candle_persist_round_seconds",
    "Time of one flush round",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PENDING = Gauge("cex_candle_persist_pending", "Candle versions found pending in the last round")

_RETRYABLE = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, RedisError, OSError)


class PersisterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_CANDLE_PERSIST_", frozen=True, extra="ignore")

    interval_s: float = 1.0
    registry_refresh_s: float = 10.0
    metrics_port: int = 9331


class CandlePersister:
    def __init__(
        self,
        infra: InfraSettings | None = None,
        settings: PersisterSettings | None = None,
        market: str | None = None,
    ) -> None:
        self.infra = infra or InfraSettings()
        self.settings = settings or PersisterSettings()
        self.only_market = market
        self.prefix = self.infra.redis_prefix
        self.markets: list[str] = []
        self.conn: asyncpg.Connection | None = None
        self.redis: aioredis.Redis | None = None

    async def run(self, ctx: WorkerContext) -> None:
        self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        self.redis = keys.client(self.infra)
        self._delete = self.redis.register_script(keys.DELETE_IF_UNCHANGED)
        try:
            await self._refresh_registry()
            ctx.readiness.set_ready()
            refreshed = time.monotonic()
            while not ctx.stopping.is_set():
                if time.monotonic() - refreshed > self.settings.registry_refresh_s:
                    await self._refresh_registry()
                    refreshed = time.monotonic()
                try:
                    found = await self.flush()
                except _RETRYABLE as exc:
                    ERRORS.inc()
                    log.warning("flush failed (%s), retrying", exc)
                    found = 0
                    if self.conn is not None and self.conn.is_closed():
                        self.conn = None
                if not found:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ctx.stopping.wait(), self.settings.interval_s)
        finally:
            ctx.readiness.set_not_ready("stopped")
            if self.conn is not None:
                await self.conn.close()
            await self.redis.aclose()

    async def _refresh_registry(self) -> None:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        names = sorted(await load_markets(self.conn))
        if self.only_market is not None:
            if self.only_market not in names:
                raise RuntimeError(f"market {self.only_market!r} is not in the registry")
            names = [self.only_market]
        self.markets = names

    async def flush(self) -> int:
        """One round over every market; returns how many candle versions it wrote."""
        assert self.redis is not None
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.infra.postgres_dsn)
        started = time.perf_counter()
        slots = [(m, i) for m in self.markets for i in candles.INTERVALS]
        async with self.redis.pipeline(transaction=False) as pipe:
            for market, interval in slots:
                pipe.hgetall(keys.candles_pending_key(self.prefix, market, interval))
            found: list[dict[bytes, bytes]] = await pipe.execute()
        total = sum(len(f) for f in found)
        PENDING.set(total)
        if not total:
            return 0
        per_market: dict[str, list[candles.Candle]] = {}
        for (market, _), fields in zip(slots, found, strict=True):
            per_market.setdefault(market, []).extend(
                candles.decode_candle(v) for v in fields.values()
            )
        async with self.conn.transaction():
            for market, versions in per_market.items():
                if versions:
                    await upsert(self.conn, market, versions)
        async with self.redis.pipeline(transaction=False) as pipe:
            for (market, interval), fields in zip(slots, found, strict=True):
                if fields:
                    args = [part for pair in fields.items() for part in pair]
                    await self._delete(
                        keys=[keys.candles_pending_key(self.prefix, market, interval)],
                        args=args,
                        client=pipe,
                    )
            await pipe.execute()
        for market, versions in per_market.items():
            WRITTEN.labels(market).inc(len(versions))
        ROUNDS.inc()
        ROUND_SECONDS.observe(time.perf_counter() - started)
        return total


def serve(market: str | None) -> None:
    """Entry point of ``cex serve candle-persist``."""
    settings = PersisterSettings()
    worker = CandlePersister(settings=settings, market=market)
    run_worker("candle-persist", worker.run, port=metrics_port(default=settings.metrics_port))

"""``cex candles rebuild [--check] [--market NAME]``: candles from the ``trades`` table.

Settlement's ``trades`` table is the truth. For each market, every candle of every
interval is recomputed from its trades (:func:`cex.core.candles.aggregate`) and compared
with what is stored: the aggregator's current candles and the versions pending in Redis
must equal the trades', and so must each row of the ``candles`` table unless a newer
version of it is pending. ``--check`` writes nothing and reports each difference; without
it the recomputed candles are upserted into Postgres (any different stored version is
replaced) and stored candles with no trade behind them are deleted.

Run it when settlement has caught up with the aggregator: a trade aggregated but not yet
settled shows as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from cex.candles.store import load_candles, load_trades, newest, upsert
from cex.core import candles
from cex.infra import redis as keys
from cex.infra.registry import load_markets
from cex.infra.settings import InfraSettings

__all__ = ["Difference", "rebuild"]

_COMPARED = [f for f in candles.Candle.__struct_fields__ if f != "closed"]


@dataclass(frozen=True)
class Difference:
    market: str
    interval: str
    open_time: int
    what: str

    def __str__(self) -> str:
        return f"{self.market} {self.interval} {self.open_time}: {self.what}"


def _compare(market: str, expected: candles.Candle | None, stored: candles.Candle | None) -> str:
    if stored is None and expected is None:
        return ""
    if stored is None:
        return "missing"
    if expected is None:
        return f"stored ({stored.trades} trades, last seq {stored.last_seq}) but no trade"
    fields = [
        f"{f} {getattr(stored, f)} != {getattr(expected, f)}"
        for f in _COMPARED
        if getattr(stored, f) != getattr(expected, f)
    ]
    return ", ".join(fields)


async def _recent(
    infra: InfraSettings, market: str
) -> tuple[dict[tuple[str, int], candles.Candle], dict[tuple[str, int], candles.Candle]]:
    """(pending versions, the aggregator's current candles) in Redis."""
    client = keys.client(infra)
    prefix = infra.redis_prefix
    try:
        pending: list[candles.Candle] = []
        for interval in candles.INTERVALS:
            found: list[Any] = await client.hvals(
                keys.candles_pending_key(prefix, market, interval)
            )
            pending += [candles.decode_candle(v) for v in found]
        raw: Any = await client.hget(keys.candles_state_key(prefix, market), "state")
    finally:
        await client.aclose()
    current = list(candles.decode_state(raw).current.values()) if raw else []
    return newest(pending), newest(current)


def _differences(
    name: str,
    expected: dict[tuple[str, int], candles.Candle],
    pending: dict[tuple[str, int], candles.Candle],
    current: dict[tuple[str, int], candles.Candle],
    stored: dict[tuple[str, int], candles.Candle],
) -> list[Difference]:
    """The aggregator's current candles and the newest pending versions must equal the
    trades'; so must Postgres' rows, unless a newer version is pending."""
    out = []
    for key in sorted(expected.keys() | pending.keys() | current.keys() | stored.keys()):
        want, queued, in_pg = expected.get(key), pending.get(key), stored.get(key)
        in_redis = current.get(key)
        if queued is not None and (in_redis is None or in_redis.last_seq < queued.last_seq):
            in_redis = queued
        if in_redis is not None and (what := _compare(name, want, in_redis)):
            out.append(Difference(name, key[0], key[1], f"redis: {what}"))
        if queued is not None and (in_pg is None or in_pg.last_seq < queued.last_seq):
            continue  # not persisted yet
        if what := _compare(name, want, in_pg):
            out.append(Difference(name, key[0], key[1], f"postgres: {what}"))
    return out


async def rebuild(
    infra: InfraSettings, *, check: bool, market: str | None = None
) -> list[Difference]:
    """Differences found (before writing, without ``check``)."""
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        registered = await load_markets(conn)
        if market is not None:
            if market not in registered:
                raise ValueError(f"market {market!r} is not in the registry")
            registered = {market: registered[market]}
        differences: list[Difference] = []
        for name, entry in sorted(registered.items()):
            expected = candles.aggregate(await load_trades(conn, name, entry.config.symbol))
            pending, current = await _recent(infra, name)
            stored = newest(await load_candles(conn, name))
            differences += _differences(name, expected, pending, current, stored)
            if not check:
                async with conn.transaction():
                    await upsert(conn, name, expected.values(), newer_only=False)
                    extra = [k for k in stored if k not in expected]
                    for interval, opened in extra:
                        await conn.execute(
                            "DELETE FROM candles WHERE market = $1 AND interval = $2"
                            " AND open_time = $3",
                            name, interval, opened,
                        )  # fmt: skip
        return differences
    finally:
        await conn.close()

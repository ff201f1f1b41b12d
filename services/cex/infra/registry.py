"""The market registry in Postgres: each market's config, partition and status.

Mirrored from `Market` resources by the operator, and from `examples/` by the local stack,
through :func:`cex.infra.provisioning.provision_market`. The trading API validates orders
against it; settlement and the relay find each market's partition in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from cex.core.events import MarketStatus
from cex.core.market import MarketConfig


@dataclass(frozen=True)
class RegisteredMarket:
    config: MarketConfig
    partition: int
    status: str  # MarketStatus value, or DELETED

    @property
    def accepts_orders(self) -> bool:
        return self.status == MarketStatus.TRADING.value


async def load_markets(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, RegisteredMarket]:
    """Every registered market by name."""
    rows = await conn.fetch("SELECT name, partition, spec, status FROM markets")
    return {
        row["name"]: RegisteredMarket(
            config=MarketConfig.from_spec(row["name"], json.loads(row["spec"])),
            partition=row["partition"],
            status=row["status"],
        )
        for row in rows
    }


async def register_market(
    conn: asyncpg.Connection, config: MarketConfig, spec: dict[str, Any]
) -> int:
    """Insert or update one market (and its two assets); returns its partition.

    A new market gets the next free partition index; a known one keeps its own (partitions
    are never reused nor given back, so a re-created market gets its old one). Identity
    fields never change: a spec contradicting the stored one on symbol, assets or grid is
    refused. Serialised by an advisory lock so two registrations never share an index.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cex.markets'))")
        for code, precision in (
            (config.base, config.base_precision),
            (config.quote, config.quote_precision),
        ):
            stored = await conn.fetchval(
                "INSERT INTO assets (code, precision) VALUES ($1, $2) ON CONFLICT (code)"
                " DO UPDATE SET code = EXCLUDED.code RETURNING precision",
                code,
                precision,
            )
            if stored != precision:
                raise ValueError(f"asset {code} has precision {stored}, not {precision}")
        existing = await conn.fetchrow(
            "SELECT spec, partition FROM markets WHERE name = $1", config.name
        )
        if existing is not None:
            old = MarketConfig.from_spec(config.name, json.loads(existing["spec"]))
            if _identity(old) != _identity(config):
                raise ValueError(f"market {config.name}: identity fields cannot change")
            partition = int(existing["partition"])
        else:
            partition = int(
                await conn.fetchval("SELECT coalesce(max(partition) + 1, 0) FROM markets")
            )
        await conn.execute(
            "INSERT INTO markets (name, symbol, base, quote, partition, spec, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, status = EXCLUDED.status,"
            " updated_at = now()",
            config.name,
            config.symbol,
            config.base,
            config.quote,
            partition,
            json.dumps(spec, sort_keys=True),
            config.status.value,
        )
        return partition


def _identity(config: MarketConfig) -> tuple[object, ...]:
    return (
        config.symbol,
        config.base,
        config.quote,
        config.base_precision,
        config.quote_precision,
        config.tick_size,
        config.lot_size,
    )

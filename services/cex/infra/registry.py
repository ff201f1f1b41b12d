"""The market registry in Postgres: each market's config, partition and status.

Mirrored from `Market` resources by the operator, and from `examples/` by the local stack,
through :func:`cex.infra.provisioning.provision_market`. The trading API validates orders
against it; settlement and the relay find each market's partition in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from cex.core.events import Command, MarketStatus
from cex.core.market import MarketConfig, transition_commands
from cex.infra import outbox
from cex.infra.transactions import RowLocks

#: Registry status of a market removed from the cluster (its data stays).
DELETED = "DELETED"
#: Notified (payload: the market's name) when a market is registered or changes, so that
#: the trading API reloads the registry.
MARKETS_CHANNEL = "cex_markets"

log = logging.getLogger(__name__)


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


class OwnerConflict(ValueError):
    """The market name is taken by a market someone else provisioned."""


@dataclass(frozen=True)
class Registration:
    """What registering a market did."""

    partition: int
    #: The spec its command stream starts from: engines replaying from the first command
    #: start from it (``markets.genesis_spec``).
    genesis_spec: dict[str, Any]
    #: Commands queued for the engine because fees, limits or status changed (empty for a new
    #: market or an unchanged spec).
    commands: tuple[Command, ...] = ()


async def register_market(
    conn: asyncpg.Connection,
    config: MarketConfig,
    spec: dict[str, Any],
    *,
    status: str | None = None,
    now_ms: int | None = None,
    owner: str | None = None,
) -> Registration:
    """Insert or update one market (and its two assets).

    A new market gets the next free partition index; a known one keeps its own (partitions
    are never reused nor given back, so a re-created market gets its old one). Identity
    fields never change: a spec contradicting the stored one on symbol, assets or grid is
    refused. A change of fees, limits or status is queued for the engine as CONFIG_UPDATE /
    MARKET_CONTROL commands in the same transaction as the registry row, so the engine gets
    each change exactly once however often this runs. ``status`` overrides the spec's
    (``DELETED`` while a market is being removed). ``owner`` names who provisions it (the
    operator: the Market's ``namespace/name``); a market owned by someone else is refused
    unless it was deleted. Serialised by an advisory lock so two registrations never share
    an index.
    """
    status = status or config.status.value
    ts = now_ms if now_ms is not None else int(time.time() * 1000)
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
        locked = await RowLocks(conn).markets(
            [config.name], "spec, genesis_spec, partition, status, owner"
        )
        existing = locked[0] if locked else None
        if existing is None:
            partition = int(
                await conn.fetchval("SELECT coalesce(max(partition) + 1, 0) FROM markets")
            )
            genesis = spec
            await conn.execute(
                "INSERT INTO markets (name, symbol, base, quote, partition, spec, genesis_spec,"
                " status, owner) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
                config.name,
                config.symbol,
                config.base,
                config.quote,
                partition,
                json.dumps(spec, sort_keys=True),
                status,
                owner,
            )
            await conn.execute("SELECT pg_notify($1, $2)", MARKETS_CHANNEL, config.name)
            return Registration(partition, genesis)
        old_owner = existing["owner"]
        if owner is not None and old_owner not in (None, owner):
            if existing["status"] != DELETED:
                raise OwnerConflict(f"market {config.name} is already provisioned by {old_owner}")
            await conn.execute("UPDATE markets SET owner = $2 WHERE name = $1", config.name, owner)
        elif owner is not None and old_owner is None:
            await conn.execute("UPDATE markets SET owner = $2 WHERE name = $1", config.name, owner)
        old = MarketConfig.from_spec(config.name, json.loads(existing["spec"]))
        if _identity(old) != _identity(config):
            raise ValueError(f"market {config.name}: identity fields cannot change")
        partition = int(existing["partition"])
        genesis = json.loads(existing["genesis_spec"])
        old_status = existing["status"]
        if (json.loads(existing["spec"]), old_status) == (spec, status):
            return Registration(partition, genesis)
        commands = transition_commands(
            old.with_status(_engine_status(old_status)),
            config.with_status(_engine_status(status)),
            ts,
        )
        await conn.execute(
            "UPDATE markets SET spec = $2, status = $3, updated_at = now() WHERE name = $1",
            config.name,
            json.dumps(spec, sort_keys=True),
            status,
        )
        for command in commands:
            await outbox.append_command(conn, config.name, command)
        await conn.execute("SELECT pg_notify($1, $2)", MARKETS_CHANNEL, config.name)
        return Registration(partition, genesis, tuple(commands))


def _engine_status(registry_status: str) -> MarketStatus:
    """The status the engine runs in for a registry status: a market being deleted (or
    deleted) is cancel-only, so its remaining orders can still be cancelled."""
    if registry_status == DELETED:
        return MarketStatus.CANCEL_ONLY
    return MarketStatus(registry_status)


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


@dataclass(frozen=True)
class MarketState:
    """A registered market as the operator observes it."""

    partition: int
    status: str
    #: MARKET_CONTROL / CONFIG_UPDATE commands still in the outbox (not yet in Kafka).
    pending_changes: int


async def market_owner(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> str | None:
    owner: str | None = await conn.fetchval("SELECT owner FROM markets WHERE name = $1", name)
    return owner


async def market_state(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> MarketState | None:
    row = await conn.fetchrow(
        "SELECT partition, status, (SELECT count(*) FROM outbox o WHERE o.market = m.name"
        " AND NOT o.published AND o.kind IN ('MARKET_CONTROL', 'CONFIG_UPDATE')) AS pending"
        " FROM markets m WHERE name = $1",
        name,
    )
    if row is None:
        return None
    return MarketState(int(row["partition"]), row["status"], int(row["pending"]))


async def follow_markets(
    pool: asyncpg.Pool,
    on_change: Callable[[dict[str, RegisteredMarket]], None],
    *,
    refresh_s: float = 30.0,
) -> None:
    """Call ``on_change`` with the whole registry now, on every ``MARKETS_CHANNEL``
    notification and at least every ``refresh_s`` (a notification sent while the listening
    connection was down is lost). Runs until cancelled; connection errors retry."""
    changed = asyncio.Event()

    def notified(*_: object) -> None:
        changed.set()

    while True:
        try:
            async with pool.acquire() as conn:
                await conn.add_listener(MARKETS_CHANNEL, notified)
                try:
                    while True:
                        changed.clear()  # before reloading: a change during it reloads again
                        on_change(await load_markets(conn))
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(changed.wait(), refresh_s)
                finally:
                    await conn.remove_listener(MARKETS_CHANNEL, notified)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("following the market registry failed; retrying", exc_info=exc)
            await asyncio.sleep(1)

"""Provisioning one market: the single code path behind both the operator and the local
stack (DESIGN.md §9). Idempotent: running it again changes nothing.

1. register the market in Postgres, which allocates (or returns) its partition index and
   queues a change of fees, limits or status for the engine as a command
   (:mod:`cex.infra.registry`);
2. make sure the `orders` and `executions` topics exist with more partitions than that
   index (partition counts only grow);
3. record the market's config and partition in Redis (`{prefix}:market:{name}`), where the
   gateway and the public API read market metadata without a database round trip.
"""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from cex.core.events import CancelAll
from cex.core.market import MarketConfig
from cex.infra import outbox, registry
from cex.infra.settings import InfraSettings
from cex.infra.transactions import RowLocks

TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


async def provision_market(
    settings: InfraSettings, name: str, spec: dict[str, Any], *, owner: str | None = None
) -> registry.Registration:
    """Provision market `name` from its `Market` spec; returns its registration (partition,
    genesis spec, commands queued for its engine). Raises MarketConfigError for a spec that
    cannot be traded exactly, ValueError for one contradicting the registered identity or
    owned by someone else (`owner`: see `registry.register_market`)."""
    config = MarketConfig.from_spec(name, spec)
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        registration = await registry.register_market(conn, config, spec, owner=owner)
    finally:
        await conn.close()
    partition = registration.partition
    await ensure_partitions(
        settings.kafka_bootstrap,
        (settings.orders_topic, settings.executions_topic),
        partition + 1,
    )
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.set(
            f"{settings.redis_prefix}:market:{name}",
            json.dumps({"spec": spec, "partition": partition}, sort_keys=True),
        )
    finally:
        await client.aclose()
    return registration


async def ensure_partitions(bootstrap: str, topics: tuple[str, ...], count: int) -> None:
    """Each topic exists with at least `count` partitions (created or grown, never shrunk).
    Retention is unlimited: engines replay their input from the start when no snapshot."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = await admin.describe_topics(list(topics))
        current = {t["topic"]: len(t["partitions"]) for t in existing if t["error_code"] == 0}
        missing = [t for t in topics if t not in current]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=count,
                        replication_factor=1,
                        topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
                    )
                    for t in missing
                ]
            )
            # create_topics reports errors in the response, not as exceptions; a topic a
            # concurrent provisioner just created is fine.
            for topic, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {topic} failed with error code {code}")
            existing = await admin.describe_topics(list(topics))
            current = {t["topic"]: len(t["partitions"]) for t in existing}
        grow = {t: NewPartitions(total_count=count) for t in topics if current[t] < count}
        if grow:
            await admin.create_partitions(grow)
    finally:
        await admin.close()


# --------------------------------------------------------------------------- removal
#
# A market leaves in two steps, each safe to repeat: `begin_drain` marks it DELETED in the
# registry (the trading API refuses new orders; the engine gets MARKET_CONTROL CANCEL_ONLY)
# and cancels every open order through the engine; `open_orders` then reports how many are
# not settled yet. Nothing is deleted: orders, trades, the ledger, the partition and the
# snapshot key stay, and a re-created market gets its partition and its engine's state back.

OPEN_STATUSES = ("PENDING", "NEW", "PARTIALLY_FILLED")

# Users with an open order that no CANCEL_ALL of this drain reaches: none was queued for
# the user yet, or the order's ORDER_CREATE is numbered after the last one (the engine
# applies a market's commands in number order). The look-up of creates covers only the
# commands after the user's CANCEL_ALL, a short range of the outbox's primary key in a
# draining market; a create pruned from the outbox (older than its retention) counts as
# reached: it was numbered after CANCEL_ONLY, and the engine refused it.
_USERS_TO_CANCEL = """
SELECT DISTINCT o.user_id FROM orders o
LEFT JOIN drain_cancels d ON d.market = o.market AND d.user_id = o.user_id
WHERE o.market = $1 AND o.status = ANY($2::text[])
  AND (d.command_seq IS NULL OR EXISTS (
      SELECT 1 FROM outbox b WHERE b.market = o.market AND b.command_seq > d.command_seq
        AND b.kind = 'ORDER_CREATE' AND b.order_id = o.id))
ORDER BY o.user_id
"""


async def begin_drain(
    settings: InfraSettings, name: str, *, owner: str | None = None
) -> int | None:
    """Mark market `name` DELETED (its engine goes cancel-only) and queue a CANCEL_ALL for
    every user with an open order that no CANCEL_ALL of this drain reaches yet; returns how
    many were queued, or None if there is nothing of `owner`'s to drain (never registered,
    or provisioned by someone else).

    Meant to be called on every poll of a drain: an order the engine cancelled stays open
    here until settlement books it, and is not sent another CANCEL_ALL meanwhile. All in
    one transaction holding the market row's lock, so no command is numbered meanwhile:
    every order accepted before is seen here, any accepted after (a trading API that had
    not yet seen DELETED) is numbered after CANCEL_ONLY and refused by the engine."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        async with conn.transaction():
            stored = await conn.fetchrow(
                "SELECT spec, owner, status FROM markets WHERE name = $1", name
            )
            if stored is None or (owner is not None and stored["owner"] not in (None, owner)):
                return None
            spec = json.loads(stored["spec"])
            config = MarketConfig.from_spec(name, spec)
            await registry.register_market(conn, config, spec, status=registry.DELETED, owner=owner)
            if stored["status"] != registry.DELETED:
                # A new drain (the market may have been re-created since the last one).
                await conn.execute("DELETE FROM drain_cancels WHERE market = $1", name)
            await RowLocks(conn).markets([name])
            users = [
                r["user_id"] for r in await conn.fetch(_USERS_TO_CANCEL, name, list(OPEN_STATUSES))
            ]
            ts = int(time.time() * 1000)
            seqs = [
                await outbox.append_command(
                    conn, name, CancelAll(market=config.symbol, ts=ts, user_id=user_id)
                )
                for user_id in users
            ]
            await conn.execute(
                "INSERT INTO drain_cancels (market, user_id, command_seq)"
                " SELECT $1, * FROM unnest($2::bigint[], $3::bigint[])"
                " ON CONFLICT (market, user_id) DO UPDATE SET command_seq = EXCLUDED.command_seq",
                name,
                users,
                seqs,
            )
        return len(users)
    finally:
        await conn.close()


async def open_orders(settings: InfraSettings, name: str) -> int:
    """How many orders of market `name` are not yet final in Postgres (settled)."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM orders WHERE market = $1 AND status = ANY($2::text[])",
                name,
                list(OPEN_STATUSES),
            )
        )
    finally:
        await conn.close()

"""Provisioning one market: the single code path behind both the operator and the local
stack (DESIGN.md §9). Idempotent: running it again changes nothing.

1. register the market in Postgres, which allocates (or returns) its partition index;
2. make sure the `orders` and `executions` topics exist with more partitions than that
   index (partition counts only grow);
3. record the market's config and partition in Redis (`{prefix}:market:{name}`), where the
   gateway and the public API read market metadata without a database round trip.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from cex.core.market import MarketConfig
from cex.infra import registry
from cex.infra.settings import InfraSettings

TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


async def provision_market(settings: InfraSettings, name: str, spec: dict[str, Any]) -> int:
    """Provision market `name` from its `Market` spec; returns its partition index."""
    config = MarketConfig.from_spec(name, spec)
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        partition = await registry.register_market(conn, config, spec)
    finally:
        await conn.close()
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
    return partition


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

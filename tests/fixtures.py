"""Fixtures shared by the whole suite.

Integration tests run on the real local infrastructure (Kafka, Postgres, Redis). The
session fixture `stack` reuses it when it is already up (e.g. after `make up`) and
otherwise starts it once; the last test session to leave stops it if a test session
started it (`tests/sessions.py`). Each test gets its own database, topic
names and Redis key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cex.core.market import MarketConfig
from cex.infra import accounts, registry
from cex.infra.postgres import create_pool, migrate
from cex.infra.settings import InfraSettings
from cex.stack import supervisor
from cex.stack.settings import StackSettings
from cex.trading.store import OrderStore

from .sessions import SharedByTestSessions

INFRA_FIXTURES = {
    "stack",
    "pg_dsn",
    "kafka_bootstrap",
    "new_topic",
    "redis_client",
    "exchange_dsn",
    "exchange_settings",
    "order_store",
}
REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Anything that touches the real infrastructure is an integration test."""
    for item in items:
        if INFRA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def stack() -> Iterator[StackSettings]:
    settings = StackSettings()
    shared = SharedByTestSessions(settings.root / "stack-tests")
    shared.join(
        running=lambda: supervisor.infrastructure_ready(settings),
        start=lambda: supervisor.up(infra_only=True, settings=settings),
        stop=lambda: supervisor.down(settings),
    )
    try:
        yield settings
    finally:
        shared.leave(stop=lambda: supervisor.down(settings))


@pytest.fixture
async def pg_dsn(stack: StackSettings) -> AsyncIterator[str]:
    """A fresh, empty database of its own for one test; dropped afterwards."""
    name = unique("test")
    admin_dsn = stack.postgres_dsn.rsplit("/", 1)[0] + "/postgres"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield stack.postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def example_specs() -> dict[str, dict[str, object]]:
    """The example markets' specs by name (btc-usdt, eth-usdt), as in examples/*.yaml."""
    specs = {}
    for path in sorted((REPO / "examples").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        specs[document["metadata"]["name"]] = document["spec"]
    return specs


@pytest.fixture(scope="session")
async def exchange_template(stack: StackSettings) -> AsyncIterator[str]:
    """A database migrated to the latest schema with the example markets registered, used
    as the template of every `exchange_dsn` (copying a template is much faster than
    migrating)."""
    name = unique("template")
    base = stack.postgres_dsn.rsplit("/", 1)[0]
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrate(f"{base}/{name}")
        conn = await asyncpg.connect(f"{base}/{name}")
        try:
            for market_name, spec in example_specs().items():
                config = MarketConfig.from_spec(market_name, spec)
                await registry.register_market(conn, config, spec)
        finally:
            await conn.close()
        yield name
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def exchange_dsn(stack: StackSettings, exchange_template: str) -> AsyncIterator[str]:
    """A database of its own with the exchange schema and the example markets
    (btc-usdt on partition 0, eth-usdt on 1); dropped afterwards."""
    name = unique("exchange")
    base = stack.postgres_dsn.rsplit("/", 1)[0]
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{exchange_template}"')
        yield f"{base}/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


#: The clock of `order_store`: commands it writes carry this ts (ms).
STORE_CLOCK_MS = 1_700_000_000_000


@pytest.fixture
async def exchange_settings(
    exchange_dsn: str, kafka_bootstrap: str, new_topic: NewTopicFactory
) -> InfraSettings:
    """Settings pointing at this test's database and its own 2-partition `orders` topic."""
    topic = await new_topic("orders", partitions=2)
    return InfraSettings(
        postgres_dsn=exchange_dsn, kafka_bootstrap=kafka_bootstrap, orders_topic=topic
    )


@pytest.fixture
async def order_store(exchange_dsn: str) -> AsyncIterator[OrderStore]:
    """The trading API's order store on this test's database, clock fixed at STORE_CLOCK_MS."""
    pool = await create_pool(exchange_dsn, max_size=8)
    store = OrderStore(pool, clock_ms=lambda: STORE_CLOCK_MS)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()
        await pool.close()


async def funded_user(pool: asyncpg.Pool, email: str, asset: str, amount: int) -> int:
    """A new user with `amount` (smallest units) of `asset` deposited."""
    async with pool.acquire() as conn:
        user_id = await accounts.create_user(conn, email)
        await accounts.deposit(conn, user_id, asset, amount, external_id=f"dep-{email}-{asset}")
    return user_id


@pytest.fixture
def kafka_bootstrap(stack: StackSettings) -> str:
    return stack.kafka_bootstrap


NewTopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def new_topic(kafka_bootstrap: str) -> AsyncIterator[NewTopicFactory]:
    """Creates topics with unique names (`await new_topic("orders", partitions=2)`) and
    deletes them after the test."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(prefix: str = "topic", partitions: int = 1) -> str:
        name = unique(prefix)
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
        # create_topics reports failures in the response, not as exceptions.
        errors = [(t, code) for t, code, *_ in response.topic_errors if code != 0]
        assert not errors, f"topic creation failed: {errors}"
        created.append(name)
        return name

    try:
        yield create
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()


@pytest.fixture
async def redis_client(stack: StackSettings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = unique("test")
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)

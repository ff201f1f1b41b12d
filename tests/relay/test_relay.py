"""The outbox relay on real Postgres and Kafka: every command reaches its market's
partition exactly once and in command order, across crashes and with two relays; one
market's backlog never holds back another's commands; published rows are pruned after
their retention."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from cex.core.events import decode_command
from cex.infra import accounts, kafka, outbox
from cex.infra.runtime import WorkerContext
from cex.infra.settings import InfraSettings
from cex.relay.service import Publisher, RelaySettings, run_relay
from cex.trading.store import OrderStore
from cex.trading.validation import OrderRequest, validate

USDT = 1_000_000


def relay_settings(exchange_settings: InfraSettings, **relay: float) -> RelaySettings:
    return RelaySettings(**exchange_settings.model_dump(), **relay)


async def place_orders(
    order_store: OrderStore, count: int, prefix: str, only: str | None = None
) -> None:
    """`count` orders of a new user: in `only` (a symbol), else two of three in BTCUSDT."""
    async with order_store.pool.acquire() as conn:
        user = await accounts.create_user(conn, f"{prefix}@example.com")
        await accounts.deposit(conn, user, "USDT", 10_000_000 * USDT, f"dep-{prefix}")
    for i in range(count):
        symbol = only or ("BTCUSDT" if i % 3 else "ETHUSDT")
        request = OrderRequest(
            user_id=user, symbol=symbol, side="BUY", type="LIMIT",
            newClientOrderId=f"{prefix}-{i}", timeInForce="GTC", quantity="0.01", price="1000",
        )  # fmt: skip
        await order_store.place(validate(request, order_store.market_for_symbol(symbol)))


async def read_partition(exchange_settings: InfraSettings, partition: int) -> list[tuple[int, int]]:
    """(command_seq, order_id) of every committed record of one partition, in order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=exchange_settings.kafka_bootstrap, isolation_level="read_committed",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        tp = TopicPartition(exchange_settings.orders_topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out = []
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                seq = int(dict(record.headers)[outbox.COMMAND_SEQ_HEADER])
                out.append((seq, decode_command(record.value).order_id))  # type: ignore[union-attr]
        return out
    finally:
        await consumer.stop()


async def wait_published(pool: asyncpg.Pool, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE NOT published"):
            await asyncio.sleep(0.05)


async def expected(pool: asyncpg.Pool, market: str) -> list[tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT command_seq, order_id FROM outbox WHERE market = $1 ORDER BY command_seq", market
    )
    return [(r["command_seq"], r["order_id"]) for r in rows]


async def test_publishes_every_command_once_in_order(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    await place_orders(order_store, 30, "a")
    ctx = WorkerContext("relay")
    relay = asyncio.create_task(run_relay(ctx, relay_settings(exchange_settings)))
    try:
        await wait_published(order_store.pool)
        await place_orders(order_store, 30, "b")  # woken by NOTIFY while running
        await wait_published(order_store.pool)
    finally:
        ctx.stopping.set()
        await relay

    btc, eth = (
        await expected(order_store.pool, "btc-usdt"),
        await expected(order_store.pool, "eth-usdt"),
    )
    assert len(btc) + len(eth) == 60
    assert await read_partition(exchange_settings, 0) == btc
    assert await read_partition(exchange_settings, 1) == eth


async def test_rows_sent_before_a_crash_are_not_sent_again(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    await place_orders(order_store, 10, "c")
    rows = await order_store.pool.fetch(
        "SELECT market, command_seq, payload FROM outbox WHERE market = 'btc-usdt'"
        " ORDER BY command_seq LIMIT 4"
    )
    # A relay that committed these to Kafka and died before marking them published.
    producer = kafka.producer(
        exchange_settings,
        transactional_id=outbox.publisher_transactional_id(exchange_settings.orders_topic),
    )
    await producer.start()
    async with producer.transaction():
        for r in rows:
            await producer.send(
                exchange_settings.orders_topic, bytes(r["payload"]), partition=0,
                headers=[(outbox.COMMAND_SEQ_HEADER, str(r["command_seq"]).encode())],
            )  # fmt: skip
    await producer.stop()
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox WHERE published") == 0

    ctx = WorkerContext("relay")
    relay = asyncio.create_task(run_relay(ctx, relay_settings(exchange_settings)))
    try:
        await wait_published(order_store.pool)
    finally:
        ctx.stopping.set()
        await relay

    assert await read_partition(exchange_settings, 0) == await expected(
        order_store.pool, "btc-usdt"
    )


async def test_two_relays_one_publishes_the_other_takes_over(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    first_ctx, second_ctx = WorkerContext("relay-1"), WorkerContext("relay-2")
    first = asyncio.create_task(run_relay(first_ctx, relay_settings(exchange_settings)))
    async with asyncio.timeout(20):
        while not first_ctx.readiness.ready:
            await asyncio.sleep(0.05)
    second = asyncio.create_task(run_relay(second_ctx, relay_settings(exchange_settings)))
    await place_orders(order_store, 20, "d")
    await wait_published(order_store.pool)
    assert not second_ctx.readiness.ready, "the second relay waits while the first publishes"

    first_ctx.stopping.set()
    await first
    async with asyncio.timeout(20):
        while not second_ctx.readiness.ready:
            await asyncio.sleep(0.05)
    await place_orders(order_store, 20, "e")
    await wait_published(order_store.pool)
    second_ctx.stopping.set()
    await second

    assert await read_partition(exchange_settings, 0) == await expected(
        order_store.pool, "btc-usdt"
    )
    assert await read_partition(exchange_settings, 1) == await expected(
        order_store.pool, "eth-usdt"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_relay(exchange_settings: InfraSettings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CEX_POSTGRES_DSN": exchange_settings.postgres_dsn,
        "CEX_KAFKA_BOOTSTRAP": exchange_settings.kafka_bootstrap,
        "CEX_ORDERS_TOPIC": exchange_settings.orders_topic,
        "CEX_METRICS_PORT": str(_free_port()),
    }
    cex = os.path.join(os.path.dirname(sys.executable), "cex")
    return subprocess.Popen([cex, "serve", "relay"], env=env, stderr=subprocess.DEVNULL)


async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    rng = random.Random(7)
    feeding = asyncio.create_task(place_orders(order_store, 400, "k"))
    relay = _start_relay(exchange_settings)
    try:
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            relay = _start_relay(exchange_settings)
        await feeding
        await wait_published(order_store.pool, timeout=60)
    finally:
        relay.terminate()
        relay.wait()

    btc = await expected(order_store.pool, "btc-usdt")
    eth = await expected(order_store.pool, "eth-usdt")
    assert len(btc) + len(eth) == 400
    assert await read_partition(exchange_settings, 0) == btc
    assert await read_partition(exchange_settings, 1) == eth


async def test_reports_how_long_the_oldest_command_waited(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    await place_orders(order_store, 5, "old")
    await order_store.pool.execute("UPDATE outbox SET created_at = now() - interval '1 hour'")
    seen: list[float] = []

    async def watch() -> None:
        while True:
            seen.append(REGISTRY.get_sample_value("cex_relay_oldest_unpublished_seconds") or 0.0)
            await asyncio.sleep(0)

    ctx = WorkerContext("relay")
    watcher = asyncio.create_task(watch())
    relay = asyncio.create_task(run_relay(ctx, relay_settings(exchange_settings)))
    try:
        await wait_published(order_store.pool)
        await asyncio.sleep(0.3)  # the next, empty, round resets it
    finally:
        ctx.stopping.set()
        await relay
        watcher.cancel()
    assert max(seen) >= 3600
    assert seen[-1] == 0.0


async def test_a_backlog_in_one_market_does_not_hold_back_another(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    await place_orders(order_store, 40, "backlog", only="BTCUSDT")
    await place_orders(order_store, 1, "other", only="ETHUSDT")
    producer = kafka.producer(
        exchange_settings,
        transactional_id=outbox.publisher_transactional_id(exchange_settings.orders_topic),
    )
    await producer.start()
    try:
        publisher = Publisher(
            order_store.pool, producer, exchange_settings.orders_topic,
            {"btc-usdt": 0, "eth-usdt": 1},
        )  # fmt: skip
        first = await publisher.publish_batch(limit=10)
        # The ETHUSDT command is in the first batch, beside the oldest BTCUSDT commands.
        assert [r["market"] for r in first] == ["btc-usdt"] * 5 + ["eth-usdt"]
        assert [r["command_seq"] for r in first[:5]] == [1, 2, 3, 4, 5]
        assert await read_partition(exchange_settings, 1) == await expected(
            order_store.pool, "eth-usdt"
        )
        # The backlog follows at the full batch size, in order, each command once.
        assert len(await publisher.publish_batch(limit=10)) == 10
        while await publisher.publish_batch(limit=10):
            pass
    finally:
        await producer.stop()
    assert await read_partition(exchange_settings, 0) == await expected(
        order_store.pool, "btc-usdt"
    )
    assert len(await read_partition(exchange_settings, 0)) == 40


async def test_published_rows_are_pruned_after_their_retention_in_bounded_rounds(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    pool = order_store.pool
    await place_orders(order_store, 12, "p")
    await pool.execute(
        "UPDATE outbox SET published = true, created_at = now() - interval '2 hours'"
        " WHERE command_seq <= 5"
    )
    # Old but not published yet: kept whatever its age.
    await pool.execute(
        "UPDATE outbox SET created_at = now() - interval '2 hours' WHERE command_seq = 6"
    )
    # Published but within the retention: kept.
    await pool.execute("UPDATE outbox SET published = true WHERE command_seq = 7")
    before = await pool.fetch("SELECT market, command_seq FROM outbox ORDER BY 1, 2")

    assert await outbox.prune_published(pool, 3600, batch=2) == 9  # rounds of 2 per market

    after = await pool.fetch("SELECT market, command_seq FROM outbox ORDER BY 1, 2")
    assert [(r["market"], r["command_seq"]) for r in after] == [
        (r["market"], r["command_seq"]) for r in before if r["command_seq"] > 5
    ]
    assert await outbox.prune_published(pool, 3600) == 0


async def test_the_relay_prunes_while_it_publishes(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    pool = order_store.pool
    await place_orders(order_store, 30, "q")
    await pool.execute("UPDATE outbox SET created_at = now() - interval '2 hours'")
    settings = relay_settings(
        exchange_settings, outbox_retention_s=3600, outbox_prune_interval_s=0.05
    )
    ctx = WorkerContext("relay")
    relay = asyncio.create_task(run_relay(ctx, settings))
    try:
        await wait_published(pool)
        async with asyncio.timeout(10):
            while await pool.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)  # the old rows go once published
        await place_orders(order_store, 30, "r")  # new rows: published, kept
        await wait_published(pool)
        await asyncio.sleep(0.3)  # a few pruning rounds
    finally:
        ctx.stopping.set()
        await relay

    kept = await pool.fetch("SELECT market, command_seq FROM outbox WHERE published")
    assert len(kept) == 30
    btc = await read_partition(exchange_settings, 0)
    eth = await read_partition(exchange_settings, 1)
    assert len(btc) + len(eth) == 60
    assert [seq for seq, _ in btc] == list(range(1, len(btc) + 1))
    assert [seq for seq, _ in eth] == list(range(1, len(eth) + 1))


async def test_a_batch_sent_but_not_yet_marked_is_never_sent_again(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    """Rows are marked published in the background while the next batch is read and sent:
    that batch starts after what was sent, whether or not it is marked yet."""
    await place_orders(order_store, 10, "slow", only="BTCUSDT")
    producer = kafka.producer(
        exchange_settings,
        transactional_id=outbox.publisher_transactional_id(exchange_settings.orders_topic),
    )
    await producer.start()
    try:
        publisher = Publisher(
            order_store.pool, producer, exchange_settings.orders_topic,
            {"btc-usdt": 0, "eth-usdt": 1},
        )  # fmt: skip
        async with order_store.pool.acquire() as blocker, blocker.transaction():
            # Every mark waits for these row locks until the block ends.
            await blocker.execute("SELECT 1 FROM outbox FOR UPDATE")
            first = await publisher.publish_batch(limit=4)
            second = asyncio.create_task(publisher.publish_batch(limit=4))
            async with asyncio.timeout(30):  # sent to Kafka while the first is unmarked
                while len(await read_partition(exchange_settings, 0)) < 8:
                    await asyncio.sleep(0.05)
            assert not second.done()  # it waits for the first batch's mark
        rest = [await second]
        while batch := await publisher.publish_batch(limit=4):
            rest.append(batch)
        await publisher.flush()
    finally:
        await producer.stop()
    assert [r["command_seq"] for r in first] == [1, 2, 3, 4]
    assert [[r["command_seq"] for r in batch] for batch in rest] == [[5, 6, 7, 8], [9, 10]]
    assert await read_partition(exchange_settings, 0) == await expected(
        order_store.pool, "btc-usdt"
    )
    assert not await order_store.pool.fetchval("SELECT count(*) FROM outbox WHERE NOT published")


async def test_a_batch_read_ahead_and_dropped_is_published_by_the_next_holder(
    exchange_settings: InfraSettings, order_store: OrderStore
) -> None:
    """The next batch is read while a batch commits; a publisher that stops drops that
    read (`close`), and whoever publishes next sends those commands once, in order."""
    await place_orders(order_store, 10, "ahead", only="BTCUSDT")
    producer = kafka.producer(
        exchange_settings,
        transactional_id=outbox.publisher_transactional_id(exchange_settings.orders_topic),
    )
    await producer.start()
    try:
        partitions = {"btc-usdt": 0, "eth-usdt": 1}
        first = Publisher(order_store.pool, producer, exchange_settings.orders_topic, partitions)
        sent = await first.publish_batch(limit=4)
        assert first._reading is not None  # the next batch, read during the commit
        await first.close()
        assert first._reading is None
        # The next holder: marks what Kafka has (the first batch), then publishes the rest.
        consumer = kafka.consumer(exchange_settings)
        await consumer.start()
        try:
            async with order_store.pool.acquire() as conn:
                last = await outbox.reconcile(
                    conn, consumer, exchange_settings.orders_topic, partitions
                )
        finally:
            await consumer.stop()
        second = Publisher(order_store.pool, producer, exchange_settings.orders_topic, partitions)
        rest = []
        while batch := await second.publish_batch(limit=4):
            rest.append([r["command_seq"] for r in batch])
        await second.close()
    finally:
        await producer.stop()
    assert [r["command_seq"] for r in sent] == [1, 2, 3, 4]
    assert last["btc-usdt"] == 4
    assert rest == [[5, 6, 7, 8], [9, 10]]
    assert await read_partition(exchange_settings, 0) == await expected(
        order_store.pool, "btc-usdt"
    )
    assert not await order_store.pool.fetchval("SELECT count(*) FROM outbox WHERE NOT published")

"""The lifecycle worker on real Postgres and Kafka: GTT expiry goes through the engine;
stale PENDING orders are expired only when their create never reached Kafka."""

from __future__ import annotations

from cex.core.events import OrderExpire, decode_command
from cex.infra import kafka, outbox
from cex.infra.settings import InfraSettings
from cex.lifecycle.service import expire_stale_pending, send_due_expiries
from cex.trading.store import OrderStore
from cex.trading.validation import OrderRequest, validate
from tests.fixtures import STORE_CLOCK_MS, funded_user

USDT = 1_000_000
NOW = STORE_CLOCK_MS


def limit_buy(user: int, cid: str, **extra: object) -> OrderRequest:
    fields: dict[str, object] = {
        "user_id": user, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
        "newClientOrderId": cid, "timeInForce": "GTC", "quantity": "0.01", "price": "1000",
    }  # fmt: skip
    fields.update(extra)
    return OrderRequest(**fields)  # type: ignore[arg-type]


async def test_due_gtt_orders_get_an_expire_command_once(order_store: OrderStore) -> None:
    user = await funded_user(order_store.pool, "gtt@example.com", "USDT", 100 * USDT)
    config = order_store.market_for_symbol("BTCUSDT")
    due = await order_store.place(validate(limit_buy(user, "g1", timeInForce="GTT",
                                               goodTillDate=NOW + 1_000), config))  # fmt: skip
    await order_store.place(validate(limit_buy(user, "g2", timeInForce="GTT",
                                         goodTillDate=NOW + 60_000), config))  # fmt: skip
    # Settlement would have marked them NEW once the engine opened them.
    await order_store.pool.execute("UPDATE orders SET status = 'NEW'")

    assert await send_due_expiries(order_store.pool, NOW + 5_000) == 1
    assert await send_due_expiries(order_store.pool, NOW + 6_000) == 0  # asked once only

    rows = await order_store.pool.fetch("SELECT kind, payload FROM outbox ORDER BY command_seq")
    assert [r["kind"] for r in rows] == ["ORDER_CREATE", "ORDER_CREATE", "ORDER_EXPIRE"]
    command = decode_command(rows[-1]["payload"])
    assert isinstance(command, OrderExpire)
    assert (command.order_id, command.ts) == (due["id"], NOW + 5_000)
    # Nothing is released behind the engine's back.
    assert await order_store.pool.fetchval("SELECT count(*) FROM orders WHERE status = 'NEW'") == 2


async def test_stale_unpublished_pending_is_expired_and_refunded(
    order_store: OrderStore, exchange_settings: InfraSettings
) -> None:
    user = await funded_user(order_store.pool, "stale@example.com", "USDT", 100 * USDT)
    order = await order_store.place(
        validate(limit_buy(user, "s1"), order_store.market_for_symbol("BTCUSDT"))
    )

    assert (
        await expire_stale_pending(order_store.pool, exchange_settings, NOW + 30_000, 60_000) == []
    )
    expired = await expire_stale_pending(order_store.pool, exchange_settings, NOW + 61_000, 60_000)

    assert expired == [order["id"]]
    row = await order_store.pool.fetchrow("SELECT status, locked_remaining FROM orders")
    assert (row["status"], row["locked_remaining"]) == ("EXPIRED", 0)
    assert await order_store.pool.fetchval("SELECT count(*) FROM outbox") == 0
    balance = await order_store.pool.fetchrow(
        "SELECT available, locked FROM balances WHERE user_id = $1", user
    )
    assert (balance["available"], balance["locked"]) == (100 * USDT, 0)


async def test_pending_already_in_kafka_is_not_expired(
    order_store: OrderStore, exchange_settings: InfraSettings
) -> None:
    user = await funded_user(order_store.pool, "sent@example.com", "USDT", 100 * USDT)
    await order_store.place(
        validate(limit_buy(user, "k1"), order_store.market_for_symbol("BTCUSDT"))
    )
    row = await order_store.pool.fetchrow("SELECT command_seq, payload FROM outbox")
    # A relay published it and died before marking the row.
    producer = kafka.producer(
        exchange_settings,
        transactional_id=outbox.publisher_transactional_id(exchange_settings.orders_topic),
    )
    await producer.start()
    async with producer.transaction():
        await producer.send(
            exchange_settings.orders_topic, bytes(row["payload"]), partition=0,
            headers=[(outbox.COMMAND_SEQ_HEADER, str(row["command_seq"]).encode())],
        )  # fmt: skip
    await producer.stop()

    assert (
        await expire_stale_pending(order_store.pool, exchange_settings, NOW + 120_000, 60_000) == []
    )
    assert await order_store.pool.fetchval("SELECT status FROM orders") == "PENDING"
    assert await order_store.pool.fetchval("SELECT published FROM outbox") is True


async def test_no_expiry_while_a_relay_holds_the_publisher_lock(
    order_store: OrderStore, exchange_settings: InfraSettings
) -> None:
    user = await funded_user(order_store.pool, "locked@example.com", "USDT", 100 * USDT)
    await order_store.place(
        validate(limit_buy(user, "l1"), order_store.market_for_symbol("BTCUSDT"))
    )
    async with order_store.pool.acquire() as relay_conn:
        await relay_conn.execute("SELECT pg_advisory_lock($1)", outbox.PUBLISHER_LOCK)
        try:
            assert (
                await expire_stale_pending(
                    order_store.pool, exchange_settings, NOW + 120_000, 60_000
                )
                == []
            )
        finally:
            await relay_conn.execute("SELECT pg_advisory_unlock($1)", outbox.PUBLISHER_LOCK)
    assert await order_store.pool.fetchval("SELECT status FROM orders") == "PENDING"

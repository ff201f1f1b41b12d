"""`cex serve lifecycle` (DESIGN.md §6).

* GTT orders whose `expire_at` has passed get an ORDER_EXPIRE command through the outbox
  and the engine, never a database edit behind the engine's back; the engine's
  ORDER_EXPIRED event, once settled, releases the funds.
* A PENDING order whose ORDER_CREATE was never published (the relay is down or stuck) is
  expired after `stale_pending_ms` in the transaction that deletes its outbox row, so the
  create can never reach the engine afterwards. To be sure the row is not already in
  Kafka, the worker first takes the publisher lock, fences any relay producer and
  reconciles with Kafka's tail, exactly as a relay taking over would (`cex.infra.outbox`).
  The release is `cex.core.settlement.expire_unpublished`'s.
* Rows are locked in the one order of `cex.infra.transactions` (orders, then balances or
  markets) and a conflicting pass is retried by its one predicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg
from prometheus_client import Counter
from pydantic_settings import SettingsConfigDict

from cex.core.events import OrderExpire, OrderStatus, Side, encode
from cex.core.ledger import Journal, balance_deltas
from cex.core.orders import TRANSITIONS, Trigger
from cex.core.settlement import OrderState, expire_unpublished
from cex.infra import kafka, outbox, registry
from cex.infra.runtime import WorkerContext, metrics_port, run_worker
from cex.infra.settings import InfraSettings
from cex.infra.transactions import RowLocks, is_retryable, retrying

log = logging.getLogger(__name__)

EXPIRE_SENT = Counter("cex_lifecycle_expire_commands_total", "ORDER_EXPIRE commands sent")
STALE_EXPIRED = Counter("cex_lifecycle_stale_pending_expired_total", "Stale PENDING expired")

#: The states a GTT order is expired from through the engine: open there. A PENDING order
#: has not reached the engine; it expires there on arrival if it is due by then.
_EXPIRABLE = [
    s.value
    for s in OrderStatus
    if s is not OrderStatus.PENDING and (s, Trigger.EXPIRE) in TRANSITIONS
]


class LifecycleSettings(InfraSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_", frozen=True, extra="ignore")

    lifecycle_interval_s: float = 1.0
    stale_pending_ms: int = 60_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


async def send_due_expiries(pool: asyncpg.Pool, now_ms: int, limit: int = 1000) -> int:
    """ORDER_EXPIRE for open GTT orders past their time; returns how many were sent."""
    return await retrying()(_send_due_expiries, pool, now_ms, limit)


async def _send_due_expiries(pool: asyncpg.Pool, now_ms: int, limit: int) -> int:
    async with pool.acquire() as conn, conn.transaction():
        due = await conn.fetch(
            "SELECT id FROM orders WHERE expire_at <= $1 AND status = ANY($2::text[])"
            " AND NOT expire_requested ORDER BY id LIMIT $3",
            now_ms,
            _EXPIRABLE,
            limit,
        )
        if not due:
            return 0
        # The lock order (cex.infra.transactions): the orders, re-checked once locked (one
        # may have filled meanwhile), then their markets, which number the commands.
        locks = RowLocks(conn)
        orders = await locks.orders(
            [r["id"] for r in due],
            "id, market",
            where="expire_at <= $2 AND NOT expire_requested AND status = ANY($3::text[])",
            args=(now_ms, _EXPIRABLE),
        )
        if not orders:
            return 0
        rows = await locks.markets({r["market"] for r in orders}, "name, symbol, next_command_seq")
        seq = {r["name"]: int(r["next_command_seq"]) for r in rows}
        symbol = {r["name"]: r["symbol"] for r in rows}
        await conn.execute(
            "UPDATE orders SET expire_requested = true WHERE id = ANY($1::bigint[])",
            [r["id"] for r in orders],
        )
        records = []
        for row in sorted(orders, key=lambda r: (r["market"], r["id"])):
            market = row["market"]
            command = OrderExpire(market=symbol[market], ts=now_ms, order_id=row["id"])
            records.append((market, seq[market], "ORDER_EXPIRE", row["id"], encode(command)))
            seq[market] += 1
        await conn.copy_records_to_table(
            "outbox",
            records=records,
            columns=("market", "command_seq", "kind", "order_id", "payload"),
        )
        await conn.execute(
            "UPDATE markets m SET next_command_seq = s.next FROM unnest($1::text[],"
            " $2::bigint[]) s(name, next) WHERE m.name = s.name",
            list(seq),
            list(seq.values()),
        )
        await conn.execute("SELECT pg_notify('cex_outbox', '')")
        EXPIRE_SENT.inc(len(records))
        return len(records)


async def expire_stale_pending(
    pool: asyncpg.Pool, settings: InfraSettings, now_ms: int, max_age_ms: int
) -> list[int]:
    """Expire PENDING orders older than `max_age_ms` whose create never left the outbox.
    Returns their ids. Does nothing while a relay holds the publisher lock."""
    stale = await pool.fetch(
        "SELECT o.id FROM orders o JOIN outbox b ON b.market = o.market"
        " AND b.order_id = o.id AND b.kind = 'ORDER_CREATE' AND NOT b.published"
        " WHERE o.status = 'PENDING' AND o.created_ms < $1 LIMIT 500",
        now_ms - max_age_ms,
    )
    if not stale:
        return []
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", outbox.PUBLISHER_LOCK):
            return []  # a live relay will publish them
        try:
            producer = kafka.producer(
                settings, transactional_id=outbox.publisher_transactional_id(settings.orders_topic)
            )
            await producer.start()  # fences a relay that lost its lock but still sends
            await producer.stop()
            consumer = kafka.consumer(settings)
            await consumer.start()
            try:
                partitions = {
                    n: m.partition for n, m in (await registry.load_markets(pool)).items()
                }
                await outbox.reconcile(lock_conn, consumer, settings.orders_topic, partitions)
            finally:
                await consumer.stop()
            expired: list[int] = await retrying()(
                _expire_unpublished, pool, [r["id"] for r in stale]
            )
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", outbox.PUBLISHER_LOCK)
    STALE_EXPIRED.inc(len(expired))
    return expired


async def _expire_unpublished(pool: asyncpg.Pool, order_ids: list[int]) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        # The lock order (cex.infra.transactions): the orders, then their balances.
        locks = RowLocks(conn)
        candidates = await locks.orders(
            order_ids,
            "id, market, user_id, side, status, locked_asset, locked_remaining, filled_qty,"
            " cumulative_quote",
            where="status = 'PENDING'",
        )
        await locks.balances((r["user_id"], r["locked_asset"]) for r in candidates)
        deleted = await conn.fetch(
            "DELETE FROM outbox WHERE kind = 'ORDER_CREATE' AND NOT published"
            " AND order_id = ANY($1::bigint[]) RETURNING order_id",
            [r["id"] for r in candidates],
        )
        gone = {r["order_id"] for r in deleted}
        # The rule (state and release) is the core's; this writes what it says.
        expired: list[OrderState] = []
        journals: list[Journal] = []
        for row in candidates:
            if row["id"] in gone:
                order = OrderState(
                    id=row["id"], market=row["market"], user_id=row["user_id"],
                    side=Side(row["side"]), status=OrderStatus(row["status"]),
                    locked_asset=row["locked_asset"],
                    locked_remaining=int(row["locked_remaining"]),
                    filled_qty=row["filled_qty"], cumulative_quote=int(row["cumulative_quote"]),
                )  # fmt: skip
                journal = expire_unpublished(order)
                expired.append(order)
                if journal is not None:
                    journals.append(journal)
        await conn.execute(
            "UPDATE orders o SET status = u.status, locked_remaining = u.locked_remaining,"
            " reason = u.reason, updated_at = now()"
            " FROM unnest($1::bigint[], $2::text[], $3::numeric[], $4::text[])"
            " u(id, status, locked_remaining, reason) WHERE o.id = u.id",
            [o.id for o in expired],
            [o.status.value for o in expired],
            [o.locked_remaining for o in expired],
            [o.reason for o in expired],
        )
        deltas = balance_deltas(journals)
        await conn.execute(
            "UPDATE balances b SET available = b.available + d.available,"
            " locked = b.locked + d.locked"
            " FROM unnest($1::bigint[], $2::text[], $3::numeric[], $4::numeric[])"
            " d(user_id, asset, available, locked)"
            " WHERE b.user_id = d.user_id AND b.asset = d.asset",
            [k[0] for k in deltas],
            [k[1] for k in deltas],
            [d[0] for d in deltas.values()],
            [d[1] for d in deltas.values()],
        )
        for journal in journals:
            journal_id = await conn.fetchval(
                "INSERT INTO journals (kind, reference) VALUES ($1, $2) RETURNING id",
                journal.kind.value,
                journal.reference,
            )
            await conn.executemany(
                "INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(journal_id, p.user_id, p.bucket.value, p.asset, p.amount)
                 for p in journal.postings],
            )  # fmt: skip
        return sorted(gone)


async def run_lifecycle(
    ctx: WorkerContext, settings: LifecycleSettings, clock_ms: Callable[[], int] = wall_clock_ms
) -> None:
    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=3)
    assert pool is not None
    try:
        ctx.readiness.set_ready()
        while not ctx.stopping.is_set():
            now = clock_ms()
            try:
                await send_due_expiries(pool, now)
                expired = await expire_stale_pending(pool, settings, now, settings.stale_pending_ms)
                if expired:
                    log.warning("expired stale PENDING orders", extra={"order_ids": expired})
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                log.warning("lifecycle pass kept conflicting with other writers: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), settings.lifecycle_interval_s)
    finally:
        await pool.close()


def serve(market: str | None = None) -> None:
    del market
    settings = LifecycleSettings()

    async def main(ctx: WorkerContext) -> None:
        await run_lifecycle(ctx, settings)

    run_worker("lifecycle", main, port=metrics_port(default=18103))

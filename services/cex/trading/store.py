"""The trading API's database side: group commit of order placements.

Concurrent requests queue up while a batch is in flight and the next batch takes them all
(up to `max_batch`): one round of locks and one commit for many orders. Per order, in its
batch's one transaction: funds `available → locked` (with the ORDER_LOCK journal of
`cex.core.ledger`), the order inserted as PENDING, its ORDER_CREATE appended to the outbox
under the market's next command number. A client order id is unique among the user's open
orders (Binance): reusing the id of an open order is refused as a duplicate, reusing a
closed order's id is allowed. Rows are locked in the one order of `cex.infra.transactions`
— balances by (user, asset), then markets by name — the order every writer of those rows
uses, so batches never deadlock.

A batch takes one of two ways:

* **In one statement** (`_PLACE`), the common case: every order locks a known amount and no
  client order id comes twice in the batch. After one read (open duplicates, fresh ids, no
  lock), a single statement is the whole transaction: it locks the batch's balances, locks
  each (user, asset)'s funds for all its orders at once where the balance covers them all,
  writes those orders, journals and entries, then locks the market rows, numbers the
  commands and appends them, and commits. Locks are held for that one statement and its
  commit, never across a round trip. The orders of a balance that does not cover them all
  take the careful way next, so each is funded or refused in arrival order, exactly as
  there.
* **Carefully** (`_commit`): the balances locked and read first, every order funded in
  arrival order in Python (so concurrent orders can never spend the same funds; an order
  that cannot be funded is refused alone), then written, the market rows locked last.
  Taken by the rest of the batches (an order locking all that is available, one client
  order id twice) and whenever the single statement fails (a market stopped trading, a
  concurrent duplicate, a value the database refuses).

A batch whose write fails for a reason that is not transient (a value the database refuses)
is committed again order by order, each alone in its own transaction: only the order that
causes the failure gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client import Counter, Histogram

from cex.core.events import (
    CancelAll,
    OrderAmend,
    OrderCancel,
    OrderCreate,
    OrderType,
    Side,
    encode,
)
from cex.core.ledger import amend_lock_reference, order_lock_journal
from cex.core.market import MarketConfig
from cex.infra import registry
from cex.infra.transactions import RowLocks, is_connection_lost, is_retryable, retrying
from cex.trading import errors
from cex.trading.validation import (
    LOCK_ALL_AVAILABLE,
    MAX_ORDER_AMOUNT,
    ValidAmend,
    ValidOrder,
    amend_lock,
)

log = logging.getLogger(__name__)

#: The registry is reloaded on every change notification, and at least this often.
REGISTRY_REFRESH_S = 30.0

BATCH_ORDERS = Histogram(
    "cex_trading_batch_orders",
    "Orders committed together in one group-commit transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)

BATCHES = Counter(
    "cex_trading_batches_total",
    "Order batches committed, by the way they took (the store module's docstring)",
    ["way"],
)

OPEN_STATUSES = ("PENDING", "NEW", "PARTIALLY_FILLED")
ORDER_COLUMNS = (
    "id", "market", "user_id", "client_order_id", "side", "type", "time_in_force", "price",
    "quantity", "quote_order_qty", "stop_price", "expire_at", "stp_mode", "status",
    "locked_asset", "locked", "locked_remaining", "created_ms",
)  # fmt: skip


Outcome = dict[str, Any] | errors.TradingError


# Per order of a batch, in one round trip: whether its client order id names an open order
# already, and fresh order and journal ids. Ids of orders refused later are skipped, as a
# rolled-back transaction skips them. The duplicate test is a LATERAL probe of the partial
# unique index `orders_open_client_order_id` (the literal status list is its predicate):
# written as EXISTS, the planner hashed every open order of the table once per batch
# instead (11 ms at 30,000 open orders, growing with the book).
_CHECK_AND_NUMBER = """
SELECT d.found IS NOT NULL AS open_duplicate,
       nextval('order_ids') AS order_id, nextval('journals_id_seq') AS journal_id
FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY k(user_id, cid, i)
LEFT JOIN LATERAL (
    SELECT 1 AS found FROM orders o WHERE o.user_id = k.user_id AND o.client_order_id = k.cid
    AND o.status IN ('PENDING', 'NEW', 'PARTIALLY_FILLED') LIMIT 1
) d ON true
ORDER BY k.i
"""

# The funds and the orders of a batch in one statement (one round trip): data-modifying
# CTEs all run, and foreign keys are checked at the end of the statement. It runs before
# the market rows are locked, so a batch holds its market only for `_WRITE_COMMANDS` and
# the commit, and the next batch writes its orders meanwhile.
_WRITE_ORDERS = """
WITH balance AS (
    UPDATE balances b SET available = b.available - d.amount, locked = b.locked + d.amount
    FROM unnest($1::bigint[], $2::text[], $3::numeric[]) d(user_id, asset, amount)
    WHERE b.user_id = d.user_id AND b.asset = d.asset
), new_orders AS (
    INSERT INTO orders (id, market, user_id, client_order_id, side, type, time_in_force,
                        price, quantity, quote_order_qty, stop_price, expire_at, stp_mode,
                        status, locked_asset, locked, locked_remaining, created_ms)
    SELECT * FROM unnest($4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::text[],
                         $9::text[], $10::text[], $11::bigint[], $12::bigint[],
                         $13::numeric[], $14::bigint[], $15::bigint[], $16::text[],
                         $17::text[], $18::text[], $19::numeric[], $20::numeric[],
                         $21::bigint[])
), journal AS (
    INSERT INTO journals (id, kind, reference)
    SELECT id, 'ORDER_LOCK', ref FROM unnest($22::bigint[], $23::text[]) j(id, ref)
)
INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)
SELECT * FROM unnest($24::bigint[], $25::bigint[], $26::text[], $27::text[], $28::numeric[])
"""

# The commands, numbered under the market rows' locks (taken just before): the outbox order
# is the commit order. The relay is woken at commit.
_WRITE_COMMANDS = """
WITH market AS (
    UPDATE markets m SET next_command_seq = m.next_command_seq + u.n
    FROM unnest($1::text[], $2::bigint[]) u(name, n) WHERE m.name = u.name
), commands AS (
    INSERT INTO outbox (market, command_seq, kind, order_id, payload)
    SELECT market, seq, 'ORDER_CREATE', order_id, payload
    FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::bytea[])
         c(market, seq, order_id, payload)
)
SELECT pg_notify('cex_outbox', '')
"""


# A batch in one statement, which is its whole transaction (see the module's docstring).
# Amounts travel as bigint (validation keeps every order's amounts within 64 bits: cheaper
# to encode than numeric) and are summed as numeric. The CTEs that modify rows run in the
# order their results are needed: `held` locks the balances in key order; `funded` moves
# the funds of each (user, asset) whose balance covers all its orders of the batch;
# `placed` is those orders, written with their journals and entries; `numbered` locks the
# market rows only after that (its FROM is the written orders, and its scalar subquery
# waits for every balance), numbers the commands of each market in batch order, and a
# market that stopped trading is left out, so its commands get no number and the NOT NULL
# of `outbox.command_seq` fails the statement (the careful way then sees the status).
# Returns the batch positions of the placed orders.
_PLACE = """
WITH incoming AS (
    SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],
                         $11::bigint[], $12::bigint[], $13::bigint[], $14::text[],
                         $15::text[], $16::bigint[], $17::bigint[], $18::text[], $19::bytea[])
        o(i, id, market, user_id, client_order_id, side, type, time_in_force, price,
          quantity, quote_order_qty, stop_price, expire_at, stp_mode, locked_asset, locked,
          journal_id, reference, payload)
), need AS (
    SELECT user_id, locked_asset AS asset, sum(locked::numeric) AS amount
    FROM incoming GROUP BY user_id, locked_asset
), held AS (
    SELECT b.user_id, b.asset FROM balances b JOIN need USING (user_id, asset)
    ORDER BY b.user_id, b.asset FOR UPDATE OF b
), funded AS (
    UPDATE balances b SET available = b.available - need.amount, locked = b.locked + need.amount
    FROM held JOIN need USING (user_id, asset)
    WHERE b.user_id = held.user_id AND b.asset = held.asset AND b.available >= need.amount
    RETURNING b.user_id, b.asset
), placed AS (
    SELECT p.* FROM incoming p JOIN funded f ON f.user_id = p.user_id AND f.asset = p.locked_asset
), new_orders AS (
    INSERT INTO orders (id, market, user_id, client_order_id, side, type, time_in_force,
                        price, quantity, quote_order_qty, stop_price, expire_at, stp_mode,
                        status, locked_asset, locked, locked_remaining, created_ms)
    SELECT id, market, user_id, client_order_id, side, type, time_in_force, price, quantity,
           quote_order_qty, stop_price, expire_at, stp_mode, 'PENDING', locked_asset, locked,
           locked, $20::bigint
    FROM placed
    RETURNING market
), journal AS (
    INSERT INTO journals (id, kind, reference)
    SELECT journal_id, 'ORDER_LOCK', reference FROM placed
), entries AS (
    INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)
    SELECT * FROM unnest($21::bigint[], $22::bigint[], $23::text[], $24::text[], $25::bigint[])
        e(journal_id, user_id, bucket, asset, amount)
    WHERE e.journal_id IN (SELECT journal_id FROM placed)
), numbered AS (
    UPDATE markets m SET next_command_seq = m.next_command_seq + n.orders
    FROM (SELECT market, count(*) AS orders FROM new_orders GROUP BY market) n
    WHERE m.name = n.market AND m.status = 'TRADING' AND (SELECT count(*) FROM funded) > 0
    RETURNING m.name, m.next_command_seq - n.orders AS first_seq
), commands AS (
    INSERT INTO outbox (market, command_seq, kind, order_id, payload)
    SELECT p.market, n.first_seq + row_number() OVER (PARTITION BY p.market ORDER BY p.i) - 1,
           'ORDER_CREATE', p.id, p.payload
    FROM placed p LEFT JOIN numbered n ON n.name = p.market
)
SELECT array(SELECT i FROM placed) AS placed, pg_notify('cex_outbox', '')
"""


class _MarketStatusChanged(Exception):
    """A market stopped trading after the batch was checked: retry with fresh statuses."""


async def create_order_pool(
    dsn: str, *, max_size: int = 10, generic_plans: bool = False
) -> asyncpg.Pool:
    """A connection pool of the store. Its connections change no session state (no SET,
    advisory lock, cursor or LISTEN left behind: the registry follower unlistens itself),
    so a released connection skips asyncpg's reset query, a round trip at the end of every
    batch; asyncpg still rolls back a transaction left open and drops listeners.

    With `generic_plans` its prepared statements always run their generic plan: for the
    batch statements (`OrderStore(batch_pool=...)`), the same every batch, which Postgres
    otherwise planned again for each batch's array sizes (`_PLACE`: ~0.5 ms, most of a
    small batch's planning and a tenth of its Postgres CPU). Not for the other queries:
    those with optional filters (`_find_order`) would scan all of a user's orders."""
    settings = {"plan_cache_mode": "force_generic_plan"} if generic_plans else {}
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_size, reset=_keep_session, server_settings=settings
    )
    assert pool is not None
    return pool


async def _keep_session(_: asyncpg.Connection) -> None:
    return None


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Rows:
    """What placing some orders writes, column by column (`OrderStore._rows`)."""

    columns: list[list[Any]] = field(default_factory=lambda: [[] for _ in ORDER_COLUMNS])
    journal_ids: list[int] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    entries: list[list[Any]] = field(default_factory=lambda: [[] for _ in range(5)])
    commands: list[tuple[str, int, bytes]] = field(default_factory=list)  # market, id, payload
    deltas: dict[tuple[int, str], int] = field(default_factory=dict)  # (user, asset) → locked


@dataclass
class _Pending:
    order: ValidOrder
    future: asyncio.Future[dict[str, Any]] = field(repr=False)


class OrderStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        max_batch: int = 500,
        workers: int = 3,
        batch_pool: asyncpg.Pool | None = None,
    ) -> None:
        self.pool = pool
        #: Where batches are placed in one statement (`create_order_pool`'s generic plans).
        self.batch_pool = batch_pool or pool
        self.clock_ms = clock_ms
        self.max_batch = max_batch
        self.markets: dict[str, registry.RegisteredMarket] = {}
        self.by_symbol: dict[str, registry.RegisteredMarket] = {}
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker_count = workers
        self._workers: list[asyncio.Task[None]] = []
        self._registry_follower: asyncio.Task[None] | None = None
        self.batches = 0  # committed; their sizes are the cex_trading_batch_orders histogram

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.refresh_markets()
        self._registry_follower = asyncio.create_task(
            self._follow_registry(), name="registry-follower"
        )
        # A few batches in flight at once: one is prepared while another waits for the
        # database. They lock rows in the same order, so they wait, never deadlock.
        self._workers = [
            asyncio.create_task(self._run(), name=f"order-batches-{i}")
            for i in range(self._worker_count)
        ]

    async def stop(self) -> None:
        tasks = [*self._workers, *([self._registry_follower] if self._registry_follower else [])]
        for worker in tasks:
            worker.cancel()
        for worker in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _follow_registry(self) -> None:
        """Reload the registry when it changes (the operator registers a market, a market is
        halted, …: `registry.MARKETS_CHANNEL`), and every `REGISTRY_REFRESH_S` anyway, since a
        notification sent while the listening connection was down is lost."""
        changed = asyncio.Event()

        def notified(*_: object) -> None:
            changed.set()

        while True:
            try:
                async with self.pool.acquire() as conn:
                    await conn.add_listener(registry.MARKETS_CHANNEL, notified)
                    try:
                        while True:
                            changed.clear()  # before reloading: a change during it reloads again
                            await self.refresh_markets()
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(changed.wait(), REGISTRY_REFRESH_S)
                    finally:
                        await conn.remove_listener(registry.MARKETS_CHANNEL, notified)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("following the market registry failed; retrying", exc_info=exc)
                await asyncio.sleep(1)

    async def refresh_markets(self) -> None:
        markets = await registry.load_markets(self.pool)
        self.markets = markets
        self.by_symbol = {m.config.symbol: m for m in markets.values()}

    def market_for_symbol(self, symbol: str) -> MarketConfig:
        market = self.by_symbol.get(symbol)
        if market is None:
            raise errors.invalid_symbol()
        return market.config

    # ------------------------------------------------------------------ placing

    async def place(self, order: ValidOrder) -> dict[str, Any]:
        """Queue the order for the next batch; its row (as a dict) once committed."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(order, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit_with_retry(batch)

    async def _commit_with_retry(self, batch: list[_Pending]) -> None:
        """Commit the batch: in one statement when it can (the module's docstring), the
        rest carefully; if that fails for a reason that is not transient, its orders one by
        one, each in its own transaction, so that only the order that causes the failure
        gets it and the others are placed."""
        if _fits_one_statement(batch):
            try:
                outcomes = await self._commit_in_one_statement(batch)
            except Exception as exc:
                if is_connection_lost(exc):  # the commit may have happened: say so to all
                    log.error("an order batch failed", exc_info=exc)
                    _answer(batch, [exc] * len(batch))
                    return
                log.info("a batch of %d orders takes the careful way: %r", len(batch), exc)
            else:
                done = [(p, o) for p, o in zip(batch, outcomes, strict=True) if o is not None]
                self.batches += 1
                BATCHES.labels("one_statement").inc()
                BATCH_ORDERS.observe(len(done))
                _answer([p for p, _ in done], [o for _, o in done])
                batch = [p for p, o in zip(batch, outcomes, strict=True) if o is None]
                if not batch:
                    return
        await self._commit_carefully(batch)

    async def _commit_carefully(self, batch: list[_Pending]) -> None:
        try:
            results = await self._commit_retrying(batch)
        except errors.TradingError as exc:  # server busy: every order of the batch
            _answer(batch, [exc] * len(batch))
            return
        except Exception as exc:
            if len(batch) == 1 or not _isolatable(exc):
                log.error("an order batch failed", exc_info=exc)
                _answer(batch, [exc] * len(batch))
                return
            log.warning("a batch of %d orders failed; committing them one by one", len(batch),
                        exc_info=exc)  # fmt: skip
            for pending in batch:
                await self._commit_carefully([pending])
            return
        self.batches += 1
        BATCHES.labels("careful").inc()
        BATCH_ORDERS.observe(len(batch))
        _answer(batch, results)

    async def _commit_in_one_statement(self, batch: Sequence[_Pending]) -> list[Outcome | None]:
        """The batch as `_PLACE`, its own transaction; the outcome of each order, None for
        those whose balance did not cover all its orders of the batch (placed nowhere yet:
        they take the careful way)."""
        orders = [p.order for p in batch]
        ts = self.clock_ms()
        results: list[Outcome | None] = [None] * len(orders)
        async with self.batch_pool.acquire() as conn:
            checked = await conn.fetch(
                _CHECK_AND_NUMBER,
                [o.user_id for o in orders],
                [o.client_order_id for o in orders],
            )
            todo = self._refuse_duplicates_and_closed(orders, checked, results)
            if not todo:
                return results
            rows = self._rows(orders, todo, {i: orders[i].lock for i in todo}, checked, ts,
                              results)  # fmt: skip
            columns = rows.columns
            placed_at = await conn.fetchval(
                _PLACE,
                todo, *columns[:13], columns[14], columns[15],
                rows.journal_ids, rows.references, [c[2] for c in rows.commands],
                ts, *rows.entries,
            )  # fmt: skip
        placed = set(placed_at)
        for i in todo:
            if i not in placed:
                results[i] = None
        return results

    async def _commit_retrying(self, batch: list[_Pending]) -> list[Outcome]:
        # Besides conflicts: a concurrent writer (another replica) inserted an open order
        # with the same client order id first (the duplicate check then sees it), or a
        # market stopped trading (the retry sees its status).
        transient = (asyncpg.UniqueViolationError, _MarketStatusChanged)
        try:
            outcomes: list[Outcome] = await retrying(attempts=5, also=transient)(
                self._commit_seeing_statuses, batch
            )
        except Exception as exc:
            if is_retryable(exc) or isinstance(exc, transient):
                raise errors.TradingError(-1008, "Server busy.", 503) from exc
            raise
        return outcomes

    async def _commit_seeing_statuses(self, batch: Sequence[_Pending]) -> list[Outcome]:
        try:
            return await self._commit(batch)
        except _MarketStatusChanged:
            # Reloaded once the batch's connection is back in the pool (reloading while
            # holding it could wait forever for a connection of an exhausted pool).
            await self.refresh_markets()
            raise

    async def _commit(self, batch: Sequence[_Pending]) -> list[Outcome]:
        """One transaction for the batch, in five round trips: duplicate check and ids,
        balance locks, funds and orders, market locks, commands (then the commit)."""
        orders = [p.order for p in batch]
        ts = self.clock_ms()
        results: list[dict[str, Any] | errors.TradingError | None] = [None] * len(orders)
        async with self.pool.acquire() as conn, conn.transaction():
            # 1. A client order id of the user's that is open already (in the DB) is refused;
            # a closed order's id may be reused (Binance's semantics).
            checked = await conn.fetch(
                _CHECK_AND_NUMBER,
                [o.user_id for o in orders],
                [o.client_order_id for o in orders],
            )
            todo = self._refuse_duplicates_and_closed(orders, checked, results)

            # 2. Lock the balances (by user, asset); fund orders in arrival order. Of two
            # orders of the batch with one client order id, the first placed wins.
            row_locks = RowLocks(conn)
            balances = await row_locks.balances(
                (orders[i].user_id, orders[i].locked_asset) for i in todo
            )
            available = {key: pair[0] for key, pair in balances.items()}
            locks: dict[int, int] = {}
            placed: set[tuple[int, str]] = set()
            for i in todo:
                order = orders[i]
                if (order.user_id, order.client_order_id) in placed:
                    results[i] = errors.duplicate_order()
                    continue
                key = (order.user_id, order.locked_asset)
                have = available.get(key, 0)
                # Everything available, but never more than an order can carry on the wire.
                amount = (
                    min(have, MAX_ORDER_AMOUNT) if order.lock == LOCK_ALL_AVAILABLE else order.lock
                )
                if amount <= 0 or amount > have:
                    results[i] = errors.insufficient_balance()
                    continue
                available[key] = have - amount
                locks[i] = amount
                placed.add((order.user_id, order.client_order_id))
            accepted = [i for i in todo if i in locks]
            if not accepted:
                return results  # type: ignore[return-value]

            # 3. Funds locked, orders and journals written: no market lock held yet.
            rows = self._rows(orders, accepted, locks, checked, ts, results)
            await conn.execute(
                _WRITE_ORDERS,
                [k[0] for k in rows.deltas], [k[1] for k in rows.deltas],
                list(rows.deltas.values()),
                *rows.columns,
                rows.journal_ids, rows.references,
                *rows.entries,
            )  # fmt: skip

            # 4. Lock the markets last (by name), so the lock that orders the outbox is held
            # only for the commands and the commit. Re-check their status.
            market_rows = await row_locks.markets(
                {orders[i].market for i in accepted}, "name, status, next_command_seq"
            )
            if any(r["status"] != "TRADING" for r in market_rows):
                raise _MarketStatusChanged
            await _write_commands(
                conn, {r["name"]: int(r["next_command_seq"]) for r in market_rows}, rows.commands
            )
        return results  # type: ignore[return-value]

    def _refuse_duplicates_and_closed(
        self, orders: list[ValidOrder], checked: list[asyncpg.Record], results: list[Any]
    ) -> list[int]:
        """Refuse (in `results`) an order whose client order id names an open order of the
        user's already (a closed order's id may be reused: Binance's semantics) or whose
        market does not take orders; returns the positions of the others."""
        todo: list[int] = []
        for i, order in enumerate(orders):
            if checked[i]["open_duplicate"]:
                results[i] = errors.duplicate_order()
            elif not self.markets[order.market].accepts_orders:
                results[i] = errors.market_closed()
            else:
                todo.append(i)
        return todo

    def _rows(
        self,
        orders: list[ValidOrder],
        accepted: list[int],
        locks: dict[int, int],
        checked: list[asyncpg.Record],
        ts: int,
        results: list[Any],
    ) -> _Rows:
        """The rows that place the `accepted` orders with the funds `locks`: orders,
        ORDER_LOCK journals and their entries, commands; fills `results` with the orders'
        rows (as dicts)."""
        rows = _Rows()
        columns, entries = rows.columns, rows.entries
        for i in accepted:
            order_id, journal_id = checked[i]["order_id"], checked[i]["journal_id"]
            order, amount = orders[i], locks[i]
            key = (order.user_id, order.locked_asset)
            rows.deltas[key] = rows.deltas.get(key, 0) + amount
            config = self.markets[order.market].config
            command = OrderCreate(
                market=config.symbol, ts=ts, order_id=order_id,
                client_order_id=order.client_order_id, user_id=order.user_id,
                side=order.side, type=order.type, time_in_force=order.time_in_force,
                price=order.price, quantity=order.quantity,
                quote_order_qty=order.quote_order_qty, stop_price=order.stop_price,
                expire_at=order.expire_at, stp_mode=order.stp_mode, locked=amount,
            )  # fmt: skip
            rows.commands.append((order.market, order_id, encode(command)))
            row = (
                order_id, order.market, order.user_id, order.client_order_id,
                order.side.value, order.type.value, order.time_in_force.value, order.price,
                order.quantity, order.quote_order_qty, order.stop_price, order.expire_at,
                order.stp_mode.value, "PENDING", order.locked_asset, amount, amount, ts,
            )  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            journal = order_lock_journal(
                f"order:{order_id}", order.user_id, order.locked_asset, amount
            )
            rows.journal_ids.append(journal_id)
            rows.references.append(journal.reference)
            for p in journal.postings:
                for column, value in zip(
                    entries, (journal_id, p.user_id, p.bucket.value, p.asset, p.amount), strict=True
                ):
                    column.append(value)
            results[i] = dict(zip(ORDER_COLUMNS, row, strict=True))
        return rows

    # ------------------------------------------------------------------ cancelling

    async def cancel(
        self, user_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> dict[str, Any]:
        """Send ORDER_CANCEL through the engine (after the order's create, in command
        order, so a not-yet-published PENDING order is cancelled without a race)."""
        config = self.market_for_symbol(symbol)
        async with self.pool.acquire() as conn, conn.transaction():
            seq = await _lock_market_for_command(conn, config.name)
            row = await _find_order(
                conn, user_id, config.name, order_id, client_order_id, open_only=True
            )
            command = OrderCancel(
                market=config.symbol, ts=self.clock_ms(), user_id=user_id,
                order_id=row["id"], client_order_id=None,
            )  # fmt: skip
            await _append_command(conn, config.name, seq, "ORDER_CANCEL", row["id"], command)
            return row

    async def cancel_all(self, user_id: int, symbol: str) -> list[dict[str, Any]]:
        """Send CANCEL_ALL for the user's orders in this market; returns them as they are."""
        config = self.market_for_symbol(symbol)
        async with self.pool.acquire() as conn, conn.transaction():
            seq = await _lock_market_for_command(conn, config.name)
            rows = await conn.fetch(
                f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE user_id = $1"
                " AND market = $2 AND status = ANY($3::text[]) ORDER BY id",
                user_id, config.name, list(OPEN_STATUSES),
            )  # fmt: skip
            if not rows:
                raise errors.unknown_order()
            command = CancelAll(market=config.symbol, ts=self.clock_ms(), user_id=user_id)
            await _append_command(conn, config.name, seq, "CANCEL_ALL", None, command)
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ amending

    async def amend(self, amend: ValidAmend) -> dict[str, Any]:
        """Send ORDER_AMEND through the engine, in ONE transaction with the funds it needs.

        A quantity or price increase locks the difference between what the order's new
        remaining quantity needs at its new price and what the order holds (available →
        locked, with an ORDER_LOCK journal; the order's ``locked`` and ``locked_remaining``
        grow by as much), carried to the engine as ``additional_locked``; a decrease locks
        nothing. The engine answers ORDER_UPDATED (cause AMEND: the excess is ``released``)
        or COMMAND_REJECTED (``released`` returns the additional lock), which settlement
        applies. Returns the order as stored (its price and quantity change when the
        engine's answer is settled) and the additional lock.

        Rows are locked in the one order (`cex.infra.transactions`): the order, its
        balance, then the market.
        """
        market = self.markets.get(amend.market)
        if market is None:
            raise errors.invalid_symbol()
        config = market.config
        async with self.pool.acquire() as conn, conn.transaction():
            found = await _find_order(
                conn, amend.user_id, config.name, amend.order_id, amend.client_order_id,
                open_only=True,
            )  # fmt: skip
            locks = RowLocks(conn)
            locked = await locks.orders(
                [found["id"]],
                f"{', '.join(ORDER_COLUMNS)}, filled_qty, cumulative_quote, reason",
                where="status = ANY($2::text[])",
                args=(list(OPEN_STATUSES),),
            )
            if not locked:  # it closed meanwhile
                raise errors.unknown_order()
            row = dict(locked[0])
            additional = amend_lock(
                amend, side=Side(row["side"]), order_type=OrderType(row["type"]),
                price=row["price"], quantity=row["quantity"], filled=int(row["filled_qty"]),
                locked_remaining=int(row["locked_remaining"]), config=config,
            )  # fmt: skip
            asset = row["locked_asset"]
            if additional and row["status"] == "PENDING":
                # The lifecycle worker may still expire a PENDING order whose create was
                # never published, releasing all it holds; an additional lock sent after
                # it would then be released a second time by the engine's refusal.
                raise errors.amend_rejected("the order is not open yet; retry")
            if additional:
                balance = (await locks.balances([(amend.user_id, asset)])).get(
                    (amend.user_id, asset)
                )
                if balance is None or balance[0] < additional:
                    raise errors.insufficient_balance()
            status, seq = await _lock_market_status(locks, config.name)
            decrease_only = amend.new_price in (None, row["price"]) and (
                amend.new_quantity is None or amend.new_quantity < row["quantity"]
            )
            if status != "TRADING" and not (status == "CANCEL_ONLY" and decrease_only):
                raise errors.market_closed()
            ts = self.clock_ms()
            if additional:
                await conn.execute(
                    "UPDATE balances SET available = available - $3, locked = locked + $3"
                    " WHERE user_id = $1 AND asset = $2",
                    amend.user_id, asset, additional,
                )  # fmt: skip
                journal = order_lock_journal(
                    amend_lock_reference(row["id"], seq), amend.user_id, asset, additional
                )
                await conn.execute(
                    "WITH j AS (INSERT INTO journals (kind, reference) VALUES ($1, $2)"
                    " RETURNING id)"
                    " INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)"
                    " SELECT j.id, e.* FROM j, unnest($3::bigint[], $4::text[], $5::text[],"
                    " $6::numeric[]) e",
                    journal.kind.value, journal.reference,
                    [p.user_id for p in journal.postings],
                    [p.bucket.value for p in journal.postings],
                    [p.asset for p in journal.postings],
                    [p.amount for p in journal.postings],
                )  # fmt: skip
                await conn.execute(
                    "UPDATE orders SET locked = locked + $2, locked_remaining ="
                    " locked_remaining + $2, updated_at = now() WHERE id = $1",
                    row["id"], additional,
                )  # fmt: skip
                row["locked"] = int(row["locked"]) + additional
                row["locked_remaining"] = int(row["locked_remaining"]) + additional
            command = OrderAmend(
                market=config.symbol, ts=ts, user_id=amend.user_id, order_id=row["id"],
                new_quantity=amend.new_quantity, new_price=amend.new_price,
                additional_locked=additional,
            )  # fmt: skip
            await _append_command(conn, config.name, seq, "ORDER_AMEND", row["id"], command)
            row["additional_locked"] = additional
            return row

    # ------------------------------------------------------------------ queries

    async def get(
        self, user_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> dict[str, Any]:
        """The user's order in this market by id, else by client order id (its open order,
        else the most recent one that had the id)."""
        config = self.market_for_symbol(symbol)
        async with self.pool.acquire() as conn:
            return await _find_order(conn, user_id, config.name, order_id, client_order_id)

    async def open_orders(self, user_id: int, symbol: str | None) -> list[dict[str, Any]]:
        markets = [self.market_for_symbol(symbol).name] if symbol else list(self.markets)
        rows = await self.pool.fetch(
            f"SELECT {', '.join(ORDER_COLUMNS)}, filled_qty, cumulative_quote, reason"
            " FROM orders WHERE user_id = $1 AND market = ANY($2::text[])"
            " AND status = ANY($3::text[]) ORDER BY id",
            user_id, markets, list(OPEN_STATUSES),
        )  # fmt: skip
        return [dict(r) for r in rows]


async def _write_commands(
    conn: asyncpg.Connection, next_seq: dict[str, int], commands: list[tuple[str, int, bytes]]
) -> None:
    """Append the ORDER_CREATE commands to the outbox, numbered from each market's
    `next_seq` in batch order (the market rows locked by the caller)."""
    seqs: list[int] = []
    used: dict[str, int] = {}
    for market, _, _ in commands:
        n = used.get(market, 0)
        seqs.append(next_seq[market] + n)
        used[market] = n + 1
    await conn.execute(
        _WRITE_COMMANDS,
        list(used), list(used.values()),
        [c[0] for c in commands], seqs, [c[1] for c in commands], [c[2] for c in commands],
    )  # fmt: skip


def _fits_one_statement(batch: Sequence[_Pending]) -> bool:
    """Whether the batch may be placed by `_PLACE`: every order locks a known amount (not
    all that is available) and no client order id of a user comes twice."""
    ids = {(p.order.user_id, p.order.client_order_id) for p in batch}
    return len(ids) == len(batch) and all(p.order.lock != LOCK_ALL_AVAILABLE for p in batch)


def _answer(batch: Sequence[_Pending], outcomes: Sequence[Outcome | Exception]) -> None:
    for pending, outcome in zip(batch, outcomes, strict=True):
        if pending.future.done():
            continue
        if isinstance(outcome, Exception):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)


def _isolatable(exc: Exception) -> bool:
    """Whether a failed batch may be retried order by order: its transaction certainly
    rolled back. Not after a lost connection, where the commit may have happened."""
    return not is_connection_lost(exc)


async def _find_order(
    conn: asyncpg.Connection,
    user_id: int,
    market: str,
    order_id: int | None,
    client_order_id: str | None,
    *,
    open_only: bool = False,
) -> dict[str, Any]:
    """One order of `user_id` in `market`, never anyone else's: by `order_id` (which must
    then also carry `client_order_id` when both are given), else by `client_order_id`,
    preferring the open order that has it, else the most recent."""
    if order_id is None and not client_order_id:
        raise errors.mandatory("orderId' or 'origClientOrderId")
    if not user_id:
        raise errors.illegal_value("user_id")
    row = await conn.fetchrow(
        f"SELECT {', '.join(ORDER_COLUMNS)}, filled_qty, cumulative_quote, reason FROM orders"
        " WHERE user_id = $1 AND market = $2"
        " AND ($3::bigint IS NULL OR id = $3) AND ($4::text IS NULL OR client_order_id = $4)"
        " AND (NOT $5 OR status = ANY($6::text[]))"
        " ORDER BY status = ANY($6::text[]) DESC, id DESC LIMIT 1",
        user_id, market, order_id, client_order_id or None, open_only, list(OPEN_STATUSES),
    )  # fmt: skip
    if row is None:
        raise errors.unknown_order()
    return dict(row)


async def _lock_market_status(locks: RowLocks, market: str) -> tuple[str, int]:
    rows = await locks.markets([market], "status, next_command_seq")
    if not rows:
        raise errors.invalid_symbol()
    return str(rows[0]["status"]), int(rows[0]["next_command_seq"])


async def _lock_market_for_command(conn: asyncpg.Connection, market: str) -> int:
    """The market's next command number, its row locked (the one lock of a cancel)."""
    _, seq = await _lock_market_status(RowLocks(conn), market)
    return seq


async def _append_command(
    conn: asyncpg.Connection, market: str, seq: int, kind: str, order_id: int | None, command: Any
) -> None:
    await conn.execute(
        "INSERT INTO outbox (market, command_seq, kind, order_id, payload)"
        " VALUES ($1, $2, $3, $4, $5)",
        market, seq, kind, order_id, encode(command),
    )  # fmt: skip
    await conn.execute(
        "UPDATE markets SET next_command_seq = next_command_seq + 1 WHERE name = $1", market
    )
    await conn.execute("SELECT pg_notify('cex_outbox', '')")

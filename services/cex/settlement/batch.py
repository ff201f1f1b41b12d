"""Apply a batch of engine events to the database in ONE transaction.

Per batch::

    1. lock the markets' progress rows      settlement_progress, by market name
    2. drop what is already applied          seq <= last_seq; a gap is an error
    3. lock the orders the events name       orders, by id                 (FOR UPDATE)
    4. replay the events                     cex.core.settlement.replay: state machine,
                                             funds, ledger journals (pure)
    5. write what needs no new lock          journal ids, then orders and progress
                                             (last_seq, next_offset): one UPDATE … FROM
                                             unnest (each payload encoded while the
                                             statement before it runs)
                                             trades, journals, entries: text COPY
                                             prevented matches: COPY (references checked
                                             once per key and statement, migration 0012)
    6. lock and update the balances          one statement: locked by (user_id, asset)
                                             (FOR UPDATE), then updated; a first-time
                                             receiver's row inserted after (rarely)
    7. markets                               status (MARKET_STATUS_CHANGED), then commit

The balance rows are the ones the trading API locks too (its batches lock their users'
funds): settlement takes them last, so it holds them only for their statement and the
commit, never while it writes trades and the ledger.

Amounts travel as text (``cex.settlement.pgtext``: asyncpg's binary ``numeric`` is slow).

Idempotency: the progress row is written in the same transaction as the effects, so a
batch is applied entirely or not at all, and a redelivered event (seq <= last_seq) is
skipped. Two settlement processes on the same market serialise on the progress row.

Locks follow the one order of ``cex.infra.transactions``: orders, balances, markets. Every
money rule is ``cex.core.settlement``'s; this module loads rows and writes the result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import asyncpg

from cex.core.events import Event, OrderStatus, Side
from cex.core.ledger import Journal, JournalKind, balance_deltas
from cex.core.settlement import OrderState, check_leftovers, order_ids_of, replay
from cex.infra.registry import MARKETS_CHANNEL
from cex.infra.transactions import RowLocks
from cex.settlement.errors import InconsistentDatabase, SequenceGap, UnknownMarket
from cex.settlement.pgtext import copy_text, text_copy, texts

T = TypeVar("T")

#: From this many ledger entries on, a batch's trades, journals and entries are written by
#: COPY (two round trips each, and Postgres's bulk insert: 7,000 entries 14.6 ms, against
#: 27.8 ms as one INSERT … unnest); below it, with the orders and the progress, in two
#: statements (a batch at a steady rate has tens of rows: its round trips are its cost).
COPY_FROM_ENTRIES = 1000

__all__ = ["BatchResult", "Delivered", "MarketInfo", "Settler", "load_fee_user", "load_markets"]


@dataclass(frozen=True)
class MarketInfo:
    """What settlement needs from the registry about one market."""

    name: str  # DNS name, the key of markets / orders / trades / settlement_progress
    symbol: str  # the events' ``market``
    base: str
    quote: str
    partition: int


class Delivered(NamedTuple):
    """One event as read from Kafka, with its bytes there (its own encoding, which its
    publication reuses; empty when not at hand)."""

    partition: int
    offset: int
    event: Event
    raw: bytes = b""


@dataclass
class BatchResult:
    applied: int = 0  # events applied
    skipped: int = 0  # events already applied before (redelivered)
    trades: int = 0
    journals: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)  # by market name, after
    next_offset: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # phase → seconds
    #: The balances the batch changed, as its transaction left them (user data streams):
    #: (user_id, asset) → (available, locked).
    balances: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    #: The orders the batch changed, as written: id → (user_id, status, filled_qty,
    #: cumulative_quote).
    orders: dict[int, tuple[int, str, int, int]] = field(default_factory=dict)


#: The order columns settlement reads and writes (cex.core.settlement.OrderState).
#: Amounts come back as text (``int()`` of it is exact; a binary ``numeric`` is decoded
#: through ``Decimal``, several times slower).
ORDER_STATE_COLUMNS = (
    "id, market, user_id, side, status, locked_asset,"
    " locked_remaining::text AS locked_remaining, filled_qty,"
    " cumulative_quote::text AS cumulative_quote, reason, price, quantity"
)


#: Enum members by stored value (a dict lookup; calling the enum costs a microsecond).
_SIDES = {side.value: side for side in Side}
_STATUSES = {status.value: status for status in OrderStatus}


def order_state(row: asyncpg.Record) -> OrderState:
    return OrderState(
        id=row["id"], market=row["market"], user_id=row["user_id"], side=_SIDES[row["side"]],
        status=_STATUSES[row["status"]], locked_asset=row["locked_asset"],
        locked_remaining=int(row["locked_remaining"]), filled_qty=row["filled_qty"],
        cumulative_quote=int(row["cumulative_quote"]), reason=row["reason"],
        price=row["price"], quantity=row["quantity"],
    )  # fmt: skip


async def load_markets(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, MarketInfo]:
    """Every market of the registry, by symbol (what events carry)."""
    rows = await conn.fetch("SELECT name, symbol, base, quote, partition FROM markets")
    return {
        r["symbol"]: MarketInfo(r["name"], r["symbol"], r["base"], r["quote"], r["partition"])
        for r in rows
    }


async def load_fee_user(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The id of the fee account (the one user of kind FEE)."""
    ids = await conn.fetch("SELECT id FROM users WHERE kind = 'FEE' ORDER BY id")
    if len(ids) != 1:
        raise InconsistentDatabase(f"expected exactly one FEE user, found {len(ids)}")
    return int(ids[0]["id"])


class Settler:
    """Applies batches of events; holds the registry and the fee account, no state."""

    def __init__(
        self,
        markets: dict[str, MarketInfo],
        fee_user_id: int,
        copy_from_entries: int = COPY_FROM_ENTRIES,
    ) -> None:
        self.markets = markets
        self.fee_user_id = fee_user_id
        self.copy_from_entries = copy_from_entries

    def market_of(self, delivered: Delivered) -> MarketInfo:
        market = self.markets.get(delivered.event.market)
        if market is None:
            raise UnknownMarket(f"event for unknown market {delivered.event.market!r}")
        if market.partition != delivered.partition:
            raise UnknownMarket(
                f"event of {market.symbol} in partition {delivered.partition},"
                f" the market's is {market.partition}"
            )
        return market

    async def progress(self, conn: asyncpg.Connection) -> dict[str, tuple[int, int]]:
        """``market name → (last_seq, next_offset)`` of every market settled so far."""
        rows = await conn.fetch("SELECT market, last_seq, next_offset FROM settlement_progress")
        return {r["market"]: (r["last_seq"], r["next_offset"]) for r in rows}

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[Delivered]) -> BatchResult:
        """Apply ``batch`` (in offset order per partition) in one transaction."""
        result = BatchResult()
        if not batch:
            return result
        async with conn.transaction():
            await self._apply(conn, batch, result)
        return result

    async def _apply(
        self, conn: asyncpg.Connection, batch: Sequence[Delivered], result: BatchResult
    ) -> None:
        t0 = time.perf_counter()
        by_name: dict[str, MarketInfo] = {}
        for delivered in batch:
            market = self.market_of(delivered)
            by_name[market.name] = market
        names = sorted(by_name)

        # 1. progress rows, locked (created for a market settled the first time)
        rows = await conn.fetch(_LOCK_PROGRESS, names)
        if len(rows) < len(names):
            await conn.execute(
                "INSERT INTO settlement_progress (market, last_seq, next_offset)"
                " SELECT unnest($1::text[]), 0, 0 ON CONFLICT (market) DO NOTHING",
                names,
            )
            rows = await conn.fetch(_LOCK_PROGRESS, names)
        last_seq = {r["market"]: int(r["last_seq"]) for r in rows}
        next_offset = {r["market"]: int(r["next_offset"]) for r in rows}

        # 2. what is new; gaps are errors
        todo: list[tuple[MarketInfo, Event]] = []
        for delivered in batch:
            event = delivered.event
            market = self.markets[event.market]
            seq = last_seq[market.name]
            next_offset[market.name] = max(next_offset[market.name], delivered.offset + 1)
            if event.seq <= seq:
                result.skipped += 1
                continue
            if event.seq != seq + 1:
                raise SequenceGap(
                    f"{market.name}: event seq {event.seq} at offset {delivered.offset}"
                    f" after last settled seq {seq}"
                )
            last_seq[market.name] = event.seq
            todo.append((market, event))
        result.last_seq = last_seq
        result.next_offset = next_offset

        # 3. the orders, locked
        locks = RowLocks(conn)
        order_ids = order_ids_of(event for _, event in todo)
        orders: dict[int, OrderState] = {}
        if order_ids:
            for row in await locks.orders(order_ids, ORDER_STATE_COLUMNS):
                orders[row["id"]] = order_state(row)
        t1 = time.perf_counter()

        # 4. replay (the core's rules)
        done = replay(todo, orders, self.fee_user_id)
        if done.leftovers:
            check_leftovers(done.leftovers, await _amend_locks(conn, done.leftovers))
        journals = done.journals
        trade_rows = [
            (
                market.name, e.trade_id, e.price, e.qty, e.quote_amount, e.base_amount,
                e.taker_side.value, e.maker_order_id, e.taker_order_id, e.maker_user_id,
                e.taker_user_id, e.maker_fee, e.taker_fee, e.seq, e.ts,
            )
            for market, e in done.trades
        ]  # fmt: skip
        prevented_rows = [
            (
                market.name, e.seq, e.taker_user_id, e.taker_order_id, e.maker_order_id,
                e.price, e.prevented_qty, e.stp_mode.value, e.ts,
            )
            for market, e in done.prevented
        ]  # fmt: skip
        changed = sorted(done.changed)
        order_rows = [orders[i] for i in changed]
        deltas = balance_deltas(journals)
        t2 = time.perf_counter()

        # 5. the writes that lock nothing new
        progress = (names, [last_seq[n] for n in names], [next_offset[n] for n in names])
        if sum(len(j.postings) for j in journals) < self.copy_from_entries:
            await _write_small(conn, order_rows, progress, trade_rows, journals)
        else:
            await _write_large(conn, order_rows, progress, trade_rows, journals)
        result.orders = {
            o.id: (o.user_id, o.status.value, o.filled_qty, o.cumulative_quote) for o in order_rows
        }
        t_writes = time.perf_counter()
        if prevented_rows:
            await conn.copy_records_to_table(
                "prevented_matches", records=prevented_rows, columns=_PREVENTED_COLUMNS
            )
        t_prevented = time.perf_counter()

        # 6. balances, locked in (user_id, asset) order and updated in one statement, the
        # last but the rare market status: held only for it and the commit. The trading
        # API locks the same rows for its batches; every statement run while holding them
        # made its batches wait, and settlement's next batch behind those.
        if deltas:
            result.balances = await _write_balances(conn, deltas)
        if done.statuses:
            # The registry's status follows the engine's; a deleted market stays deleted.
            await locks.markets(done.statuses)
            changed_markets = await conn.fetch(
                "UPDATE markets m SET status = s.status, updated_at = now()"
                " FROM unnest($1::text[], $2::text[]) s(name, status)"
                " WHERE m.name = s.name AND m.status NOT IN (s.status, 'DELETED')"
                " RETURNING m.name",
                list(done.statuses),
                [status.value for status in done.statuses.values()],
            )
            for row in changed_markets:
                await conn.execute("SELECT pg_notify($1, $2)", MARKETS_CHANNEL, row["name"])
        t4 = time.perf_counter()
        result.applied = len(todo)
        result.trades = len(trade_rows)
        result.journals = len(journals)
        result.timings = {
            "db_lock_read": t1 - t0,
            "replay": t2 - t1,
            "orders_trades_ledger": t_writes - t2,
            "prevented": t_prevented - t_writes,
            "balances": t4 - t_prevented,
        }


# The progress rows (parameters 9-11) and the changed orders (parameters 1-8), both locked
# already: the two statements below share them.
_PROGRESS_UPDATE = """\
    UPDATE settlement_progress p SET last_seq = u.last_seq, next_offset = u.next_offset
    FROM unnest($9::text[], $10::bigint[], $11::bigint[]) u(market, last_seq, next_offset)
    WHERE p.market = u.market
"""
_ORDERS_UPDATE = """\
UPDATE orders o SET status = u.status, locked_remaining = u.locked_remaining,
    filled_qty = u.filled_qty, cumulative_quote = u.cumulative_quote, reason = u.reason,
    price = u.price, quantity = u.quantity, updated_at = now()
FROM unnest($1::bigint[], $2::text[], $3::text[]::numeric[], $4::bigint[],
            $5::text[]::numeric[], $6::text[], $7::bigint[], $8::bigint[])
     u(id, status, locked_remaining, filled_qty, cumulative_quote, reason, price, quantity)
WHERE o.id = u.id
"""

_INDENTED_ORDERS_UPDATE = "".join("    " + line for line in _ORDERS_UPDATE.splitlines(True))

#: The changed orders and the progress rows, in one statement.
_WRITE_ORDERS_AND_PROGRESS = f"""
WITH progress AS (
{_PROGRESS_UPDATE})
{_ORDERS_UPDATE}"""

#: :data:`_WRITE_ORDERS_AND_PROGRESS`, and the trades, journals and entries of a small
#: batch (event amounts fit 64 bits: the codec's; ledger amounts travel as text).
_WRITE_SMALL = f"""
WITH progress AS (
{_PROGRESS_UPDATE}), changed AS (
{_INDENTED_ORDERS_UPDATE}), traded AS (
    INSERT INTO trades (market, trade_id, price, qty, quote_amount, base_amount, taker_side,
                        maker_order_id, taker_order_id, maker_user_id, taker_user_id,
                        maker_fee, taker_fee, seq, ts)
    SELECT * FROM unnest($12::text[], $13::bigint[], $14::bigint[], $15::bigint[],
                         $16::bigint[], $17::bigint[], $18::text[], $19::bigint[],
                         $20::bigint[], $21::bigint[], $22::bigint[], $23::bigint[],
                         $24::bigint[], $25::bigint[], $26::bigint[])
), journal AS (
    INSERT INTO journals (id, kind, reference)
    SELECT * FROM unnest($27::bigint[], $28::text[], $29::text[])
)
INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)
SELECT * FROM unnest($30::bigint[], $31::bigint[], $32::text[], $33::text[],
                     $34::text[]::numeric[])
"""

#: Numbers for a batch's journals (their ids are in the entries' rows).
_NEXT_JOURNAL_IDS = "SELECT nextval('journals_id_seq') FROM generate_series(1, $1)"

#: The progress rows of the batch's markets, locked in name order.
_LOCK_PROGRESS = (
    "SELECT market, last_seq, next_offset FROM settlement_progress"
    " WHERE market = ANY($1::text[]) ORDER BY market FOR UPDATE"
)

#: Lock the balances to change in (user_id, asset) order (cex.infra.transactions' order:
#: the CTE's ORDER BY … FOR UPDATE locks every row before the UPDATE writes it) and apply
#: the deltas, in one statement; returns the rows as they are after it.
_UPDATE_BALANCES = """
WITH d AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]::numeric[],
                         $4::text[]::numeric[]) d(user_id, asset, available, locked)
), held AS (
    SELECT b.user_id, b.asset FROM balances b JOIN d USING (user_id, asset)
    ORDER BY b.user_id, b.asset FOR UPDATE OF b
)
UPDATE balances b SET available = b.available + d.available, locked = b.locked + d.locked
FROM held JOIN d USING (user_id, asset)
WHERE b.user_id = held.user_id AND b.asset = held.asset
RETURNING b.user_id, b.asset, b.available::text, b.locked::text
"""

#: The balance rows of first-time receivers (in key order), with their credit; a row a
#: concurrent deposit created meanwhile gets the credit added.
_CREATE_BALANCES = """
INSERT INTO balances AS b (user_id, asset, available, locked)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]::numeric[], $4::text[]::numeric[])
ORDER BY 1, 2
ON CONFLICT (user_id, asset) DO UPDATE
    SET available = b.available + excluded.available, locked = b.locked + excluded.locked
RETURNING b.user_id, b.asset, b.available::text, b.locked::text
"""


async def _write_balances(
    conn: asyncpg.Connection, deltas: dict[tuple[int, str], tuple[int, int]]
) -> dict[tuple[int, str], tuple[int, int]]:
    """Apply ``(user_id, asset) → (available delta, locked delta)``; returns each changed
    row's ``(available, locked)`` after it. A missing row is created for a receiver; a
    debit from a missing row is an :class:`InconsistentDatabase`."""
    keys = sorted(deltas)
    rows = await conn.fetch(
        _UPDATE_BALANCES,
        [k[0] for k in keys],
        [k[1] for k in keys],
        texts(deltas[k][0] for k in keys),
        texts(deltas[k][1] for k in keys),
    )
    after = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}
    if len(after) < len(keys):
        missing = [k for k in keys if k not in after]
        debited = [k for k in missing if min(deltas[k]) < 0]
        if debited:
            raise InconsistentDatabase(f"no balance row to debit for {debited[:5]}")
        rows = await conn.fetch(
            _CREATE_BALANCES,
            [k[0] for k in missing],
            [k[1] for k in missing],
            texts(deltas[k][0] for k in missing),
            texts(deltas[k][1] for k in missing),
        )
        after.update(((r[0], r[1]), (int(r[2]), int(r[3]))) for r in rows)
    return after


async def _while_running(statement: asyncio.Future[Any] | None, encode: Callable[[], T]) -> T:
    """``encode()`` while ``statement`` (sent, not awaited yet) runs in the database; then
    its answer (an error of either is raised, after the statement is done)."""
    if statement is None:
        return encode()
    await asyncio.sleep(0)  # it sends its statement
    try:
        return encode()
    finally:
        await statement


Progress = tuple[list[str], list[int], list[int]]  # markets, last seq, next offset


async def _write_small(
    conn: asyncpg.Connection,
    orders: list[OrderState],
    progress: Progress,
    trades: Sequence[Sequence[int | str]],
    journals: list[Journal],
) -> None:
    """The writes of a batch of a few rows: journal ids, then everything in one statement."""
    journal_ids: list[int] = []
    if journals:
        journal_ids = [r[0] for r in await conn.fetch(_NEXT_JOURNAL_IDS, len(journals))]
    entries = _entry_rows(journal_ids, journals)
    await conn.execute(
        _WRITE_SMALL,
        *_order_columns(orders),
        *progress,
        *([list(column) for column in zip(*trades, strict=True)] if trades else [[]] * 15),
        journal_ids,
        [j.kind for j in journals],
        [j.reference for j in journals],
        [e[0] for e in entries],
        [e[1] for e in entries],
        [e[2] for e in entries],
        [e[3] for e in entries],
        [str(e[4]) for e in entries],
    )


async def _write_large(
    conn: asyncpg.Connection,
    orders: list[OrderState],
    progress: Progress,
    trades: Sequence[Sequence[int | str]],
    journals: list[Journal],
) -> None:
    """The writes of a big batch: COPY, each payload encoded while the statement before it
    runs in the database (the text payloads are a tenth of the batch's CPU)."""
    numbering = asyncio.ensure_future(conn.fetch(_NEXT_JOURNAL_IDS, len(journals)))
    trades_copy = await _while_running(numbering, lambda: text_copy(trades, len(_TRADE_COLUMNS)))
    journal_ids = [r[0] for r in numbering.result()]
    updating = asyncio.ensure_future(
        conn.execute(_WRITE_ORDERS_AND_PROGRESS, *_order_columns(orders), *progress)
    )
    journals_copy, entries_copy = await _while_running(
        updating, lambda: _ledger_copies(journal_ids, journals)
    )
    if trades:
        await copy_text(conn, "trades", _TRADE_COLUMNS, trades_copy)
    if journals:
        await copy_text(conn, "journals", _JOURNAL_COLUMNS, journals_copy)
        await copy_text(conn, "ledger_entries", _ENTRY_COLUMNS, entries_copy)


def _order_columns(rows: list[OrderState]) -> list[list[Any]]:
    """The orders as :data:`_WRITE_ORDERS_AND_PROGRESS`'s first eight parameters."""
    return [
        [o.id for o in rows],
        [o.status.value for o in rows],
        texts(o.locked_remaining for o in rows),
        [o.filled_qty for o in rows],
        texts(o.cumulative_quote for o in rows),
        [o.reason for o in rows],
        [o.price for o in rows],
        [o.quantity for o in rows],
    ]


def _entry_rows(
    journal_ids: list[int], journals: list[Journal]
) -> list[tuple[int, int | None, str, str, int]]:
    """The journals' postings as ledger entry rows."""
    # (Bucket is a str enum: written as its value.)
    return [
        (journal_id, *posting)
        for journal_id, journal in zip(journal_ids, journals, strict=True)
        for posting in journal.postings
    ]


def _ledger_copies(journal_ids: list[int], journals: list[Journal]) -> tuple[bytes, bytes]:
    """The journals and their entries as COPY payloads."""
    journals_copy = text_copy(
        [(i, j.kind, j.reference) for i, j in zip(journal_ids, journals, strict=True)],
        len(_JOURNAL_COLUMNS),
    )
    return journals_copy, text_copy(_entry_rows(journal_ids, journals), len(_ENTRY_COLUMNS))


async def _amend_locks(conn: asyncpg.Connection, orders: Iterable[int]) -> dict[int, int]:
    """Per order, the funds its amends locked (their ORDER_LOCK journals)."""
    rows = await conn.fetch(
        "SELECT o.id, coalesce(sum(e.amount), 0) AS locked FROM unnest($1::bigint[]) o(id)"
        " JOIN journals j ON j.kind = $2 AND j.reference LIKE 'amend:' || o.id || ':%'"
        " JOIN ledger_entries e ON e.journal_id = j.id AND e.bucket = 'LOCKED'"
        " GROUP BY o.id",
        sorted(orders),
        JournalKind.ORDER_LOCK.value,
    )
    return {r["id"]: int(r["locked"]) for r in rows}


_TRADE_COLUMNS = (
    "market", "trade_id", "price", "qty", "quote_amount", "base_amount", "taker_side",
    "maker_order_id", "taker_order_id", "maker_user_id", "taker_user_id", "maker_fee",
    "taker_fee", "seq", "ts",
)  # fmt: skip

_JOURNAL_COLUMNS = ("id", "kind", "reference")
_ENTRY_COLUMNS = ("journal_id", "user_id", "bucket", "asset", "amount")

_PREVENTED_COLUMNS = (
    "market", "prevented_match_id", "user_id", "taker_order_id", "maker_order_id", "price",
    "prevented_qty", "stp_mode", "ts",
)  # fmt: skip

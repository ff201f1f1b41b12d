"""Apply a batch of engine events to the database in ONE transaction.

Per batch::

    1. lock the markets' progress rows      settlement_progress, by market name
    2. drop what is already applied          seq <= last_seq; a gap is an error
    3. lock the orders the events name       orders, by id                 (FOR UPDATE)
    4. replay the events in Python           state machine, funds, ledger postings
    5. lock the balances to change           balances, by (user_id, asset) (FOR UPDATE)
    6. write                                 balances: one UPDATE … FROM unnest
                                             orders:   one UPDATE … FROM unnest
                                             trades, journals, entries,
                                             prevented matches: COPY
                                             progress: last_seq, next_offset

Idempotency: the progress row is written in the same transaction as the effects, so a
batch is applied entirely or not at all, and a redelivered event (seq <= last_seq) is
skipped. Two settlement processes on the same market serialise on the progress row.

A MATCH_PREVENTED (self-trade prevention) moves no money and changes no order: it becomes
one ``prevented_matches`` row (id = its seq), checked against the orders it names.

Lock order: orders before balances, each sorted. The trading API locks markets then
balances and only *inserts* orders, so no cycle can form with it.

Locked funds of an order move with the same deltas as the ``LOCKED`` balance they come
from: a trade spends ``quote_amount`` (buyer) or ``base_amount`` (seller), an event's
``released`` returns that much. So "locked == sum of open orders' locked_remaining" holds
by construction. The engine's own ``locked_remaining`` is checked against the result: the
database may hold *more* (an amend's additional lock the trading API has added and the
engine has not seen yet) but never less.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import asyncpg

from cex.core.events import (
    CommandRejected,
    Event,
    MatchPrevented,
    OrderCancelled,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderUpdated,
    Side,
    TradeExecuted,
    UpdateCause,
)
from cex.core.ledger import Journal, balance_deltas, check_balanced, journal_for, locked_asset
from cex.core.orders import TERMINAL, transition, trigger_of
from cex.settlement.errors import (
    InconsistentEvent,
    SequenceGap,
    UnknownMarket,
    UnknownOrder,
)

__all__ = ["BatchResult", "Delivered", "MarketInfo", "Settler", "load_fee_user", "load_markets"]

OrderEvent = OrderOpened | OrderUpdated | OrderCancelled | OrderExpired | OrderRejected
_ORDER_EVENTS = (OrderOpened, OrderUpdated, OrderCancelled, OrderExpired, OrderRejected)


@dataclass(frozen=True)
class MarketInfo:
    """What settlement needs from the registry about one market."""

    name: str  # DNS name, the key of markets / orders / trades / settlement_progress
    symbol: str  # the events' ``market``
    base: str
    quote: str
    partition: int


class Delivered(NamedTuple):
    """One event as read from Kafka."""

    partition: int
    offset: int
    event: Event


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


class _Order:
    __slots__ = (
        "cumulative_quote",
        "filled_qty",
        "id",
        "locked_asset",
        "locked_remaining",
        "market",
        "price",
        "quantity",
        "reason",
        "side",
        "status",
        "user_id",
    )

    def __init__(self, row: asyncpg.Record) -> None:
        self.id: int = row["id"]
        self.market: str = row["market"]
        self.user_id: int = row["user_id"]
        self.side = Side(row["side"])
        self.status = OrderStatus(row["status"])
        self.locked_asset: str = row["locked_asset"]
        self.locked_remaining = int(row["locked_remaining"])
        self.filled_qty: int = row["filled_qty"]
        self.cumulative_quote = int(row["cumulative_quote"])
        self.reason: str | None = row["reason"]
        self.price: int | None = row["price"]
        self.quantity: int | None = row["quantity"]


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
        raise InconsistentEvent(f"expected exactly one FEE user, found {len(ids)}")
    return int(ids[0]["id"])


class Settler:
    """Applies batches of events; holds the registry and the fee account, no state."""

    def __init__(self, markets: dict[str, MarketInfo], fee_user_id: int) -> None:
        self.markets = markets
        self.fee_user_id = fee_user_id

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

        # 1. progress rows, locked
        await conn.execute(
            "INSERT INTO settlement_progress (market, last_seq, next_offset)"
            " SELECT unnest($1::text[]), 0, 0 ON CONFLICT (market) DO NOTHING",
            names,
        )
        rows = await conn.fetch(
            "SELECT market, last_seq, next_offset FROM settlement_progress"
            " WHERE market = ANY($1::text[]) ORDER BY market FOR UPDATE",
            names,
        )
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
        order_ids: set[int] = set()
        for _, event in todo:
            if isinstance(event, TradeExecuted | MatchPrevented):
                order_ids.add(event.maker_order_id)
                order_ids.add(event.taker_order_id)
            elif isinstance(event, _ORDER_EVENTS):
                order_ids.add(event.order_id)
            elif isinstance(event, CommandRejected) and event.released:
                if event.order_id is None:
                    raise InconsistentEvent(f"{event.market}:{event.seq}: release without order")
                order_ids.add(event.order_id)
        orders: dict[int, _Order] = {}
        if order_ids:
            for row in await conn.fetch(
                "SELECT id, market, user_id, side, status, locked_asset, locked_remaining,"
                " filled_qty, cumulative_quote, reason, price, quantity FROM orders"
                " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                sorted(order_ids),
            ):
                orders[row["id"]] = _Order(row)
        t1 = time.perf_counter()

        # 4. replay in Python
        journals: list[Journal] = []
        trade_rows: list[tuple[object, ...]] = []
        prevented_rows: list[tuple[object, ...]] = []
        changed: set[int] = set()
        fee_user = self.fee_user_id
        for market, event in todo:
            if isinstance(event, TradeExecuted):
                self._trade(market, event, orders)
                changed.add(event.maker_order_id)
                changed.add(event.taker_order_id)
                trade_rows.append(
                    (
                        market.name, event.trade_id, event.price, event.qty, event.quote_amount,
                        event.base_amount, event.taker_side.value, event.maker_order_id,
                        event.taker_order_id, event.maker_user_id, event.taker_user_id,
                        event.maker_fee, event.taker_fee, event.seq, event.ts,
                    )
                )  # fmt: skip
                journal = journal_for(event, market, fee_user)
            elif isinstance(event, _ORDER_EVENTS):
                self._order_event(market, event, orders)
                changed.add(event.order_id)
                journal = journal_for(event, market, fee_user)
            elif isinstance(event, MatchPrevented):
                self._prevented(market, event, orders)
                prevented_rows.append(
                    (
                        market.name, event.seq, event.taker_user_id, event.taker_order_id,
                        event.maker_order_id, event.price, event.prevented_qty,
                        event.stp_mode.value, event.ts,
                    )
                )  # fmt: skip
                journal = None  # no money moves
            elif isinstance(event, CommandRejected) and event.released:
                assert event.order_id is not None
                order = self._order(orders, event.order_id, market, event)
                if order.user_id != event.user_id:
                    raise InconsistentEvent(f"{event.market}:{event.seq}: user mismatch")
                self._spend(order, event.released, event)
                changed.add(order.id)
                journal = journal_for(event, market, fee_user, order.side)
            else:
                journal = None  # book deltas, status and config changes: nothing to settle
            if journal is not None:
                check_balanced(journal)
                journals.append(journal)
        deltas = balance_deltas(journals)
        t2 = time.perf_counter()

        # 5. balances, locked in (user_id, asset) order; rows created for new receivers
        if deltas:
            keys = sorted(deltas)
            users = [k[0] for k in keys]
            assets = [k[1] for k in keys]
            receivers = [k for k in keys if deltas[k][0] > 0 or deltas[k][1] > 0]
            if receivers:
                await conn.execute(
                    "INSERT INTO balances (user_id, asset)"
                    " SELECT * FROM unnest($1::bigint[], $2::text[]) ORDER BY 1, 2"
                    " ON CONFLICT (user_id, asset) DO NOTHING",
                    [k[0] for k in receivers],
                    [k[1] for k in receivers],
                )
            await conn.execute(
                "SELECT 1 FROM balances b JOIN unnest($1::bigint[], $2::text[]) k(user_id, asset)"
                " ON b.user_id = k.user_id AND b.asset = k.asset"
                " ORDER BY b.user_id, b.asset FOR UPDATE OF b",
                users,
                assets,
            )
            # 6. writes
            updated = await conn.fetch(
                "UPDATE balances b SET available = b.available + d.available,"
                " locked = b.locked + d.locked"
                " FROM unnest($1::bigint[], $2::text[], $3::numeric[], $4::numeric[])"
                " d(user_id, asset, available, locked)"
                " WHERE b.user_id = d.user_id AND b.asset = d.asset"
                " RETURNING b.user_id, b.asset, b.available, b.locked",
                users,
                assets,
                [deltas[k][0] for k in keys],
                [deltas[k][1] for k in keys],
            )
            if len(updated) != len(keys):
                raise InconsistentEvent(
                    f"balance rows missing: {len(updated)} for {len(keys)} keys"
                )
            result.balances = {
                (r["user_id"], r["asset"]): (int(r["available"]), int(r["locked"])) for r in updated
            }
        t3 = time.perf_counter()
        if changed:
            ids = sorted(changed)
            rows_ = [orders[i] for i in ids]
            await conn.execute(
                "UPDATE orders o SET status = u.status, locked_remaining = u.locked_remaining,"
                " filled_qty = u.filled_qty, cumulative_quote = u.cumulative_quote,"
                " reason = u.reason, price = u.price, quantity = u.quantity, updated_at = now()"
                " FROM unnest($1::bigint[], $2::text[], $3::numeric[], $4::bigint[],"
                " $5::numeric[], $6::text[], $7::bigint[], $8::bigint[])"
                " u(id, status, locked_remaining, filled_qty, cumulative_quote, reason, price,"
                " quantity) WHERE o.id = u.id",
                ids,
                [o.status.value for o in rows_],
                [o.locked_remaining for o in rows_],
                [o.filled_qty for o in rows_],
                [o.cumulative_quote for o in rows_],
                [o.reason for o in rows_],
                [o.price for o in rows_],
                [o.quantity for o in rows_],
            )
            result.orders = {
                o.id: (o.user_id, o.status.value, o.filled_qty, o.cumulative_quote) for o in rows_
            }
        t_orders = time.perf_counter()
        if trade_rows:
            await conn.copy_records_to_table("trades", records=trade_rows, columns=_TRADE_COLUMNS)
        if prevented_rows:
            await conn.copy_records_to_table(
                "prevented_matches", records=prevented_rows, columns=_PREVENTED_COLUMNS
            )
        t_trades = time.perf_counter()
        if journals:
            journal_ids = [
                r[0]
                for r in await conn.fetch(
                    "SELECT nextval('journals_id_seq') FROM generate_series(1, $1)", len(journals)
                )
            ]
            entries: list[tuple[object, ...]] = []
            for journal_id, journal in zip(journal_ids, journals, strict=True):
                for p in journal.postings:
                    entries.append((journal_id, p.user_id, p.bucket.value, p.asset, p.amount))
            await conn.copy_records_to_table(
                "journals",
                records=[
                    (i, j.kind.value, j.reference)
                    for i, j in zip(journal_ids, journals, strict=True)
                ],
                columns=("id", "kind", "reference"),
            )
            await conn.copy_records_to_table(
                "ledger_entries",
                records=entries,
                columns=("journal_id", "user_id", "bucket", "asset", "amount"),
            )
        await conn.execute(
            "UPDATE settlement_progress p SET last_seq = u.last_seq, next_offset = u.next_offset"
            " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) u(market, last_seq, next_offset)"
            " WHERE p.market = u.market",
            names,
            [last_seq[n] for n in names],
            [next_offset[n] for n in names],
        )
        t4 = time.perf_counter()
        result.applied = len(todo)
        result.trades = len(trade_rows)
        result.journals = len(journals)
        result.timings = {
            "db_lock_read": t1 - t0,
            "replay": t2 - t1,
            "balances": t3 - t2,
            "orders_update": t_orders - t3,
            "trades_copy": t_trades - t_orders,
            "ledger_copy_progress": t4 - t_trades,
        }

    # ------------------------------------------------------------------ replay

    @staticmethod
    def _order(
        orders: dict[int, _Order], order_id: int, market: MarketInfo, event: Event
    ) -> _Order:
        order = orders.get(order_id)
        if order is None:
            raise UnknownOrder(f"{event.market}:{event.seq}: no order {order_id} in the database")
        if order.market != market.name:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: order {order_id} belongs to {order.market}"
            )
        if order.locked_asset != locked_asset(order.side, market):
            raise InconsistentEvent(f"order {order_id} locks {order.locked_asset}")
        return order

    @staticmethod
    def _spend(order: _Order, amount: int, event: Event) -> None:
        order.locked_remaining -= amount
        if order.locked_remaining < 0:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: order {order.id} would lock"
                f" {order.locked_remaining} (< 0)"
            )

    def _trade(self, market: MarketInfo, event: TradeExecuted, orders: dict[int, _Order]) -> None:
        maker = self._order(orders, event.maker_order_id, market, event)
        taker = self._order(orders, event.taker_order_id, market, event)
        if maker.user_id != event.maker_user_id or taker.user_id != event.taker_user_id:
            raise InconsistentEvent(f"{event.market}:{event.seq}: trade users mismatch")
        if taker.side is not event.taker_side or maker.side is event.taker_side:
            raise InconsistentEvent(f"{event.market}:{event.seq}: trade sides mismatch")
        for order in (maker, taker):
            if order.status in TERMINAL:
                raise InconsistentEvent(
                    f"{event.market}:{event.seq}: trade on order {order.id} in {order.status}"
                )
            order.cumulative_quote += event.quote_amount
            spent = event.quote_amount if order.side is Side.BUY else event.base_amount
            self._spend(order, spent, event)

    def _prevented(
        self, market: MarketInfo, event: MatchPrevented, orders: dict[int, _Order]
    ) -> None:
        """A prevented match must name two open orders of its user on opposite sides (the
        taker may still be PENDING: its first event comes later in the command)."""
        maker = self._order(orders, event.maker_order_id, market, event)
        taker = self._order(orders, event.taker_order_id, market, event)
        if not maker.user_id == taker.user_id == event.maker_user_id == event.taker_user_id:
            raise InconsistentEvent(f"{event.market}:{event.seq}: prevented match users mismatch")
        if maker.side is taker.side:
            raise InconsistentEvent(f"{event.market}:{event.seq}: prevented match sides mismatch")
        for order in (maker, taker):
            if order.status in TERMINAL:
                raise InconsistentEvent(
                    f"{event.market}:{event.seq}: prevented match on order {order.id}"
                    f" in {order.status}"
                )

    def _order_event(
        self, market: MarketInfo, event: OrderEvent, orders: dict[int, _Order]
    ) -> None:
        order = self._order(orders, event.order_id, market, event)
        if order.user_id != event.user_id or order.side is not event.side:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: order {order.id} user/side mismatch"
            )
        new = transition(order.status, trigger_of(event))
        if new is not event.status:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: order {order.id} {order.status} → {new}"
                f" but the event says {event.status}"
            )
        if event.filled_qty < order.filled_qty:
            raise InconsistentEvent(f"{event.market}:{event.seq}: filled_qty went down")
        order.status = new
        order.filled_qty = event.filled_qty
        self._spend(order, event.released, event)
        if order.locked_remaining < event.locked_remaining:
            raise InconsistentEvent(
                f"{event.market}:{event.seq}: order {order.id} has {order.locked_remaining}"
                f" locked, the engine counts {event.locked_remaining}"
            )
        if isinstance(event, OrderCancelled | OrderExpired | OrderRejected):
            order.reason = event.reason.value
        elif isinstance(event, OrderUpdated) and event.cause is UpdateCause.AMEND:
            order.price = event.price
            order.quantity = event.filled_qty + event.remaining_qty


_TRADE_COLUMNS = (
    "market", "trade_id", "price", "qty", "quote_amount", "base_amount", "taker_side",
    "maker_order_id", "taker_order_id", "maker_user_id", "taker_user_id", "maker_fee",
    "taker_fee", "seq", "ts",
)  # fmt: skip

_PREVENTED_COLUMNS = (
    "market", "prevented_match_id", "user_id", "taker_order_id", "maker_order_id", "price",
    "prevented_qty", "stp_mode", "ts",
)  # fmt: skip

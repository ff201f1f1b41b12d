"""The matching engine of one market: a pure, deterministic function of its commands.

``MatchingEngine(config).apply(command, offset)`` returns the events the command causes
(see ``cex.core.events`` for every field). No clock, I/O or randomness: time is the
command's ``ts``, ids come from upstream, and equal inputs give byte-identical outputs and
snapshots.

The engine composes the package's parts and owns the commands' rules:

* :mod:`.book` — price levels, best prices, insert/remove, depth (price-time priority);
* :mod:`.sweep` — a taker against the book: trades at the maker's price, fees, funds;
* :mod:`.self_trade` — what a taker meeting its own order does (Binance STP modes);
* :mod:`.triggers` — stop orders (last trade price) and GTT expiries (``ts``);
* :mod:`.snapshot` — the whole state as deterministic bytes, and back;
* :mod:`.emit` — factories for the order events;
* :mod:`cex.core.order_rules` — the order shapes and bounds it shares with the trading API;
* :mod:`cex.core.orders` — the order state machine every order event follows.

Commands
--------
* ORDER_CREATE: a limit order sweeps levels up to its limit price; the rest rests (GTC,
  GTT, LIMIT_MAKER) or expires (IOC); FOK checks beforehand that it can fill completely and
  is rejected otherwise, changing nothing. MARKET orders by quantity or by
  ``quote_order_qty``; one by quote amount is FILLED when its budget cannot pay one more lot
  at the best price, EXPIRED if the book runs out first. LIMIT_MAKER is rejected if it
  would take. STOP_LOSS / STOP_LOSS_LIMIT wait outside the book until the *last trade
  price* reaches the stop (sell: last ≤ stop, buy: last ≥ stop); a stop whose condition
  already holds on arrival is rejected (Binance: "would trigger immediately"). After each
  command that traded, triggered stops run as takers in acceptance order, repeatedly, until
  no more trigger. GTT orders expire when a command's ``ts`` reaches ``expire_at`` (before
  that command takes effect), or earlier by an ORDER_EXPIRE from the lifecycle worker.
* ORDER_AMEND: a quantity decrease at the same price keeps priority; a price change or a
  quantity increase loses it and may trade at once. After an amend the order's locked funds
  are exactly what its new remaining quantity needs at its new price; the excess is
  released by the amend's event and any shortfall must come as ``additional_locked``.
* MARKET_CONTROL (Binance semantics): HALTED refuses new orders and amends but accepts
  cancels, cancel-all and expiries; CANCEL_ONLY additionally accepts quantity-decrease
  amends. RESUME returns to TRADING. CONFIG_UPDATE (v1: fees; v2: fees and order limits)
  takes effect at its place in the stream.

Funds: the engine never spends more than an order's ``locked`` funds. Limit buys must lock
``notional(price, quantity)``, sells ``base_units(quantity)``. A buy that fills below its
limit keeps the saving locked while it is open; every terminal event releases whatever is
left (``locked_remaining`` is then 0).

Event order: an order's own event comes before the BOOK_DELTA events of the levels it
changed; a trade comes before its maker's ORDER_UPDATED; the taker's final event (rest,
fill, expiry) comes after all its trades.

Refusals: a refused ORDER_CREATE gives ORDER_REJECTED (the order becomes REJECTED and all
its ``locked`` is released) — except a create whose ``order_id`` is already open, which
gives COMMAND_REJECTED(DUPLICATE_ORDER_ID): that is a redelivery or a bug, and the open
order must not be touched. Every other refused command gives COMMAND_REJECTED and changes
no order. Duplicate ids are detected among *open* orders only (the engine keeps no history).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Final

import msgspec

from cex.core.errors import EngineStateError, InvalidTransition, MarketConfigError
from cex.core.events import (
    BookDelta,
    CancelAll,
    CancelReason,
    Command,
    CommandKind,
    ConfigUpdate,
    ConfigUpdated,
    ConfigUpdatedV2,
    ConfigUpdateV2,
    Event,
    ExpireReason,
    MarketControl,
    MarketControlAction,
    MarketStatus,
    MarketStatusChanged,
    OrderAmend,
    OrderCancel,
    OrderCreate,
    OrderExpire,
    OrderStatus,
    OrderType,
    OrderUpdated,
    RejectReason,
    Side,
    TimeInForce,
    UpdateCause,
)
from cex.core.market import MAX_FEE_PPM, MAX_INT64, MarketConfig
from cex.core.matching import emit, snapshot
from cex.core.matching.book import Book, Order, by_seq
from cex.core.matching.sweep import fill_or_kill_fillable, sweep
from cex.core.matching.triggers import Triggers
from cex.core.order_rules import OrderLimits, shape_breach
from cex.core.orders import TRANSITIONS, Trigger

__all__ = ["SNAPSHOT_VERSION", "MatchingEngine"]

SNAPSHOT_VERSION: Final = snapshot.SNAPSHOT_VERSION

# Enum members bound to module constants: ``OrderType.LIMIT`` costs a descriptor lookup on
# every access (~70 ns on CPython 3.11), a module constant a few ns. The hot path uses these.
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_NEW: Final = OrderStatus.NEW
_PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
_TRADING: Final = MarketStatus.TRADING
_HALTED: Final = MarketStatus.HALTED
_CANCEL_ONLY: Final = MarketStatus.CANCEL_ONLY
_LIMIT_MAKER: Final = OrderType.LIMIT_MAKER
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_AMEND: Final = UpdateCause.AMEND
_CAUSE_TRADE: Final = UpdateCause.TRADE
_X_NO_LIQUIDITY: Final = ExpireReason.MARKET_NO_LIQUIDITY
_X_FOK: Final = ExpireReason.FOK_NOT_FILLABLE
_X_IOC: Final = ExpireReason.IOC
_X_GTT: Final = ExpireReason.GTT
_X_COMMAND: Final = ExpireReason.EXPIRE_COMMAND
_C_USER: Final = CancelReason.USER
_C_ALL: Final = CancelReason.CANCEL_ALL
_CAUSE_TRIGGERED: Final = UpdateCause.STOP_TRIGGERED
#: Prices and quantities must fit a signed 64-bit integer (Postgres BIGINT).
_MAX_INT: Final = MAX_INT64

#: A fill's status from the state machine of ``cex.core.orders`` (as the terminal
#: statuses of ``emit``): the engine's events follow its transitions by construction.
_FILLED: Final = TRANSITIONS[OrderStatus.NEW, Trigger.FILL]

_COMMAND_KINDS: Final[dict[type, CommandKind]] = {
    OrderCreate: CommandKind.ORDER_CREATE,
    OrderCancel: CommandKind.ORDER_CANCEL,
    CancelAll: CommandKind.CANCEL_ALL,
    OrderAmend: CommandKind.ORDER_AMEND,
    OrderExpire: CommandKind.ORDER_EXPIRE,
    MarketControl: CommandKind.MARKET_CONTROL,
    ConfigUpdate: CommandKind.CONFIG_UPDATE,
    ConfigUpdateV2: CommandKind.CONFIG_UPDATE,
}

_CONTROL_STATUS: Final = {
    MarketControlAction.HALT: _HALTED,
    MarketControlAction.CANCEL_ONLY: _CANCEL_ONLY,
    MarketControlAction.RESUME: _TRADING,
}


def _status_after(o: Order, trigger: Trigger) -> OrderStatus:
    """The status ``o`` reaches by ``trigger`` from the status its events last stated;
    raises :class:`InvalidTransition` for an impossible one (an engine bug)."""
    state = (_PARTIAL if o.filled else _NEW) if o.opened else OrderStatus.PENDING
    try:
        return TRANSITIONS[state, trigger]
    except KeyError:
        raise InvalidTransition(state, trigger) from None


class MatchingEngine:
    """The book and matching of one market. See the module docstring for the rules."""

    __slots__ = (
        "_ask_heap",
        "_ask_qty",
        "_asks",
        "_b",
        "_bid_heap",
        "_bid_qty",
        "_bids",
        "_book",
        "_buy_stops",
        "_cids",
        "_config",
        "_gtt",
        "_handlers",
        "_k",
        "_last_price",
        "_limits",
        "_maker_ppm",
        "_market",
        "_max_lots",
        "_min_lots",
        "_min_notional",
        "_offset",
        "_order_seq",
        "_orders",
        "_sell_stops",
        "_seq",
        "_status",
        "_taker_ppm",
        "_trade_id",
        "_triggers",
        "_ts",
    )

    def __init__(self, config: MarketConfig) -> None:
        self._orders: dict[int, Order] = {}  # every open order, book and stops
        self._cids: dict[tuple[int, str], Order] = {}  # (user, client order id) → order
        self._book = book = Book()
        self._triggers = triggers = Triggers(self._orders)
        # The hot paths read the book's and the triggers' containers through these aliases
        # (the same objects: they are only ever changed in place).
        self._bids, self._asks = book.bids, book.asks
        self._bid_qty, self._ask_qty = book.bid_qty, book.ask_qty
        self._bid_heap, self._ask_heap = book.bid_heap, book.ask_heap
        self._buy_stops, self._sell_stops = triggers.buy_stops, triggers.sell_stops
        self._gtt = triggers.expiries
        self._seq = 0  # last event seq
        self._trade_id = 0  # last trade id
        self._order_seq = 0  # last acceptance seq
        self._last_price: int | None = None
        self._offset = -1  # offset of the command being (or last) applied
        self._ts = 0  # ts of the command being (or last) applied
        self._set_config(config)
        self._handlers: dict[type, Callable[[Any, list[Event]], None]] = {
            OrderCreate: self._on_create,
            OrderCancel: self._on_cancel,
            CancelAll: self._on_cancel_all,
            OrderAmend: self._on_amend,
            OrderExpire: self._on_expire,
            MarketControl: self._on_control,
            ConfigUpdate: self._on_config,
            ConfigUpdateV2: self._on_config_v2,
        }

    def _set_config(self, config: MarketConfig) -> None:
        self._config = config
        self._market = config.symbol
        self._status = config.status
        self._k = config.quote_units_per_tick_lot  # quote units per tick × lot
        self._b = config.base_units_per_lot  # base units per lot
        self._limits = limits = OrderLimits.of(config)
        self._min_lots = limits.min_qty_lots
        self._max_lots = limits.max_qty_lots
        self._min_notional = limits.min_notional_units
        self._maker_ppm = config.maker_fee_ppm
        self._taker_ppm = config.taker_fee_ppm

    # ------------------------------------------------------------------ public API

    @property
    def config(self) -> MarketConfig:
        return self._config

    @property
    def status(self) -> MarketStatus:
        return self._status

    @property
    def last_offset(self) -> int:
        """Offset of the last applied command (-1 before any)."""
        return self._offset

    @property
    def next_offset(self) -> int:
        """The input offset to resume from after a snapshot of this state."""
        return self._offset + 1

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next event will carry."""
        return self._seq + 1

    @property
    def last_trade_id(self) -> int:
        """The id of the last trade (0 before any): trades so far."""
        return self._trade_id

    @property
    def last_price(self) -> int | None:
        return self._last_price

    def apply(self, command: Command, offset: int) -> list[Event]:
        """Apply one command read at input ``offset``; return the events it causes."""
        out: list[Event] = []
        self._offset = offset
        ts = self._ts = command.ts
        if command.market != self._market:
            self._reject_command(out, command, RejectReason.WRONG_MARKET)
        else:
            gtt = self._gtt
            if gtt and gtt[0][0] <= ts and type(command) is not OrderExpire:
                self._expire_due(ts, out)
            last = self._last_price
            self._handlers[type(command)](command, out)
            if last != self._last_price and (self._buy_stops or self._sell_stops):
                self._run_stops(out)
        return out

    def reject_malformed(self, offset: int) -> list[Event]:
        """Answer input bytes at ``offset`` that did not decode (ts: the last seen ts)."""
        self._offset = offset
        out: list[Event] = []
        self._seq = seq = self._seq + 1
        out.append(
            emit.command_rejected(
                self._market, seq, offset, self._ts, CommandKind.MALFORMED,
                RejectReason.MALFORMED_COMMAND, order_id=None, user_id=None, released=0,
            )
        )  # fmt: skip
        return out

    # ------------------------------------------------------------------ read access

    def depth(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """Aggregated levels ``(price_ticks, qty_lots)``, best first."""
        return self._book.depth(side, limit)

    def best_bid(self) -> int | None:
        return self._book.best_bid()

    def best_ask(self) -> int | None:
        return self._book.best_ask()

    def open_orders(self) -> list[dict[str, Any]]:
        """Every open order as a plain dict, in the snapshot's canonical order."""
        return [msgspec.structs.asdict(o) for o in snapshot.canonical_orders(self)]

    def book_orders(self, side: Side) -> list[tuple[int, int, int]]:
        """``(price, order_id, remaining)`` of one side, in matching priority."""
        return [(o.price, o.id, o.remaining) for o in self._book.in_priority(side)]  # type: ignore[misc]

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        """The full state as deterministic bytes (equal states → equal bytes)."""
        return snapshot.dump(self)

    @classmethod
    def restore(cls, data: bytes) -> MatchingEngine:
        """An engine in exactly the state :meth:`snapshot` captured; raises
        :class:`~cex.core.errors.SnapshotError` for anything else."""
        return snapshot.load(cls, data)

    # ------------------------------------------------------------------ registry and book

    def _register(self, o: Order) -> None:
        self._orders[o.id] = o
        if o.cid:
            self._cids[o.user, o.cid] = o
        if o.expire_at is not None:
            self._triggers.add_expiry(o)

    def _unregister(self, o: Order) -> None:
        del self._orders[o.id]
        if o.cid:
            del self._cids[o.user, o.cid]

    def _insert(self, o: Order, out: list[Event]) -> None:
        """Put a working limit order at the back of its level."""
        qty = self._book.insert(o)
        self._seq = seq = self._seq + 1
        out.append(BookDelta(self._market, seq, self._offset, self._ts, o.side, o.price, qty))  # type: ignore[arg-type]

    def _remove(self, o: Order, out: list[Event]) -> None:
        """Take a working order off its level (the order stays registered)."""
        qty = self._book.remove(o)
        self._seq = seq = self._seq + 1
        out.append(BookDelta(self._market, seq, self._offset, self._ts, o.side, o.price, qty))  # type: ignore[arg-type]

    def _close(self, o: Order, out: list[Event]) -> None:
        """Remove an open order entirely (book or stop); its trigger entries are lazy."""
        if o.working:
            self._remove(o, out)
        self._unregister(o)

    # ------------------------------------------------------------------ event helpers

    def _reject_command(
        self, out: list[Event], c: Command, reason: RejectReason, released: int = 0
    ) -> None:
        self._seq = seq = self._seq + 1
        out.append(
            emit.command_rejected(
                self._market, seq, self._offset, self._ts, _COMMAND_KINDS[type(c)], reason,
                order_id=getattr(c, "order_id", None), user_id=getattr(c, "user_id", None),
                released=released,
            )
        )  # fmt: skip

    def _reject_order(self, out: list[Event], c: OrderCreate, reason: RejectReason) -> None:
        self._seq = seq = self._seq + 1
        out.append(emit.rejected(self._market, seq, self._offset, self._ts, c, reason))

    def _emit_terminal_expired(self, out: list[Event], o: Order, reason: ExpireReason) -> None:
        released = o.locked
        o.locked = 0
        self._seq = seq = self._seq + 1
        out.append(
            emit.expired(self._market, seq, self._offset, self._ts, o, reason, released=released)
        )

    # ------------------------------------------------------------------ ORDER_CREATE

    def _on_create(self, c: OrderCreate, out: list[Event]) -> None:
        if c.order_id in self._orders:
            self._reject_command(out, c, RejectReason.DUPLICATE_ORDER_ID)
            return
        status = self._status
        if status is not _TRADING:
            self._reject_order(
                out,
                c,
                RejectReason.MARKET_HALTED
                if status is _HALTED
                else RejectReason.MARKET_CANCEL_ONLY,
            )
            return
        reason = self._validate_create(c)
        if reason is not None:
            self._reject_order(out, c, reason)
            return
        self._order_seq += 1
        o = Order(
            c.order_id, c.user_id, c.client_order_id, c.side, c.type, c.time_in_force,
            c.price, c.quantity or 0, c.quote_order_qty, c.stop_price, c.expire_at,
            c.stp_mode, c.locked, self._order_seq,
        )  # fmt: skip
        stop = c.stop_price
        if stop is not None:
            last = self._last_price
            if last is not None and (last >= stop if o.is_buy else last <= stop):
                self._reject_order(out, c, RejectReason.STOP_WOULD_TRIGGER)
                return
            self._register(o)
            self._triggers.add_stop(o)
            o.opened = True
            self._seq = seq = self._seq + 1
            out.append(emit.opened(self._market, seq, self._offset, self._ts, o))
            return
        if o.type is _LIMIT_MAKER and self._book.crosses(o.is_buy, o.price):  # type: ignore[arg-type]
            self._reject_order(out, c, RejectReason.POST_ONLY_WOULD_TAKE)
            return
        if o.tif is _FOK and not fill_or_kill_fillable(self._book, o):
            self._reject_order(out, c, RejectReason.FOK_NOT_FILLABLE)
            return
        self._execute(o, out)

    def _validate_create(self, c: OrderCreate) -> RejectReason | None:
        """The first reason to refuse ``c``, or ``None``: its shape and bounds
        (``cex.core.order_rules``, as the trading API checks them), its funds, its expiry
        and its client order id."""
        if c.locked < 0 or shape_breach(c) is not None:
            return RejectReason.MALFORMED_COMMAND
        price, qty, qoq = c.price, c.quantity, c.quote_order_qty
        if not (
            (price is None or 0 < price <= _MAX_INT)
            and (qty is None or 0 < qty <= _MAX_INT)
            and (qoq is None or 0 < qoq <= _MAX_INT)
            and (c.stop_price is None or 0 < c.stop_price <= _MAX_INT)
        ):  # order_rules.numbers_in_int64, inlined: every create passes here
            return RejectReason.OFF_GRID
        # The bounds of order_rules.OrderLimits, inlined on its cached values.
        if qty is not None and not self._min_lots <= qty <= self._max_lots:
            return RejectReason.QTY_OUT_OF_BOUNDS
        if price is not None and qty is not None:
            notional = price * qty * self._k
            if notional < self._min_notional:
                return RejectReason.MIN_NOTIONAL
            needed = notional if c.side is _BUY else qty * self._b
            if c.locked < needed:
                return RejectReason.INSUFFICIENT_LOCKED
        elif qoq is not None:
            if qoq < self._min_notional:
                return RejectReason.MIN_NOTIONAL
            if (c.side is _BUY and c.locked < qoq) or c.locked == 0:
                return RejectReason.INSUFFICIENT_LOCKED
        elif qty is not None:  # market by quantity
            if c.side is _SELL and c.locked < qty * self._b:
                return RejectReason.INSUFFICIENT_LOCKED
            if c.locked == 0:
                return RejectReason.INSUFFICIENT_LOCKED
        if c.expire_at is not None and c.expire_at <= c.ts:
            return RejectReason.GTT_EXPIRED
        if c.client_order_id and (c.user_id, c.client_order_id) in self._cids:
            return RejectReason.DUPLICATE_CLIENT_ORDER_ID
        return None

    # ------------------------------------------------------------------ taking

    def _execute(self, o: Order, out: list[Event]) -> None:
        """Run working order ``o`` as a taker, then rest, fill or expire what is left."""
        filled_before = o.filled
        price = o.price
        if price is None:
            expire_reason = sweep(self, o, out)
        else:  # only sweep if it crosses: most limit orders simply rest (Book.crosses inlined)
            if o.is_buy:
                heap, levels = self._ask_heap, self._asks
                while heap and heap[0] not in levels:
                    heapq.heappop(heap)
                crosses = bool(heap) and heap[0] <= price
            else:
                heap, levels = self._bid_heap, self._bids
                while heap and -heap[0] not in levels:
                    heapq.heappop(heap)
                crosses = bool(heap) and -heap[0] >= price
            expire_reason = sweep(self, o, out) if crosses else None
        if expire_reason is None and o.remaining:
            if o.price is not None and o.tif is not _IOC and o.tif is not _FOK:
                # Rests on the book: the order's event, then the level's.
                if not o.opened:
                    self._register(o)
                    o.opened = True
                    self._seq = seq = self._seq + 1
                    out.append(emit.opened(self._market, seq, self._offset, self._ts, o))
                elif o.filled != filled_before:
                    self._seq = seq = self._seq + 1
                    out.append(
                        emit.updated(
                            self._market, seq, self._offset, self._ts, o, _PARTIAL, _CAUSE_TRADE
                        )
                    )
                self._insert(o, out)
                return
            if o.price is None:
                expire_reason = _X_NO_LIQUIDITY
            elif o.tif is _FOK:
                expire_reason = _X_FOK
            else:
                expire_reason = _X_IOC
        if o.opened:
            self._unregister(o)
        if expire_reason is None:  # FILLED
            released = o.locked
            o.locked = 0
            o.remaining = 0
            self._seq = seq = self._seq + 1
            out.append(
                emit.updated(
                    self._market, seq, self._offset, self._ts, o, _FILLED, _CAUSE_TRADE,
                    released=released,
                )
            )  # fmt: skip
        else:
            self._emit_terminal_expired(out, o, expire_reason)

    # ------------------------------------------------------------------ stops and expiry

    def _run_stops(self, out: list[Event]) -> None:
        """Trigger stops by the last trade price, in acceptance order, until none trigger."""
        triggers = self._triggers
        while True:
            last = self._last_price
            if last is None:
                return
            fired = triggers.triggered(last)
            if not fired:
                return
            for o in fired:
                self._trigger(o, out)

    def _trigger(self, o: Order, out: list[Event]) -> None:
        o.working = True
        self._seq = seq = self._seq + 1
        out.append(
            emit.updated(
                self._market, seq, self._offset, self._ts, o,
                _status_after(o, Trigger.MODIFY), _CAUSE_TRIGGERED,
            )
        )  # fmt: skip
        if o.tif is _FOK and not fill_or_kill_fillable(self._book, o):
            self._unregister(o)
            self._emit_terminal_expired(out, o, _X_FOK)
            return
        self._execute(o, out)

    def _expire_due(self, ts: int, out: list[Event]) -> None:
        """Expire every GTT order with ``expire_at <= ts``, earliest first."""
        for o in self._triggers.due(ts):
            self._emit_terminal_expired(out, o, _X_GTT)
            self._close(o, out)

    # ------------------------------------------------------------------ other commands

    def _find(self, user_id: int, order_id: int | None, cid: str | None) -> Order | None:
        if order_id is not None:
            o = self._orders.get(order_id)
            return o if o is not None and o.user == user_id else None
        if cid:
            return self._cids.get((user_id, cid))
        return None

    def _cancel(self, o: Order, reason: CancelReason, out: list[Event]) -> None:
        released = o.locked
        o.locked = 0
        market, offset, ts, seq = self._market, self._offset, self._ts, self._seq + 1
        out.append(emit.cancelled(market, seq, offset, ts, o, reason, released=released))
        if o.working:  # the order's event, then its level's
            seq += 1
            out.append(BookDelta(market, seq, offset, ts, o.side, o.price, self._book.remove(o)))  # type: ignore[arg-type]
        self._seq = seq
        del self._orders[o.id]
        if o.cid:
            del self._cids[o.user, o.cid]

    def _on_cancel(self, c: OrderCancel, out: list[Event]) -> None:
        oid = c.order_id
        if oid is not None:  # _find inlined: cancels are frequent
            o = self._orders.get(oid)
            if o is not None and o.user != c.user_id:
                o = None
        else:
            o = self._find(c.user_id, None, c.client_order_id)
        if o is None:
            self._reject_command(out, c, RejectReason.UNKNOWN_ORDER)
            return
        self._cancel(o, _C_USER, out)

    def _on_cancel_all(self, c: CancelAll, out: list[Event]) -> None:
        user = c.user_id
        mine = sorted((o for o in self._orders.values() if o.user == user), key=by_seq)
        if not mine:
            self._reject_command(out, c, RejectReason.UNKNOWN_ORDER)
            return
        for o in mine:
            self._cancel(o, _C_ALL, out)

    def _on_expire(self, c: OrderExpire, out: list[Event]) -> None:
        o = self._orders.get(c.order_id)
        if o is None:
            self._reject_command(out, c, RejectReason.UNKNOWN_ORDER)
        else:
            reason = _X_GTT if o.expire_at is not None else _X_COMMAND
            self._emit_terminal_expired(out, o, reason)
            self._close(o, out)
        if self._gtt and self._gtt[0][0] <= c.ts:
            self._expire_due(c.ts, out)

    def _on_amend(self, c: OrderAmend, out: list[Event]) -> None:
        """Fast path: a valid price move that does not cross, or a quantity decrease, in a
        TRADING market. Everything else (including every refusal) takes the general path."""
        o = self._orders.get(c.order_id)
        new_price = c.new_price
        added = c.additional_locked
        if (
            o is None
            or o.user != c.user_id
            or not o.working
            or self._status is not _TRADING
            or added < 0
            or c.new_quantity is not None
            or new_price is None
            or not 0 < new_price <= _MAX_INT
            or new_price == o.price
        ):
            if c.new_quantity is not None and c.new_price is None and o is not None:
                self._amend_decrease(c, o, out)
            else:
                self._amend_general(c, out)
            return
        is_buy = o.is_buy
        # Would it cross? Then it trades as a taker: the general path does that.
        if is_buy:
            heap, opposite = self._ask_heap, self._asks
            while heap and heap[0] not in opposite:
                heapq.heappop(heap)
            if heap and heap[0] <= new_price:
                self._amend_general(c, out)
                return
        else:
            heap, opposite = self._bid_heap, self._bids
            while heap and -heap[0] not in opposite:
                heapq.heappop(heap)
            if heap and -heap[0] >= new_price:
                self._amend_general(c, out)
                return
        remaining = o.remaining
        k = self._k
        required = new_price * remaining * k if is_buy else remaining * self._b
        have = o.locked + added
        if have < required or new_price * o.quantity * k < self._min_notional:
            self._amend_general(c, out)  # refused there with its precise reason
            return
        # A move loses priority: off its level, to the back of the new one. (Book.remove
        # then Book.insert, inlined: this is the most frequent command of a busy market.)
        price = o.price
        assert price is not None
        if is_buy:
            levels, qtys = self._bids, self._bid_qty
        else:
            levels, qtys = self._asks, self._ask_qty
        oid = o.id
        level = levels[price]
        del level[oid]
        if level:
            qtys[price] = old_level_qty = qtys[price] - remaining
        else:
            del levels[price]
            del qtys[price]
            old_level_qty = 0
        o.price = new_price
        o.locked = required
        new_level = levels.get(new_price)
        if new_level is None:
            levels[new_price] = {oid: o}
            qtys[new_price] = new_level_qty = remaining
            if is_buy:
                heap = self._bid_heap
                heapq.heappush(heap, -new_price)
            else:
                heap = self._ask_heap
                heapq.heappush(heap, new_price)
            if len(heap) > 2 * len(levels) + 64:
                self._book.rebuild_heap(is_buy)
        else:
            new_level[oid] = o
            qtys[new_price] = new_level_qty = qtys[new_price] + remaining
        market, offset, ts, side, seq = self._market, self._offset, self._ts, o.side, self._seq
        self._seq = seq + 3
        # OrderUpdated fields after the order's: status, filled_qty, remaining_qty,
        # locked_remaining, released, cause, price, locked_added (built here, not by
        # emit.updated: this is the hot path).
        out += (
            OrderUpdated(
                market, seq + 1, offset, ts, oid, o.user, side, _PARTIAL if o.filled else _NEW,
                o.filled, remaining, required, have - required, _AMEND, new_price, added,
            ),
            BookDelta(market, seq + 2, offset, ts, side, price, old_level_qty),
            BookDelta(market, seq + 3, offset, ts, side, new_price, new_level_qty),
        )  # fmt: skip

    def _amend_decrease(self, c: OrderAmend, o: Order, out: list[Event]) -> None:
        """Fast path of a quantity decrease at the same price (it keeps its priority)."""
        new_qty = c.new_quantity
        assert new_qty is not None
        added = c.additional_locked
        filled = o.filled
        if (
            o.user != c.user_id
            or not o.working
            or self._status is _HALTED
            or added < 0
            or not filled < new_qty < o.quantity
            or new_qty < self._min_lots
        ):
            self._amend_general(c, out)
            return
        price = o.price
        assert price is not None
        remaining = new_qty - filled
        required = price * remaining * self._k if o.is_buy else remaining * self._b
        have = o.locked + added
        if price * new_qty * self._k < self._min_notional:
            self._amend_general(c, out)
            return
        level_qty = self._book.reduce(o, remaining)
        o.quantity = new_qty
        o.locked = required
        market, offset, ts, seq = self._market, self._offset, self._ts, self._seq
        out.append(
            emit.updated(
                market, seq + 1, offset, ts, o, _PARTIAL if filled else _NEW, _AMEND,
                released=have - required, locked_added=added,
            )
        )  # fmt: skip
        out.append(BookDelta(market, seq + 2, offset, ts, o.side, price, level_qty))
        self._seq = seq + 2

    def _amend_general(self, c: OrderAmend, out: list[Event]) -> None:
        """Every amend case, with the precise reason when it is refused."""
        status = self._status
        if status is _HALTED:
            self._reject_command(out, c, RejectReason.MARKET_HALTED, max(c.additional_locked, 0))
            return
        o = self._orders.get(c.order_id)
        if o is None or o.user != c.user_id:
            self._reject_command(out, c, RejectReason.UNKNOWN_ORDER, max(c.additional_locked, 0))
            return
        reason = None
        new_qty = o.quantity if c.new_quantity is None else c.new_quantity
        price = o.price
        new_price = price if c.new_price is None else c.new_price
        if c.additional_locked < 0:
            reason = RejectReason.MALFORMED_COMMAND
        elif not o.working or price is None or new_price is None:
            reason = RejectReason.INVALID_AMEND
        elif not 0 < new_price <= _MAX_INT or not 0 < new_qty <= _MAX_INT:
            reason = RejectReason.OFF_GRID
        elif new_qty <= o.filled or (new_qty == o.quantity and new_price == price):
            reason = RejectReason.INVALID_AMEND
        elif c.new_quantity is not None and not self._limits.qty_in_bounds(new_qty):
            reason = RejectReason.QTY_OUT_OF_BOUNDS
        elif not self._limits.meets_min_notional(new_price * new_qty * self._k):
            reason = RejectReason.MIN_NOTIONAL
        elif status is _CANCEL_ONLY and (new_price != price or new_qty > o.quantity):
            reason = RejectReason.MARKET_CANCEL_ONLY
        if reason is not None:
            self._reject_command(out, c, reason, max(c.additional_locked, 0))
            return
        assert price is not None
        assert new_price is not None
        new_remaining = new_qty - o.filled
        required = new_price * new_remaining * self._k if o.is_buy else new_remaining * self._b
        have = o.locked + c.additional_locked
        if have < required:
            self._reject_command(out, c, RejectReason.INSUFFICIENT_LOCKED, c.additional_locked)
            return
        keeps_priority = new_price == price and new_qty < o.quantity
        if not keeps_priority and o.type is _LIMIT_MAKER:
            best = self.best_ask() if o.is_buy else self.best_bid()
            if best is not None and (best <= new_price if o.is_buy else best >= new_price):
                self._reject_command(out, c, RejectReason.POST_ONLY_WOULD_TAKE, c.additional_locked)
                return
        # The order's event first, then the level changes it causes (computed first: the
        # book needs the order's old price and remaining, the event its new ones).
        book = self._book
        level_qty = book.reduce(o, new_remaining) if keeps_priority else book.remove(o)
        o.quantity = new_qty
        o.remaining = new_remaining
        o.price = new_price
        o.locked = required
        self._seq = seq = self._seq + 1
        out.append(
            emit.updated(
                self._market, seq, self._offset, self._ts, o, _status_after(o, Trigger.MODIFY),
                _AMEND, released=have - required, locked_added=c.additional_locked,
            )
        )  # fmt: skip
        self._seq = seq = seq + 1
        out.append(BookDelta(self._market, seq, self._offset, self._ts, o.side, price, level_qty))
        if not keeps_priority:
            self._execute(o, out)

    def _on_control(self, c: MarketControl, out: list[Event]) -> None:
        status = _CONTROL_STATUS[c.action]
        self._set_config(self._config.with_status(status))
        self._seq = seq = self._seq + 1
        out.append(MarketStatusChanged(self._market, seq, self._offset, self._ts, status))

    def _on_config(self, c: ConfigUpdate, out: list[Event]) -> None:
        maker, taker = c.maker_fee_ppm, c.taker_fee_ppm
        if not (0 <= maker <= MAX_FEE_PPM and 0 <= taker <= MAX_FEE_PPM):
            self._reject_command(out, c, RejectReason.INVALID_CONFIG)
            return
        self._set_config(self._config.with_fees(maker, taker))
        self._seq = seq = self._seq + 1
        out.append(ConfigUpdated(self._market, seq, self._offset, self._ts, maker, taker))

    def _on_config_v2(self, c: ConfigUpdateV2, out: list[Event]) -> None:
        try:
            config = self._config.with_fees(c.maker_fee_ppm, c.taker_fee_ppm).with_limits(
                min_qty_lots=c.min_qty_lots,
                max_qty_lots=c.max_qty_lots,
                min_notional_units=c.min_notional_units,
            )
        except MarketConfigError:
            self._reject_command(out, c, RejectReason.INVALID_CONFIG)
            return
        self._set_config(config)
        self._seq = seq = self._seq + 1
        out.append(
            ConfigUpdatedV2(
                market=self._market,
                seq=seq,
                offset=self._offset,
                ts=self._ts,
                maker_fee_ppm=config.maker_fee_ppm,
                taker_fee_ppm=config.taker_fee_ppm,
                min_qty_lots=config.min_qty_lots,
                max_qty_lots=config.max_qty_lots,
                min_notional_units=config.min_notional_units,
            )
        )

    # ------------------------------------------------------------------ self-checks

    def check_invariants(self) -> None:
        """Raise :class:`EngineStateError` if the book is inconsistent (tests, debugging)."""
        self._book.check(self._orders, self._k, self._b)
        stops = sum(1 for o in self._orders.values() if not o.working)
        if len(self._book) + stops != len(self._orders):
            raise EngineStateError("registered orders and book disagree")

"""The matching engine of one market: a pure, deterministic function of its commands.

``MatchingEngine(config).apply(command, offset)`` returns the events the command causes
(see ``events.py`` for every field). No clock, I/O or randomness: time is the command's
``ts``, ids come from upstream, and equal inputs give byte-identical outputs and snapshots.

Book and matching
-----------------
* Price-time priority. Each side is a ``dict`` price → level, a level a ``dict``
  order id → order in arrival order (FIFO), with the level's aggregated quantity kept in a
  second dict and the best price found through a heap with lazy deletion (stale prices are
  skipped when they surface, and the heap is rebuilt when they pile up).
* Trades happen at the maker's price. A limit taker sweeps levels up to its limit price;
  the rest rests (GTC, GTT, LIMIT_MAKER), expires (IOC) — FOK checks beforehand that it
  can fill completely and is rejected otherwise, changing nothing.
* MARKET orders by quantity or by ``quote_order_qty``. One by quote amount is FILLED when
  its budget cannot pay one more lot at the best price, EXPIRED if the book runs out
  first. LIMIT_MAKER is rejected if it would take.
* STOP_LOSS / STOP_LOSS_LIMIT rest outside the book until the *last trade price* reaches
  the stop (sell: last ≤ stop, buy: last ≥ stop); a stop whose condition
  already holds on arrival is rejected (Binance: "would trigger immediately"). After each
  command that traded, triggered stops run as takers in acceptance order, repeatedly, until
  no more trigger.
* GTT orders expire when a command's ``ts`` reaches ``expire_at`` (before that command
  takes effect), or earlier by an ORDER_EXPIRE from the lifecycle worker.
* Event order: an order's own event comes before the BOOK_DELTA events of the levels it
  changed; a trade comes before its maker's ORDER_UPDATED; the taker's final event (rest,
  fill, expiry) comes after all its trades.

Funds
-----
* The engine never spends more than an order's ``locked`` funds. Limit buys must lock
  ``notional(price, quantity)``, sells ``base_units(quantity)``; a market buy by quantity
  stops when its funds cannot pay one more lot (the rest expires, LOCKED_EXHAUSTED).
* A buy that fills below its limit keeps the saving locked while it is open; every
  terminal event releases whatever is left (``locked_remaining`` is then 0).
* Amend: a quantity decrease at the same price keeps priority; a price change or a
  quantity increase loses it and may trade at once. After an amend the order's locked
  funds are exactly what its new remaining quantity needs at its new price; the excess is
  released by the amend's event and any shortfall must come as ``additional_locked``.

Self-trade prevention (Binance semantics, the taker's mode decides, same user = self)
-----------------------------------------------------------------------------------
EXPIRE_TAKER: the taker's rest expires, the maker stays. EXPIRE_MAKER: the maker expires
and the taker goes on. EXPIRE_BOTH: both expire. DECREMENT: both lose the smaller of the
two remaining quantities (no trade; the prevented quantity leaves both orders, so their
``quantity`` shrinks too); whichever reaches zero expires (both if equal); a maker that
survives gets ORDER_UPDATED(STP_DECREMENT) releasing the funds of the removed quantity, a
taker that survives keeps its funds locked until it ends. NONE: they trade. FOK counts STP:
a self-match under any mode but NONE and EXPIRE_MAKER makes the order unfillable.

Every STP decision (one per maker met) first emits MATCH_PREVENTED (taker, maker, the
maker's price, the maker's prevented quantity, the mode), then the events it causes: the
maker's ORDER_EXPIRED(STP) or ORDER_UPDATED(STP_DECREMENT) at once, the taker's
ORDER_EXPIRED(STP) as its final event. It takes a seq like any event, so seqs stay
gap-free and replay reproduces it; the cost is only on the (rare) self-match branch of the
matching loop. A quote-amount taker whose budget cannot pay one more lot when it meets its
own order ends as when its budget runs out: no match was prevented, nothing is emitted.

Market status (Binance semantics): HALTED refuses new orders and amends but accepts
cancels, cancel-all and expiries; CANCEL_ONLY additionally accepts quantity-decrease
amends. RESUME returns to TRADING. Status and fee changes take effect at their place in
the stream.

Refusals
--------
A refused ORDER_CREATE gives ORDER_REJECTED (the order becomes REJECTED and all its
``locked`` is released) — except a create whose ``order_id`` is already open, which gives
COMMAND_REJECTED(DUPLICATE_ORDER_ID): that is a redelivery or a bug, and the open order
must not be touched. Every other refused command gives COMMAND_REJECTED and changes no
order. Duplicate ids are detected among *open* orders only (the engine keeps no history).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Final

import msgspec

from cex.core.errors import EngineStateError, MarketConfigError, SnapshotError
from cex.core.events import (
    BookDelta,
    CancelAll,
    CancelReason,
    Command,
    CommandKind,
    CommandRejected,
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
    MatchPrevented,
    OrderAmend,
    OrderCancel,
    OrderCancelled,
    OrderCreate,
    OrderExpire,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderType,
    OrderUpdated,
    RejectReason,
    Side,
    StpMode,
    TimeInForce,
    TradeExecuted,
    UpdateCause,
)
from cex.core.market import MAX_FEE_PPM, MarketConfig

__all__ = ["SNAPSHOT_VERSION", "MatchingEngine"]

SNAPSHOT_VERSION: Final = 1

# Enum members bound to module constants: ``OrderType.LIMIT`` costs a descriptor lookup on
# every access (~70 ns on CPython 3.11), a module constant a few ns. The hot path uses these.
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_NEW: Final = OrderStatus.NEW
_PARTIAL: Final = OrderStatus.PARTIALLY_FILLED
_FILLED: Final = OrderStatus.FILLED
_CANCELED: Final = OrderStatus.CANCELED
_EXPIRED: Final = OrderStatus.EXPIRED
_REJECTED: Final = OrderStatus.REJECTED
_STP_NONE: Final = StpMode.NONE
_CAUSE_TRADE: Final = UpdateCause.TRADE
_AMEND: Final = UpdateCause.AMEND
_TRADING: Final = MarketStatus.TRADING
_LIMIT_MAKER: Final = OrderType.LIMIT_MAKER
_LIMIT: Final = OrderType.LIMIT
_MARKET: Final = OrderType.MARKET
_STOP_LOSS_LIMIT: Final = OrderType.STOP_LOSS_LIMIT
_GTC: Final = TimeInForce.GTC
_IOC: Final = TimeInForce.IOC
_FOK: Final = TimeInForce.FOK
_GTT: Final = TimeInForce.GTT
_HALTED: Final = MarketStatus.HALTED
_CANCEL_ONLY: Final = MarketStatus.CANCEL_ONLY
_EXPIRE_TAKER: Final = StpMode.EXPIRE_TAKER
_EXPIRE_MAKER: Final = StpMode.EXPIRE_MAKER
_EXPIRE_BOTH: Final = StpMode.EXPIRE_BOTH
_DECREMENT: Final = StpMode.DECREMENT
_CAUSE_STP: Final = UpdateCause.STP_DECREMENT
_CAUSE_TRIGGERED: Final = UpdateCause.STOP_TRIGGERED
_X_NO_LIQUIDITY: Final = ExpireReason.MARKET_NO_LIQUIDITY
_X_FOK: Final = ExpireReason.FOK_NOT_FILLABLE
_X_IOC: Final = ExpireReason.IOC
_X_STP: Final = ExpireReason.STP
_X_LOCKED: Final = ExpireReason.LOCKED_EXHAUSTED
_X_GTT: Final = ExpireReason.GTT
_X_COMMAND: Final = ExpireReason.EXPIRE_COMMAND
_C_USER: Final = CancelReason.USER
_C_ALL: Final = CancelReason.CANCEL_ALL
_PPM: Final = 1_000_000
#: Stands for "no quantity limit" while a market order by quote amount matches.
_UNLIMITED: Final = 1 << 126
#: Prices and quantities must fit a signed 64-bit integer (Postgres BIGINT).
_MAX_INT: Final = (1 << 63) - 1

# Tuples, not sets: ``in`` then compares by identity first instead of calling Enum.__hash__.
_LIMIT_TIFS: Final = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTT)
_MAKER_TIFS: Final = (TimeInForce.GTC, TimeInForce.GTT)
_MARKET_TIFS: Final = (TimeInForce.GTC, TimeInForce.IOC)


class _Order:
    """An open order (resting on the book, or a stop waiting for its trigger)."""

    __slots__ = (
        "budget",
        "cid",
        "expire_at",
        "filled",
        "id",
        "is_buy",
        "locked",
        "opened",
        "price",
        "quantity",
        "remaining",
        "seq",
        "side",
        "stop_price",
        "stp",
        "tif",
        "type",
        "user",
        "working",
    )

    def __init__(
        self,
        id: int,
        user: int,
        cid: str,
        side: Side,
        type: OrderType,
        tif: TimeInForce,
        price: int | None,
        quantity: int,
        budget: int | None,
        stop_price: int | None,
        expire_at: int | None,
        stp: StpMode,
        locked: int,
        seq: int,
    ) -> None:
        self.id = id
        self.user = user
        self.cid = cid
        self.side = side
        self.is_buy = side is _BUY
        self.type = type
        self.tif = tif
        self.price = price  # limit price in ticks; None for market orders
        self.quantity = quantity  # total lots ordered (0 for a market order by quote amount)
        self.remaining = quantity  # lots still open
        self.filled = 0  # lots filled so far
        self.budget = budget  # quote_order_qty still to spend / receive, else None
        self.stop_price = stop_price
        self.expire_at = expire_at
        self.stp = stp
        self.locked = locked  # funds still locked: quote units (buy) / base units (sell)
        self.seq = seq  # acceptance sequence number, unique in this engine
        self.working = stop_price is None  # False while a stop waits for its trigger
        self.opened = False  # ORDER_OPENED has been emitted


class _OrderState(msgspec.Struct, frozen=True, array_like=True):
    """One open order inside a snapshot."""

    id: int
    user: int
    cid: str
    side: Side
    type: OrderType
    tif: TimeInForce
    price: int | None
    quantity: int
    remaining: int
    filled: int
    budget: int | None
    stop_price: int | None
    expire_at: int | None
    stp: StpMode
    locked: int
    seq: int
    working: bool
    opened: bool


class _Snapshot(
    msgspec.Struct, frozen=True, array_like=True, tag=f"ENGINE_SNAPSHOT.v{SNAPSHOT_VERSION}"
):
    """The full state of one engine: config (with status), counters and open orders.

    ``orders`` lists bids best-first in time priority, then asks likewise, then waiting
    stops in acceptance order — a canonical order, so equal states give equal bytes.
    """

    config: MarketConfig
    next_seq: int
    next_trade_id: int
    next_order_seq: int
    last_price: int | None
    last_offset: int
    last_ts: int
    orders: list[_OrderState]


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_Snapshot)


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
        "_buy_stops",
        "_cids",
        "_config",
        "_gtt",
        "_handlers",
        "_k",
        "_last_price",
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
        "_ts",
    )

    def __init__(self, config: MarketConfig) -> None:
        self._bids: dict[int, dict[int, _Order]] = {}
        self._asks: dict[int, dict[int, _Order]] = {}
        self._bid_qty: dict[int, int] = {}
        self._ask_qty: dict[int, int] = {}
        self._bid_heap: list[int] = []  # negated prices
        self._ask_heap: list[int] = []
        self._orders: dict[int, _Order] = {}  # every open order, book and stops
        self._cids: dict[tuple[int, str], _Order] = {}  # (user, client order id) → order
        self._buy_stops: list[tuple[int, int, int]] = []  # (stop, seq, id), lowest first
        self._sell_stops: list[tuple[int, int, int]] = []  # (-stop, seq, id), highest first
        self._gtt: list[tuple[int, int, int]] = []  # (expire_at, seq, id)
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
        self._min_lots = config.min_qty_lots
        self._max_lots = config.max_qty_lots
        self._min_notional = config.min_notional_units
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
            CommandRejected(
                self._market, seq, offset, self._ts, CommandKind.MALFORMED,
                RejectReason.MALFORMED_COMMAND, None, None, 0,
            )
        )  # fmt: skip
        return out

    # ------------------------------------------------------------------ read access

    def depth(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """Aggregated levels ``(price_ticks, qty_lots)``, best first."""
        if side is _BUY:
            prices = sorted(self._bid_qty, reverse=True)
            qty = self._bid_qty
        else:
            prices = sorted(self._ask_qty)
            qty = self._ask_qty
        if limit is not None:
            prices = prices[:limit]
        return [(p, qty[p]) for p in prices]

    def best_bid(self) -> int | None:
        heap, levels = self._bid_heap, self._bids
        while heap and -heap[0] not in levels:
            heapq.heappop(heap)
        return -heap[0] if heap else None

    def best_ask(self) -> int | None:
        heap, levels = self._ask_heap, self._asks
        while heap and heap[0] not in levels:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def open_orders(self) -> list[dict[str, Any]]:
        """Every open order as a plain dict, in the snapshot's canonical order."""
        return [msgspec.structs.asdict(o) for o in self._canonical_orders()]

    def book_orders(self, side: Side) -> list[tuple[int, int, int]]:
        """``(price, order_id, remaining)`` of one side, in matching priority."""
        levels = self._bids if side is _BUY else self._asks
        prices = sorted(levels, reverse=side is _BUY)
        return [(p, o.id, o.remaining) for p in prices for o in levels[p].values()]

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        """The full state as deterministic bytes (equal states → equal bytes)."""
        return _snapshot_encoder.encode(
            _Snapshot(
                config=self._config,
                next_seq=self._seq + 1,
                next_trade_id=self._trade_id + 1,
                next_order_seq=self._order_seq + 1,
                last_price=self._last_price,
                last_offset=self._offset,
                last_ts=self._ts,
                orders=self._canonical_orders(),
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> MatchingEngine:
        """An engine in exactly the state :meth:`snapshot` captured."""
        try:
            snap = _snapshot_decoder.decode(data)
        except (msgspec.DecodeError, ValueError) as exc:
            raise SnapshotError(f"not an engine snapshot: {exc}") from exc
        engine = cls(snap.config)
        engine._seq = snap.next_seq - 1
        engine._trade_id = snap.next_trade_id - 1
        engine._order_seq = snap.next_order_seq - 1
        engine._last_price = snap.last_price
        engine._offset = snap.last_offset
        engine._ts = snap.last_ts
        for s in snap.orders:
            o = _Order(
                s.id, s.user, s.cid, s.side, s.type, s.tif, s.price, s.quantity, s.budget,
                s.stop_price, s.expire_at, s.stp, s.locked, s.seq,
            )  # fmt: skip
            o.remaining = s.remaining
            o.filled = s.filled
            o.working = s.working
            o.opened = s.opened
            if o.id in engine._orders:
                raise SnapshotError(f"snapshot lists order {o.id} twice")
            engine._register(o)
            if o.working:
                engine._insert(o, [])  # its BookDelta is not output
            else:
                engine._add_stop(o)
        engine._seq = snap.next_seq - 1
        return engine

    def _canonical_orders(self) -> list[_OrderState]:
        result: list[_OrderState] = []
        for levels, reverse in ((self._bids, True), (self._asks, False)):
            for price in sorted(levels, reverse=reverse):
                result.extend(_state(o) for o in levels[price].values())
        stops = sorted((o for o in self._orders.values() if not o.working), key=_by_seq)
        result.extend(_state(o) for o in stops)
        return result

    # ------------------------------------------------------------------ book primitives

    def _register(self, o: _Order) -> None:
        self._orders[o.id] = o
        if o.cid:
            self._cids[o.user, o.cid] = o
        if o.expire_at is not None:
            heapq.heappush(self._gtt, (o.expire_at, o.seq, o.id))

    def _unregister(self, o: _Order) -> None:
        del self._orders[o.id]
        if o.cid:
            del self._cids[o.user, o.cid]

    def _insert(self, o: _Order, out: list[Event]) -> None:
        """Put a working limit order at the back of its level."""
        price = o.price
        assert price is not None
        if o.is_buy:
            levels, qtys = self._bids, self._bid_qty
        else:
            levels, qtys = self._asks, self._ask_qty
        level = levels.get(price)
        if level is None:
            levels[price] = {o.id: o}
            qtys[price] = qty = o.remaining
            if o.is_buy:
                heap = self._bid_heap
                heapq.heappush(heap, -price)
            else:
                heap = self._ask_heap
                heapq.heappush(heap, price)
            if len(heap) > 2 * len(levels) + 64:  # too many stale prices: rebuild
                self._rebuild_heap(o.is_buy)
        else:
            level[o.id] = o
            qtys[price] = qty = qtys[price] + o.remaining
        self._seq = seq = self._seq + 1
        out.append(BookDelta(self._market, seq, self._offset, self._ts, o.side, price, qty))

    def _rebuild_heap(self, bids: bool) -> None:
        """Drop the stale prices of one side's heap (they pile up as levels come and go)."""
        if bids:
            self._bid_heap[:] = [-p for p in self._bids]
            heapq.heapify(self._bid_heap)
        else:
            self._ask_heap[:] = list(self._asks)
            heapq.heapify(self._ask_heap)

    def _remove(self, o: _Order, out: list[Event]) -> None:
        """Take a working order off its level (the order stays registered)."""
        price = o.price
        assert price is not None
        if o.is_buy:
            levels, qtys = self._bids, self._bid_qty
        else:
            levels, qtys = self._asks, self._ask_qty
        level = levels[price]
        del level[o.id]
        if level:
            qtys[price] = qty = qtys[price] - o.remaining
        else:
            del levels[price]
            del qtys[price]
            qty = 0
        self._seq = seq = self._seq + 1
        out.append(BookDelta(self._market, seq, self._offset, self._ts, o.side, price, qty))

    def _add_stop(self, o: _Order) -> None:
        stop = o.stop_price
        assert stop is not None
        if o.is_buy:
            heapq.heappush(self._buy_stops, (stop, o.seq, o.id))
        else:
            heapq.heappush(self._sell_stops, (-stop, o.seq, o.id))

    def _close(self, o: _Order, out: list[Event]) -> None:
        """Remove an open order entirely (book or stop); its stale heap entries are lazy."""
        if o.working:
            self._remove(o, out)
        self._unregister(o)

    # ------------------------------------------------------------------ event helpers

    def _reject_command(
        self,
        out: list[Event],
        c: Command,
        reason: RejectReason,
        released: int = 0,
    ) -> None:
        kind = {
            OrderCreate: CommandKind.ORDER_CREATE,
            OrderCancel: CommandKind.ORDER_CANCEL,
            CancelAll: CommandKind.CANCEL_ALL,
            OrderAmend: CommandKind.ORDER_AMEND,
            OrderExpire: CommandKind.ORDER_EXPIRE,
            MarketControl: CommandKind.MARKET_CONTROL,
            ConfigUpdate: CommandKind.CONFIG_UPDATE,
            ConfigUpdateV2: CommandKind.CONFIG_UPDATE,
        }[type(c)]
        order_id = getattr(c, "order_id", None)
        user_id = getattr(c, "user_id", None)
        self._seq = seq = self._seq + 1
        out.append(
            CommandRejected(
                self._market, seq, self._offset, self._ts, kind, reason, order_id, user_id,
                released,
            )
        )  # fmt: skip

    def _reject_order(self, out: list[Event], c: OrderCreate, reason: RejectReason) -> None:
        self._seq = seq = self._seq + 1
        out.append(
            OrderRejected(
                self._market, seq, self._offset, self._ts, c.order_id, c.user_id, c.side,
                _REJECTED, 0, 0, 0, max(c.locked, 0), reason,
            )
        )  # fmt: skip

    def _emit_terminal_expired(self, out: list[Event], o: _Order, reason: ExpireReason) -> None:
        released = o.locked
        o.locked = 0
        self._seq = seq = self._seq + 1
        out.append(
            OrderExpired(
                self._market, seq, self._offset, self._ts, o.id, o.user, o.side, _EXPIRED,
                o.filled, 0, 0, released, reason,
            )
        )  # fmt: skip

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
        o = _Order(
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
            self._add_stop(o)
            o.opened = True
            self._seq = seq = self._seq + 1
            out.append(
                OrderOpened(
                    self._market, seq, self._offset, self._ts, o.id, o.user, o.side, _NEW,
                    0, o.remaining, o.locked, 0, o.cid, o.price, False,
                )
            )  # fmt: skip
            return
        if o.type is _LIMIT_MAKER and self._would_take(o):
            self._reject_order(out, c, RejectReason.POST_ONLY_WOULD_TAKE)
            return
        if o.tif is _FOK and not self._fok_fillable(o):
            self._reject_order(out, c, RejectReason.FOK_NOT_FILLABLE)
            return
        self._execute(o, out)

    def _validate_create(self, c: OrderCreate) -> RejectReason | None:
        """The first reason to refuse ``c``, or ``None``. Checks shape, grid, bounds, funds."""
        t = c.type
        price, qty, qoq, stop, tif = (
            c.price,
            c.quantity,
            c.quote_order_qty,
            c.stop_price,
            c.time_in_force,
        )
        malformed = RejectReason.MALFORMED_COMMAND
        if c.locked < 0 or (c.expire_at is not None) != (tif is _GTT):
            return malformed
        if t is _LIMIT or t is _STOP_LOSS_LIMIT or t is _LIMIT_MAKER:
            if price is None or qty is None or qoq is not None:
                return malformed
            if (stop is None) != (t is not _STOP_LOSS_LIMIT):
                return malformed
            if tif not in (_MAKER_TIFS if t is _LIMIT_MAKER else _LIMIT_TIFS):
                return malformed
        else:  # MARKET, STOP_LOSS
            if price is not None or (qty is None) == (qoq is None):
                return malformed
            if (stop is None) != (t is _MARKET) or tif not in _MARKET_TIFS:
                return malformed
        if (
            (price is not None and not 0 < price <= _MAX_INT)
            or (qty is not None and not 0 < qty <= _MAX_INT)
            or (stop is not None and not 0 < stop <= _MAX_INT)
            or (qoq is not None and not 0 < qoq <= _MAX_INT)
        ):
            return RejectReason.OFF_GRID
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

    def _would_take(self, o: _Order) -> bool:
        """Whether limit order ``o`` crosses the opposite best price."""
        price = o.price
        assert price is not None
        if o.is_buy:
            best = self.best_ask()
            return best is not None and best <= price
        best = self.best_bid()
        return best is not None and best >= price

    def _fok_fillable(self, o: _Order) -> bool:
        """Dry run: could ``o`` fill completely now, STP included? Changes nothing."""
        price = o.price
        assert price is not None
        need = o.remaining
        user, stp = o.user, o.stp
        if o.is_buy:
            levels = self._asks
            prices = sorted(p for p in levels if p <= price)
        else:
            levels = self._bids
            prices = sorted((p for p in levels if p >= price), reverse=True)
        for p in prices:
            for maker in levels[p].values():
                if maker.user == user and stp is not _STP_NONE:
                    if stp is _EXPIRE_MAKER:
                        continue  # the maker would expire; the taker goes on
                    return False  # EXPIRE_TAKER / EXPIRE_BOTH / DECREMENT cut the taker
                need -= maker.remaining
                if need <= 0:
                    return True
        return False

    # ------------------------------------------------------------------ matching

    def _execute(self, o: _Order, out: list[Event]) -> None:
        """Run working order ``o`` as a taker, then rest, fill or expire what is left."""
        filled_before = o.filled
        price = o.price
        if price is None:
            expire_reason = self._match(o, out)
        else:  # only match if it crosses: most limit orders simply rest
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
            expire_reason = self._match(o, out) if crosses else None
        if expire_reason is None and o.remaining:
            if o.price is not None and o.tif is not _IOC and o.tif is not _FOK:
                # Rests on the book: the order's event, then the level's.
                if not o.opened:
                    self._register(o)
                    o.opened = True
                    self._seq = seq = self._seq + 1
                    out.append(
                        OrderOpened(
                            self._market, seq, self._offset, self._ts, o.id, o.user, o.side,
                            _PARTIAL if o.filled else _NEW, o.filled, o.remaining, o.locked,
                            0, o.cid, o.price, True,
                        )
                    )  # fmt: skip
                elif o.filled != filled_before:
                    self._seq = seq = self._seq + 1
                    out.append(
                        OrderUpdated(
                            self._market, seq, self._offset, self._ts, o.id, o.user, o.side,
                            _PARTIAL, o.filled, o.remaining, o.locked, 0, _CAUSE_TRADE,
                            o.price, 0,
                        )
                    )  # fmt: skip
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
                OrderUpdated(
                    self._market, seq, self._offset, self._ts, o.id, o.user, o.side, _FILLED,
                    o.filled, 0, 0, released, _CAUSE_TRADE, o.price, 0,
                )
            )  # fmt: skip
        else:
            self._emit_terminal_expired(out, o, expire_reason)

    def _match(self, o: _Order, out: list[Event]) -> ExpireReason | None:
        """Match taker ``o`` against the book.

        Returns why the rest of ``o`` must expire (STP, LOCKED_EXHAUSTED, and for a market
        order by quote amount MARKET_NO_LIQUIDITY), or ``None`` when it matched normally:
        the caller then rests, fills or expires ``o.remaining``. A market order by quote
        amount (``remaining`` always 0) returns ``None`` when its budget is spent, i.e. it
        cannot pay one more lot at the best price: it is FILLED.
        """
        is_buy = o.is_buy
        if is_buy:
            levels, qtys, heap = self._asks, self._ask_qty, self._ask_heap
        else:
            levels, qtys, heap = self._bids, self._bid_qty, self._bid_heap
        limit = o.price
        k, b = self._k, self._b
        market = self._market
        offset, ts = self._offset, self._ts
        maker_ppm, taker_ppm = self._maker_ppm, self._taker_ppm
        orders, cids = self._orders, self._cids
        user, stp = o.user, o.stp
        budget = o.budget
        # Only market buys (and market orders by quote amount) can run out of money here;
        # a limit buy's locked funds always cover its remaining quantity at its limit.
        capped = limit is None and (is_buy or budget is not None)
        remaining = _UNLIMITED if budget is not None else o.remaining
        taker_side = o.side
        maker_side = _SELL if is_buy else _BUY
        reason: ExpireReason | None = None
        spent = False
        seq = self._seq
        trade_id = self._trade_id
        last = self._last_price
        heappop = heapq.heappop
        while remaining > 0:
            if not heap:
                break
            top = heap[0]
            best = top if is_buy else -top
            level = levels.get(best)
            if level is None:
                heappop(heap)
                continue
            if limit is not None and (best > limit if is_buy else best < limit):
                break
            done: list[_Order] = []
            level_qty = qtys[best]
            stop_all = False
            for maker in level.values():
                q = maker.remaining
                if remaining < q:
                    q = remaining
                if maker.user == user and stp is not _STP_NONE:
                    # Self-trade prevention: the taker's mode decides. Each decision is
                    # recorded (MATCH_PREVENTED) before the events it causes.
                    if stp is _EXPIRE_TAKER:
                        seq += 1
                        out.append(
                            MatchPrevented(
                                market, seq, offset, ts, o.id, user, maker.id, maker.user, best,
                                maker.remaining, stp,
                            )
                        )  # fmt: skip
                        reason = _X_STP
                        stop_all = True
                        break
                    if stp is _DECREMENT:
                        # No money moves, so only a quote budget limits the prevented qty.
                        prevented = q
                        if budget is not None:
                            afford = budget // (best * k)
                            if afford < prevented:
                                prevented = afford
                                if prevented == 0:
                                    spent = True
                                    stop_all = True
                                    break
                        seq += 1
                        out.append(
                            MatchPrevented(
                                market, seq, offset, ts, o.id, user, maker.id, maker.user, best,
                                prevented, stp,
                            )
                        )  # fmt: skip
                        # The prevented quantity leaves both orders for good.
                        maker.remaining -= prevented
                        maker.quantity -= prevented
                        level_qty -= prevented
                        if budget is not None:
                            budget -= best * prevented * k
                        else:
                            remaining -= prevented
                            o.quantity -= prevented
                        if maker.remaining == 0:
                            done.append(maker)
                            self._seq = seq
                            self._emit_terminal_expired(out, maker, _X_STP)
                            seq = self._seq
                        else:
                            freed = best * prevented * k if maker.is_buy else prevented * b
                            maker.locked -= freed
                            seq += 1
                            out.append(
                                OrderUpdated(
                                    market, seq, offset, ts, maker.id, maker.user, maker_side,
                                    _PARTIAL if maker.filled else _NEW, maker.filled,
                                    maker.remaining, maker.locked, freed,
                                    _CAUSE_STP, maker.price, 0,
                                )
                            )  # fmt: skip
                        if remaining == 0 or (budget is not None and budget < best * k):
                            reason = _X_STP
                            stop_all = True
                            break
                        continue
                    # EXPIRE_MAKER or EXPIRE_BOTH: the maker's rest expires.
                    seq += 1
                    out.append(
                        MatchPrevented(
                            market, seq, offset, ts, o.id, user, maker.id, maker.user, best,
                            maker.remaining, stp,
                        )
                    )  # fmt: skip
                    level_qty -= maker.remaining
                    maker.remaining = 0
                    done.append(maker)
                    self._seq = seq
                    self._emit_terminal_expired(out, maker, _X_STP)
                    seq = self._seq
                    if stp is _EXPIRE_BOTH:
                        reason = _X_STP
                        stop_all = True
                        break
                    continue
                if capped:
                    unit = best * k
                    if budget is None:  # market buy by quantity: its locked funds cap it
                        if o.locked < q * unit:
                            q = o.locked // unit
                            if q == 0:
                                reason = _X_LOCKED
                                stop_all = True
                                break
                    else:  # by quote amount: the budget caps it, a sell also its base
                        afford = budget // unit
                        afford_base = afford if is_buy else o.locked // b
                        if afford < q or afford_base < q:
                            q = afford if afford < afford_base else afford_base
                            if q == 0:
                                if afford == 0:
                                    spent = True
                                else:
                                    reason = _X_LOCKED
                                stop_all = True
                                break
                # A trade at the maker's price.
                quote = best * q * k
                base = q * b
                trade_id += 1
                seq += 1
                if is_buy:
                    taker_fee = -(-base * taker_ppm // _PPM)
                    maker_fee = -(-quote * maker_ppm // _PPM)
                    o.locked -= quote
                    maker.locked -= base
                else:
                    taker_fee = -(-quote * taker_ppm // _PPM)
                    maker_fee = -(-base * maker_ppm // _PPM)
                    o.locked -= base
                    maker.locked -= quote
                if budget is not None:
                    budget -= quote
                else:
                    remaining -= q
                o.filled += q
                maker.filled += q
                maker.remaining -= q
                level_qty -= q
                out.append(
                    TradeExecuted(
                        market, seq, offset, ts, trade_id, best, q, quote, base, taker_side,
                        maker.id, maker.user, o.id, user, maker_fee, taker_fee,
                    )
                )  # fmt: skip
                seq += 1
                if maker.remaining == 0:
                    released = maker.locked
                    maker.locked = 0
                    done.append(maker)
                    out.append(
                        OrderUpdated(
                            market, seq, offset, ts, maker.id, maker.user, maker_side, _FILLED,
                            maker.filled, 0, 0, released, _CAUSE_TRADE, best, 0,
                        )
                    )  # fmt: skip
                else:
                    out.append(
                        OrderUpdated(
                            market, seq, offset, ts, maker.id, maker.user, maker_side, _PARTIAL,
                            maker.filled, maker.remaining, maker.locked, 0, _CAUSE_TRADE, best, 0,
                        )
                    )  # fmt: skip
                last = best
                if remaining == 0 or maker.remaining:
                    # Done, or capped by its funds: look at this maker again (not the next).
                    break
            # Apply the level's changes after iterating over it.
            for maker in done:
                del level[maker.id]
                del orders[maker.id]
                if maker.cid:
                    del cids[maker.user, maker.cid]
            if level:
                if level_qty != qtys[best]:
                    qtys[best] = level_qty
                    seq += 1
                    out.append(BookDelta(market, seq, offset, ts, maker_side, best, level_qty))
            else:
                del levels[best]
                del qtys[best]
                heappop(heap)
                seq += 1
                out.append(BookDelta(market, seq, offset, ts, maker_side, best, 0))
            if stop_all:
                break
        self._seq = seq
        self._trade_id = trade_id
        self._last_price = last
        if budget is not None:
            o.budget = budget
            if reason is None:
                if not spent:
                    reason = _X_NO_LIQUIDITY
                elif not o.filled:
                    reason = _X_LOCKED
        else:
            o.remaining = remaining
        return reason

    # ------------------------------------------------------------------ stops and expiry

    def _run_stops(self, out: list[Event]) -> None:
        """Trigger stops by the last trade price, in acceptance order, until none trigger."""
        orders = self._orders
        while True:
            last = self._last_price
            if last is None:
                return
            triggered: list[_Order] = []
            for heap, sign in ((self._sell_stops, -1), (self._buy_stops, 1)):
                while heap:
                    key, seq, oid = heap[0]
                    o = orders.get(oid)
                    if o is None or o.seq != seq or o.working:
                        heapq.heappop(heap)  # stale
                        continue
                    stop = key * sign
                    if (last <= stop) if sign < 0 else (last >= stop):
                        heapq.heappop(heap)
                        triggered.append(o)
                    else:
                        break
            if not triggered:
                return
            triggered.sort(key=_by_seq)
            for o in triggered:
                self._trigger(o, out)

    def _trigger(self, o: _Order, out: list[Event]) -> None:
        o.working = True
        self._seq = seq = self._seq + 1
        out.append(
            OrderUpdated(
                self._market, seq, self._offset, self._ts, o.id, o.user, o.side, _NEW,
                0, o.remaining, o.locked, 0, _CAUSE_TRIGGERED, o.price, 0,
            )
        )  # fmt: skip
        if o.tif is _FOK and not self._fok_fillable(o):
            self._unregister(o)
            self._emit_terminal_expired(out, o, _X_FOK)
            return
        self._execute(o, out)

    def _expire_due(self, ts: int, out: list[Event]) -> None:
        """Expire every GTT order with ``expire_at <= ts``, earliest first."""
        gtt, orders = self._gtt, self._orders
        while gtt and gtt[0][0] <= ts:
            _, seq, oid = heapq.heappop(gtt)
            o = orders.get(oid)
            if o is not None and o.seq == seq:
                self._emit_terminal_expired(out, o, _X_GTT)
                self._close(o, out)

    # ------------------------------------------------------------------ other commands

    def _find(self, user_id: int, order_id: int | None, cid: str | None) -> _Order | None:
        if order_id is not None:
            o = self._orders.get(order_id)
            return o if o is not None and o.user == user_id else None
        if cid:
            return self._cids.get((user_id, cid))
        return None

    def _cancel(self, o: _Order, reason: CancelReason, out: list[Event]) -> None:
        released = o.locked
        o.locked = 0
        self._seq = seq = self._seq + 1
        out.append(
            OrderCancelled(
                self._market, seq, self._offset, self._ts, o.id, o.user, o.side, _CANCELED,
                o.filled, 0, 0, released, reason,
            )
        )  # fmt: skip
        if o.working:
            self._remove(o, out)
        del self._orders[o.id]
        if o.cid:
            del self._cids[o.user, o.cid]

    def _on_cancel(self, c: OrderCancel, out: list[Event]) -> None:
        oid = c.order_id
        if oid is not None:
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
        mine = sorted((o for o in self._orders.values() if o.user == user), key=_by_seq)
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
        # A move loses priority: off its level, to the back of the new one.
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
            qtys[price] = qty = qtys[price] - remaining
        else:
            del levels[price]
            del qtys[price]
            qty = 0
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
                self._rebuild_heap(is_buy)
        else:
            new_level[oid] = o
            qtys[new_price] = new_level_qty = qtys[new_price] + remaining
        market, offset, ts, side, seq = self._market, self._offset, self._ts, o.side, self._seq
        self._seq = seq + 3
        out += (
            OrderUpdated(
                market, seq + 1, offset, ts, oid, o.user, side, _PARTIAL if o.filled else _NEW,
                o.filled, remaining, required, have - required, _AMEND, new_price, added,
            ),
            BookDelta(market, seq + 2, offset, ts, side, price, qty),
            BookDelta(market, seq + 3, offset, ts, side, new_price, new_level_qty),
        )  # fmt: skip

    def _amend_decrease(self, c: OrderAmend, o: _Order, out: list[Event]) -> None:
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
        qtys = self._bid_qty if o.is_buy else self._ask_qty
        qtys[price] = qty = qtys[price] - (o.remaining - remaining)
        o.remaining = remaining
        o.quantity = new_qty
        o.locked = required
        market, offset, ts, side, seq = self._market, self._offset, self._ts, o.side, self._seq
        out.append(
            OrderUpdated(
                market, seq + 1, offset, ts, o.id, o.user, side, _PARTIAL if filled else _NEW,
                filled, remaining, required, have - required, _AMEND, price, added,
            )
        )  # fmt: skip
        out.append(BookDelta(market, seq + 2, offset, ts, side, price, qty))
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
        elif c.new_quantity is not None and not self._min_lots <= new_qty <= self._max_lots:
            reason = RejectReason.QTY_OUT_OF_BOUNDS
        elif new_price * new_qty * self._k < self._min_notional:
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
        # The order's event first, then the level changes it causes.
        self._seq = seq = self._seq + 1
        out.append(
            OrderUpdated(
                self._market, seq, self._offset, self._ts, o.id, o.user, o.side,
                _PARTIAL if o.filled else _NEW, o.filled, new_remaining, required,
                have - required, _AMEND, new_price, c.additional_locked,
            )
        )  # fmt: skip
        if keeps_priority:
            qtys = self._bid_qty if o.is_buy else self._ask_qty
            qtys[price] = level_qty = qtys[price] - (o.remaining - new_remaining)
            self._seq = seq = self._seq + 1
            out.append(
                BookDelta(self._market, seq, self._offset, self._ts, o.side, price, level_qty)
            )
        else:
            self._remove(o, out)
        o.quantity = new_qty
        o.remaining = new_remaining
        o.price = new_price
        o.locked = required
        if not keeps_priority:
            self._execute(o, out)

    def _on_control(self, c: MarketControl, out: list[Event]) -> None:
        status = {
            MarketControlAction.HALT: _HALTED,
            MarketControlAction.CANCEL_ONLY: _CANCEL_ONLY,
            MarketControlAction.RESUME: _TRADING,
        }[c.action]
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
        for levels, qtys, is_buy in (
            (self._bids, self._bid_qty, True),
            (self._asks, self._ask_qty, False),
        ):
            if set(levels) != set(qtys):
                raise EngineStateError("levels and aggregated quantities disagree")
            for price, level in levels.items():
                if not level:
                    raise EngineStateError(f"empty level {price}")
                if qtys[price] != sum(o.remaining for o in level.values()):
                    raise EngineStateError(f"aggregate of level {price} is wrong")
                for oid, o in level.items():
                    if o.id != oid or o.price != price or o.is_buy != is_buy or not o.working:
                        raise EngineStateError(f"order {oid} misplaced")
                    if self._orders.get(oid) is not o or o.remaining <= 0:
                        raise EngineStateError(f"order {oid} not registered or empty")
                    need = price * o.remaining * self._k if is_buy else o.remaining * self._b
                    if o.locked < need:
                        raise EngineStateError(f"order {oid} has less locked than it needs")
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise EngineStateError(f"crossed book: {bid} >= {ask}")
        if bid != (max(self._bids) if self._bids else None):
            raise EngineStateError("best bid heap is wrong")
        if ask != (min(self._asks) if self._asks else None):
            raise EngineStateError("best ask heap is wrong")
        booked = sum(len(level) for level in self._bids.values()) + sum(
            len(level) for level in self._asks.values()
        )
        stops = sum(1 for o in self._orders.values() if not o.working)
        if booked + stops != len(self._orders):
            raise EngineStateError("registered orders and book disagree")


def _by_seq(o: _Order) -> int:
    return o.seq


def _state(o: _Order) -> _OrderState:
    return _OrderState(
        o.id, o.user, o.cid, o.side, o.type, o.tif, o.price, o.quantity, o.remaining, o.filled,
        o.budget, o.stop_price, o.expire_at, o.stp, o.locked, o.seq, o.working, o.opened,
    )  # fmt: skip

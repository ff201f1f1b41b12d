"""Every command and event schema of the exchange, in one module (DESIGN.md §4).

Wire format
-----------
All schemas are frozen ``msgspec.Struct`` classes encoded as MessagePack *arrays*
(``array_like=True``): the first element is the tag (e.g. ``"ORDER_CREATE.v1"``), the rest
are the fields in declaration order. Use :func:`encode`, :func:`decode_command`,
:func:`decode_event` (and :func:`to_json` for humans, logs and tests).

Structs are created with ``gc=False``: they hold only ints, strings and enums, so they can
never be part of a reference cycle, and skipping the garbage collector's tracking makes the
hot path (one struct per event) cheaper.

Versioning: the schema version is part of every tag (``<KIND>.v<N>``). Compatible changes
append a field with a default at the end of a struct (old readers ignore it, new readers
default it). Incompatible changes add a *new* struct with tag ``<KIND>.v<N+1>`` to the
unions while the old one is still decodable, so producers and consumers can be upgraded
one at a time. :data:`SCHEMA_VERSION` is the version this code writes.

Units
-----
Inside commands and events every number is an ``int``: prices in **ticks**, quantities in
**lots**, asset amounts in the asset's **smallest unit** (``10**-precision``), fee rates in
**ppm**, times in **milliseconds** since the epoch. The market config (``market.py``)
converts to and from decimal strings.

Common fields
-------------
Every command carries ``market`` (the API symbol, e.g. ``"BTCUSDT"``) and ``ts`` (the time
the command was accepted upstream; the engine never reads a clock). Every event carries
``market``, ``seq`` (per-market, gap-free, starting at 1), ``offset`` (the input offset of
the command it answers) and ``ts`` (copied from that command).

Money for settlement
--------------------
* A buy order locks **quote** units, a sell order locks **base** units (``locked`` on
  ``ORDER_CREATE``). The engine never spends more than that.
* ``TRADE_EXECUTED`` moves money: the buyer's locked quote decreases by ``quote_amount``
  and the buyer receives ``base_amount - buyer_fee`` base; the seller's locked base
  decreases by ``base_amount`` and the seller receives ``quote_amount - seller_fee`` quote.
  Fees go to the fee account. Fees are charged in the asset *received* (buyer: base,
  seller: quote); ``maker_fee``/``taker_fee`` are in the asset their payer receives.
* Every order event states ``locked_remaining`` (what is still locked for the order after
  the event) and ``released`` (what the event returns from locked to available). For one
  order, across its events: ``locked_remaining`` after an event equals ``locked_remaining``
  after its previous event (or ``locked`` of the create) minus what its trades in between
  spent, plus ``locked_added`` (ORDER_UPDATED of an amend), minus ``released``. A terminal
  event (status FILLED, CANCELED, EXPIRED, REJECTED) always has ``locked_remaining == 0``.
* ``filled_qty`` is the sum of the order's trade quantities. ``filled_qty +
  remaining_qty`` can fall below the ordered quantity: self-trade prevention DECREMENT
  removes quantity without a trade.
* Apply the order events with ``cex.core.orders.transition(state, trigger_of(event))``;
  an impossible transition raises.
* Order within one command: a new order's trades (and their makers' ORDER_UPDATED) come
  before the new order's own first event, so settlement sees trades of a taker that is
  still PENDING; apply the whole command's events in one transaction. An order's event
  comes before the BOOK_DELTA events of the levels it changed.
* ``MATCH_PREVENTED`` moves no money and changes no order: it records a self-trade
  prevention decision (Binance's "prevented match", ``GET /api/v3/myPreventedMatches``)
  and comes right before the events that decision causes (the maker's ORDER_EXPIRED or
  ORDER_UPDATED(STP_DECREMENT); the taker's ORDER_EXPIRED(STP), which may come later in
  the command, after the level's BOOK_DELTA). Every ORDER_EXPIRED with reason STP and every
  ORDER_UPDATED(STP_DECREMENT) follows a MATCH_PREVENTED naming that order in the same
  command. Its ``seq`` is the prevented match's id.

Compatibility of MATCH_PREVENTED (added after the first release of v1)
----------------------------------------------------------------------
A new event *kind* is not a compatible change in the sense above, in two ways:

* **Readers.** A reader built before ``MATCH_PREVENTED.v1`` existed cannot decode it
  (:func:`decode_event` raises :class:`SchemaError`; settlement then stops, the candle
  aggregator too). Upgrade every consumer of ``executions`` and of the Redis user
  channels (settlement, candles, API, gateway) *before* the engines.
* **Replay renumbers.** An engine emits one more event per STP decision than an older
  engine did for the same commands, so every later ``seq`` of the market shifts. An
  upgraded engine that *replays* input an older engine already answered (recovery
  replays ``[snapshot offset, committed offset)`` without producing, DESIGN.md §5) would
  reach a ``next_seq`` that disagrees with ``executions`` if an STP decision happened in
  that window. This is not silent: recovery's output check (``engine_verify_output``,
  on by default) compares the replayed ``next_seq`` with the last committed event and
  refuses to go live, and settlement refuses a seq gap. It is avoided by upgrading from
  a snapshot that covers everything committed, so that the replay window is empty: halt
  the market (MARKET_CONTROL HALT: nothing can match after it), wait until the engine
  has written its snapshot (it does within ``CEX_ENGINE_SNAPSHOT_INTERVAL_S`` once its
  input is quiet), upgrade, then RESUME. A full replay from the partition's start (no
  snapshot) by a new engine cannot reproduce an old engine's seqs if any STP ever
  happened, so the snapshot key must survive the upgrade.
"""

from __future__ import annotations

import enum
from typing import Any, Final, TypeAlias

import msgspec

from cex.core.errors import SchemaError

__all__ = [
    "SCHEMA_VERSION",
    "BookDelta",
    "CancelAll",
    "CancelReason",
    "Command",
    "CommandKind",
    "CommandRejected",
    "ConfigUpdate",
    "ConfigUpdateV2",
    "ConfigUpdated",
    "ConfigUpdatedV2",
    "Event",
    "ExpireReason",
    "MarketControl",
    "MarketControlAction",
    "MarketStatus",
    "MarketStatusChanged",
    "MatchPrevented",
    "OrderAmend",
    "OrderCancel",
    "OrderCancelled",
    "OrderCreate",
    "OrderExpire",
    "OrderExpired",
    "OrderOpened",
    "OrderRejected",
    "OrderStatus",
    "OrderType",
    "OrderUpdated",
    "RejectReason",
    "Side",
    "StpMode",
    "TimeInForce",
    "TradeExecuted",
    "UpdateCause",
    "command_kind",
    "decode_command",
    "decode_event",
    "encode",
    "to_json",
]

SCHEMA_VERSION: Final = 1


# --------------------------------------------------------------------------- enums


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"  # post-only: rejected if it would take
    STOP_LOSS = "STOP_LOSS"  # stop-market
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"  # good till cancelled
    IOC = "IOC"  # immediate or cancel: the unfilled rest expires
    FOK = "FOK"  # fill or kill: fills completely at once or is rejected, nothing changes
    GTT = "GTT"  # good till time: like GTC, expires at ``expire_at``


class StpMode(enum.StrEnum):
    """Self-trade prevention, Binance semantics; the *taker's* mode decides."""

    NONE = "NONE"  # trade with yourself
    EXPIRE_TAKER = "EXPIRE_TAKER"  # the taker's remaining quantity expires
    EXPIRE_MAKER = "EXPIRE_MAKER"  # the resting order expires, the taker goes on
    EXPIRE_BOTH = "EXPIRE_BOTH"  # both expire
    DECREMENT = "DECREMENT"  # both shrink by the smaller remaining; whoever hits 0 expires


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"  # stored by the trading API, not yet seen by the engine
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class MarketStatus(enum.StrEnum):
    """Binance-like trading status of a market.

    * ``TRADING``: everything is accepted.
    * ``HALTED`` (Binance ``HALT``): no new orders and no amends; cancels, cancel-all and
      expiries are still accepted, so users can get their funds back.
    * ``CANCEL_ONLY`` (the drain state before a market is deleted): like ``HALTED``, and
      amends that only *decrease* quantity are accepted too (they are partial cancels).
    """

    TRADING = "TRADING"
    HALTED = "HALTED"
    CANCEL_ONLY = "CANCEL_ONLY"


class MarketControlAction(enum.StrEnum):
    HALT = "HALT"
    CANCEL_ONLY = "CANCEL_ONLY"
    RESUME = "RESUME"


class CommandKind(enum.StrEnum):
    ORDER_CREATE = "ORDER_CREATE"
    ORDER_CANCEL = "ORDER_CANCEL"
    CANCEL_ALL = "CANCEL_ALL"
    ORDER_AMEND = "ORDER_AMEND"
    ORDER_EXPIRE = "ORDER_EXPIRE"
    MARKET_CONTROL = "MARKET_CONTROL"
    CONFIG_UPDATE = "CONFIG_UPDATE"
    MALFORMED = "MALFORMED"  # bytes on the input topic that did not decode


class RejectReason(enum.StrEnum):
    """Why a command was refused. Used by ORDER_REJECTED and COMMAND_REJECTED."""

    MALFORMED_COMMAND = "MALFORMED_COMMAND"  # missing/contradictory fields for its type
    WRONG_MARKET = "WRONG_MARKET"  # the command names another market
    MARKET_HALTED = "MARKET_HALTED"
    MARKET_CANCEL_ONLY = "MARKET_CANCEL_ONLY"
    OFF_GRID = "OFF_GRID"  # price/quantity not a positive whole number of ticks/lots
    QTY_OUT_OF_BOUNDS = "QTY_OUT_OF_BOUNDS"  # outside [min_qty, max_qty]
    MIN_NOTIONAL = "MIN_NOTIONAL"  # price × quantity below min_notional
    INSUFFICIENT_LOCKED = "INSUFFICIENT_LOCKED"  # ``locked`` does not cover the order
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"  # LIMIT_MAKER would cross the book
    STOP_WOULD_TRIGGER = "STOP_WOULD_TRIGGER"  # stop condition already met by last price
    GTT_EXPIRED = "GTT_EXPIRED"  # expire_at is not after ts
    DUPLICATE_ORDER_ID = "DUPLICATE_ORDER_ID"  # an open order already has this order_id
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"  # same user, open order
    UNKNOWN_ORDER = "UNKNOWN_ORDER"  # no open order with that id (for that user)
    INVALID_AMEND = "INVALID_AMEND"  # not amendable, or nothing valid to change
    INVALID_CONFIG = "INVALID_CONFIG"  # CONFIG_UPDATE values out of range


class CancelReason(enum.StrEnum):
    USER = "USER"  # ORDER_CANCEL
    CANCEL_ALL = "CANCEL_ALL"


class ExpireReason(enum.StrEnum):
    IOC = "IOC"  # the unfilled rest of an IOC order (or of a triggered stop-limit IOC)
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"  # a *triggered* stop-limit FOK could not fill
    MARKET_NO_LIQUIDITY = "MARKET_NO_LIQUIDITY"  # a market order ran out of book
    LOCKED_EXHAUSTED = "LOCKED_EXHAUSTED"  # the order's locked funds cannot buy one more lot
    STP = "STP"  # self-trade prevention
    GTT = "GTT"  # expire_at reached (ORDER_EXPIRE or a later command's ts)
    EXPIRE_COMMAND = "EXPIRE_COMMAND"  # ORDER_EXPIRE for an order that had no GTT


class UpdateCause(enum.StrEnum):
    TRADE = "TRADE"  # the order traded (status PARTIALLY_FILLED or FILLED)
    AMEND = "AMEND"  # ORDER_AMEND accepted
    STP_DECREMENT = "STP_DECREMENT"  # quantity reduced by self-trade prevention DECREMENT
    STOP_TRIGGERED = "STOP_TRIGGERED"  # a stop order's condition was met; it now works


# --------------------------------------------------------------------------- commands


class _Command(msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="kind"):
    market: str
    ts: int


class OrderCreate(_Command, frozen=True, tag="ORDER_CREATE.v1"):
    """A new order, already validated and funded by the trading API (stored as PENDING).

    * ``price``: ticks; required for LIMIT, LIMIT_MAKER, STOP_LOSS_LIMIT, else ``None``.
    * ``quantity``: lots. Required except for MARKET / STOP_LOSS orders given by
      ``quote_order_qty`` (exactly one of the two for those).
    * ``quote_order_qty``: quote units to spend (buy) or receive (sell), MARKET/STOP_LOSS.
    * ``stop_price``: ticks; required for STOP_LOSS and STOP_LOSS_LIMIT.
    * ``expire_at``: ms; required with GTT, else ``None``.
    * ``locked``: what the trading API locked for this order: quote units for a buy, base
      units for a sell. A limit buy needs ``notional(price, quantity)``, a sell
      ``base_units(quantity)``; a market buy by quantity spends at most ``locked``.
    """

    order_id: int
    client_order_id: str
    user_id: int
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    price: int | None
    quantity: int | None
    quote_order_qty: int | None
    stop_price: int | None
    expire_at: int | None
    stp_mode: StpMode
    locked: int


class OrderCancel(_Command, frozen=True, tag="ORDER_CANCEL.v1"):
    """Cancel one open order of ``user_id`` by ``order_id``, else by ``client_order_id``."""

    user_id: int
    order_id: int | None
    client_order_id: str | None


class CancelAll(_Command, frozen=True, tag="CANCEL_ALL.v1"):
    """Cancel every open order (resting and stop) of ``user_id`` in this market."""

    user_id: int


class OrderAmend(_Command, frozen=True, tag="ORDER_AMEND.v1"):
    """Change the quantity and/or price of an open (working, non-stop) limit order.

    * ``new_quantity``: the new *total* order quantity in lots (Binance ``newQty``), filled
      part included; must exceed the quantity already filled. ``None`` keeps it.
    * ``new_price``: ticks; ``None`` keeps the price.
    * ``additional_locked``: funds the trading API locked on top for this amend (quote units
      for a buy, base units for a sell); 0 when the amend needs nothing more.

    A quantity decrease at the same price keeps time priority. A price change or a quantity
    increase loses it (the order goes to the back of its new level and may trade at once as
    a taker). After an accepted amend the order's locked funds are exactly what its new
    remaining quantity needs at its new price; the excess is ``released`` in the event.
    """

    user_id: int
    order_id: int
    new_quantity: int | None
    new_price: int | None
    additional_locked: int


class OrderExpire(_Command, frozen=True, tag="ORDER_EXPIRE.v1"):
    """Expire one open order (sent by the lifecycle worker for due GTT orders)."""

    order_id: int


class MarketControl(_Command, frozen=True, tag="MARKET_CONTROL.v1"):
    """Change the market's trading status at this point of the stream."""

    action: MarketControlAction


class ConfigUpdate(_Command, frozen=True, tag="CONFIG_UPDATE.v1"):
    """New maker/taker fee rates (ppm, 0..100000), effective from this command on.

    Superseded by :class:`ConfigUpdateV2` (which also carries the quantity and notional
    limits); still decoded and applied so that older input replays byte-identically."""

    maker_fee_ppm: int
    taker_fee_ppm: int


class ConfigUpdateV2(_Command, frozen=True, tag="CONFIG_UPDATE.v2"):
    """Every mutable field of the market config, effective from this command on.

    A ``Market`` may change its fees and its order limits while it trades; the engine must
    validate against the same limits as the trading API, so they travel in the stream with
    the fees. Fees in ppm (0..100000); ``min_qty_lots`` / ``max_qty_lots`` in lots;
    ``min_notional_units`` in quote smallest units. A new tag (not appended fields): an
    engine too old to apply the limits answers it as MALFORMED instead of ignoring them.
    """

    maker_fee_ppm: int
    taker_fee_ppm: int
    min_qty_lots: int
    max_qty_lots: int
    min_notional_units: int


Command: TypeAlias = (
    OrderCreate
    | OrderCancel
    | CancelAll
    | OrderAmend
    | OrderExpire
    | MarketControl
    | ConfigUpdate
    | ConfigUpdateV2
)


def command_kind(command: Command) -> CommandKind:
    """The kind of a command, without its schema version (``ORDER_CREATE.v1`` → ORDER_CREATE)."""
    tag = type(command).__struct_config__.tag
    return CommandKind(str(tag).partition(".")[0])


# --------------------------------------------------------------------------- events


class _Event(msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="kind"):
    market: str
    seq: int
    offset: int
    ts: int


class _OrderEvent(_Event, frozen=True):
    """Fields common to the order events; they describe the order *after* the event.

    * ``filled_qty``: lots filled so far (cumulative). ``remaining_qty``: lots still open
      (0 in a terminal event). For a market order by ``quote_order_qty`` ``remaining_qty``
      is 0 and the unspent budget is in ``locked_remaining`` until the terminal event.
    * ``status``: the order's status after the event.
    * ``locked_remaining``: funds still locked for the order after the event (quote units
      for a buy, base units for a sell). 0 in every terminal event.
    * ``released``: funds this event returns from locked to available.
    """

    order_id: int
    user_id: int
    side: Side
    status: OrderStatus
    filled_qty: int
    remaining_qty: int
    locked_remaining: int
    released: int


class OrderOpened(_OrderEvent, frozen=True, tag="ORDER_OPENED.v1"):
    """The order is accepted and rests: on the book (``working``) or as a stop (not)."""

    client_order_id: str
    price: int | None
    working: bool


class OrderUpdated(_OrderEvent, frozen=True, tag="ORDER_UPDATED.v1"):
    """The order changed but, unless ``status`` is FILLED, stays open. See ``cause``.

    ``price`` is the order's (possibly amended) limit price, ``None`` for market orders.
    ``locked_added`` is the amend's ``additional_locked`` now counted in the order's locked
    funds (0 unless ``cause`` is AMEND), so for every order event:
    ``locked_remaining = previous locked_remaining - spent by trades + locked_added -
    released``.
    """

    cause: UpdateCause
    price: int | None
    locked_added: int


class OrderCancelled(_OrderEvent, frozen=True, tag="ORDER_CANCELLED.v1"):
    """The order was cancelled (terminal); ``released`` returns all it still had locked."""

    reason: CancelReason


class OrderExpired(_OrderEvent, frozen=True, tag="ORDER_EXPIRED.v1"):
    """The order (or its unfilled rest) expired (terminal)."""

    reason: ExpireReason


class OrderRejected(_OrderEvent, frozen=True, tag="ORDER_REJECTED.v1"):
    """An ORDER_CREATE was refused: the order never traded; ``released == locked``."""

    reason: RejectReason


class CommandRejected(_Event, frozen=True, tag="COMMAND_REJECTED.v1"):
    """A cancel / cancel-all / amend / expire / control / config command (or a duplicate
    create) was refused. It changes no order state. ``order_id`` / ``user_id`` are copied
    from the command when it has them. ``released`` is what the refused command had locked
    and settlement must return: the ``additional_locked`` of a refused ORDER_AMEND (in the
    order's locked asset), else 0 (a duplicate ORDER_CREATE's funds belong to the original).
    """

    command: CommandKind
    reason: RejectReason
    order_id: int | None
    user_id: int | None
    released: int


class TradeExecuted(_Event, frozen=True, tag="TRADE_EXECUTED.v1"):
    """One match between a resting (maker) and an incoming (taker) order.

    ``trade_id``: per market, gap-free from 1. ``price``: ticks (the maker's price).
    ``qty``: lots. ``quote_amount`` = notional in quote units, ``base_amount`` = base units.
    ``maker_fee`` / ``taker_fee``: in the asset their payer receives (base for the buyer,
    quote for the seller), rounded up. ``taker_side``: the taker's side.
    """

    trade_id: int
    price: int
    qty: int
    quote_amount: int
    base_amount: int
    taker_side: Side
    maker_order_id: int
    maker_user_id: int
    taker_order_id: int
    taker_user_id: int
    maker_fee: int
    taker_fee: int

    @property
    def buyer_fee(self) -> int:
        """Fee paid by the buyer, in base units."""
        return self.taker_fee if self.taker_side is Side.BUY else self.maker_fee

    @property
    def seller_fee(self) -> int:
        """Fee paid by the seller, in quote units."""
        return self.maker_fee if self.taker_side is Side.BUY else self.taker_fee


class MatchPrevented(_Event, frozen=True, tag="MATCH_PREVENTED.v1"):
    """Self-trade prevention stopped a match between a taker and one resting (maker) order
    of the same user; no trade, no money moves (Binance: a "prevented match").

    ``seq`` is the prevented match's id (Binance ``preventedMatchId``), unique per market.
    ``price``: ticks, the maker's price. ``stp_mode``: the taker's mode, which decided
    (never NONE). ``prevented_qty`` (lots, Binance ``makerPreventedQuantity``) is the
    maker's quantity that did not trade in this match:

    * EXPIRE_TAKER: the maker's remaining quantity; the maker stays on the book untouched,
      the taker's rest expires.
    * EXPIRE_MAKER, EXPIRE_BOTH: the maker's remaining quantity, which expires.
    * DECREMENT: the quantity removed from both orders (the smaller remaining, or what a
      taker's ``quote_order_qty`` budget could still pay for).

    It comes before the events the decision causes (see "Money for settlement").
    ``maker_user_id`` equals ``taker_user_id`` today (self = same user); both are kept so
    that a wider notion of "self" (Binance's trade groups) needs no schema change.
    """

    taker_order_id: int
    taker_user_id: int
    maker_order_id: int
    maker_user_id: int
    price: int
    prevented_qty: int
    stp_mode: StpMode


class BookDelta(_Event, frozen=True, tag="BOOK_DELTA.v1"):
    """One L2 level changed: its *new* aggregated quantity in lots (0 = the level is gone).

    Emitted right after the change, so applying the deltas in ``seq`` order to a copy of
    the book reproduces the engine's levels (a level may change several times per
    command; the last delta wins)."""

    side: Side
    price: int
    qty: int


class MarketStatusChanged(_Event, frozen=True, tag="MARKET_STATUS_CHANGED.v1"):
    status: MarketStatus


class ConfigUpdated(_Event, frozen=True, tag="CONFIG_UPDATED.v1"):
    """The answer to a CONFIG_UPDATE.v1: the fee rates now in force."""

    maker_fee_ppm: int
    taker_fee_ppm: int


class ConfigUpdatedV2(_Event, frozen=True, tag="CONFIG_UPDATED.v2"):
    """The answer to a CONFIG_UPDATE.v2: every mutable config field now in force (units as
    in :class:`ConfigUpdateV2`)."""

    maker_fee_ppm: int
    taker_fee_ppm: int
    min_qty_lots: int
    max_qty_lots: int
    min_notional_units: int


Event: TypeAlias = (
    OrderOpened
    | OrderUpdated
    | OrderCancelled
    | OrderExpired
    | OrderRejected
    | CommandRejected
    | TradeExecuted
    | MatchPrevented
    | BookDelta
    | MarketStatusChanged
    | ConfigUpdated
    | ConfigUpdatedV2
)


# --------------------------------------------------------------------------- codec

_encoder = msgspec.msgpack.Encoder()
_command_decoder: msgspec.msgpack.Decoder[Command] = msgspec.msgpack.Decoder(Command)
_event_decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
_json_encoder = msgspec.json.Encoder()

#: Encode a command or an event to MessagePack bytes (deterministic for equal values).
encode = _encoder.encode


def decode_command(data: bytes) -> Command:
    """Decode one command; raises :class:`SchemaError` for anything else."""
    try:
        return _command_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SchemaError(f"not a command: {exc}") from exc


def decode_event(data: bytes) -> Event:
    """Decode one event; raises :class:`SchemaError` for anything else."""
    try:
        return _event_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise SchemaError(f"not an event: {exc}") from exc


def to_json(message: Any) -> bytes:
    """JSON for humans (logs, debugging): the same array layout as the binary form."""
    return _json_encoder.encode(message)

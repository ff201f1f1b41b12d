"""Redis keys, channels and payloads shared by their writers and readers.

Every key and channel starts with ``InfraSettings.redis_prefix`` (``{prefix}`` below), so
that several stacks or tests can share one Redis.

Keys written by the matching engine of ``{market}`` (its Market resource name, e.g.
``btc-usdt``):

``{prefix}:snapshot:{market}``  (string, :class:`EngineSnapshot` as MessagePack)
    The engine's state at an input offset whose Kafka transaction has committed.
``{prefix}:book:{market}``  (hash)
    The L2 book: field ``seq`` (the ``seq`` of the last BOOK_DELTA event applied), fields
    ``b:<price_ticks>`` / ``a:<price_ticks>`` → aggregated quantity in lots (decimal
    ASCII). Read it with :func:`parse_book`.

Pub/sub channels, published by the engine after each committed Kafka transaction, in
stream order. Pub/sub may drop messages: readers detect gaps and resync from the key.

``{prefix}:depth:{market}``  (:class:`DepthUpdate` as MessagePack)
    The levels changed by one committed batch (new quantity, 0 = level removed).
    ``prev_seq`` is the book ``seq`` the update applies on: a reader whose book is at
    another seq resyncs from ``{prefix}:book:{market}`` (and drops updates whose ``seq`` is
    not above the key's).
``{prefix}:trades:{market}``  (list of TRADE_EXECUTED events, :func:`encode_events`)
``{prefix}:status:{market}``  (list of MARKET_STATUS_CHANGED / CONFIG_UPDATED events)
``{prefix}:user:{user_id}``  (list of events of one user, any market)
    The order events (ORDER_*) of the user's orders, the trades where the user is maker or
    taker, and the COMMAND_REJECTED answers to the user's commands.

Published by settlement after the database transaction that applied them committed:

``{prefix}:account:{user_id}``  (list of events of one user, any market)
    The same kinds of events as ``{prefix}:user:{user_id}``, once settled: balances and
    order rows already reflect them when they arrive (RESULT / FULL responses, user data
    streams). A redelivered batch may publish an event twice: dedupe by ``(market, seq)``.

``{prefix}:userdata:{user_id}``  (:class:`UserUpdate` or :class:`BalanceChange`,
:func:`encode_user_data`)
    What a user data stream needs, self-contained. Settlement publishes a
    :class:`UserUpdate` per user and batch, right after ``{prefix}:account:{user_id}`` and
    after the same commit: the user's events, the state after the batch of every order of
    the user the batch touched, and the balances of every ``(user, asset)`` the batch
    changed, as read in its transaction. The public API publishes a :class:`BalanceChange`
    after a deposit or withdrawal committed (:func:`publish_balance_change`).

Written by the candle aggregator (``cex serve candles``), one atomic script per batch:

``{prefix}:candles:state:{market}``  (hash)
    ``state``: :class:`cex.core.candles.CandleState` as JSON (the current candle of every
    interval and ``last_seq``); ``next_offset``: the first ``executions`` offset of the
    market's partition not applied yet; ``partition``. Written in one script with the
    pending candles and the publication, so state, offset and candles never disagree.
``{prefix}:candles:pending:{market}:{interval}``  (hash)
    Field ``open_time`` (decimal ASCII) → :class:`cex.core.candles.Candle` as JSON: every
    candle version (closed or current) the persister has not written to Postgres yet. The
    persister deletes a field only if it still holds the version it wrote
    (:data:`DELETE_IF_UNCHANGED`). Readers (``/klines``) read these *before* Postgres, so a
    candle is always in one or the other.
``{prefix}:candles:{market}``  (channel, JSON, :func:`kline_payload`)
    The candles one batch changed: closed ones (``"x": true``), then the current ones::

        {"market": "btc-usdt", "symbol": "BTCUSDT", "seq": 1234, "E": 1700000000123,
         "klines": [{"t": 1700000000000, "T": 1700000059999, "s": "BTCUSDT", "i": "1m",
                     "f": 17, "L": 21, "o": "50000.0", "c": "50001.0", "h": "50002.0",
                     "l": "49999.0", "v": "0.50000", "n": 5, "x": false,
                     "q": "25000.500000", "V": "0.20000", "Q": "10000.200000", "B": "0"},
                    …]}

    Each element of ``klines`` is exactly Binance's ``k`` object of a ``kline`` event (the
    gateway wraps it as ``{"e": "kline", "E": …, "s": symbol, "k": …}`` for subscribers of
    ``<symbol>@kline_<i>``). ``seq``: the ``seq`` of the last trade of the batch (a newer
    message has a higher one; a message may repeat an older version after a restart:
    drop candles whose ``L`` is below what was already sent for that ``t`` and ``i``).
    ``E``: the ``ts`` of that trade. Decimals at the market's precisions.

Each event carries its market and gap-free ``seq``, so a reader can also detect drops on
the trade and user channels.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis

from cex.core.candles import INTERVALS, Candle, decode_candle, decode_state
from cex.core.events import BookDelta, Event, MatchPrevented, TradeExecuted
from cex.core.market import MarketConfig
from cex.core.money import asset_step
from cex.infra.settings import InfraSettings

__all__ = [
    "BalanceChange",
    "BalanceState",
    "DepthUpdate",
    "EngineSnapshot",
    "OrderState",
    "UserUpdate",
    "account_channel",
    "book_key",
    "candles_channel",
    "candles_pending_key",
    "candles_state_key",
    "client",
    "decode_depth",
    "decode_events",
    "decode_snapshot",
    "decode_user_data",
    "depth_channel",
    "encode",
    "encode_events",
    "encode_user_data",
    "encode_user_update",
    "encoded_by_user",
    "events_by_user",
    "fixed_point",
    "kline_json",
    "kline_payload",
    "parse_book",
    "publish_balance_change",
    "read_recent_candles",
    "snapshot_key",
    "status_channel",
    "trades_channel",
    "user_channel",
    "userdata_channel",
]


def client(settings: InfraSettings) -> aioredis.Redis:
    """An asyncio Redis client for ``settings.redis_url`` (bytes in, bytes out)."""
    return aioredis.Redis.from_url(settings.redis_url)


# --------------------------------------------------------------------------- names


def snapshot_key(prefix: str, market: str) -> str:
    return f"{prefix}:snapshot:{market}"


def book_key(prefix: str, market: str) -> str:
    return f"{prefix}:book:{market}"


def depth_channel(prefix: str, market: str) -> str:
    return f"{prefix}:depth:{market}"


def trades_channel(prefix: str, market: str) -> str:
    return f"{prefix}:trades:{market}"


def status_channel(prefix: str, market: str) -> str:
    return f"{prefix}:status:{market}"


def user_channel(prefix: str, user_id: int) -> str:
    return f"{prefix}:user:{user_id}"


def account_channel(prefix: str, user_id: int) -> str:
    return f"{prefix}:account:{user_id}"


def userdata_channel(prefix: str, user_id: int) -> str:
    return f"{prefix}:userdata:{user_id}"


_T = TypeVar("_T")


def events_by_user(events: list[Event]) -> dict[int, list[Event]]:
    """The events each user should hear about: their order events, the trades and the
    prevented matches they are on (both sides), the refusals of their commands. Market-wide
    events go to nobody."""
    return _by_user(events, events)


def encoded_by_user(
    events: Sequence[Event], encoded: Sequence[bytes]
) -> dict[int, list[msgspec.Raw]]:
    """:func:`events_by_user`, each event as its own encoding (``encoded[i]`` is
    ``encode(events[i])``, e.g. the bytes read from Kafka): a user's list packs, through
    :func:`encode_events`, to the bytes of their events' list, nothing encoded again."""
    return _by_user(events, [msgspec.Raw(data) for data in encoded])


def _by_user(events: Sequence[Event], items: Sequence[_T]) -> dict[int, list[_T]]:
    """``items[i]`` (standing for ``events[i]``) grouped by the users who hear of it."""
    users: dict[int, list[_T]] = {}
    for event, item in zip(events, items, strict=True):
        if isinstance(event, TradeExecuted | MatchPrevented):
            users.setdefault(event.maker_user_id, []).append(item)
            if event.taker_user_id != event.maker_user_id:
                users.setdefault(event.taker_user_id, []).append(item)
            continue
        user_id = getattr(event, "user_id", None)
        if user_id is not None and not isinstance(event, BookDelta):
            users.setdefault(user_id, []).append(item)
    return users


# --------------------------------------------------------------------------- payloads


class EngineSnapshot(msgspec.Struct, frozen=True, tag="ENGINE_SERVICE_SNAPSHOT.v1"):
    """What the engine service stores in ``{prefix}:snapshot:{market}``.

    * ``next_offset``: the first input offset (of ``orders``, ``partition``) the state has
      not applied; every offset below it is covered by a committed transaction.
    * ``next_seq``: the ``seq`` of the next event.
    * ``book_seq``: the ``seq`` of the last BOOK_DELTA applied (0 before any).
    * ``engine``: the core's own snapshot (``MatchingEngine.snapshot()``).
    """

    market: str
    partition: int
    next_offset: int
    next_seq: int
    book_seq: int
    engine: bytes


class DepthUpdate(msgspec.Struct, frozen=True, array_like=True):
    """Levels changed by one committed batch: ``(price_ticks, qty_lots)``, bids descending,
    asks ascending; ``prev_seq`` → ``seq`` as for the book key."""

    market: str
    prev_seq: int
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class BalanceState(msgspec.Struct, frozen=True, array_like=True):
    """One balance row after a committed change: smallest units of ``asset``."""

    asset: str
    available: int
    locked: int


class OrderState(msgspec.Struct, frozen=True, array_like=True):
    """An order row after a settled batch (``status`` as stored: PENDING, NEW, …)."""

    order_id: int
    status: str
    filled_qty: int
    cumulative_quote: int


class UserUpdate(msgspec.Struct, frozen=True, tag="USER_UPDATE.v1"):
    """One settled batch, as one user sees it (``{prefix}:userdata:{user_id}``).

    * ``ts``: ms since the epoch when settlement committed the batch.
    * ``events``: the user's events of the batch, in stream order (:func:`events_by_user`).
    * ``orders``: the user's orders the batch changed, as stored after it (a redelivered
      event that changed nothing is not listed: readers fall back to the order row).
    * ``balances``: the user's balances the batch changed, as stored after it.
    """

    ts: int
    events: list[Event]
    orders: list[OrderState]
    balances: list[BalanceState]


class BalanceChange(msgspec.Struct, frozen=True, tag="BALANCE_CHANGE.v1"):
    """Money moved in or out of an account outside trading, once committed.

    ``delta`` is the change of the *available* balance (smallest units, negative for a
    withdrawal request); ``kind`` is DEPOSIT, WITHDRAWAL or WITHDRAWAL_REJECTED (funds back);
    ``balance`` is the row after the change."""

    ts: int
    kind: str
    delta: int
    balance: BalanceState


class _EncodedUserUpdate(msgspec.Struct, frozen=True, tag="USER_UPDATE.v1"):
    """A :class:`UserUpdate` whose events are already encoded (:func:`encode_user_update`):
    same tag, same fields in the same order, so the same bytes."""

    ts: int
    events: msgspec.Raw
    orders: list[OrderState]
    balances: list[BalanceState]


UserData = UserUpdate | BalanceChange

_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode
_events_decoder = msgspec.msgpack.Decoder(list[Event])
_depth_decoder = msgspec.msgpack.Decoder(DepthUpdate)
_snapshot_decoder = msgspec.msgpack.Decoder(EngineSnapshot)
_user_data_decoder: msgspec.msgpack.Decoder[UserUpdate | BalanceChange] = msgspec.msgpack.Decoder(
    UserData
)


def encode_events(events: Sequence[Event] | Sequence[msgspec.Raw]) -> bytes:
    """A list of events, or of their own encodings (:func:`encoded_by_user`): the same
    bytes (a MessagePack array is its header, then its items)."""
    return _encoder.encode(events)


def decode_events(data: bytes) -> list[Event]:
    return _events_decoder.decode(data)


def encode_user_data(message: UserUpdate | BalanceChange) -> bytes:
    return _encoder.encode(message)


def encode_user_update(
    ts: int, events: bytes, orders: list[OrderState], balances: list[BalanceState]
) -> bytes:
    """``encode_user_data(UserUpdate(ts, decode_events(events), orders, balances))``, byte for
    byte, from the events' list as :func:`encode_events` made it: settlement publishes that
    list on the account channel too, and encoded it once."""
    return _encoder.encode(_EncodedUserUpdate(ts, msgspec.Raw(events), orders, balances))


def decode_user_data(data: bytes) -> UserUpdate | BalanceChange:
    return _user_data_decoder.decode(data)


async def publish_balance_change(
    client: aioredis.Redis, prefix: str, user_id: int, change: BalanceChange
) -> None:
    """Publish a committed deposit or withdrawal on the user's user data channel."""
    await client.publish(userdata_channel(prefix, user_id), encode_user_data(change))


def decode_depth(data: bytes) -> DepthUpdate:
    return _depth_decoder.decode(data)


def decode_snapshot(data: bytes) -> EngineSnapshot:
    return _snapshot_decoder.decode(data)


def parse_book(
    fields: dict[bytes, bytes],
) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """``HGETALL`` of a book key → ``(seq, bids best first, asks best first)``."""
    seq = int(fields.get(b"seq", b"0"))
    bids: list[tuple[int, int]] = []
    asks: list[tuple[int, int]] = []
    for name, value in fields.items():
        if name.startswith(b"b:"):
            bids.append((int(name[2:]), int(value)))
        elif name.startswith(b"a:"):
            asks.append((int(name[2:]), int(value)))
    bids.sort(reverse=True)
    asks.sort()
    return seq, bids, asks


# --------------------------------------------------------------------------- candles


def candles_state_key(prefix: str, market: str) -> str:
    return f"{prefix}:candles:state:{market}"


def candles_pending_key(prefix: str, market: str, interval: str) -> str:
    return f"{prefix}:candles:pending:{market}:{interval}"


def candles_channel(prefix: str, market: str) -> str:
    return f"{prefix}:candles:{market}"


#: KEYS[1] a pending hash; ARGV pairs (field, value): deletes each field still equal to its
#: value (a newer version written meanwhile stays). Returns how many were deleted.
DELETE_IF_UNCHANGED = """
local deleted = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    deleted = deleted + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return deleted
"""


def kline_json(config: MarketConfig, candle: Candle) -> dict[str, Any]:
    """Binance's ``k`` object of a kline event for ``candle``."""
    return {
        "t": candle.open_time,
        "T": candle.close_time,
        "s": config.symbol,
        "i": candle.interval,
        "f": candle.first_trade_id,
        "L": candle.last_trade_id,
        "o": config.format_price(candle.open),
        "c": config.format_price(candle.close),
        "h": config.format_price(candle.high),
        "l": config.format_price(candle.low),
        "v": config.format_qty(candle.volume),
        "n": candle.trades,
        "x": candle.closed,
        "q": config.format_quote(candle.quote_volume),
        "V": config.format_qty(candle.taker_buy_volume),
        "Q": config.format_quote(candle.taker_buy_quote),
        "B": "0",
    }


def kline_payload(
    config: MarketConfig, candles: Iterable[Candle], *, seq: int, event_ts: int
) -> bytes:
    """The message of ``{prefix}:candles:{market}`` (see the module docstring): the bytes
    ``json.dumps`` makes of :func:`kline_json`'s objects (compact separators), written
    directly — the aggregator sends one per batch, with up to 32 candles, and the generic
    path (a dict and six Decimal formattings per candle) was a tenth of its CPU."""
    form = _kline_form(config)
    klines = ",".join([form.kline(c) for c in candles])
    return f'{form.head}{seq},"E":{event_ts},"klines":[{klines}]}}'.encode()


class _KlineForm:
    """One market's constant parts of a kline message and its amount formats."""

    def __init__(self, config: MarketConfig) -> None:
        # json.dumps escapes the names as the reference does; ints and the formatted
        # amounts (digits, '.', '-') never need escaping.
        self.symbol = json.dumps(config.symbol)
        self.head = f'{{"market":{json.dumps(config.name)},"symbol":{self.symbol},"seq":'
        self.after_close = {i: self._after_close(i) for i in INTERVALS}
        self._format_price = fixed_point(config.tick_size)
        # A batch's candles of every interval share most of their prices: each formatted
        # once (bounded: the prices of one stretch of trading).
        self._prices: dict[int, str] = {}
        self.qty = fixed_point(config.lot_size)
        self.quote = fixed_point(asset_step(config.quote_precision))

    def _after_close(self, interval: str) -> str:
        return f',"s":{self.symbol},"i":{json.dumps(interval)},"f":'

    def price(self, ticks: int) -> str:
        if len(self._prices) >= 4096:
            self._prices.clear()
        text = self._prices[ticks] = self._format_price(ticks)
        return text

    def kline(self, c: Candle) -> str:
        after_close = self.after_close.get(c.interval) or self._after_close(c.interval)
        prices, price, qty, quote = self._prices, self.price, self.qty, self.quote
        return (
            f'{{"t":{c.open_time},"T":{c.close_time}{after_close}{c.first_trade_id}'
            f',"L":{c.last_trade_id},"o":"{prices.get(c.open) or price(c.open)}"'
            f',"c":"{prices.get(c.close) or price(c.close)}"'
            f',"h":"{prices.get(c.high) or price(c.high)}"'
            f',"l":"{prices.get(c.low) or price(c.low)}","v":"{qty(c.volume)}"'
            f',"n":{c.trades},"x":{"true" if c.closed else "false"}'
            f',"q":"{quote(c.quote_volume)}","V":"{qty(c.taker_buy_volume)}"'
            f',"Q":"{quote(c.taker_buy_quote)}","B":"0"}}'
        )


@functools.lru_cache(maxsize=256)
def _kline_form(config: MarketConfig) -> _KlineForm:
    return _KlineForm(config)


def fixed_point(step: Decimal) -> Callable[[int], str]:
    """``format_units(units, step)`` for one ``step``, in integer arithmetic (the same
    text: ``units × step`` with ``step``'s decimals)."""
    _, digits, exponent = step.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)))
    if exponent >= 0:
        multiplier = coefficient * 10**exponent
        return lambda units: str(units * multiplier)
    places = -exponent

    def formatted(units: int) -> str:
        scaled = units * coefficient
        text = str(abs(scaled)).rjust(places + 1, "0")
        return f"{'-' if scaled < 0 else ''}{text[:-places]}.{text[-places:]}"

    return formatted


async def read_recent_candles(
    client: aioredis.Redis, prefix: str, market: str, interval: str
) -> list[Candle]:
    """The candles of ``interval`` only Redis may hold: the pending ones and the current
    one (duplicates possible; the highest ``last_seq`` of an open time is the newest)."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.hvals(candles_pending_key(prefix, market, interval))
        pipe.hget(candles_state_key(prefix, market), "state")
        pending, state = await pipe.execute()
    found = [decode_candle(v) for v in pending]
    if state:
        current = decode_state(state).current.get(interval)
        if current is not None:
            found.append(current)
    return found

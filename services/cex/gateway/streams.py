"""Binance stream names and the control messages of a stream connection (pure, no I/O).

Stream names (symbols lowercase, as Binance writes them):

* ``<symbol>@depth``, ``<symbol>@depth@100ms``: diff depth, per 1000 / 100 ms;
* ``<symbol>@depth5|10|20[@100ms]``: partial book snapshots;
* ``<symbol>@trade``, ``<symbol>@aggTrade``, ``<symbol>@bookTicker``;
* ``<symbol>@kline_<interval>``;
* ``<symbol>@miniTicker``, ``<symbol>@ticker``, ``<symbol>@avgPrice``;
* ``!miniTicker@arr``, ``!ticker@arr``.

Control messages (``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``,
``GET_PROPERTY``) are parsed by :func:`parse_request`, which returns either a
:class:`Request` or the :class:`Refusal` Binance answers (its codes and messages, from the
"Error Messages" table of web-socket-streams).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "KLINE_INTERVALS",
    "MAX_STREAMS",
    "METHODS",
    "Refusal",
    "Request",
    "Stream",
    "parse_request",
    "parse_stream",
    "streams_of_path",
]

#: The most streams one connection may listen to.
MAX_STREAMS = 1024
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
KLINE_INTERVALS = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
    "1d", "3d", "1w", "1M",
)  # fmt: skip

Kind = Literal[
    "depth", "partial", "trade", "aggTrade", "bookTicker", "kline",
    "miniTicker", "ticker", "avgPrice", "allMiniTickers", "allTickers",
]  # fmt: skip

_SIMPLE: dict[str, Kind] = {
    "trade": "trade",
    "aggTrade": "aggTrade",
    "bookTicker": "bookTicker",
    "miniTicker": "miniTicker",
    "ticker": "ticker",
    "avgPrice": "avgPrice",
}
_SYMBOL = re.compile(r"[a-z0-9]{2,20}")
_ID_STRING = re.compile(r"[A-Za-z0-9_-]{1,36}")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class Stream:
    """A parsed stream name. ``symbol`` is the API symbol (uppercase, ``BTCUSDT``) or
    empty for the all-market streams; ``interval_ms`` is the push period of depth streams;
    ``levels`` the depth of a partial book; ``interval`` a kline interval."""

    name: str
    kind: Kind
    symbol: str = ""
    interval_ms: int = 0
    levels: int = 0
    interval: str = ""


def parse_stream(name: str) -> Stream | None:
    """The stream named ``name``, or None if Binance has no such stream."""
    if name == "!miniTicker@arr":
        return Stream(name, "allMiniTickers")
    if name == "!ticker@arr":
        return Stream(name, "allTickers")
    symbol, at, rest = name.partition("@")
    if not at or not _SYMBOL.fullmatch(symbol):
        return None
    upper = symbol.upper()
    kind = _SIMPLE.get(rest)
    if kind is not None:
        return Stream(name, kind, upper)
    if rest.startswith("kline_"):
        interval = rest[len("kline_") :]
        return (
            Stream(name, "kline", upper, interval=interval) if interval in KLINE_INTERVALS else None
        )
    head, at, speed = rest.partition("@")
    if at and speed != "100ms":
        return None
    period = 100 if at else 1000
    if head == "depth":
        return Stream(name, "depth", upper, interval_ms=period)
    if head in ("depth5", "depth10", "depth20"):
        return Stream(name, "partial", upper, interval_ms=period, levels=int(head[5:]))
    return None


def streams_of_path(path: str) -> tuple[bool, list[str]] | None:
    """``(combined, stream names)`` for a request path, or None for a path that is no
    stream endpoint. ``/ws``, ``/ws/<stream>[/<stream>…]`` and ``/ws/<anything>`` are raw
    (names that are no stream are ignored: ccxt.pro opens ``/ws/<n>`` and subscribes);
    ``/stream?streams=a/b`` and ``/stream`` are combined."""
    route, _, query = path.partition("?")
    route = route.rstrip("/") or "/"
    if route == "/ws" or route.startswith("/ws/"):
        names = [n for n in route[len("/ws/") :].split("/") if parse_stream(n) is not None]
        return False, list(dict.fromkeys(names))
    if route == "/stream":
        names = []
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key == "streams":
                names += [n for n in value.split("/") if parse_stream(n) is not None]
        return True, list(dict.fromkeys(names))
    return None


# --------------------------------------------------------------------------- requests

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: list[object]
    id: RequestId


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error reply: ``{"code", "msg"[, "id"]}``."""

    code: int
    msg: str
    id: RequestId = None
    has_id: bool = False

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.has_id:
            out["id"] = self.id
        return out


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return isinstance(value, str) and _ID_STRING.fullmatch(value) is not None


def parse_request(text: str | bytes) -> Request | Refusal:
    """A control message, checked as Binance checks it."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        line, column = getattr(error, "lineno", 1), getattr(error, "colno", 1)
        return Refusal(3, f"Invalid JSON: expected value at line {line} column {column}")
    end = f"at line 1 column {len(text)}"
    if not isinstance(message, dict):
        return Refusal(2, f"Invalid request: expected a map {end}")
    if "method" not in message:
        return Refusal(2, f"Invalid request: missing field `method` {end}")
    if "id" not in message or not _valid_id(message["id"]):
        return Refusal(2, "Invalid request: request ID must be an unsigned integer")
    request_id = message["id"]
    method = message["method"]
    if method not in METHODS:
        variants = ", ".join(f"`{m}`" for m in METHODS)
        return Refusal(
            2,
            f"Invalid request: unknown variant `{method}`, expected one of {variants} {end}",
            request_id,
            True,
        )
    if set(message) - {"method", "params", "id"}:
        return Refusal(2, "Invalid request: too many parameters", request_id, True)
    params = message.get("params", [])
    if not isinstance(params, list):
        return Refusal(
            2, f"Invalid request: invalid type: expected a sequence {end}", request_id, True
        )
    return Request(method, params, request_id)


@dataclass(frozen=True, slots=True)
class Subscription:
    """The outcome of SUBSCRIBE/UNSUBSCRIBE params: the streams, or a refusal."""

    streams: list[str]


def check_stream_params(request: Request) -> Subscription | Refusal:
    """SUBSCRIBE / UNSUBSCRIBE params: a list of valid stream names."""
    names: list[str] = []
    for param in request.params:
        if not isinstance(param, str):
            return Refusal(2, "Invalid request: stream name must be a string", request.id, True)
        if parse_stream(param) is None:
            return Refusal(2, f"Invalid request: invalid stream name `{param}`", request.id, True)
        names.append(param)
    return Subscription(list(dict.fromkeys(names)))


def check_property(request: Request, *, setting: bool) -> tuple[str, bool | None] | Refusal:
    """SET_PROPERTY ``["combined", bool]`` / GET_PROPERTY ``["combined"]``."""
    params = request.params
    if not params or not isinstance(params[0], str):
        return Refusal(2, "Invalid request: property name must be a string", request.id, True)
    if params[0] != "combined":
        return Refusal(0, "Unknown property", request.id, True)
    if not setting:
        return ("combined", None)
    if len(params) < 2 or not isinstance(params[1], bool):
        return Refusal(1, "Invalid value type: expected Boolean", request.id, True)
    return ("combined", params[1])

"""Stream names, endpoint paths and control messages, as Binance spells them."""

from __future__ import annotations

import pytest

from cex.gateway.streams import (
    Refusal,
    Request,
    check_property,
    check_stream_params,
    parse_request,
    parse_stream,
    streams_of_path,
)


@pytest.mark.parametrize(
    ("name", "kind", "symbol", "period", "levels", "interval"),
    [
        ("btcusdt@depth", "depth", "BTCUSDT", 1000, 0, ""),
        ("btcusdt@depth@100ms", "depth", "BTCUSDT", 100, 0, ""),
        ("ethusdt@depth5", "partial", "ETHUSDT", 1000, 5, ""),
        ("ethusdt@depth20@100ms", "partial", "ETHUSDT", 100, 20, ""),
        ("btcusdt@trade", "trade", "BTCUSDT", 0, 0, ""),
        ("btcusdt@aggTrade", "aggTrade", "BTCUSDT", 0, 0, ""),
        ("btcusdt@kline_1M", "kline", "BTCUSDT", 0, 0, "1M"),
        ("btcusdt@kline_1s", "kline", "BTCUSDT", 0, 0, "1s"),
        ("btcusdt@bookTicker", "bookTicker", "BTCUSDT", 0, 0, ""),
        ("btcusdt@avgPrice", "avgPrice", "BTCUSDT", 0, 0, ""),
        ("btcusdt@miniTicker", "miniTicker", "BTCUSDT", 0, 0, ""),
        ("btcusdt@ticker", "ticker", "BTCUSDT", 0, 0, ""),
        ("!ticker@arr", "allTickers", "", 0, 0, ""),
        ("!miniTicker@arr", "allMiniTickers", "", 0, 0, ""),
    ],
)
def test_stream_names(
    name: str, kind: str, symbol: str, period: int, levels: int, interval: str
) -> None:
    stream = parse_stream(name)
    assert stream is not None
    assert (stream.kind, stream.symbol, stream.interval_ms, stream.levels, stream.interval) == (
        kind, symbol, period, levels, interval,
    )  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["BTCUSDT@trade", "btcusdt", "btcusdt@depth7", "btcusdt@depth@250ms", "btcusdt@kline_2m",
     "btcusdt@aggtrade", "@trade", "1", "btcusdt@depth5@1000", "!bookTicker@arr", ""],
)  # fmt: skip
def test_not_streams(name: str) -> None:
    assert parse_stream(name) is None


def test_paths() -> None:
    assert streams_of_path("/ws") == (False, [])
    assert streams_of_path("/ws/") == (False, [])
    assert streams_of_path("/ws/btcusdt@trade") == (False, ["btcusdt@trade"])
    assert streams_of_path("/ws/3") == (False, [])  # ccxt.pro: /ws/<n>, then SUBSCRIBE
    assert streams_of_path("/stream?streams=btcusdt@trade/ethusdt@depth@100ms") == (
        True, ["btcusdt@trade", "ethusdt@depth@100ms"],
    )  # fmt: skip
    assert streams_of_path("/stream") == (True, [])
    assert streams_of_path("/stream?streams=btcusdt@trade/nope/btcusdt@trade") == (
        True, ["btcusdt@trade"],
    )  # fmt: skip
    assert streams_of_path("/api/v3/depth") is None
    assert streams_of_path("/") is None


def test_requests() -> None:
    assert parse_request('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}') == Request(
        "SUBSCRIBE", ["btcusdt@trade"], 1
    )
    assert parse_request('{"method":"LIST_SUBSCRIPTIONS","id":"ab-1"}') == Request(
        "LIST_SUBSCRIPTIONS", [], "ab-1"
    )
    assert parse_request('{"method":"LIST_SUBSCRIPTIONS","id":null}') == Request(
        "LIST_SUBSCRIPTIONS", [], None
    )


@pytest.mark.parametrize(
    ("text", "code", "msg", "has_id"),
    [
        ("{bad", 3, "Invalid JSON: expected value at line 1 column 2", False),
        ('{"params":[],"id":1}', 2, "Invalid request: missing field `method` at line 1 column 20",
         False),
        ('{"method":"SUBSCRIBE","params":[]}', 2,
         "Invalid request: request ID must be an unsigned integer", False),
        ('{"method":"SUBSCRIBE","params":[],"id":1.5}', 2,
         "Invalid request: request ID must be an unsigned integer", False),
        ('{"method":"SUBSCRIBE","params":[],"id":true}', 2,
         "Invalid request: request ID must be an unsigned integer", False),
        ('{"method":"SUBSCRIBE","params":[],"id":"' + "x" * 37 + '"}', 2,
         "Invalid request: request ID must be an unsigned integer", False),
        ('{"method":"SUBSCRIBE","params":[],"id":' + str(2**63) + "}", 2,
         "Invalid request: request ID must be an unsigned integer", False),
        ('{"method":"subscribe","params":[],"id":7}', 2,
         "Invalid request: unknown variant `subscribe`, expected one of `SUBSCRIBE`, "
         "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 "
         "column 41", True),
        ('{"method":"SUBSCRIBE","params":[],"id":7,"x":1}', 2,
         "Invalid request: too many parameters", True),
    ],
)  # fmt: skip
def test_refusals(text: str, code: int, msg: str, has_id: bool) -> None:
    refusal = parse_request(text)
    assert isinstance(refusal, Refusal)
    assert (refusal.code, refusal.msg, "id" in refusal.to_json()) == (code, msg, has_id)


def test_stream_params_and_properties() -> None:
    ok = check_stream_params(Request("SUBSCRIBE", ["btcusdt@trade", "btcusdt@trade"], 1))
    assert not isinstance(ok, Refusal)
    assert ok.streams == ["btcusdt@trade"]
    bad = check_stream_params(Request("SUBSCRIBE", ["btcusdt@nope"], 2))
    assert isinstance(bad, Refusal)
    assert bad.to_json()["id"] == 2
    assert isinstance(check_stream_params(Request("SUBSCRIBE", [3], 2)), Refusal)

    assert check_property(Request("SET_PROPERTY", ["combined", True], 5), setting=True) == (
        "combined", True,
    )  # fmt: skip
    assert check_property(Request("GET_PROPERTY", ["combined"], 5), setting=False) == (
        "combined", None,
    )  # fmt: skip
    unknown = check_property(Request("GET_PROPERTY", ["other"], 5), setting=False)
    assert isinstance(unknown, Refusal)
    assert unknown.to_json() == {"code": 0, "msg": "Unknown property", "id": 5}
    not_bool = check_property(Request("SET_PROPERTY", ["combined", 1], 5), setting=True)
    assert isinstance(not_bool, Refusal)
    assert not_bool.code == 1
    nameless = check_property(Request("SET_PROPERTY", [], 5), setting=True)
    assert isinstance(nameless, Refusal)
    assert nameless.msg == "Invalid request: property name must be a string"

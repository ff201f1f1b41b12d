"""Signed user data streams on the WebSocket API (`/ws-api/v3` of the public API), with real
clients, unmodified, pointed at our URL through their own configuration:

* the official `binance-sdk-spot` WebSocket API client (`ConfigurationWebSocketAPI`'s
  `stream_url`), logged on with an Ed25519 key (`session.logon`), `userDataStream.subscribe`;
* ccxt.pro `binance` (`urls["api"]["ws"]["ws-api"]["spot"]`): `watch_orders`,
  `watch_my_trades` and `watch_balance` subscribe with `userDataStream.subscribe.signature`
  (HMAC);
* python-binance (`client.ws_api`, its `WebsocketAPI` built with our URL):
  `BinanceSocketManager.user_socket()` subscribes with `userDataStream.subscribe.signature`.

Each receives the `executionReport`s and `outboundAccountPosition` of a real order, placed
and filled against another account, with exact fields and balances.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt.pro
import pytest
from binance_common.configuration import ConfigurationWebSocketAPI
from binance_sdk_spot.spot import Spot
from tests.fixtures import unique

from .clients import AsyncClient, ccxt_binance, ed25519_key
from .conftest import Exchange, Trader

ETH = "ETHUSDT"


def D(value: object) -> Decimal:
    return Decimal(str(value))


def ws_api_url(exchange: Exchange) -> str:
    return exchange.url.replace("http://", "ws://") + "/ws-api/v3"


async def _until(found: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    async with asyncio.timeout(seconds):
        while not (value := found()):
            await asyncio.sleep(0.05)
    assert value, what
    return value


async def _traders(exchange: Exchange, name: str) -> tuple[Trader, Trader]:
    maker = await exchange.trader(f"{unique(name + '-maker')}@example.com",
                                  {"ETH": "10", "USDT": "1000"})  # fmt: skip
    taker = await exchange.trader(f"{unique(name + '-taker')}@example.com", {"USDT": "5000"})
    return maker, taker


async def _take(exchange: Exchange, taker: Trader, qty: str, price: str) -> dict[str, Any]:
    """The taker buys `qty` ETH at `price` through ccxt's REST client (FULL response)."""
    rest = ccxt_binance(exchange.url, taker)
    try:
        await rest.load_markets()
        order = await rest.create_order("ETH/USDT", "limit", "buy", float(qty), float(price))
    finally:
        await rest.close()
    assert order["status"] == "closed", order
    return order


def _assert_new(report: dict[str, Any], order_id: int, client_id: str) -> None:
    assert report["e"] == "executionReport"
    assert (report["s"], report["i"], report["c"], report["S"], report["o"], report["f"]) == (
        ETH, order_id, client_id, "SELL", "LIMIT", "GTC")  # fmt: skip
    assert (report["x"], report["X"], report["r"], report["t"], report["C"]) == (
        "NEW", "NEW", "NONE", -1, "")  # fmt: skip
    assert (D(report["q"]), D(report["p"]), D(report["z"]), D(report["Z"])) == (
        D("0.1"), D("2000"), 0, 0)  # fmt: skip
    assert (report["w"], report["m"]) == (True, False)
    assert report["O"] > 1_700_000_000_000
    assert report["W"] == report["O"]


def _assert_fill(report: dict[str, Any], order_id: int, client_id: str, trade_id: int) -> None:
    """The maker's SELL 0.1 @ 2000 filled by one trade: 200 USDT, fee 0.1% in USDT."""
    assert (report["e"], report["s"], report["i"], report["c"], report["S"]) == (
        "executionReport", ETH, order_id, client_id, "SELL")  # fmt: skip
    assert (report["x"], report["X"], report["t"], report["m"], report["N"]) == (
        "TRADE", "FILLED", trade_id, True, "USDT")  # fmt: skip
    assert (D(report["l"]), D(report["L"]), D(report["z"]), D(report["Z"])) == (
        D("0.1"), D("2000"), D("0.1"), D("200"))  # fmt: skip
    assert (D(report["Y"]), D(report["n"]), D(report["q"]), D(report["p"])) == (
        D("200"), D("0.2"), D("0.1"), D("2000"))  # fmt: skip
    assert report["w"] is False
    assert report["T"] >= report["O"]


def _assert_position(event: dict[str, Any]) -> None:
    """After the fill: ETH 9.9 free, USDT 1000 + 200 - 0.2 free; nothing locked."""
    assert event["e"] == "outboundAccountPosition"
    balances = {b["a"]: (D(b["f"]), D(b["l"])) for b in event["B"]}
    assert balances == {"ETH": (D("9.9"), 0), "USDT": (D("1199.8"), 0)}


def _sdk_event(model: Any) -> dict[str, Any]:
    """An SDK event model as Binance's JSON (the model keeps the event type as its class)."""
    name = type(model).__name__
    return {"e": name[0].lower() + name[1:], **model.model_dump(by_alias=True)}


# The SDK passes aiohttp a float `timeout`, which aiohttp deprecates.
@pytest.mark.filterwarnings(
    "ignore:parameter 'timeout' of type 'float' is deprecated:DeprecationWarning"
)
async def test_binance_sdk_websocket_api_user_stream(exchange: Exchange) -> None:
    maker, taker = await _traders(exchange, "sdkws")
    api_key, private_pem = await ed25519_key(exchange, maker.user_id)
    config = ConfigurationWebSocketAPI(api_key=api_key, private_key=private_pem,
                                       stream_url=ws_api_url(exchange), timeout=30_000)  # fmt: skip
    connection = Spot(config_ws_api=config).websocket_api
    await connection.create_connection()
    try:
        pong = (await connection.ping()).data()
        assert (pong.status, pong.rate_limits[0].count >= 1) == (200, True)
        assert (await connection.time()).data().result.server_time > 1_700_000_000_000
        # This SDK version's exchangeInfo model describes the result, not the response: the
        # result lands in its additional properties.
        info = (await connection.exchange_info(symbol=ETH)).data().additional_properties
        assert [s["symbol"] for s in info["result"]["symbols"]] == [ETH]
        logon = (await connection.session_logon()).data().result
        assert logon.api_key == api_key
        subscribed = await connection.user_data_stream_subscribe()
        events: list[dict[str, Any]] = []
        subscribed.stream.on("message", lambda e: events.append(_sdk_event(e.actual_instance)))
        status = (await connection.session_status()).data().result
        assert (status.api_key, status.user_data_stream) == (api_key, True)

        # The maker's order through the logged-on session (no apiKey, no signature).
        client_id = unique("sdk")[:30]
        placed = (await connection.order_place(
            symbol=ETH, side="SELL", type="LIMIT", time_in_force="GTC", quantity=0.1,
            price=2000, new_client_order_id=client_id)).data()  # fmt: skip
        order_id = placed.result.order_id
        assert placed.rate_limits[0].rate_limit_type == "REQUEST_WEIGHT"
        new = await _until(lambda: [e for e in events if e.get("x") == "NEW"], "NEW report")
        _assert_new(new[0], order_id, client_id)

        taken = await _take(exchange, taker, "0.1", "2000")
        trade_id = int(taken["trades"][0]["id"])
        fills = await _until(lambda: [e for e in events if e.get("x") == "TRADE"], "TRADE")
        _assert_fill(fills[0], order_id, client_id, trade_id)
        positions = await _until(
            lambda: [e for e in events if e.get("e") == "outboundAccountPosition"], "position"
        )
        _assert_position(positions[0])
        assert events.index(fills[0]) < events.index(positions[0])

        # The same state through the request methods.
        queried = (await connection.order_status(symbol=ETH, order_id=order_id)).data().result
        assert (queried.status, D(queried.executed_qty)) == ("FILLED", D("0.1"))
        (trade,) = (await connection.my_trades(symbol=ETH)).data().result
        assert (trade.id, trade.order_id, trade.is_maker, D(trade.commission)) == (
            trade_id, order_id, True, D("0.2"))  # fmt: skip
        account = (await connection.account_status()).data().result
        free = {b.asset: D(b.free) for b in account.balances}
        assert (free["ETH"], free["USDT"]) == (D("9.9"), D("1199.8"))
        await connection.session_logout()
    finally:
        await connection.close_connection(close_session=True)


async def test_ccxt_pro_watches_orders_trades_and_balance(exchange: Exchange) -> None:
    maker, taker = await _traders(exchange, "ccxtpro")
    pro = ccxt.pro.binance({
        "apiKey": maker.api_key, "secret": maker.secret, "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False},
    })  # fmt: skip
    rest = ccxt_binance(exchange.url)
    pro.urls["api"] = {**rest.urls["api"], "ws": {**pro.urls["api"]["ws"],
                       "ws-api": {**pro.urls["api"]["ws"]["ws-api"],
                                  "spot": ws_api_url(exchange)}}}  # fmt: skip
    await rest.close()
    try:
        await pro.load_markets()
        await pro.authenticate()  # userDataStream.subscribe.signature, acknowledged
        orders_task = asyncio.create_task(pro.watch_orders("ETH/USDT"))
        trades_task = asyncio.create_task(pro.watch_my_trades("ETH/USDT"))
        balance_task = asyncio.create_task(pro.watch_balance())
        client_id = unique("ccxt")[:30]
        placed = await pro.create_order("ETH/USDT", "limit", "sell", 0.1, 2000,
                                        {"newClientOrderId": client_id})  # fmt: skip
        async with asyncio.timeout(30):
            (first,) = await orders_task
        assert (first["id"], first["clientOrderId"], first["status"], first["side"]) == (
            placed["id"], client_id, "open", "sell")  # fmt: skip
        assert (D(first["amount"]), D(first["price"]), D(first["filled"])) == (
            D("0.1"), D("2000"), 0)  # fmt: skip
        _assert_new(first["info"], int(placed["id"]), client_id)

        fill_task = asyncio.create_task(pro.watch_orders("ETH/USDT"))
        await asyncio.sleep(0)  # the watch is registered before the fill can arrive
        taken = await _take(exchange, taker, "0.1", "2000")
        async with asyncio.timeout(30):
            trades = await trades_task
            balance = await balance_task
            orders = await fill_task
        (trade,) = trades
        assert (trade["id"], trade["order"], trade["side"], trade["takerOrMaker"]) == (
            taken["trades"][0]["id"], placed["id"], "sell", "maker")  # fmt: skip
        assert (D(trade["amount"]), D(trade["price"]), D(trade["cost"])) == (
            D("0.1"), D("2000"), D("200"))  # fmt: skip
        assert (D(trade["fee"]["cost"]), trade["fee"]["currency"]) == (D("0.2"), "USDT")
        filled = orders[-1]
        assert (filled["id"], filled["status"], D(filled["filled"]), D(filled["cost"])) == (
            placed["id"], "closed", D("0.1"), D("200"))  # fmt: skip
        _assert_fill(filled["info"], int(placed["id"]), client_id, int(trade["id"]))
        while "ETH" not in balance or D(balance["USDT"]["free"]) != D("1199.8"):
            async with asyncio.timeout(30):
                balance = await pro.watch_balance()
        assert (D(balance["ETH"]["free"]), D(balance["ETH"]["used"])) == (D("9.9"), 0)
        assert (D(balance["USDT"]["free"]), D(balance["USDT"]["used"])) == (D("1199.8"), 0)
        _assert_position(balance["info"])
    finally:
        await pro.close()


async def test_python_binance_user_socket(exchange: Exchange) -> None:
    from binance import BinanceSocketManager
    from binance.ws.websocket_api import WebsocketAPI

    maker, taker = await _traders(exchange, "pybin")
    client = AsyncClient(maker.api_key, maker.secret)
    client.API_URL = f"{exchange.url}/api"
    client.ws_api = WebsocketAPI(url=ws_api_url(exchange))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            manager = BinanceSocketManager(client)
        async with manager.user_socket() as stream:
            client_id = unique("pyb")[:30]
            placed = await client.ws_create_order(
                symbol=ETH, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.1",
                price="2000", newClientOrderId=client_id)  # fmt: skip
            order_id = placed["orderId"]
            async with asyncio.timeout(30):
                new = await stream.recv()
            _assert_new(new, order_id, client_id)
            taken = await _take(exchange, taker, "0.1", "2000")
            async with asyncio.timeout(30):
                fill = await stream.recv()
                position = await stream.recv()
            _assert_fill(fill, order_id, client_id, int(taken["trades"][0]["id"]))
            _assert_position(position)
    finally:
        await client.close_connection()

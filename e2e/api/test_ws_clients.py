"""Real WebSocket clients, from their registries, unmodified, pointed at the gateway beside
the whole exchange: ccxt.pro (`urls['api']['ws']`), python-binance's BinanceSocketManager
(its `STREAM_URL`) and binance-sdk-spot's websocket streams (`stream_url`). Each sees the
book, the trades, the ticker and the candles of real orders placed through the public API.
(The candle aggregator runs beside them: `cex serve candles`.)"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.pro
import pytest
from binance_common.configuration import ConfigurationWebSocketStreams
from binance_sdk_spot.spot import Spot

from .clients import ccxt_binance, python_binance
from .conftest import Exchange

with warnings.catch_warnings():  # see clients.py: python-binance imports websockets.legacy
    warnings.filterwarnings("ignore", r"websockets\.(WebSocketClientProtocol|legacy) is deprecated",
                            DeprecationWarning)  # fmt: skip
    from binance import BinanceSocketManager

ETH = "ETH/USDT"
D = Decimal


@pytest.fixture(scope="module")
async def gateway(exchange: Exchange) -> str:
    if "candles" not in exchange.processes:
        exchange.start("candles", "candles")
    return await exchange.gateway("gateway-clients")


async def _free_price(exchange: Exchange) -> int:
    """A whole price strictly inside ETHUSDT's spread (other tests of the session leave
    orders on the book): an ask there rests, and an IOC buy at it takes only that ask."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{exchange.url}/api/v3/depth", params={"symbol": "ETHUSDT"}) as response,
    ):
        book = await response.json()
    bid = D(book["bids"][0][0]) if book["bids"] else D(0)
    ask = D(book["asks"][0][0]) if book["asks"] else None
    price = int(bid) + 1 if ask is None else int((bid + ask) / 2)
    if ask is None:
        price = max(price, 2100)
    assert bid < price < (ask or price + 1), (bid, ask)
    return price


async def _trade(exchange: Exchange, tag: str) -> int:
    """A maker's ask of 0.5 ETH and a taker's IOC buy of 0.2 against it, at a price inside
    the spread; that price."""
    price = await _free_price(exchange)
    maker = await exchange.trader(f"ws-{tag}-maker@example.com", {"ETH": "5"})
    taker = await exchange.trader(f"ws-{tag}-taker@example.com", {"USDT": "100000"})
    m, t = ccxt_binance(exchange.url, maker), ccxt_binance(exchange.url, taker)
    try:
        await m.load_markets()
        await t.load_markets()
        await m.create_order(ETH, "limit", "sell", 0.5, price)
        await t.create_order(ETH, "limit", "buy", 0.2, price, {"timeInForce": "IOC"})
    finally:
        await m.close()
        await t.close()
    return price


def _ccxt_pro(rest: str, ws: str) -> Any:
    """ccxt.pro's binance with its spot WebSocket and REST URLs replaced by ours."""
    exchange = ccxt.pro.binance({
        "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False},
    })  # fmt: skip
    api = dict(exchange.urls["api"])
    for name in ("public", "private", "v1", "v3"):  # the REST URLs, as clients.ccxt_binance
        if name in api:
            api[name] = f"{rest}/api/{'v1' if name == 'v1' else 'v3'}"
    api["ws"] = dict(api["ws"]) | {"spot": f"{ws}/ws", "margin": f"{ws}/ws"}
    exchange.urls["api"] = api
    return exchange


async def _until(predicate: Any, first: Any, watch: Any, timeout: float = 30) -> Any:
    """The first value (`first`, then `watch()` again and again) that `predicate` accepts."""
    found = None
    try:
        async with asyncio.timeout(timeout):
            found = await first
            while not predicate(found):
                found = await watch()
            return found
    except TimeoutError:
        raise AssertionError(f"last seen: {found}") from None


async def _listened(gateway: str, streams: int) -> None:
    """Wait until the gateway serves at least `streams` streams with a listener (its
    `cex_gateway_streams` gauge): the client's subscriptions are in place, so no event of
    the trade that follows can be missed, however slow the machine."""
    url = gateway.replace("ws://", "http://", 1) + "/metrics"
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            async with http.get(url) as response:
                text = await response.text()
            for line in text.splitlines():
                if line.startswith("cex_gateway_streams ") and float(line.split()[1]) >= streams:
                    return
            await asyncio.sleep(0.1)


async def test_ccxt_pro(exchange: Exchange, gateway: str) -> None:
    client = _ccxt_pro(exchange.url, gateway)
    try:
        await client.load_markets()
        book_task = asyncio.create_task(client.watch_order_book(ETH))
        trades_task = asyncio.create_task(client.watch_trades(ETH))
        ticker_task = asyncio.create_task(client.watch_ticker(ETH))
        ohlcv_task = asyncio.create_task(client.watch_ohlcv(ETH, "1m"))
        await _listened(gateway, 4)  # book, trades, ticker, candles
        price = float(await _trade(exchange, "ccxt"))
        book = await _until(lambda b: [price, 0.3] in b["asks"], book_task,
                            lambda: client.watch_order_book(ETH))  # fmt: skip
        assert book["symbol"] == ETH
        trades = await _until(lambda ts: any(t["price"] == price for t in ts), trades_task,
                              lambda: client.watch_trades(ETH))  # fmt: skip
        [trade] = [t for t in trades if t["price"] == price]
        assert (trade["amount"], trade["side"]) == (0.2, "buy")
        ticker = await _until(lambda t: t["last"] == price, ticker_task,
                              lambda: client.watch_ticker(ETH))  # fmt: skip
        assert ticker["symbol"] == ETH
        candles = await _until(lambda cs: any(c[4] == price for c in cs), ohlcv_task,
                               lambda: client.watch_ohlcv(ETH, "1m"))  # fmt: skip
        assert candles[-1][4] == price
    finally:
        await client.close()


async def test_python_binance_socket_manager(exchange: Exchange, gateway: str) -> None:
    client = python_binance(exchange.url)
    manager = BinanceSocketManager(client)
    manager.STREAM_URL = f"{gateway}/"  # the instance's base, as for Binance's testnet
    seen: dict[str, list[dict[str, Any]]] = {"depth": [], "trade": [], "kline": [], "ticker": []}

    async def collect(name: str, socket: Any) -> None:
        async with socket as stream:
            while True:
                seen[name].append(await stream.recv())

    sockets = {
        "depth": manager.depth_socket("ETHUSDT"),
        "trade": manager.trade_socket("ETHUSDT"),
        "kline": manager.kline_socket("ETHUSDT", "1m"),
        "ticker": manager.symbol_ticker_socket("ETHUSDT"),
    }
    tasks = [asyncio.create_task(collect(name, s)) for name, s in sockets.items()]
    try:
        await _listened(gateway, 4)
        text = f"{await _trade(exchange, 'pybinance')}.00"
        checks = {
            "trade": lambda: any(t["p"] == text and t["q"] == "0.2000"
                                 for t in seen["trade"]),
            "depth": lambda: any([text, "0.3000"] in d["a"] for d in seen["depth"]),
            "kline": lambda: any(k["k"]["c"] == text for k in seen["kline"]),
            "ticker": lambda: any(t["c"] == text for t in seen["ticker"]),
        }  # fmt: skip
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while not all(check() for check in checks.values()):
                    await asyncio.sleep(0.1)
        assert [name for name, check in checks.items() if not check()] == [], seen
        depth = seen["depth"][-1]
        assert depth["e"] == "depthUpdate"
        assert depth["U"] <= depth["u"]
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await client.close_connection()


@pytest.fixture
async def sdk_streams(gateway: str) -> AsyncIterator[Any]:
    config = ConfigurationWebSocketStreams(stream_url=gateway, reconnect_delay=500)
    connection = await Spot(config_ws_streams=config).websocket_streams.create_connection()
    try:
        yield connection
    finally:
        await connection.close_connection(close_session=True)


async def test_binance_sdk_spot_websocket_streams(
    exchange: Exchange, gateway: str, sdk_streams: Any
) -> None:
    seen: dict[str, list[Any]] = {"depth": [], "trade": [], "kline": [], "ticker": []}
    subscriptions = {
        "depth": await sdk_streams.diff_book_depth(symbol="ethusdt", update_speed="100ms"),
        "trade": await sdk_streams.trade(symbol="ethusdt"),
        "kline": await sdk_streams.kline(symbol="ethusdt", interval="1m"),
        "ticker": await sdk_streams.ticker(symbol="ethusdt"),
    }
    for name, stream in subscriptions.items():
        stream.on("message", lambda data, name=name: seen[name].append(data))
    await _listened(gateway, 4)
    text = f"{await _trade(exchange, 'sdk')}.00"
    async with asyncio.timeout(30):
        while not (
            any(t.p == text for t in seen["trade"])
            and any([text, "0.3000"] in d.a for d in seen["depth"])
            and any(k.k.c == text for k in seen["kline"])
            and any(t.c == text for t in seen["ticker"])
        ):
            await asyncio.sleep(0.1)
    [trade] = [t for t in seen["trade"] if t.p == text]
    assert (trade.q, trade.m) == ("0.2000", False)
    for stream in subscriptions.values():
        await stream.unsubscribe()

"""ccxt's `binance` class and python-binance's `Client`, unmodified, read our market data:
order book, trades, tickers (the app served on a free loopback port, real Postgres and
Redis)."""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import AsyncIterator
from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest
import uvicorn

from cex.api.app import create_app

# python-binance imports `websockets.WebSocketClientProtocol`, which websockets ≥ 14
# deprecates; the import runs at collection, before a filterwarnings mark applies.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"websockets\.(WebSocketClientProtocol|legacy) is deprecated",
                            DeprecationWarning)  # fmt: skip
    from binance import AsyncClient

from .test_market import NOW, TICKER_TRADES, Api, api, ticker_market

__all__ = ["api"]  # the fixture, shared with test_market

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*active notification listener:asyncpg.exceptions.InterfaceWarning"
)


@pytest.fixture
async def url(api: Api) -> AsyncIterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(api.state.settings, state=api.state)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def binance(url: str) -> ccxt_async.binance:
    exchange = ccxt_async.binance({
        "enableRateLimit": False,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                    "fetchMargins": False},
    })  # fmt: skip
    api = dict(exchange.urls["api"])
    for name in ("public", "private", "v3"):
        api[name] = f"{url}/api/v3"
    exchange.urls["api"] = api
    return exchange


async def test_ccxt_reads_market_data(api: Api, url: str) -> None:
    await ticker_market(api)
    exchange = binance(url)
    try:
        book = await exchange.fetch_order_book("BTC/USDT")
        assert book["nonce"] == 9
        assert book["bids"] == [[51000.0, 0.5], [50900.0, 0.00001]]
        assert book["asks"] == [[51300.0, 0.25]]
        trades = await exchange.fetch_trades("BTC/USDT")
        assert [t["id"] for t in trades] == ["1", "2", "3", "4", "5"]  # aggTrades' `a`
        last = trades[-1]
        assert (last["price"], last["amount"], last["side"]) == (51234.5, 0.01, "buy")
        assert last["timestamp"] == TICKER_TRADES[-1][5]
        ticker = await exchange.fetch_ticker("BTC/USDT")
        assert (ticker["last"], ticker["open"], ticker["high"], ticker["low"]) == (
            51234.5, 50000.0, 52000.0, 49000.0,
        )  # fmt: skip
        assert (ticker["bid"], ticker["ask"], ticker["timestamp"]) == (51000.0, 51300.0, NOW)
        assert Decimal(str(ticker["percentage"])) == Decimal("2.469")
        assert ticker["quoteVolume"] == 19342.345
        tickers = await exchange.fetch_tickers()
        assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
        bids_asks = await exchange.fetch_bids_asks()
        assert bids_asks["BTC/USDT"]["bid"] == 51000.0
        prices = await exchange.fetch_last_prices()
        assert prices["BTC/USDT"]["price"] == 51234.5
    finally:
        await exchange.close()


async def test_python_binance_reads_market_data(api: Api, url: str) -> None:
    await ticker_market(api)
    client = AsyncClient()
    client.API_URL = f"{url}/api"
    try:
        assert await client.get_order_book(symbol="BTCUSDT", limit=1) == {
            "lastUpdateId": 9, "bids": [["51000.0", "0.50000"]], "asks": [["51300.0", "0.25000"]],
        }  # fmt: skip
        recent = await client.get_recent_trades(symbol="BTCUSDT", limit=2)
        assert [t["id"] for t in recent] == [4, 5]
        aggs = await client.get_aggregate_trades(symbol="BTCUSDT", fromId=3)
        assert [a["a"] for a in aggs] == [3, 4, 5]
        assert (await client.get_avg_price(symbol="BTCUSDT"))["price"] == "51234.500000"
        assert (await client.get_ticker(symbol="BTCUSDT"))["lastPrice"] == "51234.5"
        assert await client.get_symbol_ticker(symbol="BTCUSDT") == {
            "symbol": "BTCUSDT", "price": "51234.5",
        }  # fmt: skip
        assert (await client.get_orderbook_ticker(symbol="ETHUSDT"))["bidPrice"] == "0.00"
    finally:
        await client.close_connection()

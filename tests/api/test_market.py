"""Market-data endpoints on real Postgres and Redis: trades inserted as settlement writes
them, the L2 book hash written as the engine publishes it; expected values computed by
hand from those rows (btc-usdt: tick 0.1, lot 0.00001, 1 quote unit = 0.000001 USDT per
tick × lot; eth-usdt: tick 0.01, lot 0.0001)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from cex.api.app import create_app
from cex.api.settings import ApiSettings
from cex.api.state import ApiState
from cex.infra.redis import book_key
from cex.stack.settings import StackSettings

#: `KeyCache.stop` cancels its LISTEN task while the connection still has its listener;
#: asyncpg warns when it goes back to the pool (harmless, not this module's).
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*active notification listener:asyncpg.exceptions.InterfaceWarning"
)

NOW = 1_800_000_030_000  # 30 s into a minute
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
WEIGHT = "X-MBX-USED-WEIGHT-1M"


@dataclass
class Api:
    client: httpx.AsyncClient
    state: ApiState
    dsn: str
    redis: aioredis.Redis
    prefix: str
    used: int = 0

    async def get(self, path: str, weight: int | None = None, **params: Any) -> httpx.Response:
        """GET `path`; when `weight` is given, assert the weight header grew by exactly it."""
        response = await self.client.get(path, params=params)
        used = int(response.headers[WEIGHT])
        if weight is not None:
            assert used - self.used == weight, (path, params, used - self.used)
        self.used = used
        return response

    async def ok(self, path: str, weight: int | None = None, **params: Any) -> Any:
        response = await self.get(path, weight, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def error(self, path: str, code: int, **params: Any) -> str:
        response = await self.get(path, **params)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == code, body
        return str(body["msg"])

    async def trades(self, market: str, rows: list[tuple[int, int, int, str, int, int]]) -> None:
        """Insert trades `(trade_id, price ticks, qty lots, taker side, taker order id, ts)`
        of a market whose quote units per tick × lot is 1 (both example markets)."""
        base_per_lot = {"btc-usdt": 1000, "eth-usdt": 10_000}[market]
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.executemany(
                """
                INSERT INTO trades (market, trade_id, price, qty, quote_amount, base_amount,
                    taker_side, maker_order_id, taker_order_id, maker_user_id, taker_user_id,
                    maker_fee, taker_fee, seq, ts)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, 2, 0, 0, $2, $10)
                """,
                [
                    (market, tid, px, q, px * q, q * base_per_lot, side, 1000 + tid, taker, ts)
                    for tid, px, q, side, taker, ts in rows
                ],
            )
        finally:
            await conn.close()

    async def book(self, market: str, seq: int, bids: dict[int, int], asks: dict[int, int]) -> None:
        fields = {"seq": str(seq)}
        fields |= {f"b:{px}": str(q) for px, q in bids.items()}
        fields |= {f"a:{px}": str(q) for px, q in asks.items()}
        await self.redis.hset(book_key(self.prefix, market), mapping=fields)


@pytest.fixture
async def api(
    exchange_dsn: str, redis_prefix: str, redis_client: aioredis.Redis, stack: StackSettings
) -> AsyncIterator[Api]:
    settings = ApiSettings(
        postgres_dsn=exchange_dsn, redis_url=stack.redis_url, redis_prefix=redis_prefix
    )
    state = await ApiState.open(settings)
    state.clock_ms = lambda: NOW
    app = create_app(settings, state=state)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, state, exchange_dsn, redis_client, redis_prefix)
    finally:
        await state.close()


# --------------------------------------------------------------------------- depth


async def test_depth_is_the_book_key_at_its_seq(api: Api) -> None:
    await api.book(
        "btc-usdt", 42,
        bids={500000: 150_000, 499990: 2_000, 499000: 1},
        asks={500010: 1, 500020: 300_000},
    )  # fmt: skip
    assert await api.ok("/api/v3/depth", 5, symbol="BTCUSDT") == {
        "lastUpdateId": 42,
        "bids": [["50000.0", "1.50000"], ["49999.0", "0.02000"], ["49900.0", "0.00001"]],
        "asks": [["50001.0", "0.00001"], ["50002.0", "3.00000"]],
    }
    assert await api.ok("/api/v3/depth", 5, symbol="BTCUSDT", limit=1) == {
        "lastUpdateId": 42, "bids": [["50000.0", "1.50000"]], "asks": [["50001.0", "0.00001"]],
    }  # fmt: skip
    await api.redis.hset(book_key(api.prefix, "btc-usdt"), mapping={"seq": "43", "b:500000": "7"})
    depth = await api.ok("/api/v3/depth", 5, symbol="BTCUSDT", limit=2)
    assert depth["lastUpdateId"] == 43
    assert depth["bids"] == [["50000.0", "0.00007"], ["49999.0", "0.02000"]]
    # No book written yet: seq 0, no levels.
    assert await api.ok("/api/v3/depth", 5, symbol="ETHUSDT") == {
        "lastUpdateId": 0, "bids": [], "asks": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(100, 5), (101, 25), (500, 25), (501, 50), (1000, 50), (1001, 250), (5000, 250),
     (99999, 250)],
)  # fmt: skip
async def test_depth_weight_by_limit(api: Api, limit: int, weight: int) -> None:
    await api.book("btc-usdt", 1, bids={px: 1 for px in range(1, 5102)}, asks={})
    depth = await api.ok("/api/v3/depth", weight, symbol="BTCUSDT", limit=limit)
    assert len(depth["bids"]) == min(limit, 5000)  # more than 5000 is served as 5000
    assert depth["bids"][0] == ["510.1", "0.00001"]


async def test_depth_refusals(api: Api) -> None:
    assert await api.error("/api/v3/depth", -1121, symbol="FOOBAR") == "Invalid symbol."
    assert "'symbol'" in await api.error("/api/v3/depth", -1102)
    await api.error("/api/v3/depth", -1130, symbol="BTCUSDT", limit=0)
    await api.error("/api/v3/depth", -1130, symbol="BTCUSDT", limit=-5)
    await api.error("/api/v3/depth", -1100, symbol="BTCUSDT", limit="ten")
    assert await api.error("/api/v3/depth", -1220, symbol="BTCUSDT", symbolStatus="HALT") == (
        "The symbol's status does not match the requested symbolStatus."
    )
    await api.error("/api/v3/depth", -1122, symbol="BTCUSDT", symbolStatus="OPEN")
    await api.ok("/api/v3/depth", 5, symbol="BTCUSDT", symbolStatus="TRADING")


# --------------------------------------------------------------------------- trades

TRADES = [
    (1, 500000, 100_000, "BUY", 10, NOW - 3 * HOUR),
    (2, 500010, 1, "SELL", 11, NOW - 2 * HOUR),
    (3, 499990, 25_000, "BUY", 12, NOW - HOUR),
]


def trade(tid: int, price: str, qty: str, quote: str, ts: int, buyer_maker: bool) -> dict[str, Any]:
    return {"id": tid, "price": price, "qty": qty, "quoteQty": quote, "time": ts,
            "isBuyerMaker": buyer_maker, "isBestMatch": True}  # fmt: skip


EXPECTED_TRADES = [
    # 50000.0 × 1 BTC; 50001.0 × 0.00001 = 0.50001; 49999.0 × 0.25 = 12499.75
    trade(1, "50000.0", "1.00000", "50000.000000", NOW - 3 * HOUR, False),
    trade(2, "50001.0", "0.00001", "0.500010", NOW - 2 * HOUR, True),
    trade(3, "49999.0", "0.25000", "12499.750000", NOW - HOUR, False),
]


async def test_recent_and_historical_trades(api: Api) -> None:
    assert await api.ok("/api/v3/trades", 25, symbol="BTCUSDT") == []
    await api.trades("btc-usdt", TRADES)
    assert await api.ok("/api/v3/trades", 25, symbol="BTCUSDT") == EXPECTED_TRADES
    assert await api.ok("/api/v3/trades", 25, symbol="BTCUSDT", limit=2) == EXPECTED_TRADES[1:]
    assert await api.ok("/api/v3/historicalTrades", 25, symbol="BTCUSDT") == EXPECTED_TRADES
    assert (
        await api.ok("/api/v3/historicalTrades", 25, symbol="BTCUSDT", fromId=2, limit=1)
        == EXPECTED_TRADES[1:2]
    )
    assert (
        await api.ok("/api/v3/historicalTrades", 25, symbol="BTCUSDT", fromId=2)
        == EXPECTED_TRADES[1:]
    )
    assert await api.ok("/api/v3/historicalTrades", 25, symbol="BTCUSDT", fromId=4) == []
    assert await api.ok("/api/v3/trades", 25, symbol="ETHUSDT") == []
    await api.error("/api/v3/trades", -1130, symbol="BTCUSDT", limit=0)
    await api.error("/api/v3/trades", -1121, symbol="btcusdt")
    await api.error("/api/v3/historicalTrades", -1130, symbol="BTCUSDT", fromId=-1)


async def test_trade_limits_cap_at_1000(api: Api) -> None:
    conn = await asyncpg.connect(api.dsn)
    try:
        await conn.execute(
            """
            INSERT INTO trades (market, trade_id, price, qty, quote_amount, base_amount,
                taker_side, maker_order_id, taker_order_id, maker_user_id, taker_user_id,
                maker_fee, taker_fee, seq, ts)
            SELECT 'btc-usdt', i, 1000, 1, 1000, 1000, 'BUY', i, i, 1, 2, 0, 0, i, $1::bigint + i
            FROM generate_series(1, 1200) AS i
            """,
            NOW - DAY,
        )
    finally:
        await conn.close()
    recent = await api.ok("/api/v3/trades", 25, symbol="BTCUSDT", limit=5000)
    assert [t["id"] for t in recent] == list(range(201, 1201))
    assert len(await api.ok("/api/v3/trades", 25, symbol="BTCUSDT")) == 500
    old = await api.ok("/api/v3/historicalTrades", 25, symbol="BTCUSDT", fromId=7, limit=1001)
    assert [t["id"] for t in old] == list(range(7, 1007))
    # Every trade its own aggregate (distinct taker orders): limits apply to aggregates.
    aggs = await api.ok("/api/v3/aggTrades", 4, symbol="BTCUSDT", limit=1001)
    assert [a["a"] for a in aggs] == list(range(201, 1201))


# --------------------------------------------------------------------------- aggTrades

T0, T1, T2 = NOW - 3 * MIN, NOW - 2 * MIN, NOW - MIN
AGG_TRADES = [
    (1, 500000, 100, "BUY", 10, T0),
    (2, 500000, 200, "BUY", 10, T0),  # continues 1
    (3, 500010, 50, "BUY", 10, T0),  # same order, another price
    (4, 500010, 70, "BUY", 11, T0),  # same price, another order
    (5, 499990, 10, "SELL", 12, T1),
    (6, 499990, 20, "SELL", 12, T1),
    (7, 499990, 30, "SELL", 12, T1),
    (8, 500000, 5, "BUY", 13, T2),
]


def agg(a: int, price: str, qty: str, last: int, ts: int, buyer_maker: bool) -> dict[str, Any]:
    return {"a": a, "p": price, "q": qty, "f": a, "l": last, "T": ts, "m": buyer_maker, "M": True}


A1 = agg(1, "50000.0", "0.00300", 2, T0, False)
A3 = agg(3, "50001.0", "0.00050", 3, T0, False)
A4 = agg(4, "50001.0", "0.00070", 4, T0, False)
A5 = agg(5, "49999.0", "0.00060", 7, T1, True)
A8 = agg(8, "50000.0", "0.00005", 8, T2, False)


async def test_agg_trades(api: Api) -> None:
    await api.trades("btc-usdt", AGG_TRADES)

    async def aggs(**params: Any) -> Any:
        return await api.ok("/api/v3/aggTrades", 4, symbol="BTCUSDT", **params)

    assert await aggs() == [A1, A3, A4, A5, A8]
    # The most recent ones, whole: aggregate 5 spans trades 5..7.
    assert await aggs(limit=2) == [A5, A8]
    assert await aggs(limit=1) == [A8]
    # fromId is an aggregate id (its first trade id): 2 and 6 continue aggregates 1 and 5.
    assert await aggs(fromId=1, limit=2) == [A1, A3]
    assert await aggs(fromId=2) == [A3, A4, A5, A8]
    assert await aggs(fromId=5, limit=1) == [A5]
    assert await aggs(fromId=6) == [A8]
    assert await aggs(fromId=9) == []
    # Paging with fromId = last a + 1 returns every aggregate once.
    pages, from_id = [], 0
    while page := await aggs(fromId=from_id, limit=2):
        pages += page
        from_id = page[-1]["a"] + 1
    assert pages == [A1, A3, A4, A5, A8]
    # Time filters (inclusive), the oldest first; endTime alone: the latest before it.
    assert await aggs(startTime=T1) == [A5, A8]
    assert await aggs(startTime=T1 + 1) == [A8]
    assert await aggs(startTime=T0, endTime=T0) == [A1, A3, A4]
    assert await aggs(startTime=T0, endTime=T1, limit=3) == [A1, A3, A4]
    assert await aggs(startTime=T0 - 1, limit=2) == [A1, A3]
    assert await aggs(endTime=T1) == [A1, A3, A4, A5]
    assert await aggs(endTime=T1, limit=1) == [A5]
    assert await aggs(endTime=T0 - 1) == []
    assert await aggs(startTime=T2, endTime=T1) == []
    await api.error("/api/v3/aggTrades", -1128, symbol="BTCUSDT", fromId=1, startTime=T0)
    await api.error("/api/v3/aggTrades", -1128, symbol="BTCUSDT", fromId=1, endTime=T0)
    await api.error("/api/v3/aggTrades", -1130, symbol="BTCUSDT", limit=0)
    await api.error("/api/v3/aggTrades", -1121, symbol="XRPUSDT")


async def test_an_aggregate_larger_than_a_read_is_returned_whole(api: Api) -> None:
    # One taker order sweeping 2500 makers at one price, then another order.
    rows = [(i, 300_000, 1, "BUY", 20, T0) for i in range(1, 2501)]
    await api.trades("eth-usdt", [*rows, (2501, 300_100, 3, "SELL", 21, T1)])
    whole = {"a": 1, "p": "3000.00", "q": "0.2500", "f": 1, "l": 2500, "T": T0, "m": False,
             "M": True}  # fmt: skip
    last = {"a": 2501, "p": "3001.00", "q": "0.0003", "f": 2501, "l": 2501, "T": T1, "m": True,
            "M": True}  # fmt: skip
    for params in ({}, {"limit": 2}, {"fromId": 1}, {"startTime": T0}, {"endTime": T1}):
        assert await api.ok("/api/v3/aggTrades", 4, symbol="ETHUSDT", **params) == [whole, last]
    assert await api.ok("/api/v3/aggTrades", 4, symbol="ETHUSDT", fromId=1, limit=1) == [whole]
    assert await api.ok("/api/v3/aggTrades", 4, symbol="ETHUSDT", endTime=T0) == [whole]
    assert await api.ok("/api/v3/aggTrades", 4, symbol="ETHUSDT", fromId=1000) == [last]


# --------------------------------------------------------------------------- tickers

TICKER_TRADES = [
    (1, 400000, 100_000, "BUY", 1, NOW - 25 * HOUR),  # before the 24 h window
    (2, 500000, 10_000, "BUY", 2, NOW - DAY),  # the window's first (inclusive)
    (3, 520000, 20_000, "SELL", 3, NOW - HOUR),
    (4, 490000, 7_000, "BUY", 4, NOW - 10 * MIN),
    (5, 512345, 1_000, "BUY", 5, NOW - MIN),
]
# Window 2..5: volume 38000 lots = 0.38 BTC; quote 5e9 + 1.04e10 + 3.43e9 + 5.12345e8 units
# = 19342.345 USDT; weighted average 19342.345 / 0.38 = 50900.90789…; change 1234.5 over
# 50000.0 = 2.469 %.
FULL_24HR = {
    "symbol": "BTCUSDT", "priceChange": "1234.5", "priceChangePercent": "2.469",
    "weightedAvgPrice": "50900.907895", "prevClosePrice": "40000.0", "lastPrice": "51234.5",
    "lastQty": "0.01000", "bidPrice": "51000.0", "bidQty": "0.50000", "askPrice": "51300.0",
    "askQty": "0.25000", "openPrice": "50000.0", "highPrice": "52000.0", "lowPrice": "49000.0",
    "volume": "0.38000", "quoteVolume": "19342.345000", "openTime": NOW - DAY,
    "closeTime": NOW, "firstId": 2, "lastId": 5, "count": 4,
}  # fmt: skip
MINI_KEYS = ("symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume",
             "quoteVolume", "openTime", "closeTime", "firstId", "lastId", "count")  # fmt: skip
ETH_EMPTY_24HR = {
    "symbol": "ETHUSDT", "priceChange": "0.00", "priceChangePercent": "0.000",
    "weightedAvgPrice": "0.000000", "prevClosePrice": "0.00", "lastPrice": "0.00",
    "lastQty": "0.0000", "bidPrice": "0.00", "bidQty": "0.0000", "askPrice": "0.00",
    "askQty": "0.0000", "openPrice": "0.00", "highPrice": "0.00", "lowPrice": "0.00",
    "volume": "0.0000", "quoteVolume": "0.000000", "openTime": NOW - DAY, "closeTime": NOW,
    "firstId": -1, "lastId": -1, "count": 0,
}  # fmt: skip


async def ticker_market(api: Api) -> None:
    await api.trades("btc-usdt", TICKER_TRADES)
    await api.book("btc-usdt", 9, bids={510000: 50_000, 509000: 1}, asks={513000: 25_000})


async def test_ticker_24hr(api: Api) -> None:
    await ticker_market(api)
    assert await api.ok("/api/v3/ticker/24hr", 2, symbol="BTCUSDT") == FULL_24HR
    mini = await api.ok("/api/v3/ticker/24hr", 2, symbol="BTCUSDT", type="MINI")
    assert mini == {key: FULL_24HR[key] for key in MINI_KEYS}
    both = json.dumps(["ETHUSDT", "BTCUSDT"])
    assert await api.ok("/api/v3/ticker/24hr", 2, symbols=both) == [ETH_EMPTY_24HR, FULL_24HR]
    assert await api.ok("/api/v3/ticker/24hr", 80) == [FULL_24HR, ETH_EMPTY_24HR]
    assert await api.ok("/api/v3/ticker/24hr", 80, symbolStatus="TRADING") == [
        FULL_24HR, ETH_EMPTY_24HR,
    ]  # fmt: skip
    assert await api.ok("/api/v3/ticker/24hr", 80, symbolStatus="HALT") == []
    many = json.dumps(["BTCUSDT"] * 21)  # weight counts the symbols sent
    assert await api.ok("/api/v3/ticker/24hr", 40, symbols=many) == [FULL_24HR]
    assert await api.ok("/api/v3/ticker/24hr", 80, symbols=json.dumps(["BTCUSDT"] * 101))
    await api.error("/api/v3/ticker/24hr", -1128, symbol="BTCUSDT", symbols=both)
    await api.error("/api/v3/ticker/24hr", -1121, symbols=json.dumps(["BTCUSDT", "NOPE"]))
    await api.error("/api/v3/ticker/24hr", -1130, symbol="BTCUSDT", type="SMALL")
    await api.error("/api/v3/ticker/24hr", -1100, symbols="BTCUSDT")
    await api.error("/api/v3/ticker/24hr", -1220, symbol="ETHUSDT", symbolStatus="BREAK")


async def test_ticker_24hr_after_trading_stopped(api: Api) -> None:
    # Trades only before the window: zero shape, but the last price is kept.
    await api.trades("btc-usdt", TICKER_TRADES[:1])
    ticker = await api.ok("/api/v3/ticker/24hr", 2, symbol="BTCUSDT")
    assert ticker == {
        **{k: v.replace("ETH", "BTC") if k == "symbol" else v for k, v in ETH_EMPTY_24HR.items()},
        "priceChange": "0.0", "prevClosePrice": "40000.0", "lastPrice": "40000.0",
        "lastQty": "0.00000", "bidPrice": "0.0", "bidQty": "0.00000", "askPrice": "0.0",
        "askQty": "0.00000", "openPrice": "0.0", "highPrice": "0.0", "lowPrice": "0.0",
        "volume": "0.00000",
    }  # fmt: skip


async def test_rolling_window_ticker(api: Api) -> None:
    await ticker_market(api)
    one_hour = await api.ok("/api/v3/ticker", 4, symbol="BTCUSDT", windowSize="1h")
    # NOW - 1 h rounded down to its minute: trade 3 (at NOW - 1 h) is in.
    # Trades 3..5: 0.28 BTC for 14342.345 USDT = 51222.6607…; 51234.5 - 52000.0 = -765.5,
    # -765.5 / 52000.0 = -1.4721… %.
    assert one_hour == {
        "symbol": "BTCUSDT", "priceChange": "-765.5", "priceChangePercent": "-1.472",
        "weightedAvgPrice": "51222.660714", "openPrice": "52000.0", "highPrice": "52000.0",
        "lowPrice": "49000.0", "lastPrice": "51234.5", "volume": "0.28000",
        "quoteVolume": "14342.345000", "openTime": NOW - HOUR - 30_000, "closeTime": NOW,
        "firstId": 3, "lastId": 5, "count": 3,
    }  # fmt: skip
    mini = await api.ok("/api/v3/ticker", 4, symbol="BTCUSDT", windowSize="1h", type="MINI")
    assert mini == {key: one_hour[key] for key in MINI_KEYS}
    # Default 1d: the window opens at NOW - 1 d rounded down, so trade 2 is in.
    day = await api.ok("/api/v3/ticker", 8, symbols=json.dumps(["BTCUSDT", "ETHUSDT"]))
    assert day[0]["openTime"] == NOW - DAY - 30_000
    assert (day[0]["firstId"], day[0]["count"], day[0]["quoteVolume"]) == (2, 4, "19342.345000")
    assert (day[1]["firstId"], day[1]["lastPrice"]) == (-1, "0.00")
    two_min = await api.ok("/api/v3/ticker", 4, symbol="BTCUSDT", windowSize="2m")
    assert (two_min["firstId"], two_min["lastId"], two_min["priceChange"]) == (5, 5, "0.0")
    assert await api.ok("/api/v3/ticker", 200, symbols=json.dumps(["BTCUSDT"] * 51))
    for size in ("60m", "0m", "24h", "8d", "1d2h", "1w", "h"):
        await api.error("/api/v3/ticker", -1130, symbol="BTCUSDT", windowSize=size)
    await api.error("/api/v3/ticker", -1102)
    await api.error("/api/v3/ticker", -1128, symbol="BTCUSDT", symbols='["BTCUSDT"]')
    await api.error("/api/v3/ticker", -1101, symbols=json.dumps(["BTCUSDT"] * 101))


async def test_price_and_book_tickers(api: Api) -> None:
    await ticker_market(api)
    assert await api.ok("/api/v3/ticker/price", 2, symbol="BTCUSDT") == {
        "symbol": "BTCUSDT", "price": "51234.5",
    }  # fmt: skip
    assert await api.ok("/api/v3/ticker/price", 4) == [
        {"symbol": "BTCUSDT", "price": "51234.5"}, {"symbol": "ETHUSDT", "price": "0.00"},
    ]  # fmt: skip
    assert await api.ok("/api/v3/ticker/price", 4, symbols='["ETHUSDT"]') == [
        {"symbol": "ETHUSDT", "price": "0.00"}
    ]
    btc_book = {"symbol": "BTCUSDT", "bidPrice": "51000.0", "bidQty": "0.50000",
                "askPrice": "51300.0", "askQty": "0.25000"}  # fmt: skip
    assert await api.ok("/api/v3/ticker/bookTicker", 2, symbol="BTCUSDT") == btc_book
    assert await api.ok("/api/v3/ticker/bookTicker", 4) == [
        btc_book,
        {"symbol": "ETHUSDT", "bidPrice": "0.00", "bidQty": "0.0000", "askPrice": "0.00",
         "askQty": "0.0000"},
    ]  # fmt: skip
    await api.error("/api/v3/ticker/price", -1128, symbol="BTCUSDT", symbols='["BTCUSDT"]')
    await api.error("/api/v3/ticker/bookTicker", -1121, symbol="DOGEUSDT")


async def test_avg_price(api: Api) -> None:
    assert await api.ok("/api/v3/avgPrice", 2, symbol="BTCUSDT") == {
        "mins": 5, "price": "0.000000", "closeTime": 0,
    }  # fmt: skip
    await api.trades("btc-usdt", [(1, 600000, 1_000, "BUY", 1, NOW - 5 * MIN - 1)])
    # Nothing in the last 5 minutes: the last price.
    assert await api.ok("/api/v3/avgPrice", 2, symbol="BTCUSDT") == {
        "mins": 5, "price": "60000.000000", "closeTime": NOW - 5 * MIN - 1,
    }  # fmt: skip
    await api.trades(
        "btc-usdt",
        [(2, 500000, 1_000, "BUY", 2, NOW - 5 * MIN), (3, 500001, 2_000, "SELL", 3, NOW - MIN)],
    )
    # (50000.0 × 0.01 + 50000.1 × 0.02) / 0.03 = 1500.002 / 0.03 = 50000.0666…
    assert await api.ok("/api/v3/avgPrice", 2, symbol="BTCUSDT") == {
        "mins": 5, "price": "50000.066667", "closeTime": NOW - MIN,
    }  # fmt: skip
    await api.error("/api/v3/avgPrice", -1102)


async def test_every_parameter_is_documented(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()["paths"]

    def names(path: str) -> list[str]:
        return [p["name"] for p in schema[path]["get"]["parameters"]]

    assert names("/api/v3/depth") == ["symbol", "limit", "symbolStatus"]
    assert names("/api/v3/aggTrades") == ["symbol", "fromId", "startTime", "endTime", "limit"]
    assert names("/api/v3/historicalTrades") == ["symbol", "limit", "fromId"]
    assert names("/api/v3/ticker") == ["symbol", "symbols", "windowSize", "type", "symbolStatus"]
    assert names("/api/v3/ticker/24hr") == ["symbol", "symbols", "type", "symbolStatus"]
    assert names("/api/v3/avgPrice") == ["symbol"]

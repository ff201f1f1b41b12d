"""`/api/v3/klines` and `/uiKlines` on real Postgres and Redis: history in the candles
table, recent and newer versions pending in Redis, the current candle in the aggregator's
state; no gap and no double at the seam, the newest version (highest last_seq) wins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from cex.api.app import create_app
from cex.api.settings import ApiSettings
from cex.api.state import ApiState
from cex.candles.store import upsert
from cex.core import candles as cc
from cex.core.events import Side, TradeExecuted
from cex.infra import redis as keys
from cex.stack.settings import StackSettings

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*active notification listener:asyncpg.exceptions.InterfaceWarning"
)

T0 = 1_800_000_000_000 - 1_800_000_000_000 % cc.DAY  # a UTC midnight
NOW = T0 + 10 * cc.DAY


def trades() -> list[TradeExecuted]:
    """One trade every 7 minutes for two days (btc-usdt: 1 quote unit per tick × lot)."""
    return [
        TradeExecuted("BTCUSDT", i + 1, 0, T0 + i * 7 * cc.MINUTE, i + 1, 500_000 + i % 13,
                      1 + i % 5, (500_000 + i % 13) * (1 + i % 5), 0,
                      Side.BUY if i % 3 else Side.SELL, 0, 0, 0, 0, 0, 0)
        for i in range(2 * 24 * 60 // 7)
    ]  # fmt: skip


@pytest.fixture
async def client(
    exchange_dsn: str, redis_prefix: str, redis_client: aioredis.Redis, stack: StackSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """History up to the last 30 1m candles in Postgres (an older version of one of those
    too), the rest pending in Redis, the aggregator's current state in Redis."""
    stream = trades()
    state = cc.new_state()
    everything = cc.aggregate(stream)
    cc.apply(state, stream)
    ones = sorted(k for k in everything if k[0] == "1m")
    seam = ones[-30][1]
    old = [c for k, c in everything.items() if not (k[0] == "1m" and k[1] >= seam)]
    recent = [c for k, c in everything.items() if k[0] == "1m" and k[1] >= seam]
    conn = await asyncpg.connect(exchange_dsn)
    try:
        await upsert(conn, "btc-usdt", old)
        stale = cc.Candle(**{**{f: getattr(recent[0], f) for f in recent[0].__struct_fields__},
                             "volume": 1, "last_seq": recent[0].last_seq - 1})  # fmt: skip
        await upsert(conn, "btc-usdt", [stale])
    finally:
        await conn.close()
    for c in recent:
        await redis_client.hset(
            keys.candles_pending_key(redis_prefix, "btc-usdt", "1m"),
            str(c.open_time), cc.encode_candle(c),
        )  # fmt: skip
    await redis_client.hset(
        keys.candles_state_key(redis_prefix, "btc-usdt"), "state", cc.encode_state(state)
    )
    settings = ApiSettings(
        postgres_dsn=exchange_dsn, redis_url=stack.redis_url, redis_prefix=redis_prefix
    )
    api = await ApiState.open(settings)
    api.clock_ms = lambda: NOW
    transport = httpx.ASGITransport(app=create_app(settings, state=api))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c
    finally:
        await api.close()


def rows(interval: str, offset: int = 0) -> list[list[object]]:
    every = cc.aggregate(trades())
    if offset:
        base = "1h" if offset % cc.HOUR == 0 else "15m"
        found = cc.regroup(interval, [c for k, c in every.items() if k[0] == base], offset)
    else:
        found = sorted((c for k, c in every.items() if k[0] == interval), key=lambda c: c.open_time)
    px, qty, quote = (lambda n: dec(n, 1)), (lambda n: dec(n, 5)), (lambda n: dec(n, 6))
    return [
        [c.open_time, px(c.open), px(c.high), px(c.low), px(c.close), qty(c.volume),
         c.close_time, quote(c.quote_volume), c.trades, qty(c.taker_buy_volume),
         quote(c.taker_buy_quote), "0"]
        for c in found
    ]  # fmt: skip


def dec(units: int, places: int) -> str:
    """``units`` × 10^-places as a decimal string with exactly ``places`` decimals."""
    return f"{Decimal(units).scaleb(-places):.{places}f}"


async def test_the_seam_has_no_gap_and_no_double(client: httpx.AsyncClient) -> None:
    expected = rows("1m")
    latest = (await client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                                         "limit": 100})).json()  # fmt: skip
    assert latest == expected[-100:]
    start = expected[-40][0]
    page = await client.get(
        "/api/v3/uiKlines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start}
    )
    assert page.json() == expected[-40:]
    assert page.headers["X-MBX-USED-WEIGHT-1M"]
    end = expected[-35][0]
    assert (await client.get("/api/v3/klines", params={
        "symbol": "BTCUSDT", "interval": "1m", "startTime": start, "endTime": end, "limit": 3,
    })).json() == expected[-40:-37]  # fmt: skip
    # Every interval, whole history, from Postgres plus the current candle in Redis.
    for interval in ("1h", "1d", "3d", "1w", "1M", "1s"):
        params = {"symbol": "BTCUSDT", "interval": interval, "limit": 1000}
        got = await client.get("/api/v3/klines", params=params)
        assert got.json() == rows(interval)[-1000:], interval


async def test_a_time_zone_regroups_days(client: httpx.AsyncClient) -> None:
    for zone, offset in (("8", 8 * cc.HOUR), ("-1:30", -90 * cc.MINUTE)):
        got = await client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1d",
                                                          "timeZone": zone})  # fmt: skip
        assert got.json() == rows("1d", offset), zone
    # +8 keeps 1h and 4h boundaries: read as stored.
    got = await client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "4h",
                                                      "timeZone": "+8"})  # fmt: skip
    assert got.json() == rows("4h")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT", "interval": "2d"}, -1120),
        ({"symbol": "BTCUSDT", "interval": "1m", "timeZone": "+15"}, -1130),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1130),
        ({"symbol": "NOPE", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT"}, -1102),
    ],
)
async def test_refusals(client: httpx.AsyncClient, params: dict[str, str], code: int) -> None:
    response = await client.get("/api/v3/klines", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == code

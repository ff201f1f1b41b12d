"""The WebSocket gateway (`cex serve gateway`) beside the whole exchange: Binance's control
messages and limits, and a diff-depth client that ends with the engine's book after a
random order stream, also when the gateway loses pub/sub messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import websockets
from tests.fixtures import unique

from cex.core.events import Side, TradeExecuted
from cex.infra import redis as keys
from cex.stack.settings import StackSettings

from .clients import ccxt_binance
from .conftest import Exchange

BTC = "BTC/USDT"


@pytest.fixture(scope="module")
async def gateway(exchange: Exchange) -> str:
    return await exchange.gateway("gateway-streams")


async def _recv_json(ws: Any, timeout: float = 10) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_control_messages(gateway: str) -> None:
    async with websockets.connect(f"{gateway}/ws/7") as ws:  # ccxt.pro's /ws/<n>
        await ws.send(json.dumps({"method": "SUBSCRIBE", "id": 1,
                                  "params": ["btcusdt@depth5", "btcusdt@aggTrade"]}))  # fmt: skip
        assert await _recv_json(ws) == {"result": None, "id": 1}
        snapshot = await _recv_json(ws)  # a partial book starts with the current book
        assert set(snapshot) == {"lastUpdateId", "bids", "asks"}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "list-1"}))
        assert await _recv_json(ws) == {
            "result": ["btcusdt@depth5", "btcusdt@aggTrade"], "id": "list-1",
        }  # fmt: skip
        await ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 2}))
        assert await _recv_json(ws) == {"result": False, "id": 2}
        await asyncio.sleep(1.1)  # 5 messages per second
        await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True],
                                  "id": 3}))  # fmt: skip
        assert await _recv_json(ws) == {"result": None, "id": 3}
        await ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 4}))
        assert await _recv_json(ws) == {"result": True, "id": 4}
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth5"],
                                  "id": 5}))  # fmt: skip
        assert await _recv_json(ws) == {"result": None, "id": 5}
        await asyncio.sleep(1.1)
        await ws.send("{not json")
        assert await _recv_json(ws) == {
            "code": 3, "msg": "Invalid JSON: expected value at line 1 column 2",
        }  # fmt: skip
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 6}))
        reply = await _recv_json(ws)
        assert (reply["code"], reply["id"]) == (2, 6)
        await ws.send(json.dumps({"method": "PING", "id": 7}))
        reply = await _recv_json(ws)
        assert reply["code"] == 2
        assert reply["msg"].startswith("Invalid request: unknown variant `PING`")
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [], "id": 1.5}))
        assert await _recv_json(ws) == {
            "code": 2, "msg": "Invalid request: request ID must be an unsigned integer",
        }  # fmt: skip


async def test_stream_limits(gateway: str) -> None:
    async with websockets.connect(f"{gateway}/stream") as ws:
        names = [f"x{i}usdt@trade" for i in range(1024)]
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
        assert await _recv_json(ws) == {"result": None, "id": 1}
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}))
        reply = await _recv_json(ws)
        assert (reply["code"], reply["id"]) == (2, 2)
        assert "too many streams" in reply["msg"]
    # More than 5 incoming messages in a second: disconnected.
    async with websockets.connect(f"{gateway}/ws") as ws:
        for i in range(8):
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(10):
                await _recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_http_endpoints(gateway: str) -> None:
    base = gateway.replace("ws://", "http://")
    async with aiohttp.ClientSession() as http:
        for path, status in (("/healthz", 200), ("/readyz", 200), ("/nope", 404)):
            async with http.get(base + path) as response:
                assert response.status == status, path
        async with http.get(base + "/metrics") as response:
            assert "cex_gateway_connections" in await response.text()


def _trade(trade_id: int, ts: int) -> TradeExecuted:
    return TradeExecuted(
        market="BTCUSDT", seq=trade_id, offset=trade_id, ts=ts, trade_id=trade_id,
        price=300_000, qty=100, quote_amount=3_000_000_000, base_amount=100_000,
        taker_side=Side.BUY, maker_order_id=1, maker_user_id=1, taker_order_id=trade_id + 1,
        taker_user_id=2, maker_fee=0, taker_fee=0,
    )  # fmt: skip


async def test_a_slow_client_is_disconnected_and_slows_nobody(
    exchange: Exchange, stack: StackSettings
) -> None:
    """A client that reads nothing is dropped once its send queue is over the bound; a
    client on the same stream gets every trade. (A gateway of its own, on a Redis prefix
    of its own: the trades are synthetic.)"""
    prefix = unique("gwslow")
    url = await exchange.gateway("gateway-slow", CEX_REDIS_PREFIX=prefix,
                                 CEX_GATEWAY_MAX_BUFFER_BYTES="65536")  # fmt: skip
    port = int(url.rsplit(":", 1)[1])
    # The slow one: a real handshake, a tiny receive buffer, and then no reading at all.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
    assert b"101" in slow.recv(1024).split(b"\r\n", 1)[0]
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        async with websockets.connect(f"{url}/ws/btcusdt@trade", max_queue=None) as fast:
            await asyncio.sleep(0.3)
            total, per_message = 40_000, 1000  # ~8 MB: over the kernel's buffers
            for start in range(1, total + 1, per_message):
                batch = [_trade(i, 1_700_000_000_000) for i in range(start, start + per_message)]
                await redis.publish(keys.trades_channel(prefix, "btc-usdt"),
                                    keys.encode_events(batch))  # fmt: skip
            seen = []
            while len(seen) < total:
                seen.append((await _recv_json(fast))["t"])
            assert seen == list(range(1, total + 1))
        metrics = url.replace("ws://", "http://") + "/metrics"
        async with aiohttp.ClientSession() as http, http.get(metrics) as response:
            text = await response.text()
        name = "cex_gateway_slow_disconnects_total "
        [line] = [x for x in text.splitlines() if x.startswith(name)]
        assert float(line.split()[-1]) >= 1
        slow.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # closed: EOF or reset, no timeout
            while slow.recv(65536):  # what was sent before the drop
                pass
    finally:
        slow.close()
        await redis.aclose()


# --------------------------------------------------------------------------- convergence


class DiffBook:
    """A local book kept as Binance's "How to manage a local order book correctly" says:
    buffer the stream, take a REST snapshot, drop events with u ≤ lastUpdateId, the first
    event has U ≤ lastUpdateId + 1 ≤ u, then each U is the previous u + 1; otherwise start
    over from a new snapshot."""

    def __init__(self, rest: str, symbol: str) -> None:
        self.rest = rest
        self.symbol = symbol
        self.seq = -1
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.first = True
        self.restarts = 0
        self.events = 0

    async def snapshot(self, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{self.rest}/api/v3/depth",
                            params={"symbol": self.symbol, "limit": 5000}) as response:  # fmt: skip
            body = await response.json()
        self.seq = body["lastUpdateId"]
        self.bids = {Decimal(p): Decimal(q) for p, q in body["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in body["asks"]}
        self.first = True

    async def apply(self, http: aiohttp.ClientSession, event: dict[str, Any]) -> None:
        self.events += 1
        first_id, last_id = event["U"], event["u"]
        if last_id <= self.seq:
            return
        chained = first_id <= self.seq + 1 if self.first else first_id == self.seq + 1
        if not chained:
            self.restarts += 1
            await self.snapshot(http)
            if last_id <= self.seq or not first_id <= self.seq + 1:
                return  # wait for an event that straddles the new snapshot
        self.first = False
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for price, qty in levels:
                if Decimal(qty):
                    side[Decimal(price)] = Decimal(qty)
                else:
                    side.pop(Decimal(price), None)
        self.seq = last_id


Levels = dict[Decimal, Decimal]


async def _engine_book(redis: aioredis.Redis, prefix: str) -> tuple[int, Levels, Levels]:
    seq, bids, asks = keys.parse_book(await redis.hgetall(keys.book_key(prefix, "btc-usdt")))
    tick, lot = Decimal("0.1"), Decimal("0.00001")
    return (seq, {p * tick: q * lot for p, q in bids}, {p * tick: q * lot for p, q in asks})


async def _kill_pubsub(redis: aioredis.Redis, prefix: str) -> int:
    """Close the gateway's pub/sub connection from the Redis side (it reconnects and
    resyncs; what was published meanwhile is lost to it)."""
    killed = 0
    for client in await redis.client_list(_type="pubsub"):
        if client.get("name") == f"cex-gateway:{prefix}":
            await redis.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


@pytest.fixture
async def orders(exchange: Exchange) -> AsyncIterator[tuple[Any, Any]]:
    maker = await exchange.trader("ws-depth-maker@example.com", {"BTC": "50", "USDT": "5000000"})
    taker = await exchange.trader("ws-depth-taker@example.com", {"BTC": "50", "USDT": "5000000"})
    m, t = ccxt_binance(exchange.url, maker), ccxt_binance(exchange.url, taker)
    await m.load_markets()
    await t.load_markets()
    try:
        yield m, t
    finally:
        await m.close()
        await t.close()


async def test_diff_depth_converges_to_the_engine_book(
    exchange: Exchange, gateway: str, stack: StackSettings, orders: tuple[Any, Any]
) -> None:
    rng = random.Random(11)
    redis = aioredis.Redis.from_url(stack.redis_url)
    book = DiffBook(exchange.url, "BTCUSDT")
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def read(ws: Any) -> None:
        async for message in ws:
            events.put_nowait(json.loads(message))

    async with aiohttp.ClientSession() as http, \
            websockets.connect(f"{gateway}/ws/btcusdt@depth@100ms") as ws:  # fmt: skip
        reader = asyncio.create_task(read(ws))

        async def follow() -> None:
            while True:
                await book.apply(http, await events.get())

        await book.snapshot(http)
        follower = asyncio.create_task(follow())
        open_ids: list[tuple[Any, str]] = []
        killed = 0
        try:
            for i in range(90):
                client = orders[i % 2]
                if open_ids and rng.random() < 0.2:
                    who, order_id = open_ids.pop(rng.randrange(len(open_ids)))
                    with contextlib.suppress(Exception):  # filled meanwhile
                        await who.cancel_order(order_id, BTC)
                    continue
                side = rng.choice(["buy", "sell"])
                price = rng.randint(29_950, 30_050)  # some cross
                qty = rng.choice([0.001, 0.002, 0.005, 0.01])
                placed = await client.create_order(BTC, "limit", side, qty, price)
                open_ids.append((client, placed["id"]))
                if i == 30:
                    # A depth update from nowhere (a gap): the gateway resyncs from the key
                    # and drops it; its level (0.1) must never reach a client.
                    seq = int(await redis.hget(keys.book_key(exchange.redis_prefix,
                                                             "btc-usdt"), "seq") or 0)  # fmt: skip
                    bogus = keys.DepthUpdate("BTCUSDT", seq + 50, seq + 51, [(1, 1)], [])
                    await redis.publish(keys.depth_channel(exchange.redis_prefix, "btc-usdt"),
                                        keys.encode(bogus))  # fmt: skip
                if i in (50, 60, 70):
                    killed += await _kill_pubsub(redis, exchange.redis_prefix)
            assert killed >= 3  # every gateway of this exchange shares the connection name
            # Quiet now: the client must end exactly at the engine's book.
            async with asyncio.timeout(30):
                while True:
                    seq, bids, asks = await _engine_book(redis, exchange.redis_prefix)
                    if (book.seq, book.bids, book.asks) == (seq, bids, asks):
                        break
                    await asyncio.sleep(0.2)
            assert Decimal("0.1") not in book.bids
            assert book.events > 0
            # Whether the bogus update meets a synced book (logged as a gap) or one that is
            # resyncing after a kill or a periodic check (dropped as not chaining) depends on
            # timing; either way it never reaches a client (above). The gap rule itself is
            # tested in tests/gateway.
        finally:
            follower.cancel()
            reader.cancel()
            await redis.aclose()

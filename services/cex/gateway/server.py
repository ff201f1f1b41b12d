"""The gateway process: the WebSocket server, the Redis pub/sub reader and the periodic
work (tickers, book checks), around :class:`~cex.gateway.feed.MarketFeed` and
:class:`~cex.gateway.hub.Hub`.

Endpoints (one port, ``CEX_GATEWAY_HOST:CEX_GATEWAY_PORT``):

* WebSocket: ``/ws``, ``/ws/<stream>[/<stream>…]``, ``/ws/<anything>`` (raw payloads),
  ``/stream?streams=a/b`` and ``/stream`` (combined ``{"stream", "data"}`` envelope);
* HTTP ``GET``: ``/healthz``, ``/readyz`` (200 once the registry is loaded and pub/sub is
  subscribed), ``/metrics``.

Redis: the gateway pattern-subscribes to every market's depth, trades and candle channels (so a
new market needs no restart), keeps a book per market synced from its book key, and
resyncs on a seq gap (:mod:`cex.gateway.book`). Any number of gateways can run side by
side: each one reads Redis only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections import defaultdict, deque
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from cex.core.events import TradeExecuted
from cex.gateway import metrics, streams, tickers
from cex.gateway.feed import MarketFeed, wall_ms
from cex.gateway.hub import Client, Hub
from cex.gateway.settings import GatewaySettings
from cex.infra import redis as keys
from cex.infra.registry import RegisteredMarket, follow_markets

__all__ = ["Gateway"]

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


class Gateway:
    def __init__(
        self, settings: GatewaySettings, redis: aioredis.Redis, pool: asyncpg.Pool
    ) -> None:
        self.settings = settings
        self.trusted = trusted_proxies(settings.gateway_forwarded_allow_ips)
        self.redis = redis
        self.pool = pool
        self.prefix = settings.redis_prefix
        self.hub = Hub(max_buffer=settings.gateway_max_buffer_bytes)
        self.feeds: dict[str, MarketFeed] = {}
        self.by_symbol: dict[str, MarketFeed] = {}
        self.board = tickers.TickerBoard(self.hub)
        self.ready = False
        self.markets_loaded = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.open_per_ip: dict[str, int] = defaultdict(int)
        self.attempts: dict[str, deque[float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._key_seen: dict[str, int] = {}
        self.server: Server | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._spawn(follow_markets(self.pool, self.on_markets), "registry")
        await self.markets_loaded.wait()
        self._spawn(self._read_pubsub(), "pubsub")
        await self.subscribed.wait()
        self._spawn(self._tickers(), "tickers")
        self._spawn(self._check_books(), "book-check")
        s = self.settings
        self.server = await serve(
            self._handle,
            s.gateway_host,
            s.gateway_port,
            process_request=self._process_request,
            compression=None,
            ping_interval=s.gateway_ping_interval_s,
            ping_timeout=s.gateway_ping_timeout_s,
            max_size=64 * 1024,
            max_queue=4,
            write_limit=32 * 1024,
            close_timeout=2,
            server_header=None,
        )
        self.ready = True
        log.info("gateway listening on %s:%d", s.gateway_host, s.gateway_port)

    async def close(self) -> None:
        self.ready = False
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 5)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for feed in self.feeds.values():
            feed.close()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------------ markets

    def on_markets(self, markets: dict[str, RegisteredMarket]) -> None:
        for name, market in markets.items():
            feed = self.feeds.get(name)
            if feed is None:
                feed = MarketFeed(market.config, self.hub, request_resync=self.resync)
                self.feeds[name] = feed
                self.by_symbol[market.config.symbol] = feed
                if self.subscribed.is_set():
                    feed.resyncing = True
                    self.resync(feed)
            else:
                feed.config = market.config
        self.markets_loaded.set()

    def resync(self, feed: MarketFeed) -> None:
        """Read ``feed``'s book key and hand it over (one read in flight per feed)."""
        self._spawn(self._resync(feed), f"resync-{feed.config.name}")

    async def _resync(self, feed: MarketFeed) -> None:
        delay = 0.05
        while True:
            try:
                fields = await self.redis.hgetall(keys.book_key(self.prefix, feed.config.name))
                break
            except (RedisError, OSError) as exc:
                log.warning("reading the book of %s failed: %s", feed.config.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        seq, bids, asks = keys.parse_book(fields)  # type: ignore[arg-type]
        feed.on_book(seq, bids, asks)

    # ------------------------------------------------------------------ Redis

    async def _read_pubsub(self) -> None:
        depth_prefix = keys.depth_channel(self.prefix, "").encode()
        trades_prefix = keys.trades_channel(self.prefix, "").encode()
        candles_prefix = keys.candles_channel(self.prefix, "").encode()
        delay = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(
                    depth_prefix + b"*", trades_prefix + b"*", candles_prefix + b"*"
                )
                # Subscribed before reading the keys: no update falls between the two.
                for feed in self.feeds.values():
                    if not feed.resyncing:
                        feed.resyncing = True
                        self.resync(feed)
                self.subscribed.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message["type"] != "pmessage":
                        continue
                    channel: bytes = message["channel"]
                    if channel.startswith(depth_prefix):
                        found = self.feeds.get(channel[len(depth_prefix) :].decode())
                        if found is not None:
                            found.on_depth(keys.decode_depth(message["data"]))
                    elif channel.startswith(trades_prefix):
                        found = self.feeds.get(channel[len(trades_prefix) :].decode())
                        if found is not None:
                            events = keys.decode_events(message["data"])
                            found.on_trades([e for e in events if isinstance(e, TradeExecuted)])
                    elif channel.startswith(candles_prefix):
                        found = self.feeds.get(channel[len(candles_prefix) :].decode())
                        if found is not None:
                            found.on_candles(json.loads(message["data"]))
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub failed, reconnecting: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _check_books(self) -> None:
        """Resync a book whose key has been ahead of it for a whole period (the update
        that would have moved it was lost, and no later one revealed the gap)."""
        while True:
            await asyncio.sleep(self.settings.gateway_book_check_s)
            feeds = [f for f in self.feeds.values() if not f.resyncing]
            if not feeds:
                continue
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for feed in feeds:
                        pipe.hget(keys.book_key(self.prefix, feed.config.name), "seq")
                    seqs = await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("book check failed: %s", exc)
                continue
            for feed, raw in zip(feeds, seqs, strict=True):
                name = feed.config.name
                seen = self._key_seen.get(name, -1)
                if not feed.resyncing and feed.book.seq < seen:
                    feed.resyncing = True
                    self.resync(feed)
                self._key_seen[name] = int(raw) if raw is not None else -1

    async def _tickers(self) -> None:
        period = self.settings.gateway_ticker_refresh_s
        while True:
            started = time.monotonic()
            if self.board.wanted(self.feeds):
                now = wall_ms()
                try:
                    figures = await tickers.fetch(self.pool, list(self.feeds), now)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("ticker refresh failed: %s", exc)
                else:
                    self.board.push(self.feeds, figures, now)
            await asyncio.sleep(max(0.05, period - (time.monotonic() - started)))

    # ------------------------------------------------------------------ HTTP

    def _process_request(self, conn: ServerConnection, request: HttpRequest) -> Response | None:
        route = request.path.partition("?")[0]
        if route == "/healthz":
            return conn.respond(200, "ok\n")
        if route == "/readyz":
            return conn.respond(200, "ready\n") if self.ready else conn.respond(503, "starting\n")
        if route == "/metrics":
            body = generate_latest()
            headers = Headers([("Content-Type", CONTENT_TYPE_LATEST),
                               ("Content-Length", str(len(body)))])  # fmt: skip
            return Response(200, "OK", headers, body)
        if streams.streams_of_path(request.path) is None:
            return conn.respond(404, "Not Found\n")
        ip = _ip(conn, self.trusted)
        s = self.settings
        if self.open_per_ip[ip] >= s.gateway_connections_per_ip:
            metrics.REFUSED.labels("connections").inc()
            return conn.respond(429, "Too many connections from this IP\n")
        now = time.monotonic()
        attempts = self.attempts.get(ip)
        if attempts is None:
            attempts = self.attempts[ip] = deque()
        while attempts and attempts[0] <= now - s.gateway_attempts_window_s:
            attempts.popleft()
        if len(attempts) >= s.gateway_attempts_per_ip:
            metrics.REFUSED.labels("attempts").inc()
            return conn.respond(429, "Too many connection attempts from this IP\n")
        attempts.append(now)
        return None

    # ------------------------------------------------------------------ clients

    async def _handle(self, ws: ServerConnection) -> None:
        parsed = streams.streams_of_path(ws.request.path if ws.request else "/ws")
        combined, names = parsed if parsed is not None else (False, [])
        ip = _ip(ws, self.trusted)
        client = Client(ws, ip, combined, self.settings.gateway_messages_per_s)
        self.open_per_ip[ip] += 1
        metrics.CONNECTIONS.inc()
        try:
            for name in names[: self.settings.gateway_max_streams]:
                self.hub.subscribe(client, name)
            self._first_payloads(client, names)
            async for message in ws:
                if not self._within_rate(client):
                    metrics.RATE_DISCONNECTS.inc()
                    await ws.close(1008, "Too many messages")
                    break
                reply = self._control(client, message)
                if reply is not None:
                    await ws.send(_json.encode(reply[0]).decode())
                    self._first_payloads(client, reply[1])
        except ConnectionClosed:
            pass
        finally:
            self.hub.remove(client)
            metrics.CONNECTIONS.dec()
            self.open_per_ip[ip] -= 1
            if not self.open_per_ip[ip]:
                del self.open_per_ip[ip]

    def _within_rate(self, client: Client) -> bool:
        now = time.monotonic()
        received = client.received
        received.append(now)
        limit = self.settings.gateway_messages_per_s
        return len(received) <= limit or now - received[0] >= 1.0

    def _control(
        self, client: Client, message: str | bytes
    ) -> tuple[dict[str, Any], list[str]] | None:
        """The reply to one control message, and the streams it subscribed."""
        request = streams.parse_request(message)
        if isinstance(request, streams.Refusal):
            return request.to_json(), []
        method, rid = request.method, request.id
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            checked = streams.check_stream_params(request)
            if isinstance(checked, streams.Refusal):
                return checked.to_json(), []
            if method == "UNSUBSCRIBE":
                for name in checked.streams:
                    self.hub.unsubscribe(client, name)
                return {"result": None, "id": rid}, []
            new = [n for n in checked.streams if n not in client.streams]
            if len(client.streams) + len(new) > self.settings.gateway_max_streams:
                refusal = streams.Refusal(
                    2, f"Invalid request: too many streams (at most "
                    f"{self.settings.gateway_max_streams} per connection)", rid, True,
                )  # fmt: skip
                return refusal.to_json(), []
            for name in new:
                self.hub.subscribe(client, name)
            return {"result": None, "id": rid}, new
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(client.streams), "id": rid}, []
        prop = streams.check_property(request, setting=method == "SET_PROPERTY")
        if isinstance(prop, streams.Refusal):
            return prop.to_json(), []
        if method == "SET_PROPERTY":
            client.combined = bool(prop[1])
            return {"result": None, "id": rid}, []
        return {"result": client.combined, "id": rid}, []

    def _first_payloads(self, client: Client, names: list[str]) -> None:
        """A partial-book stream starts with the current book at once (later pushes only
        when it changes)."""
        for name in names:
            stream = streams.parse_stream(name)
            if stream is None or stream.kind != "partial":
                continue
            feed = self.by_symbol.get(stream.symbol)
            if feed is not None and feed.book.synced:
                self.hub.send(client, name, feed.partial(stream.levels))


Trusted = list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None  # None: any proxy


def trusted_proxies(setting: str) -> Trusted:
    """`gateway_forwarded_allow_ips` parsed: the networks whose X-Forwarded-For we believe."""
    if setting.strip() == "*":
        return None
    return [ipaddress.ip_network(part.strip(), strict=False)
            for part in setting.split(",") if part.strip()]  # fmt: skip


def _is_trusted(address: str, trusted: Trusted) -> bool:
    if trusted is None:
        return True
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def client_ip(peer: str, forwarded_for: str | None, trusted: Trusted) -> str:
    """Who the client is: the peer, unless the peer is a trusted proxy; then the nearest
    address of `X-Forwarded-For` that is not itself a trusted proxy (the rightmost ones were
    added by our proxies; anything further left the client could have written). With every
    proxy trusted (`*`), the first address, as uvicorn does."""
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return peer
    if trusted is None:  # every proxy trusted: the first address, as uvicorn does
        return hops[0]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0]


def _ip(conn: ServerConnection, trusted: Trusted) -> str:
    address = conn.remote_address
    peer = str(address[0]) if address else "?"
    headers = conn.request.headers if conn.request is not None else None
    return client_ip(peer, headers.get("X-Forwarded-For") if headers else None, trusted)

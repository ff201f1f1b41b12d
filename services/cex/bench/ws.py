"""`cex bench ws`: N WebSocket clients on depth + trades of one busy market.

The bench starts its own ``cex serve gateway`` (local stack's Postgres and Redis, a Redis
prefix of its own, a free port), connects N clients to
``/ws/btcusdt@depth@100ms/btcusdt@trade`` and publishes **synthetic** engine output on the
gateway's channels at a steady rate: each tick one :class:`~cex.infra.redis.DepthUpdate`
(chained seqs) and one TRADE_EXECUTED message, as the engine publishes them after a
commit. (Synthetic, so the local stack's own markets are untouched.)

The bench measures the gateway, not itself: the clients are spread over several client
processes (``procs``, forked before any event loop exists, each with a uvloop loop of its
own), and each client is a bare WebSocket reader on an asyncio protocol (handshake, frame
parsing, pong and close replies) that decodes no JSON: it finds the id it needs with a byte
search and records ``(id, receipt time)`` into one array per process. The report gives the
CPU of the gateway, of the client processes and of the publisher over the measured window
(percent of one core, as ``top`` shows it) and the whole machine's busy share (percent of
all cores), so a reader sees whether the machine was saturated.

Latency: from the publication of an update to its receipt by a client, both stamped with
``time.time_ns()`` on the same machine: a trade by its id ``t``; a depth event by its last
update ``u`` (a @100ms event carries up to 100 ms of updates: the freshest one's age is
measured). Memory: the gateway's RSS growth from before the clients connected to after,
per client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from array import array
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from cex.core.events import Side, TradeExecuted
from cex.infra import redis as keys
from cex.infra.settings import InfraSettings

PATH = "/ws/btcusdt@depth@100ms/btcusdt@trade"
_TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_ticks(pid: int) -> int:
    """User + system CPU of a process so far, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time (already counted in user)
    return total - idle, total


def _raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


# --------------------------------------------------------------------------- clients


class _Receipts:
    """One client process's receipts: ids and receipt times, trades and depth apart."""

    __slots__ = ("depth_ids", "depth_ns", "frames", "trade_ids", "trade_ns")

    def __init__(self) -> None:
        self.trade_ids = array("q")
        self.trade_ns = array("q")
        self.depth_ids = array("q")
        self.depth_ns = array("q")
        self.frames = 0


class _Client(asyncio.Protocol):
    """A bare WebSocket client: the opening handshake, then unmasked server frames parsed
    in place. A text frame's kind is its 7th byte (``{"e":"t…`` or ``{"e":"d…``); its id is
    the integer after ``"t":`` (trade) or ``"u":`` (depthUpdate), found by a byte search."""

    def __init__(self, request: bytes, receipts: _Receipts, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.receipts = receipts
        self.ready = ready
        self.transport: Any = None  # uvloop's transports are no asyncio.Transport
        self.buffer = b""
        self.open = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.buffer + data if self.buffer else data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buf[: buf.find(b"\r\n")].decode()))
                self.transport.abort()
                return
            self.open = True
            self.ready.set_result(None)
            buf = buf[end + 4 :]
        receipts = self.receipts
        pos, size = 0, len(buf)
        while size - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            start, end = pos + head, pos + head + length
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                receipts.frames += 1
                if buf[start + 6] == 116:  # {"e":"trade"
                    at = buf.find(b'"t":', start, end) + 4
                    receipts.trade_ids.append(int(buf[at : buf.find(b",", at, end)]))
                    receipts.trade_ns.append(now)
                elif buf[start + 6] == 100:  # {"e":"depthUpdate"
                    at = buf.find(b'"u":', start, end) + 4
                    receipts.depth_ids.append(int(buf[at : buf.find(b",", at, end)]))
                    receipts.depth_ns.append(now)
            elif opcode == 9:  # ping → pong (masked with a zero key: payload unchanged)
                self._send(0x8A, buf[start:end])
            elif opcode == 8:  # close → close
                self._send(0x88, buf[start : start + 2])
                self.transport.close()
            pos = end
        self.buffer = buf[pos:]

    def _send(self, first: int, payload: bytes) -> None:
        assert len(payload) < 126
        self.transport.write(bytes((first, 0x80 | len(payload))) + b"\0\0\0\0" + payload)


async def _clients(conn: Connection, port: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    receipts = _Receipts()
    commands: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    transports: list[Any] = []
    gate = asyncio.Semaphore(64)

    async def connect() -> bool:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        async with gate:
            for attempt in range(5):
                ready: asyncio.Future[None] = loop.create_future()
                try:
                    transport, _ = await loop.create_connection(
                        functools.partial(_Client, request, receipts, ready), "127.0.0.1", port
                    )
                    async with asyncio.timeout(30):
                        await ready
                except (OSError, TimeoutError):
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                transports.append(transport)
                return True
        return False

    assert await commands.get() == "connect"
    connected = sum(await asyncio.gather(*(connect() for _ in range(count))))
    conn.send(connected)
    assert await commands.get() == "stop"
    loop.remove_reader(conn.fileno())
    os.set_blocking(conn.fileno(), True)  # the loop made it non-blocking
    conn.send((
        receipts.trade_ids.tobytes(), receipts.trade_ns.tobytes(),
        receipts.depth_ids.tobytes(), receipts.depth_ns.tobytes(), receipts.frames,
    ))  # fmt: skip
    for transport in transports:
        transport.abort()


def _client_process(conn: Connection, port: int, count: int) -> None:
    try:
        import uvloop

        uvloop.run(_clients(conn, port, count))
    except ImportError:  # pragma: no cover
        asyncio.run(_clients(conn, port, count))


# --------------------------------------------------------------------------- bench


async def _run(
    clients: int, rate: float, seconds: float, port: int, workers: list[tuple[Any, Connection]]
) -> dict[str, Any]:
    settings = InfraSettings()
    prefix = f"benchws_{uuid.uuid4().hex[:8]}"
    cex = str(Path(sys.executable).with_name("cex"))
    env = os.environ | {
        "CEX_REDIS_PREFIX": prefix, "CEX_GATEWAY_PORT": str(port),
        "CEX_GATEWAY_CONNECTIONS_PER_IP": "1000000", "CEX_GATEWAY_ATTEMPTS_PER_IP": "1000000",
        "CEX_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    gateway = subprocess.Popen([cex, "serve", "gateway"], env=env)  # noqa: ASYNC220
    redis = aioredis.Redis.from_url(settings.redis_url)
    book = keys.book_key(prefix, "btc-usdt")
    await redis.hset(book, mapping={"seq": 0})
    published: dict[tuple[int, int], int] = {}  # (0 trade | 1 depth, id) → time_ns
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.2)
                else:
                    writer.close()
                    break
        await asyncio.sleep(0.5)
        rss_before = _rss_kib(gateway.pid)

        for _, conn in workers:
            conn.send("connect")
        async with asyncio.timeout(180):
            connected = sum([await asyncio.to_thread(conn.recv) for _, conn in workers])
        await asyncio.sleep(1)
        rss_after = _rss_kib(gateway.pid)

        seq = trade_id = 0
        depth_channel = keys.depth_channel(prefix, "btc-usdt")
        trades_channel = keys.trades_channel(prefix, "btc-usdt")
        pids = [process.pid for process, _ in workers]
        cpu_before = [_cpu_ticks(gateway.pid), sum(map(_cpu_ticks, pids)), _cpu_ticks(os.getpid())]
        machine_before = _machine_ticks()
        started = time.perf_counter()
        tick = 0
        while time.perf_counter() - started < seconds:
            tick += 1
            price = 300_000 + tick % 50
            update = keys.DepthUpdate("BTCUSDT", seq, seq + 2, [(price, tick % 7 + 1)], [])
            trade_id += 1
            trade = TradeExecuted(
                market="BTCUSDT", seq=seq + 1, offset=tick, ts=int(time.time() * 1000),
                trade_id=trade_id, price=price, qty=10, quote_amount=price * 10,
                base_amount=10_000, taker_side=Side.BUY, maker_order_id=1, maker_user_id=1,
                taker_order_id=tick + 1, taker_user_id=2, maker_fee=0, taker_fee=0,
            )  # fmt: skip
            seq += 2
            depth_message, trades_message = keys.encode(update), keys.encode_events([trade])
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(book, mapping={"seq": seq, f"b:{price}": tick % 7 + 1})
                pipe.publish(depth_channel, depth_message)
                pipe.publish(trades_channel, trades_message)
                now = time.time_ns()
                published[(1, seq)] = now
                published[(0, trade_id)] = now
                await pipe.execute()
            await asyncio.sleep(max(0.0, started + tick / rate - time.perf_counter()))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.5)
        window = time.perf_counter() - started
        cpu_after = [_cpu_ticks(gateway.pid), sum(map(_cpu_ticks, pids)), _cpu_ticks(os.getpid())]
        machine_after = _machine_ticks()
        for _, conn in workers:
            conn.send("stop")
        results = [await asyncio.to_thread(conn.recv) for _, conn in workers]
    finally:
        gateway.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.wait(10)
        await redis.delete(book)
        await redis.aclose()

    trades: list[int] = []
    depth: list[int] = []
    count = 0
    for trade_ids, trade_ns, depth_ids, depth_ns, _ in results:
        for kind, ids, stamps, out in ((0, trade_ids, trade_ns, trades),
                                       (1, depth_ids, depth_ns, depth)):  # fmt: skip
            for id_, received in zip(array("q", ids), array("q", stamps), strict=True):
                sent = published.get((kind, id_))
                if sent is not None:
                    out.append(received - sent)
                    count += 1
    trades.sort()
    depth.sort()

    def share(index: int) -> float:
        return round((cpu_after[index] - cpu_before[index]) / _TICK / window * 100, 1)

    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    return {
        "clients": clients,
        "clients_connected": connected,
        "client_processes": len(workers),
        "updates_per_sec": rate,
        "messages_per_sec": round(count / elapsed),
        # Trades (real-time stream): publication → receipt.
        "p50_ms": _pct(trades, 0.5),
        "p99_ms": _pct(trades, 0.99),
        # @depth@100ms: the freshest update of an event, publication → receipt (includes
        # the wait for the 100 ms push period).
        "depth_p50_ms": _pct(depth, 0.5),
        "depth_p99_ms": _pct(depth, 0.99),
        "memory_per_client_kib": round((rss_after - rss_before) / clients, 1),
        # Over the measured window, percent of one core (as `top`); the machine's busy
        # share is of all its cores (anything else running counts too).
        "gateway_cpu_percent": share(0),
        "client_cpu_percent": share(1),
        "publisher_cpu_percent": share(2),
        "machine_cpu_percent": round(busy / total * 100, 1) if total else None,
        "cores": os.cpu_count(),
        "source": "synthetic DepthUpdate + TRADE_EXECUTED on Redis pub/sub",
    }


def _pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * q))] / 1e6, 2)


def run(
    clients: int = 2000, rate: float = 10.0, seconds: float = 10.0, procs: int | None = None
) -> dict[str, Any]:
    """``procs`` client processes (default: one per core, at least 2)."""
    _raise_nofile(clients * 2 + 256)
    procs = procs or max(2, os.cpu_count() or 2)
    port = _free_port()
    # Forked before any event loop or Redis connection exists in this process.
    context = multiprocessing.get_context("fork")
    workers: list[tuple[Any, Connection]] = []
    for i in range(procs):
        ours, theirs = context.Pipe()
        count = clients // procs + (1 if i < clients % procs else 0)
        process = context.Process(target=_client_process, args=(theirs, port, count), daemon=True)
        process.start()
        theirs.close()
        workers.append((process, ours))
    try:
        try:
            import uvloop

            return uvloop.run(_run(clients, rate, seconds, port, workers))
        except ImportError:  # pragma: no cover
            return asyncio.run(_run(clients, rate, seconds, port, workers))
    finally:
        for process, conn in workers:
            conn.close()
            process.join(10)
            if process.is_alive():
                process.kill()


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['clients']} clients, {result['messages_per_sec']} messages/s received, "
        f"trade latency p50 {result['p50_ms']} ms p99 {result['p99_ms']} ms, "
        f"depth p50 {result['depth_p50_ms']} ms p99 {result['depth_p99_ms']} ms, "
        f"{result['memory_per_client_kib']} KiB per client, CPU: gateway "
        f"{result['gateway_cpu_percent']}%, clients {result['client_cpu_percent']}%, "
        f"machine {result['machine_cpu_percent']}% of {result['cores']} cores"
    )

"""``cex bench candles``: what the candle aggregator costs the machine per order, and its
latency, at a paced rate.

Against the local stack's Kafka, Redis and Postgres (``make up`` or ``cex stack up
--infra-only``), in a topic and a Redis prefix of its own, removed afterwards:

1. generate: ``rate × seconds`` orders through the real matching engine core of the first
   market of the registry — a maker rests one lot, a taker takes it (IOC) — so about half
   the orders trade and each trade comes with its orders' and the book's events, as in the
   ``executions`` topic; the events' times advance at ``rate`` orders per second;
2. the aggregator: ``cex serve candles`` in a process of its own (the code the stack runs),
   reading every market of the registry (the others' partitions idle, as in the stack);
3. paced: every ``tick_ms`` the orders due by then in one Kafka transaction (as an engine
   commits what it has), while the aggregator publishes their klines.

Prints one JSON object: ``cpu_seconds`` of the aggregator's process during the paced
phase and ``cpu_per_10k_orders`` (the figure a loaded machine distorts least), and the
latency from a transaction's commit to the publication of the kline message covering its
last trade (``published_p50_ms`` / ``p99`` / ``p999``, one clock: ``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
import uuid
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from cex.bench.figures import latency_ms
from cex.core.events import OrderCreate, OrderType, Side, StpMode, TimeInForce, encode
from cex.core.matching.engine import MatchingEngine
from cex.infra import kafka
from cex.infra import redis as keys
from cex.infra.registry import load_markets
from cex.infra.settings import InfraSettings

TS = 1_800_000_000_000
LOTS = 1_000  # per order: above any listed market's minimum notional


def run(rate: int, seconds: float, resting: float = 0.0, tick_ms: float = 5.0) -> dict[str, Any]:
    if not 0 <= resting < 1:
        raise ValueError("resting is a share of the orders: at least 0, below 1")
    return asyncio.run(_run(InfraSettings(), rate, seconds, resting, tick_ms))


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['orders']} orders ({result['trades']} trades) at {result['rate']}/s:"
        f" aggregator CPU {result['cpu_seconds']} s ({result['cpu_per_10k_orders']} s per"
        f" 10,000 orders), commit → kline published p50 {result['published_p50_ms']} ms,"
        f" p99 {result['published_p99_ms']} ms"
    )


async def _run(
    infra: InfraSettings, rate: int, seconds: float, resting: float, tick_ms: float
) -> dict[str, Any]:
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        markets = await load_markets(conn)
    finally:
        await conn.close()
    if not markets:
        raise RuntimeError("no market in the registry: start the local stack first")
    market = min(markets.values(), key=lambda m: m.partition)
    paced, trades = _generate(market.config, int(rate * seconds), rate, resting)

    run_id = uuid.uuid4().hex[:12]
    topic, prefix = f"bench-candles-{run_id}", f"bench-candles-{run_id}"
    partitions = max(m.partition for m in markets.values()) + 1
    await kafka.ensure_topics(infra.kafka_bootstrap, {topic: partitions})
    env = os.environ | {
        "CEX_EXECUTIONS_TOPIC": topic,
        "CEX_REDIS_PREFIX": prefix,
        "CEX_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "CEX_POSTGRES_DSN": infra.postgres_dsn,
        "CEX_REDIS_URL": infra.redis_url,
        "CEX_METRICS_PORT": str(_free_port()),
    }
    # The entry point of ``cex serve candles``, with this interpreter (and PYTHONPATH).
    command = [sys.executable, "-c", "from cex.cli import main; main()", "serve", "candles"]
    aggregator = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    client = aioredis.from_url(infra.redis_url)
    try:
        pubsub = client.pubsub()
        await pubsub.subscribe(keys.candles_channel(prefix, market.config.name))
        listener = _Listener()
        listening = asyncio.create_task(listener.listen(pubsub))
        producer = kafka.producer(infra, transactional_id=f"bench-candles-{run_id}")
        await producer.start()
        try:
            # Warm-up: one order pair, until its kline is out (the aggregator is reading).
            await _commit(producer, topic, market.partition, paced[:2])
            await listener.until(paced[1][0], aggregator)
            listener.published.clear()
            cpu_before = _process_cpu(aggregator.pid)
            commits = await _paced(producer, topic, market.partition, paced[2:], rate, tick_ms)
            await listener.until(commits[-1][0], aggregator)
            cpu = _process_cpu(aggregator.pid) - cpu_before
        finally:
            await producer.stop()
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            await pubsub.aclose()  # type: ignore[no-untyped-call]
    finally:
        aggregator.terminate()
        await aggregator.wait()
        await _clean(infra, client, topic, prefix)
        await client.aclose()

    # A transaction's latency: until the first message whose seq reaches its last trade.
    received = sorted(listener.published.items())
    waits: list[float] = []
    i = 0
    for seq, committed_at in commits:
        while received[i][0] < seq:
            i += 1
        waits.append(received[i][1] - committed_at)
    waits.sort()
    figures = latency_ms(waits, 2)
    orders = len(paced) - 2
    return {
        "rate": rate,
        "resting": resting,
        "orders": orders,
        "trades": trades,
        "transactions": len(commits),
        "messages": len(received),
        "cpu_seconds": round(cpu, 3),
        "cpu_per_10k_orders": round(cpu / orders * 10_000, 3),
        **{f"published_{k}": v for k, v in figures.items()},
        "published_p999_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.999))] * 1000, 2),
        "load_average": os.getloadavg()[0],
    }


def _generate(
    config: Any, orders: int, rate: int, resting: float
) -> tuple[list[tuple[int, list[bytes]]], int]:
    """Per order: the seq of its last trade (0: none) and its events, encoded. Orders go in
    pairs: a maker sells, a taker buys it (IOC); a ``resting`` share of the pairs (never the
    first) are a sell above and a buy below the market instead, which rest in the book."""
    engine = MatchingEngine(config)
    out: list[tuple[int, list[bytes]]] = []
    trades = 0
    for n in range(orders + 2):
        pair = n // 2
        rests = pair > 0 and int(pair * resting) > int((pair - 1) * resting)
        side = Side.SELL if n % 2 == 0 else Side.BUY
        price = 300_000 + pair % 200
        if rests:
            price += 100_000 if side is Side.SELL else -100_000
        locked = config.base_units(LOTS) if side is Side.SELL else config.notional(price, LOTS)
        command = OrderCreate(
            market=config.symbol, ts=TS + n * 1000 // rate, order_id=n + 1,
            client_order_id=f"b{n + 1}", user_id=1 + n % 2, side=side, type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC if side is Side.SELL or rests else TimeInForce.IOC,
            price=price, quantity=LOTS, quote_order_qty=None, stop_price=None, expire_at=None,
            stp_mode=StpMode.NONE, locked=locked,
        )  # fmt: skip
        events = engine.apply(command, n)
        last_trade = max((e.seq for e in events if type(e).__name__ == "TradeExecuted"), default=0)
        trades += last_trade > 0
        out.append((last_trade, [encode(e) for e in events]))
    return out, trades


async def _commit(
    producer: AIOKafkaProducer, topic: str, partition: int, orders: list[tuple[int, list[bytes]]]
) -> None:
    async with producer.transaction():
        for _, events in orders:
            for value in events:
                await producer.send(topic, value, partition=partition)


async def _paced(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    paced: list[tuple[int, list[bytes]]],
    rate: int,
    tick_ms: float,
) -> list[tuple[int, float]]:
    """Every ``tick_ms`` the orders due by then in one transaction; per transaction that
    traded: (seq of its last trade, commit time)."""
    commits: list[tuple[int, float]] = []
    started = time.monotonic()
    sent = 0
    while sent < len(paced):
        due = min(len(paced), int((time.monotonic() - started) * rate) + 1)
        if due > sent:
            await _commit(producer, topic, partition, paced[sent:due])
            last = max(seq for seq, _ in paced[sent:due])
            if last:
                commits.append((last, time.monotonic()))
            sent = due
        await asyncio.sleep(tick_ms / 1000)
    return commits


class _Message(msgspec.Struct):
    seq: int


class _Listener:
    """The kline messages of the bench's market: when each seq was first published."""

    def __init__(self) -> None:
        self.published: dict[int, float] = {}  # seq of a message's last trade -> received at
        self.newest = 0
        self._changed = asyncio.Event()

    async def listen(self, pubsub: Any) -> None:
        decoder = msgspec.json.Decoder(_Message)
        async for message in pubsub.listen():
            if message["type"] == "message":
                seq = decoder.decode(message["data"]).seq
                self.published.setdefault(seq, time.monotonic())
                self.newest = max(self.newest, seq)
                self._changed.set()

    async def until(self, seq: int, aggregator: asyncio.subprocess.Process) -> None:
        async with asyncio.timeout(60):
            while self.newest < seq:
                if aggregator.returncode is not None:
                    raise RuntimeError(f"the aggregator exited ({aggregator.returncode})")
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 1)


async def _clean(infra: InfraSettings, client: aioredis.Redis, topic: str, prefix: str) -> None:
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

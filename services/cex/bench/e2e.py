"""``cex bench e2e``: an order's whole path, hop by hop, at a fixed offered rate.

Runs against the local stack (``make up``: trading API, relay, engines, settlement all
live). Orders go to the trading API (``POST /internal/v1/orders``) at ``rate`` orders per
second for ``seconds`` seconds, open loop (an order is sent on schedule whether or not the
previous ones were answered, as independent traders would). They come in crossing pairs
on BTCUSDT: a sell, then a buy at the same price, so every pair trades and the book does
not grow.

Every order is followed by its id through each hop, as an observer in this process sees
it (one clock, wall time):

``accept``
    sent → the trading API's answer: stored, funds locked, the command in the outbox.
``relay``
    accepted → the command visible in ``orders`` to a ``read_committed`` consumer.
``engine``
    command visible → the order's first event visible in ``executions``
    (``read_committed``: the engine's transaction committed).
``settle``
    event visible → settlement's publication on ``{prefix}:account:{user}``, which it
    sends after its Postgres commit (balances and order state committed).
``accepted_to_settled``
    accepted → settled: the issue's "order accepted → settled" figure.

``stamped_to_commanded`` / ``stamped_to_settled``
    the same from the order's server-side stamp (``transactTime``, taken before the trading
    API's group commit), which a loaded load generator cannot delay: this process sends, reads
    the answers and observes every hop on one event loop, so on a busy 2-core machine the
    client-side ``accept`` grows and ``relay`` can even turn negative (the command is seen in
    Kafka before the answer is read).

``cpu_seconds``
    CPU time each program of the local stack (``make up``: supervisord's programs; Postgres
    with its backends) and this load generator spent during the step, and their sum per
    settled order: on a machine with few cores the stack's capacity is the CPU it has
    divided by that figure. Absent when the stack is not run by ``make up``.

The observers read only BTCUSDT's partition of each topic: with one partition the broker
answers a parked ``read_committed`` fetch as soon as a transaction commits, so they add no
wait of their own (and no polling load on the broker). With ``--sweep`` the rate doubles
from ``rate`` until the end-to-end p99 exceeds the goal or the stack falls behind the offered
rate; the summary names the highest rate that stayed within the goal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
import redis.asyncio as aioredis
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition

from cex.bench.keepalive import KeepAlive
from cex.core.events import OrderCreate, TradeExecuted, decode_command, decode_event
from cex.infra import accounts, registry
from cex.infra import redis as keys
from cex.infra.settings import InfraSettings
from cex.stack.programs import TRADING_PORT
from cex.stack.supervisor import program_pids

__all__ = ["describe", "run"]

#: The issue's goals for the accepted → settled hop (ms).
GOAL_P50_MS = 25.0
GOAL_P99_MS = 100.0
HOPS = (
    "accept", "relay", "engine", "settle", "accepted_to_settled", "sent_to_settled",
    "stamped_to_commanded", "stamped_to_settled",
)  # fmt: skip
SYMBOL = "BTCUSDT"
#: How long after the last send the bench waits for stragglers before counting them lost.
DRAIN_S = 10.0


@dataclass
class _Trace:
    sent: float
    user_id: int
    stamped: float | None = None
    accepted: float | None = None
    commanded: float | None = None
    executed: float | None = None
    settled: float | None = None


@dataclass
class _Run:
    traces: dict[int, _Trace] = field(default_factory=dict)
    # Events seen before the trading API's answer reached us (the race is real: the
    # observers can be faster than the HTTP response).
    early_commands: dict[int, float] = field(default_factory=dict)
    early_events: dict[int, float] = field(default_factory=dict)
    early_settled: dict[int, float] = field(default_factory=dict)
    errors: int = 0
    settled: int = 0
    offering: bool = True
    all_settled: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, order_id: int, hop: str, at: float) -> None:
        trace = self.traces.get(order_id)
        if trace is None:
            early = {"commanded": self.early_commands, "executed": self.early_events,
                     "settled": self.early_settled}[hop]  # fmt: skip
            early.setdefault(order_id, at)
        elif getattr(trace, hop) is None:
            setattr(trace, hop, at)
            if hop == "settled":
                self._count_settled()

    def _count_settled(self) -> None:
        self.settled += 1
        if not self.offering and self.settled == len(self.traces):
            self.all_settled.set()

    def offered(self) -> None:
        """Every order is sent and answered: from now on the last settlement ends the step."""
        self.offering = False
        if self.settled == len(self.traces):
            self.all_settled.set()

    def adopt(self, order_id: int, trace: _Trace) -> None:
        self.traces[order_id] = trace
        trace.commanded = self.early_commands.pop(order_id, None)
        trace.executed = self.early_events.pop(order_id, None)
        trace.settled = self.early_settled.pop(order_id, None)
        if trace.settled is not None:
            self._count_settled()


def run(
    rate: float, seconds: float, pairs_users: int, sweep: bool, *, trading_url: str | None = None
) -> dict[str, Any]:
    url = trading_url or f"http://127.0.0.1:{TRADING_PORT}"
    return uvloop.run(_run(rate, seconds, pairs_users, sweep, url))


def describe(result: dict[str, Any]) -> str:
    lines = []
    for step in result["runs"]:
        hops = "  ".join(
            f"{hop} p50 {step[hop]['p50_ms']}/p99 {step[hop]['p99_ms']} ms"
            for hop in HOPS
            if step.get(hop)
        )
        lines.append(
            f"{step['offered_rate']:>7,.0f}/s offered, {step['sustained_rate']:>7,.0f}/s "
            f"settled, {step['lost']} lost: {hops}"
        )
    lines.append(f"highest rate within the goal: {result['max_rate_within_goal']}")
    return "\n".join(lines)


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999),
            "max_ms": round(ordered[-1] * 1000, 2), "n": len(ordered)}  # fmt: skip


async def _seed(dsn: str, users: int) -> list[int]:
    """``users`` sellers and as many buyers, funded through the ledger (``cex check``
    still balances afterwards)."""
    tag = uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(dsn)
    try:
        ids = []
        for i in range(2 * users):
            user_id = await accounts.create_user(conn, f"bench-e2e-{tag}-{i}@example.com")
            asset, amount = ("BTC", 10**4 * 10**8) if i % 2 == 0 else ("USDT", 10**9 * 10**6)
            await accounts.deposit(conn, user_id, asset, amount, f"bench-e2e-{tag}-{i}")
            ids.append(user_id)
        return ids
    finally:
        await conn.close()


async def _observe_commands(consumer: AIOKafkaConsumer, state: _Run) -> None:
    async for record in consumer:
        command = decode_command(record.value)
        if isinstance(command, OrderCreate):
            state.note(command.order_id, "commanded", time.time())


async def _observe_events(consumer: AIOKafkaConsumer, state: _Run) -> None:
    async for record in consumer:
        now = time.time()
        event = decode_event(record.value)
        if isinstance(event, TradeExecuted):
            state.note(event.maker_order_id, "executed", now)
            state.note(event.taker_order_id, "executed", now)
        elif (order_id := getattr(event, "order_id", None)) is not None:
            state.note(order_id, "executed", now)


async def _observe_settlement(pubsub: Any, state: _Run) -> None:
    async for message in pubsub.listen():
        if message.get("type") != "pmessage":
            continue
        now = time.time()
        for event in keys.decode_events(message["data"]):
            if isinstance(event, TradeExecuted):
                state.note(event.maker_order_id, "settled", now)
                state.note(event.taker_order_id, "settled", now)
            elif (order_id := getattr(event, "order_id", None)) is not None:
                state.note(order_id, "settled", now)


async def _partition(dsn: str) -> int:
    """The partition index of the traded market (the same in ``orders`` and ``executions``)."""
    conn = await asyncpg.connect(dsn)
    try:
        markets = await registry.load_markets(conn)
    finally:
        await conn.close()
    for market in markets.values():
        if market.config.symbol == SYMBOL:
            return market.partition
    raise RuntimeError(f"no {SYMBOL} market is registered: is the stack up (make up)?")


async def _consumer(bootstrap: str, topic: str, partition: int) -> AIOKafkaConsumer:
    tp = TopicPartition(topic, partition)
    # A consumer of several partitions would need a short fetch wait (aiokafka parks a fetch
    # of the idle ones while a busy one's records are unread); one partition needs none.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    await consumer.position(tp)  # resolve the end offset now, before any order is sent
    return consumer


async def _offer(
    trading_url: str, state: _Run, users: list[int], rate: float, seconds: float,
    price_base: int,
) -> float:  # fmt: skip
    """Send ``rate * seconds`` orders on schedule, each on an idle keep-alive connection (a
    new one when all are busy: open loop); returns the time the last was sent."""
    address = urlsplit(trading_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    idle: list[KeepAlive] = []
    opened: list[KeepAlive] = []
    count = int(rate * seconds) // 2 * 2
    started = time.perf_counter()
    tasks = []

    async def send(i: int) -> None:
        pair = i // 2
        seller, buyer = users[(2 * pair) % len(users)], users[(2 * pair + 1) % len(users)]
        user_id = seller if i % 2 == 0 else buyer
        body = msgspec.json.encode({
            "user_id": user_id, "symbol": SYMBOL, "side": "SELL" if i % 2 == 0 else "BUY",
            "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
            "price": str(price_base + pair % 1000)})  # fmt: skip
        trace = _Trace(sent=time.time(), user_id=user_id)
        try:
            if idle:
                connection = idle.pop()
            else:
                connection = await KeepAlive.open(host, port)
                opened.append(connection)
            status, answer = await connection.post(b"/internal/v1/orders", body)
        except OSError:
            state.errors += 1
            return
        idle.append(connection)
        if status != 201:
            state.errors += 1
            return
        trace.accepted = time.time()
        payload = msgspec.json.decode(answer)
        trace.stamped = int(payload["transactTime"]) / 1000
        state.adopt(int(payload["orderId"]), trace)

    try:
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
    finally:
        for connection in opened:
            connection.close()
    return time.time()


async def _step(
    infra: InfraSettings, trading_url: str, users: list[int], rate: float, seconds: float
) -> dict[str, Any]:
    state = _Run()
    partition = await _partition(infra.postgres_dsn)
    commands = await _consumer(infra.kafka_bootstrap, infra.orders_topic, partition)
    events = await _consumer(infra.kafka_bootstrap, infra.executions_topic, partition)
    redis = aioredis.from_url(infra.redis_url)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(keys.account_channel(infra.redis_prefix, 0)[:-1] + "*")
    observers = [
        asyncio.create_task(_observe_commands(commands, state)),
        asyncio.create_task(_observe_events(events, state)),
        asyncio.create_task(_observe_settlement(pubsub, state)),
    ]
    pids = program_pids()
    cpu_before = _cpu_seconds(pids)
    try:
        first_sent = time.time()
        # Far above any resting bid, so a pair's sell rests until its buy arrives.
        await _offer(trading_url, state, users, rate, seconds, price_base=900_000)
        state.offered()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.all_settled.wait(), DRAIN_S)
    finally:
        for task in observers:
            task.cancel()
        await asyncio.gather(*observers, return_exceptions=True)
        await commands.stop()
        await events.stop()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()
    step = _summarise(state, rate, seconds, first_sent)
    if pids:
        spent = {name: round(after - cpu_before.get(name, 0.0), 2)
                 for name, after in _cpu_seconds(pids).items()}  # fmt: skip
        total = sum(spent.values())
        step["cpu_seconds"] = dict(sorted(spent.items(), key=lambda kv: -kv[1])) | {
            "total": round(total, 2),
            "per_settled_order_ms": round(1000 * total / max(1, step["settled"]), 3),
        }
    return step


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each program's process tree (its live descendants, and its
    reaped children: Postgres backends come and go), plus this process as ``bench``."""
    stats: dict[int, tuple[int, float, float]] = {}  # pid → (ppid, own, reaped children)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            # After the command: state, ppid, ..., utime (12), stime, cutime, cstime.
            own = (int(fields[11]) + int(fields[12])) / _TICK
            reaped = (int(fields[13]) + int(fields[14])) / _TICK
            stats[int(entry)] = (int(fields[1]), own, reaped)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int) -> float:
        _, own, reaped = stats.get(pid, (0, 0.0, 0.0))
        return own + reaped + sum(tree(child) for child in children.get(pid, []))

    spent = {name: tree(pid) for name, pid in pids.items()}
    spent["bench"] = time.process_time()
    return spent


def _summarise(state: _Run, rate: float, seconds: float, first_sent: float) -> dict[str, Any]:
    traces = [t for t in state.traces.values() if t.accepted is not None]
    settled = [t for t in traces if t.settled is not None]
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for t in settled:
        assert t.accepted is not None
        assert t.settled is not None
        hops["accept"].append(t.accepted - t.sent)
        if t.commanded is not None:
            hops["relay"].append(t.commanded - t.accepted)
            if t.executed is not None:
                hops["engine"].append(t.executed - t.commanded)
                hops["settle"].append(t.settled - t.executed)
        hops["accepted_to_settled"].append(t.settled - t.accepted)
        if t.stamped is not None:
            hops["stamped_to_settled"].append(t.settled - t.stamped)
            if t.commanded is not None:
                hops["stamped_to_commanded"].append(t.commanded - t.stamped)
        hops["sent_to_settled"].append(t.settled - t.sent)
    last_settled = max((t.settled for t in settled if t.settled is not None), default=first_sent)
    return {
        "offered_rate": rate,
        "seconds": seconds,
        "orders": len(traces),
        "settled": len(settled),
        "lost": len(traces) - len(settled),
        "errors": state.errors,
        "sustained_rate": round(len(settled) / max(1e-9, last_settled - first_sent), 1),
        **{hop: _percentiles(values) for hop, values in hops.items()},
    }


def _within_goal(step: dict[str, Any]) -> bool:
    e2e = step.get("accepted_to_settled")
    return (
        e2e is not None and step["lost"] == 0 and step["errors"] == 0
        and e2e["p50_ms"] <= GOAL_P50_MS and e2e["p99_ms"] <= GOAL_P99_MS
        and step["sustained_rate"] >= 0.95 * step["offered_rate"]
    )  # fmt: skip


async def _run(
    rate: float, seconds: float, pair_users: int, sweep: bool, trading_url: str
) -> dict[str, Any]:
    infra = InfraSettings()
    users = await _seed(infra.postgres_dsn, pair_users)
    steps = []
    best: float | None = None
    current = rate
    while True:
        step = await _step(infra, trading_url, users, current, seconds)
        steps.append(step)
        if _within_goal(step):
            best = current
        if not sweep or not _within_goal(step) or current >= 64_000:
            break
        current *= 2
    return {
        "bench": "e2e",
        "goal": {
            "accepted_to_settled_p50_ms": GOAL_P50_MS,
            "accepted_to_settled_p99_ms": GOAL_P99_MS,
        },
        "runs": steps,
        "max_rate_within_goal": best,
    }

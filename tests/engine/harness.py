"""Driving real ``cex serve engine`` processes against the test's own topics and Redis
prefix, and checking their committed output against the core run in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cex.core.errors import SchemaError
from cex.core.events import Command, decode_command, decode_event, encode
from cex.core.market import MarketConfig
from cex.core.matching import MatchingEngine
from cex.engine.settings import group_id
from cex.infra.manifests import find_market_file, load_market

CEX = Path(sys.executable).with_name("cex")
MARKET = "btc-usdt"


def market_config() -> MarketConfig:
    return load_market(find_market_file(MARKET))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Topology:
    """Where one test's engine reads and writes."""

    bootstrap: str
    redis_url: str
    orders: str
    executions: str
    prefix: str
    partition: int
    log_dir: Path
    engine_env: dict[str, str] = field(default_factory=dict)
    processes: list[EngineProcess] = field(default_factory=list)

    @property
    def tp_orders(self) -> TopicPartition:
        return TopicPartition(self.orders, self.partition)

    @property
    def tp_executions(self) -> TopicPartition:
        return TopicPartition(self.executions, self.partition)

    @property
    def group(self) -> str:
        return group_id(self.orders, MARKET)


class EngineProcess:
    """One ``cex serve engine`` subprocess."""

    count = 0

    def __init__(self, topo: Topology, **env: str) -> None:
        EngineProcess.count += 1
        topo.processes.append(self)
        self.port = free_port()
        self.log = topo.log_dir / f"engine-{EngineProcess.count}.log"
        environment = {
            **os.environ,
            "CEX_KAFKA_BOOTSTRAP": topo.bootstrap,
            "CEX_REDIS_URL": topo.redis_url,
            "CEX_REDIS_PREFIX": topo.prefix,
            "CEX_ORDERS_TOPIC": topo.orders,
            "CEX_EXECUTIONS_TOPIC": topo.executions,
            "CEX_MARKET_PARTITION": str(topo.partition),
            "CEX_METRICS_PORT": str(self.port),
            **topo.engine_env,
            **env,
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(CEX), "serve", "engine", "--market", MARKET],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 60) -> None:
        """Poll ``/readyz`` until 200; fail if the process exits first."""
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(timeout):
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"engine exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                try:
                    response = await client.get(self.url + "/readyz")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(self.url + "/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not found")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait: a graceful stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            while self.proc.poll() is None:
                await asyncio.sleep(0.05)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- Kafka


async def produce(topo: Topology, payloads: Iterable[bytes]) -> None:
    """Produce in order to the market's partition of ``orders`` (idempotent, no gaps)."""
    producer = AIOKafkaProducer(bootstrap_servers=topo.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topo.orders, value, partition=topo.partition) for value in payloads
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_partition(
    bootstrap: str, tp: TopicPartition, isolation_level: str = "read_committed"
) -> list[tuple[int, bytes]]:
    """Every record of one partition, ``(offset, value)``, up to its end now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[tuple[int, bytes]] = []
        while await consumer.position(tp) < end:
            got = await consumer.getmany(tp, timeout_ms=1000)
            records += [(r.offset, r.value) for r in got.get(tp, []) if r.value is not None]
        return records
    finally:
        await consumer.stop()


async def committed_offset(topo: Topology) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=topo.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(topo.group, partitions=[topo.tp_orders])
        meta = offsets.get(topo.tp_orders)
        return meta.offset if meta is not None and meta.offset >= 0 else 0
    finally:
        await admin.close()


async def orders_end(topo: Topology) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=topo.bootstrap)
    await consumer.start()
    try:
        return (await consumer.end_offsets([topo.tp_orders]))[topo.tp_orders]
    finally:
        await consumer.stop()


async def wait_caught_up(topo: Topology, engine: EngineProcess, timeout: float = 90) -> int:
    """Wait until the engine's committed input offset reaches the end of its partition."""
    end = await orders_end(topo)
    async with asyncio.timeout(timeout):
        while (committed := await committed_offset(topo)) < end:
            if engine.proc.poll() is not None:
                raise AssertionError(f"engine exited with {engine.proc.returncode}")
            await asyncio.sleep(0.1)
    return committed


# --------------------------------------------------------------------------- expected


def expected_output(config: MarketConfig, inputs: list[tuple[int, bytes]]) -> list[bytes]:
    """The events an uninterrupted in-process core produces for these input records."""
    engine = MatchingEngine(config)
    out: list[bytes] = []
    for offset, value in inputs:
        try:
            command = decode_command(value)
        except SchemaError:
            events = engine.reject_malformed(offset)
        else:
            events = engine.apply(command, offset)
        out += [encode(e) for e in events]
    return out


async def assert_exactly_once(topo: Topology, config: MarketConfig) -> list[bytes]:
    """The committed ``executions`` partition is byte-identical to the in-process run of
    the committed ``orders`` partition, with seq 1..n and no duplicate."""
    inputs = await read_partition(topo.bootstrap, topo.tp_orders)
    outputs = [v for _, v in await read_partition(topo.bootstrap, topo.tp_executions)]
    seqs = [decode_event(v).seq for v in outputs]
    assert seqs == list(range(1, len(seqs) + 1)), "seq has gaps or duplicates"
    expected = expected_output(config, inputs)
    assert len(outputs) == len(expected)
    assert outputs == expected
    return outputs


def encode_commands(commands: Iterable[Command]) -> list[bytes]:
    return [encode(c) for c in commands]

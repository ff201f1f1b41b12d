"""The engine's pipelining on real Kafka and Redis: the commands that arrive while a
transaction commits are applied behind it and committed after it, in order; a crash with
such a batch applied but not committed loses nothing and publishes nothing ahead of Kafka.

The runner runs in the test's process, so that a subclass can hold a transaction until
the next batch is applied (what a slow broker does) and die at a chosen point."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from cex.bench.engine_service import workload
from cex.engine.runner import Applied, EngineRunner
from cex.engine.settings import EngineSettings
from cex.infra import kafka
from cex.infra import redis as keys
from cex.infra.runtime import WorkerContext
from cex.infra.settings import InfraSettings
from tests.engine.harness import (
    MARKET,
    EngineProcess,
    Topology,
    assert_exactly_once,
    committed_offset,
    encode_commands,
    expected_output,
    market_config,
    produce,
    read_partition,
    wait_caught_up,
)


class Crash(Exception):
    """Stands for a kill -9: the process ends without another word to Kafka."""


def _infra(topo: Topology) -> InfraSettings:
    return InfraSettings(
        kafka_bootstrap=topo.bootstrap,
        redis_url=topo.redis_url,
        redis_prefix=topo.prefix,
        orders_topic=topo.orders,
        executions_topic=topo.executions,
    )


class HeldRunner(EngineRunner):
    """Holds each transaction until ``hold`` more batches were applied behind it (or
    ``patience`` passed), and records what every transaction covered."""

    def __init__(self, topo: Topology, settings: EngineSettings, *, hold: int = 1) -> None:
        super().__init__(market_config(), topo.partition, _infra(topo), settings)
        self.hold = hold
        self.patience = 0.2
        self.applies = 0
        self.progress = asyncio.Event()  # set at every applied batch
        self.transactions: list[tuple[int, int]] = []  # (commands, next_offset)

    def _apply_batch(self, batch: list[ConsumerRecord[bytes, bytes]]) -> Applied:
        applied = super()._apply_batch(batch)
        self.applies += 1
        self.progress.set()
        return applied

    async def _hold(self) -> None:
        loop = asyncio.get_running_loop()
        target, deadline = self.applies + self.hold, loop.time() + self.patience
        while self.applies < target and loop.time() < deadline:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), deadline - loop.time())
            except TimeoutError:
                return

    async def _commit(self, producer: AIOKafkaProducer, applied: Applied) -> Applied:
        await self._hold()
        done = await super()._commit(producer, applied)
        self.transactions.append((done.commands, done.next_offset))
        return done


class CrashingRunner(HeldRunner):
    """Commits its first transaction once the next batch is applied behind it, then dies
    in the middle of the second: its events produced, the commit never sent."""

    async def _commit(self, producer: AIOKafkaProducer, applied: Applied) -> Applied:
        if not self.transactions:
            self.patience = 30  # the next batch is in the topic already: wait for it
            return await super()._commit(producer, applied)
        self.pending_at_crash = applied
        await producer.begin_transaction()
        topic = self.infra.executions_topic
        await kafka.send_records(producer, topic, self.partition, applied.records)
        await producer.flush()
        raise Crash


async def test_a_crash_with_a_batch_applied_behind_a_commit_loses_nothing(
    topo: Topology, redis_client: aioredis.Redis
) -> None:
    config = market_config()
    payloads = encode_commands(workload(config, 400, seed=21))
    await produce(topo, payloads[:200])
    # Every batch gets a snapshot: the one of the uncommitted batch must never be stored.
    settings = EngineSettings(engine_batch_max=64, engine_snapshot_every=1)
    runner = CrashingRunner(topo, settings)
    with pytest.raises(Crash):
        await asyncio.wait_for(runner.run(WorkerContext("crashing")), 60)

    # The first transaction covered the first batch only; the second was applied behind it
    # (the core ran ahead of Kafka), produced, and never committed.
    assert runner.transactions == [(64, 64)]
    assert runner.pending_at_crash.commands == 64
    assert runner.pending_at_crash.next_offset == 128
    assert runner.engine is not None
    assert runner.engine.next_offset >= 128
    assert await committed_offset(topo) == 64
    inputs = await read_partition(topo.bootstrap, topo.tp_orders)
    committed = [v for _, v in await read_partition(topo.bootstrap, topo.tp_executions)]
    assert committed == expected_output(config, inputs[:64])
    # Redis holds the committed state only: the snapshot and the book key stop at it.
    stored = await redis_client.hget(keys.snapshot_key(topo.prefix, MARKET), "data")
    assert stored is not None
    assert keys.decode_snapshot(stored).next_offset == 64
    book_seq, _, _ = keys.parse_book(await redis_client.hgetall(keys.book_key(topo.prefix, MARKET)))
    assert book_seq == runner.book_seq < runner.pending_at_crash.book_seq

    # The next instance fences the open transaction away and applies the batch again.
    engine = EngineProcess(topo)
    await engine.wait_ready()
    assert '"from_snapshot": true' in engine.tail(), engine.tail()  # the committed one's
    assert await engine.metric("cex_engine_replayed_commands_total") == 0
    await produce(topo, payloads[200:])
    await wait_caught_up(topo, engine)
    await assert_exactly_once(topo, config)
    assert await engine.stop() == 0, engine.tail()


async def test_pipelined_transactions_commit_in_input_order(topo: Topology) -> None:
    """Each transaction is held until two more batches are applied behind it, under a live
    feed: transactions join what was applied meanwhile, commit one after another in input
    order, and the output is exactly the input's."""
    config = market_config()
    payloads = encode_commands(workload(config, 1500, seed=22))
    runner = HeldRunner(topo, EngineSettings(engine_batch_max=64), hold=2)
    batches_timed = _command_seconds_count()
    ctx = WorkerContext("held")
    task = asyncio.create_task(runner.run(ctx))
    async with asyncio.timeout(30):
        while not ctx.readiness.ready:
            assert not task.done()
            await asyncio.sleep(0.01)
    for start in range(0, len(payloads), 50):
        await produce(topo, payloads[start : start + 50])
        await asyncio.sleep(0.005)
    async with asyncio.timeout(60):
        while await committed_offset(topo) < len(payloads):
            assert not task.done()
            await asyncio.sleep(0.05)
    ctx.stopping.set()
    await asyncio.wait_for(task, 30)

    offsets = [offset for _, offset in runner.transactions]
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(payloads)
    assert sum(commands for commands, _ in runner.transactions) == len(payloads)
    assert all(commands <= 64 for commands, _ in runner.transactions)
    assert runner.applies > len(runner.transactions)  # some transactions joined batches
    # Every applied batch is timed once, at the commit of the transaction it joined.
    assert _command_seconds_count() - batches_timed == runner.applies
    await assert_exactly_once(topo, config)


def _command_seconds_count() -> float:
    """Batches observed so far by ``cex_engine_command_seconds`` (fetched -> committed)."""
    value = REGISTRY.get_sample_value("cex_engine_command_seconds_count", {"market": MARKET})
    return value or 0.0

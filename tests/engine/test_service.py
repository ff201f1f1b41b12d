"""The engine service as a real process on real Kafka and Redis: exactly-once through
kill -9, lost snapshots, a second instance, and malformed input."""

from __future__ import annotations

import asyncio
import random

import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from cex.bench.engine_service import workload
from cex.core.events import CommandKind, CommandRejected, RejectReason, Side, decode_event
from cex.core.matching import MatchingEngine
from cex.infra import redis as keys
from tests.engine.harness import (
    EngineProcess,
    Topology,
    assert_exactly_once,
    encode_commands,
    expected_output,
    market_config,
    produce,
    read_partition,
    wait_caught_up,
)


async def _feed(topo: Topology, payloads: list[bytes], rng: random.Random) -> None:
    """Produce in small chunks with pauses, as a live order flow would."""
    producer = AIOKafkaProducer(bootstrap_servers=topo.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        i = 0
        while i < len(payloads):
            chunk = payloads[i : i + rng.randint(1, 120)]
            futures = [await producer.send(topo.orders, v, partition=topo.partition) for v in chunk]
            await asyncio.gather(*futures)
            i += len(chunk)
            await asyncio.sleep(rng.uniform(0, 0.03))
    finally:
        await producer.stop()


async def _kill_run(topo: Topology, *, kills: int, commands: int, seed: int) -> None:
    config = market_config()
    rng = random.Random(seed)
    payloads = encode_commands(workload(config, commands, seed=seed))
    feeder = asyncio.create_task(_feed(topo, payloads, rng))
    engine = EngineProcess(topo)
    for _ in range(kills):
        # Mostly while live (in the middle of batches and transactions), sometimes while
        # the previous instance's transaction is still open or during recovery.
        if rng.random() < 0.8:
            await engine.wait_ready()
        await asyncio.sleep(rng.uniform(0, 0.4))
        engine.kill()
        engine = EngineProcess(topo)
    await feeder
    await engine.wait_ready()
    await wait_caught_up(topo, engine)
    outputs = await assert_exactly_once(topo, config)
    assert len(outputs) > commands  # the workload answers every command with an event
    assert await engine.stop() == 0, engine.tail()


async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(topo: Topology) -> None:
    await _kill_run(topo, kills=5, commands=3000, seed=5)


@pytest.mark.soak
async def test_kill_9_soak(topo: Topology) -> None:
    await _kill_run(topo, kills=60, commands=40_000, seed=11)


async def test_lost_snapshot_means_full_replay_and_the_same_output(
    topo: Topology, redis_client: aioredis.Redis
) -> None:
    config = market_config()
    payloads = encode_commands(workload(config, 2400, seed=3))
    first, second, third = payloads[:1500], payloads[1500:2000], payloads[2000:]
    snapshot_key = keys.snapshot_key(topo.prefix, "btc-usdt")

    engine = EngineProcess(topo)
    await engine.wait_ready()
    await produce(topo, first)
    await wait_caught_up(topo, engine)
    assert await engine.stop() == 0, engine.tail()
    stored = await redis_client.hget(snapshot_key, "data")
    assert stored is not None
    snapshot = keys.decode_snapshot(stored)
    assert 0 < snapshot.next_offset <= 1500

    # With the snapshot: only the commands after it are replayed.
    await produce(topo, second)
    engine = EngineProcess(topo)
    await engine.wait_ready()
    assert await engine.metric("cex_engine_replayed_commands_total") == 1500 - snapshot.next_offset
    await wait_caught_up(topo, engine)
    assert await engine.stop() == 0, engine.tail()

    # Redis flushed: everything is replayed from the partition's start.
    for key in [k async for k in redis_client.scan_iter(match=f"{topo.prefix}:*")]:
        await redis_client.delete(key)
    await produce(topo, third)
    engine = EngineProcess(topo)
    await engine.wait_ready()
    assert await engine.metric("cex_engine_replayed_commands_total") == 2000
    await wait_caught_up(topo, engine)
    await assert_exactly_once(topo, config)

    # The book key is rebuilt and matches the core's book.
    reference = MatchingEngine(config)
    inputs = await read_partition(topo.bootstrap, topo.tp_orders)
    events = [decode_event(v) for v in expected_output(config, inputs)]
    for offset, value in inputs:
        from cex.core.events import decode_command

        reference.apply(decode_command(value), offset)
    async with asyncio.timeout(10):
        while True:
            seq, bids, asks = keys.parse_book(
                await redis_client.hgetall(keys.book_key(topo.prefix, "btc-usdt"))
            )
            if (bids, asks) == (reference.depth(Side.BUY), reference.depth(Side.SELL)):
                break
            await asyncio.sleep(0.05)
    last_delta = max(e.seq for e in events if type(e).__name__ == "BookDelta")
    assert seq == last_delta
    assert await engine.stop() == 0, engine.tail()


async def test_a_second_engine_fences_the_first(topo: Topology) -> None:
    config = market_config()
    payloads = encode_commands(workload(config, 1200, seed=9))
    older = EngineProcess(topo)
    await older.wait_ready()
    await produce(topo, payloads[:600])
    await wait_caught_up(topo, older)

    newer = EngineProcess(topo)
    await newer.wait_ready()
    await produce(topo, payloads[600:])
    # The older one reads the new commands too, and its transaction is refused.
    assert await older.wait_exit(30) != 0
    assert "fenced" in older.tail().lower() or "Fenced" in older.tail(), older.tail()
    await wait_caught_up(topo, newer)
    await assert_exactly_once(topo, config)
    assert await newer.stop() == 0, newer.tail()


async def test_a_malformed_command_is_rejected_and_the_market_goes_on(topo: Topology) -> None:
    config = market_config()
    good = encode_commands(workload(config, 300, seed=4))
    garbage = [b"\x93\xa5hello", b"not msgpack at all", b""]
    engine = EngineProcess(topo)
    await engine.wait_ready()
    await produce(topo, good[:100] + garbage + good[100:])
    await wait_caught_up(topo, engine)
    outputs = [decode_event(v) for v in await assert_exactly_once(topo, config)]

    rejected = [
        e for e in outputs if isinstance(e, CommandRejected) and e.command is CommandKind.MALFORMED
    ]
    assert [e.offset for e in rejected] == [100, 101, 102]
    assert all(e.reason is RejectReason.MALFORMED_COMMAND for e in rejected)
    assert max(e.offset for e in outputs) == 302  # the commands after them were matched
    assert await engine.metric("cex_engine_malformed_commands_total") == 3
    assert await engine.stop() == 0, engine.tail()


async def test_a_snapshot_that_does_not_restore_means_a_full_replay(
    topo: Topology, redis_client: aioredis.Redis
) -> None:
    """The fall-back to a full replay is decided by the snapshot's own error type: a stored
    snapshot whose engine state is garbage is replaced by a replay from the partition's
    start (it used to end the process with a SchemaError, at every restart)."""
    config = market_config()
    payloads = encode_commands(workload(config, 400, seed=6))
    engine = EngineProcess(topo)
    await engine.wait_ready()
    await produce(topo, payloads[:300])
    await wait_caught_up(topo, engine)
    assert await engine.stop() == 0, engine.tail()

    corrupt = keys.EngineSnapshot(
        market="btc-usdt",
        partition=topo.partition,
        next_offset=100,
        next_seq=1,
        book_seq=0,
        engine=b"\x92\xa4junk\x01",
    )
    await redis_client.delete(keys.snapshot_key(topo.prefix, "btc-usdt"))
    await redis_client.hset(
        keys.snapshot_key(topo.prefix, "btc-usdt"),
        mapping={"next_offset": 100, "data": msgspec.msgpack.encode(corrupt)},
    )
    await produce(topo, payloads[300:])
    engine = EngineProcess(topo)
    await engine.wait_ready()
    assert await engine.metric("cex_engine_replayed_commands_total") == 300
    await wait_caught_up(topo, engine)
    await assert_exactly_once(topo, config)
    assert await engine.stop() == 0, engine.tail()


async def _offset_commit(topo: Topology) -> tuple[int, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=topo.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(topo.group, partitions=[topo.tp_orders])
    finally:
        await admin.close()
    meta = offsets[topo.tp_orders]
    return meta.offset, meta.metadata


async def test_a_quiet_market_keeps_committing_its_offset(topo: Topology) -> None:
    """With no input, the engine commits its input offset again in offsets-only transactions,
    so Kafka's offset retention never forgets where a quiet market is."""
    config = market_config()
    engine = EngineProcess(topo, CEX_ENGINE_OFFSET_REFRESH_S="0.5")
    await engine.wait_ready()
    await produce(topo, encode_commands(workload(config, 50, seed=2)))
    await wait_caught_up(topo, engine)
    offset, first = await _offset_commit(topo)
    assert offset == 50
    stamps = {first}
    async with asyncio.timeout(20):
        while len(stamps) < 3:
            await asyncio.sleep(0.3)
            again, metadata = await _offset_commit(topo)
            assert again == offset  # the same position, committed again
            stamps.add(metadata)
    assert all(s.startswith("committed_at_ms=") for s in stamps)
    assert await engine.metric("cex_engine_offset_refreshes_total") >= 2
    # Those transactions produced nothing: the output is still exactly the input's.
    await assert_exactly_once(topo, config)
    assert await engine.stop() == 0, engine.tail()

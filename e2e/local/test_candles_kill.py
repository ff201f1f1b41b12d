"""kill -9 of `cex serve candles` or `cex serve candle-persist` at random instants, while
trades keep arriving, loses no candle and counts no trade twice: at the end Postgres
holds exactly the candles of the trades and `cex candles rebuild --check` exits 0."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys

import asyncpg
import redis.asyncio as aioredis
from tests.candles.harness import MARKETS, Stream
from tests.fixtures import NewTopicFactory

from cex.candles.store import load_candles
from cex.stack.settings import StackSettings

CEX = os.path.join(os.path.dirname(sys.executable), "cex")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(stream: Stream, service: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, **stream.env(), "CEX_METRICS_PORT": str(_free_port()),
        "CEX_CANDLES_BATCH_MAX": "7", "CEX_CANDLES_POLL_MS": "20",
        "CEX_CANDLE_PERSIST_INTERVAL_S": "0.02",
    }  # fmt: skip
    return subprocess.Popen(
        [CEX, "serve", service], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _check(stream: Stream) -> subprocess.CompletedProcess[str]:
    """`cex candles rebuild --check` against the test's database and Redis prefix."""
    return await asyncio.to_thread(
        subprocess.run, [CEX, "candles", "rebuild", "--check"],
        env={**os.environ, **stream.env()}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_kill_9_loses_no_candle_and_double_counts_no_trade(
    exchange_dsn: str, kafka_bootstrap: str, new_topic: NewTopicFactory, redis_prefix: str,
    redis_client: aioredis.Redis, stack: StackSettings,
) -> None:  # fmt: skip
    topic = await new_topic("executions", partitions=2)
    stream = Stream(exchange_dsn, kafka_bootstrap, topic, stack.redis_url, redis_prefix)
    rng = random.Random(3)
    procs = {name: _start(stream, name) for name in ("candles", "candle-persist")}
    kills = {"candles": 0, "candle-persist": 0}
    try:
        for _ in range(8):
            await stream.produce(60, transactions=3)
            await asyncio.sleep(rng.random() * 0.8)
            victim = rng.choice(sorted(procs))
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=30)
            kills[victim] += 1
            procs[victim] = _start(stream, victim)
        await stream.wait_done(redis_client, timeout=90)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(timeout=30)
    assert all(proc.returncode == 0 for proc in procs.values())
    assert min(kills.values()) >= 2, kills

    conn = await asyncpg.connect(exchange_dsn)
    try:
        for name, _, _ in MARKETS:
            stored = {(c.interval, c.open_time): c for c in await load_candles(conn, name)}
            expected = stream.expected(name)
            assert stored.keys() == expected.keys()
            for key, candle in expected.items():
                assert stored[key].trades == candle.trades
                assert stored[key].volume == candle.volume
                assert stored[key].last_seq == candle.last_seq
    finally:
        await conn.close()
    check = await _check(stream)
    assert check.returncode == 0, check.stdout + check.stderr
    # A corrupted candle makes the check fail (exit 1) and name it.
    conn = await asyncpg.connect(exchange_dsn)
    try:
        await conn.execute(
            "UPDATE candles SET trades = trades + 1 WHERE market = 'btc-usdt' AND interval = '5m'"
            " AND open_time = (SELECT min(open_time) FROM candles WHERE market = 'btc-usdt'"
            " AND interval = '5m')"
        )
    finally:
        await conn.close()
    check = await _check(stream)
    assert check.returncode == 1
    assert "btc-usdt 5m" in check.stdout
    assert "postgres: trades" in check.stdout
    print(f"kills {kills}, trades {sum(len(t) for t in stream.trades.values())}")

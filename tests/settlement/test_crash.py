"""kill -9 of `cex serve settlement` mid-batch loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys

from cex.audit.check import run as audit
from cex.core.events import TradeExecuted
from cex.core.ledger import balance_deltas, journal_for
from tests.settlement.harness import Exchange

BTC = 100_000_000
USDT = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(ex: Exchange) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CEX_POSTGRES_DSN": ex.dsn,
        "CEX_KAFKA_BOOTSTRAP": ex.bootstrap,
        "CEX_EXECUTIONS_TOPIC": ex.topic,
        "CEX_SETTLEMENT_BATCH_MAX": "40",
        "CEX_METRICS_PORT": str(_free_port()),
    }
    cex = os.path.join(os.path.dirname(sys.executable), "cex")
    return subprocess.Popen(
        [cex, "serve", "settlement"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()


async def test_kill_9_mid_batch_loses_and_duplicates_nothing(ex: Exchange) -> None:
    rng = random.Random(7)
    makers = [await ex.user(f"maker{i}@example.com", BTC=10 * BTC) for i in range(5)]
    takers = [await ex.user(f"taker{i}@example.com", USDT=1_000_000 * USDT) for i in range(5)]
    for i in range(200):
        await ex.place(user_id=rng.choice(makers), symbol="BTCUSDT", side="SELL", type="LIMIT",
                       timeInForce="GTC", quantity="0.01", price=str(30000 + i % 50))  # fmt: skip
    for _ in range(120):
        await ex.place(user_id=rng.choice(takers), symbol="BTCUSDT", side="BUY", type="LIMIT",
                       timeInForce="IOC", quantity="0.025", price="30049")  # fmt: skip
    await ex.match_and_publish()
    trades = sum(isinstance(e, TradeExecuted) for e in ex.events)
    assert trades > 200
    final = ex.last_seq("btc-usdt")

    kills = 0
    while kills < 3:
        proc = _start(ex)
        try:
            # Let it make some progress, then kill it at a random instant.
            start = await ex.settled_seq("btc-usdt")
            async with asyncio.timeout(60):
                while await ex.settled_seq("btc-usdt") == start:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    await asyncio.sleep(0.01)
            await asyncio.sleep(rng.random() * 0.05)
        finally:
            _stop(proc, signal.SIGKILL)
        kills += 1
        if await ex.settled_seq("btc-usdt") == final:
            break
    assert kills >= 2

    proc = _start(ex)
    try:
        await ex.wait_settled(timeout=60)
    finally:
        _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0

    # Exactly once: trades, ledger and balances equal a replay of the events in Python.
    assert await ex.pool.fetchval("SELECT count(*) FROM trades") == trades
    fee_user = int(await ex.pool.fetchval("SELECT id FROM users WHERE kind = 'FEE'"))
    markets = {m.config.symbol: m.config for m in ex.store.markets.values()}
    journals = [j for e in ex.events if (j := journal_for(e, markets[e.market], fee_user))]
    assert await ex.pool.fetchval(
        "SELECT count(*) FROM journals WHERE kind IN ('TRADE', 'ORDER_RELEASE')"
    ) == len(journals)
    expected: dict[tuple[int, str], list[int]] = {}
    for user_id in makers:
        expected[user_id, "BTC"] = [10 * BTC, 0]
    for user_id in takers:
        expected[user_id, "USDT"] = [1_000_000 * USDT, 0]
    for row in await ex.pool.fetch("SELECT user_id, locked_asset, locked FROM orders"):
        pair = expected[row["user_id"], row["locked_asset"]]
        pair[0] -= int(row["locked"])
        pair[1] += int(row["locked"])
    for key, (available, locked) in balance_deltas(journals).items():
        pair = expected.setdefault(key, [0, 0])
        pair[0] += available
        pair[1] += locked
    stored = {
        (r["user_id"], r["asset"]): [int(r["available"]), int(r["locked"])]
        for r in await ex.pool.fetch("SELECT user_id, asset, available, locked FROM balances")
    }
    assert stored == {k: v for k, v in expected.items() if v != [0, 0] or k in stored}
    assert await audit(ex.dsn) == []

"""End to end on the local process stack: every service a real `cex serve …` process on
real Postgres, Kafka and Redis, with a database, topics and Redis prefix of the test's own.

Orders go in over the trading API's HTTP; the relay publishes them, the engine matches,
settlement books the results; then `cex check` audits every invariant, including the
engine's book (its Redis snapshot) against the open orders in the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from tests.fixtures import REPO, NewTopicFactory

from cex.core.matching import MatchingEngine
from cex.engine.publisher import load_snapshot
from cex.infra import accounts

CEX = str(Path(sys.executable).with_name("cex"))
USDT, BTC = 1_000_000, 100_000_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.trading_port = _free_port()

    def start(self, name: str, *args: str, **extra_env: str) -> None:
        port = str(_free_port())
        env = self.env | {"CEX_METRICS_PORT": port, "CEX_SETTLEMENT_METRICS_PORT": port}
        with (self.log_dir / f"{name}.log").open("ab") as log:  # the child keeps its own fd
            self.processes[name] = subprocess.Popen(
                [CEX, "serve", *args], env=env | extra_env, stdout=log, stderr=log
            )

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def local_stack(
    exchange_dsn: str,
    kafka_bootstrap: str,
    new_topic: NewTopicFactory,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    from cex.stack.settings import StackSettings

    orders = await new_topic("orders", partitions=2)
    executions = await new_topic("executions", partitions=2)
    env = {
        **os.environ,
        "CEX_POSTGRES_DSN": exchange_dsn,
        "CEX_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CEX_REDIS_URL": StackSettings().redis_url,
        "CEX_REDIS_PREFIX": redis_prefix,
        "CEX_ORDERS_TOPIC": orders,
        "CEX_EXECUTIONS_TOPIC": executions,
        "CEX_ENGINE_SNAPSHOT_EVERY": "5",
        "CEX_ENGINE_SNAPSHOT_INTERVAL_S": "0.5",
    }
    the_stack = Stack(env, tmp_path)
    the_stack.start("trading", "trading", CEX_TRADING_PORT=str(the_stack.trading_port))
    the_stack.start("relay", "relay")
    the_stack.start(
        "engine", "engine", "--market", "btc-usdt",
        CEX_MARKET_FILE=str(REPO / "examples" / "btc-usdt.yaml"), CEX_MARKET_PARTITION="0",
    )  # fmt: skip
    the_stack.start("settlement", "settlement")
    try:
        yield the_stack
    finally:
        the_stack.stop_all()


async def _until_ready(http: aiohttp.ClientSession) -> None:
    """Until the trading API answers its readiness probe (30 s at most)."""
    async with asyncio.timeout(30):
        while True:
            try:
                async with http.get("/readyz") as probe:
                    if probe.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def _post(
    http: aiohttp.ClientSession, path: str, body: dict[str, object]
) -> dict[str, object]:
    async with http.post(path, json=body) as response:
        payload = await response.json()
        assert response.status == 201, payload
        return payload  # type: ignore[no-any-return]


async def test_orders_flow_through_every_service_and_the_books_balance(
    local_stack: Stack, exchange_dsn: str, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    conn = await asyncpg.connect(exchange_dsn)
    try:
        seller = await accounts.create_user(conn, "seller@example.com")
        buyer = await accounts.create_user(conn, "buyer@example.com")
        await accounts.deposit(conn, seller, "BTC", 2 * BTC, "dep-seller")
        await accounts.deposit(conn, buyer, "USDT", 100_000 * USDT, "dep-buyer")

        url = f"http://127.0.0.1:{local_stack.trading_port}"
        async with aiohttp.ClientSession(url) as http:
            await _until_ready(http)
            # Three asks, one buy sweeping two of them at a better limit, one resting bid.
            for i, price in enumerate(("30000", "30010", "30020")):
                await _post(http, "/internal/v1/orders", {
                    "user_id": seller, "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                    "timeInForce": "GTC", "quantity": "0.5", "price": price,
                    "newClientOrderId": f"ask{i}"})  # fmt: skip
            sweep = await _post(http, "/internal/v1/orders", {
                "user_id": buyer, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                "timeInForce": "IOC", "quantity": "0.8", "price": "30015",
                "newClientOrderId": "sweep"})  # fmt: skip
            await _post(http, "/internal/v1/orders", {
                "user_id": buyer, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                "timeInForce": "GTC", "quantity": "0.1", "price": "29000",
                "newClientOrderId": "bid"})  # fmt: skip

        async with asyncio.timeout(60):
            while await conn.fetchval(
                "SELECT count(*) FROM orders WHERE status = 'PENDING'"
            ) or await conn.fetchval("SELECT count(*) FROM outbox WHERE NOT published"):
                await asyncio.sleep(0.2)

        swept = await conn.fetchrow(
            "SELECT status, filled_qty, locked_remaining FROM orders WHERE id = $1",
            sweep["orderId"],
        )
        assert (swept["status"], swept["filled_qty"], swept["locked_remaining"]) == (
            "FILLED", 80_000, 0,
        )  # fmt: skip
        trades = await conn.fetch("SELECT price, qty FROM trades ORDER BY trade_id")
        assert [(t["price"], t["qty"]) for t in trades] == [(300000, 50000), (300100, 30000)]
        # Buyer paid 0.5 × 30000 + 0.3 × 30010 and received 0.8 BTC less 0.1 % taker fee.
        buyer_usdt = await conn.fetchrow(
            "SELECT available, locked FROM balances WHERE user_id = $1 AND asset = 'USDT'", buyer
        )
        paid = 15_000 * USDT + 9_003 * USDT
        resting_bid = 2_900 * USDT
        assert (buyer_usdt["available"], buyer_usdt["locked"]) == (
            100_000 * USDT - paid - resting_bid,
            resting_bid,
        )
        assert (
            await conn.fetchval(
                "SELECT available FROM balances WHERE user_id = $1 AND asset = 'BTC'", buyer
            )
            == 80_000_000 - 80_000
        )

        # The engine's snapshot, once it has caught up, holds exactly the open orders:
        # ask1 (partly filled), ask2 and the bid. Compared by id and filled quantity, since
        # an older snapshot (before the sweep) also holds three open orders.
        open_in_db = {
            (r["id"], r["filled_qty"])
            for r in await conn.fetch(
                "SELECT id, filled_qty FROM orders WHERE status IN ('NEW', 'PARTIALLY_FILLED')"
            )
        }
        assert len(open_in_db) == 3
        async with asyncio.timeout(30):
            while True:
                snapshot = await load_snapshot(redis_client, redis_prefix, "btc-usdt")
                if snapshot is not None:
                    engine = MatchingEngine.restore(snapshot.engine)
                    in_engine = {(o["id"], o["filled"]) for o in engine.open_orders()}
                    if in_engine == open_in_db:
                        break
                await asyncio.sleep(0.2)
    finally:
        await conn.close()

    snapshot_file = Path(local_stack.log_dir) / "engine.snapshot"
    snapshot_file.write_bytes(snapshot.engine)
    audit = subprocess.run(  # noqa: ASYNC221 - the CLI, as an operator runs it
        [CEX, "check", "--dsn", exchange_dsn, "--snapshot", str(snapshot_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "every invariant holds" in audit.stdout


async def test_the_e2e_bench_follows_every_order_through_every_hop(local_stack: Stack) -> None:
    """`cex bench e2e`, the pipeline's measuring command, against this stack: every order it
    offers is seen at each hop (command in Kafka, event committed, settlement's publication)
    and nothing is lost, so its figures are about every order, not a lucky subset."""
    url = f"http://127.0.0.1:{local_stack.trading_port}"
    async with aiohttp.ClientSession(url) as http:
        await _until_ready(http)
    bench = await asyncio.create_subprocess_exec(
        CEX, "bench", "e2e", "--rate", "40", "--seconds", "2", "--users", "5", "--json",
        "--trading-url", url, env=local_stack.env, stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(bench.communicate(), 120)
    assert bench.returncode == 0
    (step,) = json.loads(out)["runs"]
    assert (step["orders"], step["settled"], step["lost"], step["errors"]) == (80, 80, 0, 0)
    for hop in ("accept", "relay", "engine", "settle", "accepted_to_settled"):
        assert step[hop]["n"] == 80, hop
    # Causal hops, each timed by this one observer: never negative. (``relay`` may be: the
    # command can reach Kafka before the bench reads the HTTP answer.)
    for hop in ("engine", "settle"):
        assert 0 < step[hop]["p50_ms"] <= step[hop]["p99_ms"], hop

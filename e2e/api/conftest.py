"""One whole exchange for the public API's end-to-end tests: every service a real
`cex serve …` process (public API, trading API, relay, both example markets' engines,
settlement) on the real Kafka, Postgres and Redis, with a database, topics and Redis prefix
of its own. Started once per session; tests keep apart by using users of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tests.fixtures import REPO, unique

from cex.core.market import MarketConfig
from cex.core.money import asset_step, parse_units
from cex.infra import accounts, apikeys, registry
from cex.infra.postgres import migrate
from cex.infra.secretbox import SecretBox
from cex.stack.settings import StackSettings

BIN = Path(sys.executable).parent
MARKETS = {"btc-usdt": 0, "eth-usdt": 1}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Trader:
    user_id: int
    email: str
    api_key: str
    secret: str


@dataclass
class Exchange:
    url: str
    dsn: str
    redis_prefix: str
    log_dir: Path
    otp_outbox: Path
    operator_token: str
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str, **extra: str) -> None:
        """Start `cex serve <args>` as `name`, logging to `log(name)`; stopped with the rest."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "cex"), "serve", *args],
                env=self.env | {"CEX_METRICS_PORT": str(free_port())} | extra,
                stdout=log, stderr=log,
            )  # fmt: skip

    async def extra_api(self, name: str, **overrides: str) -> str:
        """Another public API process of this exchange with `overrides` (env), once ready;
        its URL."""
        port = free_port()
        self.start(name, "api", CEX_API_PORT=str(port), **overrides)
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url, {name: self.processes[name]})
        return url

    async def gateway(self, name: str = "gateway", **overrides: str) -> str:
        """A WebSocket gateway (`cex serve gateway`) of this exchange with `overrides`
        (env), once ready; its ws:// base URL."""
        port = free_port()
        self.start(name, "gateway", CEX_GATEWAY_PORT=str(port), **overrides)
        await _wait_ready(f"http://127.0.0.1:{port}", {name: self.processes[name]})
        return f"ws://127.0.0.1:{port}"

    async def trader(self, email: str, funds: dict[str, str],
                     permissions: list[str] | None = None) -> Trader:  # fmt: skip
        """A user with an HMAC key and `funds` (asset → decimal amount) deposited."""
        conn = await asyncpg.connect(self.dsn)
        try:
            user_id = await accounts.create_user(conn, email)
            for asset, amount in funds.items():
                units = parse_units(amount, asset_step(await accounts.asset_precision(conn, asset)),
                                    field="amount")  # fmt: skip
                await accounts.deposit(conn, user_id, asset, units, f"{email}-{asset}-seed")
            created = await apikeys.create(conn, SecretBox(), user_id, permissions=permissions)
        finally:
            await conn.close()
        assert created.secret is not None
        return Trader(user_id, email, created.api_key, created.secret)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


async def _wait_ready(url: str, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(180):  # a loaded machine starts Python slowly
            while True:
                for name, process in processes.items():
                    assert process.poll() is None, f"{name} exited with {process.returncode}"
                try:
                    async with http.get(f"{url}/readyz") as probe:
                        if probe.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def whole_exchange(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exchange]:
    """The whole exchange as processes on fresh topics, database and Redis prefix."""
    log_dir = tmp_path_factory.mktemp("exchange")
    name = unique("api")
    base = stack.postgres_dsn.rsplit("/", 1)[0]
    dsn = f"{base}/{name}"
    admin = await asyncpg.connect(base + "/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    import yaml

    for market, _ in MARKETS.items():
        spec = yaml.safe_load((REPO / "examples" / f"{market}.yaml").read_text())["spec"]
        await registry.register_market(conn, MarketConfig.from_spec(market, spec), spec)
    await conn.close()

    kafka = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await kafka.start()
    orders, executions = unique("orders"), unique("executions")
    await kafka.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)
                               for t in (orders, executions)])  # fmt: skip
    prefix = unique("api")
    api_port, trading_port = free_port(), free_port()
    outbox = log_dir / "otp.jsonl"
    token = unique("operator")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "CEX_POSTGRES_DSN": dsn,
        "CEX_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "CEX_REDIS_URL": stack.redis_url,
        "CEX_REDIS_PREFIX": prefix,
        "CEX_ORDERS_TOPIC": orders,
        "CEX_EXECUTIONS_TOPIC": executions,
        "CEX_TRADING_PORT": str(trading_port),
        "CEX_TRADING_URL": f"http://127.0.0.1:{trading_port}",
        "CEX_API_PORT": str(api_port),
        "CEX_API_FAUCET_ENABLED": "true",
        "CEX_API_OTP_OUTBOX": str(outbox),
        "CEX_API_OPERATOR_TOKEN": token,
        # Generous limits: the suite's clients share one IP; the limit test sets its own.
        "CEX_API_WEIGHT_PER_MINUTE": "1000000",
        "CEX_API_ORDERS_PER_10S": "100000",
        # Every test signs in from 127.0.0.1: the per-IP login limit has its own test.
        "CEX_API_AUTH_PER_IP": "100000",
        # Outcomes arrive in milliseconds; a loaded CI machine may take seconds.
        "CEX_API_RESULT_WAIT_S": "15",
    }
    exchange = Exchange(f"http://127.0.0.1:{api_port}", dsn, prefix, log_dir, outbox, token, env)
    start = exchange.start
    start("trading", "trading")
    start("relay", "relay")
    for market, partition in MARKETS.items():
        start(f"engine-{market}", "engine", "--market", market,
              CEX_MARKET_FILE=str(REPO / "examples" / f"{market}.yaml"),
              CEX_MARKET_PARTITION=str(partition))  # fmt: skip
    start("settlement", "settlement")
    start("api", "api")
    try:
        await _wait_ready(exchange.url, exchange.processes)
        yield exchange
    finally:
        for process in exchange.processes.values():
            process.terminate()
        for process in exchange.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await kafka.delete_topics([orders, executions])
        await kafka.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def exchange(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exchange]:
    """The whole exchange (trading API, relay, engines, settlement, public API) as
    processes, once per test session for the API's tests."""
    async with whole_exchange(stack, tmp_path_factory) as running:
        yield running

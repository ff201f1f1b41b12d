"""The operator on the real control plane, with real Kafka, Postgres and Redis.

`kubectl apply` of an example makes a Ready market (partition, Redis key, registry entry,
engine StatefulSet whose pod kwok runs); a spec change reaches a running engine as commands;
deleting a market drains it behind the finalizer; an operator killed mid-reconcile converges
when restarted; of two operators only one works.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import kopf.testing
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.fixtures import funded_user, unique

from cex.core.events import (
    ConfigUpdatedV2,
    MarketStatus,
    MarketStatusChanged,
    OrderCancelled,
    decode_event,
)
from cex.infra.postgres import create_pool, migrate
from cex.stack.settings import StackSettings
from cex.trading.store import OrderStore
from cex.trading.validation import OrderRequest, validate

from .exchange import (
    EXAMPLES,
    Exchange,
    conditions,
    delete_topics,
    environment,
    exists,
    free_port,
    is_ready,
    kill_9,
    release_markets,
    wait_ready,
)
from .kube import REPO_ROOT, ControlPlane, wait_until

PEERING_CRD = REPO_ROOT / "crds" / "kopf-peering.yaml"
USDT = 1_000_000


@pytest.fixture(scope="session")
def peering_crd(control_plane: ControlPlane) -> None:
    control_plane.apply_crds(PEERING_CRD.read_text())


@pytest.fixture
async def exchange(
    control_plane: ControlPlane,
    market_crd: str,
    peering_crd: None,
    namespace: str,
    pg_dsn: str,
    kafka_bootstrap: str,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[Exchange]:
    await migrate(pg_dsn)
    orders, executions = unique("orders"), unique("executions")
    env = environment(
        {
            "CEX_POSTGRES_DSN": pg_dsn,
            "CEX_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "CEX_REDIS_URL": StackSettings().redis_url,
            "CEX_REDIS_PREFIX": redis_prefix,
            "CEX_ORDERS_TOPIC": orders,
            "CEX_EXECUTIONS_TOPIC": executions,
            "CEX_OPERATOR_NAMESPACES": namespace,
            "CEX_OPERATOR_PEERING": "cex",
            "CEX_OPERATOR_PEERING_LIFETIME_S": "10",
            "CEX_OPERATOR_ENGINE_IMAGE": "example.invalid/cex:e2e",
            "CEX_ENGINE_SNAPSHOT_INTERVAL_S": "0.5",
        },
        control_plane,
    )
    the_exchange = Exchange(pg_dsn, env, orders, executions, redis_prefix, namespace, tmp_path)
    try:
        yield the_exchange
    finally:
        the_exchange.stop_all()
        release_markets(control_plane, namespace)
        await delete_topics(kafka_bootstrap, orders, executions)


def apply_example(cp: ControlPlane, namespace: str, name: str) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / f"{name}.yaml"))


def example_manifest(cp: ControlPlane, name: str) -> dict[str, Any]:
    """examples/<name>.yaml as a dict (kubectl parses the YAML)."""
    path = str(EXAMPLES / f"{name}.yaml")
    manifest: dict[str, Any] = json.loads(
        cp.kubectl("create", "--dry-run=client", "-o", "json", "-f", path).stdout
    )
    manifest["metadata"].pop("namespace", None)  # kubectl fills in its default
    return manifest


async def partition_count(kafka_bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def read_events(
    exchange: Exchange, partition: int, until: Callable[[list[Any]], bool], timeout: float = 60
) -> list[Any]:
    """The engine's committed events on its partition, read until `until(events)` holds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=exchange.env["CEX_KAFKA_BOOTSTRAP"],
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(exchange.executions_topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        events: list[Any] = []
        deadline = time.monotonic() + timeout
        while not until(events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events so far: {events}")
            batch = await consumer.getmany(tp, timeout_ms=500)
            events.extend(decode_event(r.value) for r in batch.get(tp, []))
        return events
    finally:
        await consumer.stop()


def running_market(cp: ControlPlane, exchange: Exchange, name: str) -> int:
    """The operator running, example `name` Ready, its engine and the relay running as local
    processes; returns the market's partition."""
    exchange.start_operator()
    apply_example(cp, exchange.namespace, name)
    wait_ready(cp, exchange.namespace, name)
    exchange.start_service("relay")
    exchange.start_engine(cp, name)
    return int(cp.get_json("market", name, "-n", exchange.namespace)["status"]["partition"])


def observed_generation(cp: ControlPlane, namespace: str, name: str) -> int | None:
    status = cp.get_json("market", name, "-n", namespace).get("status") or {}
    return status.get("observedGeneration")


# --------------------------------------------------------------------------- create


async def test_applied_market_becomes_ready_with_everything_it_needs(
    control_plane: ControlPlane,
    exchange: Exchange,
    monkeypatch: pytest.MonkeyPatch,
    redis_client: aioredis.Redis,
) -> None:
    """In-process (Kopf's test runner): two examples become Ready within 60 s each."""
    cp, ns = control_plane, exchange.namespace
    metrics_port = free_port()
    for key, value in exchange.env.items():
        if key.startswith("CEX_") or key == "KUBECONFIG":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("CEX_METRICS_PORT", str(metrics_port))
    monkeypatch.setenv("CEX_OPERATOR_HEALTH_PORT", str(free_port()))
    args = ["run", "--namespace", ns, "-m", "cex_operator.handlers"]
    with kopf.testing.KopfRunner(args, timeout=60) as runner:
        apply_example(cp, ns, "btc-usdt")
        apply_example(cp, ns, "eth-usdt")
        took = wait_ready(cp, ns, "btc-usdt", "eth-usdt", timeout=60)

        markets = {m["metadata"]["name"]: m for m in cp.get_json("markets", "-n", ns)["items"]}
        partitions = {name: m["status"]["partition"] for name, m in markets.items()}
        assert sorted(partitions.values()) == [0, 1]
        for name, market in markets.items():
            assert market["status"]["observedGeneration"] == market["metadata"]["generation"]
            assert market["metadata"]["finalizers"] == ["cex.dev/drain"]
            sts = cp.get_json("statefulset", f"{name}-engine", "-n", ns)
            (owner,) = sts["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["uid"]) == ("Market", market["metadata"]["uid"])
            env = {
                e["name"]: e.get("value")
                for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            assert env["CEX_MARKET_PARTITION"] == str(partitions[name])
            pod = cp.get_json("pod", f"{name}-engine-0", "-n", ns)
            assert pod["status"]["phase"] == "Running"
            assert exists(cp, ns, "service", f"{name}-engine")
            configmap = cp.get_json("configmap", f"{name}-engine", "-n", ns)
            assert f"name: {name}" in configmap["data"]["market.yaml"]
            stored = json.loads(await redis_client.get(f"{exchange.redis_prefix}:market:{name}"))
            assert stored["partition"] == partitions[name]

        for topic in (exchange.orders_topic, exchange.executions_topic):
            assert await partition_count(exchange.env["CEX_KAFKA_BOOTSTRAP"], topic) == 2
        conn = await asyncpg.connect(exchange.dsn)
        try:
            rows = await conn.fetch("SELECT name, partition, status FROM markets ORDER BY name")
        finally:
            await conn.close()
        assert [tuple(r) for r in rows] == [
            ("btc-usdt", partitions["btc-usdt"], "TRADING"),
            ("eth-usdt", partitions["eth-usdt"], "TRADING"),
        ]

        table = cp.kubectl("get", "markets", "-n", ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "SYMBOL", "STATUS", "READY", "PARTITION", "AGE"]
        row = table[1].split()
        assert row[:5] == ["btc-usdt", "BTCUSDT", "Trading", "True", str(partitions["btc-usdt"])]

        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response,
        ):
            metrics = await response.text()
        assert 'cex_operator_markets{ready="True"} 2.0' in metrics
    assert runner.exception is None
    print(f"both markets Ready {took:.1f} s after kubectl apply")


async def test_a_grid_the_api_server_cannot_check_is_reported_then_fixed(
    control_plane: ControlPlane, exchange: Exchange
) -> None:
    """minQty 0.00003 on a 0.00002 lot passes CEL (same decimal places) but is not a
    multiple: InvalidGrid, nothing provisioned; fixing minQty makes the market Ready."""
    cp, ns = control_plane, exchange.namespace
    exchange.start_operator()
    manifest = example_manifest(cp, "btc-usdt")
    manifest["spec"] |= {"lotSize": "0.00002", "minQty": "0.00003"}
    cp.apply_obj(manifest, "-n", ns)
    wait_until(
        lambda: conditions(cp, ns, "btc-usdt").get("Ready", {}).get("reason") == "InvalidGrid",
        timeout=30,
        what="Ready=False/InvalidGrid",
    )
    ready = conditions(cp, ns, "btc-usdt")["Ready"]
    assert ready["status"] == "False"
    assert "min_qty" in ready["message"]
    assert not exists(cp, ns, "statefulset", "btc-usdt-engine")
    conn = await asyncpg.connect(exchange.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM markets") == 0
    finally:
        await conn.close()

    cp.kubectl("patch", "market", "btc-usdt", "-n", ns, "--type=merge",
               "-p", json.dumps({"spec": {"minQty": "0.00004"}}))  # fmt: skip
    wait_ready(cp, ns, "btc-usdt")
    assert exists(cp, ns, "statefulset", "btc-usdt-engine")


# --------------------------------------------------------------------------- change


async def test_fee_and_status_changes_reach_the_running_engine(
    control_plane: ControlPlane, exchange: Exchange
) -> None:
    cp, ns = control_plane, exchange.namespace
    partition = running_market(cp, exchange, "btc-usdt")

    cp.kubectl("patch", "market", "btc-usdt", "-n", ns, "--type=merge", "-p",
               json.dumps({"spec": {"makerFee": "0.0005", "status": "Halted"}}))  # fmt: skip

    def changed(events: list[Any]) -> bool:
        return any(isinstance(e, MarketStatusChanged) for e in events)

    events = await read_events(exchange, partition, changed)
    updates = [e for e in events if isinstance(e, ConfigUpdatedV2 | MarketStatusChanged)]
    assert [type(e) for e in updates] == [ConfigUpdatedV2, MarketStatusChanged]
    assert (updates[0].maker_fee_ppm, updates[0].taker_fee_ppm) == (500, 1000)
    assert updates[1].status == MarketStatus.HALTED
    wait_ready(cp, ns, "btc-usdt")
    market = cp.get_json("market", "btc-usdt", "-n", ns)
    assert market["status"]["observedGeneration"] == market["metadata"]["generation"] == 2
    # The operator re-reconciling (a restart, a resync) sends nothing again.
    conn = await asyncpg.connect(exchange.dsn)
    try:
        kinds = await conn.fetch("SELECT kind FROM outbox ORDER BY command_seq")
        assert [r["kind"] for r in kinds] == ["CONFIG_UPDATE", "MARKET_CONTROL"]
        assert await conn.fetchval("SELECT status FROM markets") == "HALTED"
    finally:
        await conn.close()


# --------------------------------------------------------------------------- delete


async def test_delete_drains_open_orders_behind_the_finalizer(
    control_plane: ControlPlane, exchange: Exchange
) -> None:
    cp, ns = control_plane, exchange.namespace
    running_market(cp, exchange, "btc-usdt")
    settlement = exchange.start_service("settlement")

    pool = await create_pool(exchange.dsn, max_size=2)
    store = OrderStore(pool)
    await store.start()
    try:
        user = await funded_user(pool, "maker@example.com", "USDT", 1_000 * USDT)
        request = OrderRequest(
            user_id=user, symbol="BTCUSDT", side="BUY", type="LIMIT",
            newClientOrderId="resting", timeInForce="GTC", quantity="0.01", price="20000",
        )  # fmt: skip
        placed = await store.place(validate(request, store.market_for_symbol("BTCUSDT")))
    finally:
        await store.stop()

    async def order_status() -> str:
        return str(await pool.fetchval("SELECT status FROM orders WHERE id = $1", placed["id"]))

    deadline = time.monotonic() + 60
    while await order_status() != "NEW":
        assert time.monotonic() < deadline, "the order never rested"
        await asyncio.sleep(0.2)

    # Without settlement the cancel cannot be booked: the market must wait, engine and all.
    kill_9(settlement)
    cp.kubectl("delete", "market", "btc-usdt", "-n", ns, "--wait=false")
    wait_until(
        lambda: conditions(cp, ns, "btc-usdt").get("Ready", {}).get("reason") == "Draining",
        timeout=30,
        what="Ready=False/Draining",
    )
    await asyncio.sleep(5)
    assert exists(cp, ns, "market", "btc-usdt")
    assert exists(cp, ns, "statefulset", "btc-usdt-engine")
    assert await order_status() == "NEW"

    exchange.start_service("settlement")
    wait_until(lambda: not exists(cp, ns, "market", "btc-usdt"), timeout=60, what="market gone")
    for kind in ("statefulset", "service", "configmap"):
        assert not exists(cp, ns, kind, "btc-usdt-engine")
    try:
        assert await order_status() == "CANCELED"
        balance = await pool.fetchrow(
            "SELECT available, locked FROM balances WHERE user_id = $1 AND asset = 'USDT'", user
        )
        assert (balance["available"], balance["locked"]) == (1_000 * USDT, 0)
        market = await pool.fetchrow("SELECT status, partition FROM markets")
        assert tuple(market) == ("DELETED", 0)
        assert await pool.fetchval("SELECT count(*) FROM ledger_entries") > 0  # kept
        # The order waited for settlement, already cancelled by the engine: no second
        # CANCEL_ALL was sent for it meanwhile.
        kinds = await pool.fetch("SELECT kind FROM outbox WHERE kind = 'CANCEL_ALL'")
        assert len(kinds) == 1
    finally:
        await pool.close()
    events = await read_events(
        exchange, 0, lambda es: any(isinstance(e, OrderCancelled) for e in es)
    )
    statuses = [e.status for e in events if isinstance(e, MarketStatusChanged)]
    assert statuses == [MarketStatus.CANCEL_ONLY]

    # Re-created, it gets its partition back and trades again.
    apply_example(cp, ns, "btc-usdt")
    wait_ready(cp, ns, "btc-usdt")
    assert cp.get_json("market", "btc-usdt", "-n", ns)["status"]["partition"] == 0


# --------------------------------------------------------------------------- resilience


async def test_operator_killed_mid_reconcile_converges_on_restart(
    control_plane: ControlPlane, exchange: Exchange
) -> None:
    """Each round applies two new markets to a freshly started operator and kills it (-9)
    a random moment later; rounds that caught a market half-provisioned (registered but
    without its StatefulSet or its status) are counted. A last operator must converge:
    every market Ready, one partition each, nothing queued twice."""
    cp, ns = control_plane, exchange.namespace
    base = example_manifest(cp, "eth-usdt")
    names: list[str] = []
    rng = random.Random(7)
    half_done = 0
    for attempt in range(8):
        # Rising priorities: the dead predecessor's peering entry never blocks the next one.
        operator = exchange.start_operator(CEX_OPERATOR_PRIORITY=str(100 + attempt))
        resumed = exchange.log("operator").count("Resuming operations")
        wait_until(lambda n=resumed: exchange.log("operator").count("Resuming operations") > n,  # type: ignore[misc]
                   timeout=30, what="the operator to become active")  # fmt: skip
        for i in (2 * attempt, 2 * attempt + 1):
            market = copy.deepcopy(base)
            market["metadata"]["name"] = f"m{i}-usdt"
            market["spec"] |= {"symbol": f"M{i}USDT", "base": f"M{i}"}
            cp.apply_obj(market, "-n", ns)
            names.append(f"m{i}-usdt")
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        kill_9(operator)
        provisioned = [
            exists(cp, ns, "statefulset", f"{n}-engine")
            and observed_generation(cp, ns, n) is not None
            for n in names
        ]
        half_done += not all(provisioned)
        if half_done >= 2:
            break
    assert half_done, "every kill came after the markets were provisioned; retune the delays"

    exchange.start_operator(CEX_OPERATOR_PRIORITY="1000")
    wait_ready(cp, ns, *names, timeout=90)
    partitions = sorted(cp.get_json("market", n, "-n", ns)["status"]["partition"] for n in names)
    assert partitions == list(range(len(names)))
    conn = await asyncpg.connect(exchange.dsn)
    try:
        rows = await conn.fetch("SELECT partition FROM markets ORDER BY partition")
        assert [r["partition"] for r in rows] == partitions
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0  # nothing spurious
    finally:
        await conn.close()
    statefulsets = cp.get_json("statefulsets", "-n", ns)["items"]
    assert sorted(s["metadata"]["name"] for s in statefulsets) == sorted(
        f"{n}-engine" for n in names
    )
    count = await partition_count(exchange.env["CEX_KAFKA_BOOTSTRAP"], exchange.orders_topic)
    assert count == len(names)
    print(f"{half_done} kill(s) caught a market half-provisioned; {len(names)} markets converged")


async def test_two_operators_only_one_works_and_the_other_takes_over(
    control_plane: ControlPlane, exchange: Exchange
) -> None:
    cp, ns = control_plane, exchange.namespace
    high = exchange.start_operator("operator-high", CEX_OPERATOR_PRIORITY="200")
    # Operators start paused (peering is mandatory) and resume when no live peer outranks
    # them. The second one starts once the first is in the peering, so it never resumes.
    wait_until(lambda: "Resuming operations" in exchange.log("operator-high"),
               timeout=30, what="the high-priority operator to resume")  # fmt: skip
    exchange.start_operator("operator-low", CEX_OPERATOR_PRIORITY="100")

    def peers() -> list[dict[str, Any]]:
        got = cp.kubectl("get", "-o", "json", "kopfpeering", "cex", "-n", ns, check=False)
        return list((json.loads(got.stdout).get("status") or {}).values())

    wait_until(lambda: sorted(p["priority"] for p in peers()) == [100, 200], timeout=30,
               what="both operators in the peering")  # fmt: skip
    apply_example(cp, ns, "btc-usdt")
    wait_ready(cp, ns, "btc-usdt")

    def handled(log: str) -> bool:
        return re.search(r"Handler 'reconcile' succeeded", log) is not None

    assert handled(exchange.log("operator-high"))
    assert not handled(exchange.log("operator-low"))
    assert "Resuming operations" not in exchange.log("operator-low")

    # The active one dies without saying goodbye; once its peering entry expires (10 s
    # lifetime) the other resumes and handles the next change.
    kill_9(high)
    wait_until(lambda: "Resuming operations" in exchange.log("operator-low"), timeout=60,
               what="the low-priority operator to resume")  # fmt: skip
    cp.kubectl("patch", "market", "btc-usdt", "-n", ns, "--type=merge",
               "-p", json.dumps({"spec": {"takerFee": "0.002"}}))  # fmt: skip
    wait_until(
        lambda: (
            cp.get_json("market", "btc-usdt", "-n", ns)["status"].get("observedGeneration") == 2
        ),
        timeout=60,
        what="the change handled by the remaining operator",
    )
    assert handled(exchange.log("operator-low"))


async def test_a_market_of_the_same_name_in_another_namespace_is_refused(
    control_plane: ControlPlane, exchange: Exchange
) -> None:
    """Market names are global in the registry: the second one gets RegistryConflict and no
    engine, and deleting it leaves the first market untouched."""
    cp, first_ns = control_plane, exchange.namespace
    second_ns = f"{first_ns}-b"
    cp.kubectl("create", "namespace", second_ns)
    try:
        exchange.start_operator(CEX_OPERATOR_NAMESPACES=f"{first_ns},{second_ns}")
        apply_example(cp, first_ns, "btc-usdt")
        wait_ready(cp, first_ns, "btc-usdt")
        apply_example(cp, second_ns, "btc-usdt")
        wait_until(
            lambda: (
                conditions(cp, second_ns, "btc-usdt").get("Ready", {}).get("reason")
                == "RegistryConflict"
            ),
            timeout=30,
            what="Ready=False/RegistryConflict in the second namespace",
        )
        assert f"{first_ns}/btc-usdt" in conditions(cp, second_ns, "btc-usdt")["Ready"]["message"]
        assert not exists(cp, second_ns, "statefulset", "btc-usdt-engine")

        cp.kubectl("delete", "market", "btc-usdt", "-n", second_ns, "--timeout=30s")
        assert is_ready(cp, first_ns, "btc-usdt")
        conn = await asyncpg.connect(exchange.dsn)
        try:
            row = await conn.fetchrow("SELECT status, owner FROM markets")
            assert tuple(row) == ("TRADING", f"{first_ns}/btc-usdt")
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        finally:
            await conn.close()
    finally:
        release_markets(cp, second_ns)
        cp.kubectl("delete", "namespace", second_ns, "--wait=false", check=False)

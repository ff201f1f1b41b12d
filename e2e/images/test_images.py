"""The images the cluster runs, built by scripts/images/build.sh (podman, a debootstrap base,
no registry) and run here with podman directly: the cex image runs `cex` and `cex-operator`
as its unprivileged user, and the dev infrastructure images (Kafka KRaft, PostgreSQL,
Redis) start from the environment the chart gives them and answer real clients. Containers
share the host's network and listen on loopback only, on free ports.

The session builds what is missing first: cold (no cached base), about 6 minutes; warm, a
few seconds (every image's inputs are hashed, see build.sh).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / "scripts" / "images" / "build.sh"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cex" / "images"
IMAGES = ("cex", "kafka", "postgres", "redis")
# The names the chart's defaults use (values.yaml: image.*, devInfra.*.image).
CEX = "docker.io/library/cex:0.1.0"
KAFKA = "docker.io/library/cex-kafka:3.9.1"
POSTGRES = "docker.io/library/cex-postgres:15"
REDIS = "docker.io/library/cex-redis:7.0"

pytestmark = pytest.mark.integration


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(CACHE / "containers.conf")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args)}:\n{proc.stderr}\n{proc.stdout}"
    return proc


@pytest.fixture(scope="session")
def images() -> None:
    proc = subprocess.run([BUILD, *IMAGES], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"build.sh failed:\n{proc.stderr[-4000:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def container(images: None) -> Iterator[Callable[..., str]]:
    """Starts detached containers on the host's network; removes them afterwards."""
    names: list[str] = []

    def start(image: str, *args: str, env: dict[str, str] | None = None) -> str:
        name = f"cex-test-{uuid.uuid4().hex[:10]}"
        names.append(name)
        flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
        podman("run", "-d", "--name", name, "--network=host", *flags, image, *args)
        return name

    yield start
    for name in names:
        podman("rm", "-f", "-t", "5", name, check=False)


def wait_until(ready: Callable[[], bool], what: str, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        running = podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout
        if running.strip() != "true":
            logs = podman("logs", name, check=False).stderr[-3000:]
            pytest.fail(f"{name} exited before {what}:\n{logs}")
        time.sleep(0.5)
    logs = podman("logs", name, check=False).stderr[-3000:]
    pytest.fail(f"timed out waiting for {what}:\n{logs}")


def test_cex_image_runs_cex_and_the_operator_as_its_user(images: None) -> None:
    help_text = podman("run", "--rm", CEX, "--help").stdout
    assert "serve" in help_text
    assert "migrate" in help_text
    operator = podman("run", "--rm", "--entrypoint", "cex-operator", CEX, "--help").stdout
    assert "Usage" in operator
    assert podman("run", "--rm", "--entrypoint", "id", CEX, "-u").stdout.strip() == "10001"
    # The SQL migrations ship inside the installed package, not a checkout.
    code = "from cex.infra.postgres import migrations; print(len(migrations()))"
    count = podman("run", "--rm", "--entrypoint", "python", CEX, "-c", code).stdout
    assert int(count) > 0


def test_postgres_image_initialises_its_database_and_refuses_a_wrong_password(
    container: Callable[..., str],
) -> None:
    port = free_port()
    env = {
        "POSTGRES_USER": "cex",
        "POSTGRES_DB": "exchange",
        "POSTGRES_PASSWORD": "s3cret",
        "PGDATA": "/var/lib/postgresql/data/pgdata",
    }
    name = container(POSTGRES, "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}", env=env)

    def answers() -> bool:
        probe = ["pg_isready", "-h", "127.0.0.1", "-p", str(port), "-U", "cex", "-d", "exchange"]
        return podman("exec", name, *probe, check=False).returncode == 0

    wait_until(answers, "PostgreSQL to accept connections", name)

    async def query() -> tuple[str, str]:
        conn = await asyncpg.connect(f"postgresql://cex:s3cret@127.0.0.1:{port}/exchange")
        try:
            row = await conn.fetchrow("SELECT current_database(), current_user")
            assert row is not None
            return row[0], row[1]
        finally:
            await conn.close()

    assert asyncio.run(query()) == ("exchange", "cex")
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(asyncpg.connect(f"postgresql://cex:wrong@127.0.0.1:{port}/exchange"))


def test_redis_image_serves_clients(container: Callable[..., str]) -> None:
    port = free_port()
    name = container(REDIS, "--protected-mode", "no", "--bind", "127.0.0.1", "--port", str(port),
                     "--appendonly", "yes", "--dir", "/data")  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(answers, "Redis to answer", name)
    client.set("cex:test", "1")
    assert client.get("cex:test") == b"1"
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    client.close()


def test_kafka_image_runs_kraft_from_the_chart_environment(container: Callable[..., str]) -> None:
    port, controller = free_port(), free_port()
    env = {
        "CLUSTER_ID": "Y2V4LWRldi1rYWZrYS0wMQ",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data/logs",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    }
    name = container(KAFKA, env=env)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, "Kafka to listen", name)
    bootstrap = f"127.0.0.1:{port}"

    async def round_trip() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("image-test", b"hello")  # auto-created topic
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "image-test", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=60)
            return bytes(record.value or b"")
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b"hello"
    # The broker's settings came from the environment.
    props = podman("exec", name, "cat", "/etc/kafka/server.properties").stdout
    assert "process.roles=broker,controller" in props
    assert "transaction.state.log.min.isr=1" in props

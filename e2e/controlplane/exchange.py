"""What the operator tests run against: a database, topics and a Redis prefix of the test's
own on the real Kafka, Postgres and Redis, the operator itself (in a process, as the chart
runs it, or in-process with Kopf's runner), and the exchange's services as local processes:
kwok only pretends to run the engine pods, so the engine a test needs runs here, configured
exactly as its pod would be (the ConfigMap's market file and the partition in status).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from .kube import REPO_ROOT, ControlPlane, wait_until

BIN = Path(sys.executable).parent
EXAMPLES = REPO_ROOT / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Exchange:
    """The environment shared by the operator and the services of one test."""

    dsn: str
    env: dict[str, str]
    orders_topic: str
    executions_topic: str
    redis_prefix: str
    namespace: str
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        # Unbuffered: a process killed with -9 leaves its last lines in the log.
        env = self.env | {"CEX_METRICS_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
        env |= extra_env
        with (self.log_dir / f"{name}.log").open("ab") as log:  # the child keeps its own fd
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def start_operator(self, name: str = "operator", **extra_env: str) -> subprocess.Popen[bytes]:
        return self.start(
            name,
            [str(BIN / "cex-operator")],
            CEX_OPERATOR_HEALTH_PORT=str(free_port()),
            **extra_env,
        )

    def start_service(self, service: str, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        return self.start(service, [str(BIN / "cex"), "serve", service, *args], **extra_env)

    def start_engine(self, cp: ControlPlane, market: str) -> subprocess.Popen[bytes]:
        """The engine as its pod would run: the market file from the Market's ConfigMap,
        the partition from its status."""
        configmap = cp.get_json("configmap", f"{market}-engine", "-n", self.namespace)
        market_file = self.log_dir / f"{market}.yaml"
        market_file.write_text(configmap["data"]["market.yaml"])
        partition = cp.get_json("market", market, "-n", self.namespace)["status"]["partition"]
        return self.start_service(
            "engine",
            "--market",
            market,
            CEX_MARKET_FILE=str(market_file),
            CEX_MARKET_PARTITION=str(partition),
        )

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for process in self.processes:  # all at once, then wait for each
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def delete_topics(bootstrap: str, *topics: str) -> None:
    """Delete those of `topics` that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.delete_topics([t for t in topics if t in existing])
    finally:
        await admin.close()


def kill_9(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def conditions(cp: ControlPlane, namespace: str, market: str) -> dict[str, dict[str, Any]]:
    obj = cp.get_json("market", market, "-n", namespace)
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def is_ready(cp: ControlPlane, namespace: str, market: str) -> bool:
    ready = conditions(cp, namespace, market).get("Ready")
    return ready is not None and ready["status"] == "True"


def wait_ready(cp: ControlPlane, namespace: str, *markets: str, timeout: float = 60) -> float:
    """Wait until every market is Ready; returns the seconds it took."""
    started = time.monotonic()
    for market in markets:
        wait_until(
            lambda m=market: is_ready(cp, namespace, m),  # type: ignore[misc]
            timeout=max(1.0, timeout - (time.monotonic() - started)),
            what=f"market {market} Ready (conditions: {conditions(cp, namespace, market)})",
        )
    return time.monotonic() - started


def exists(cp: ControlPlane, namespace: str, *what: str) -> bool:
    return cp.kubectl("get", *what, "-n", namespace, check=False).returncode == 0


def release_markets(cp: ControlPlane, namespace: str) -> None:
    """Remove the operator's finalizer from Markets left behind, so the namespace can go
    once no operator runs any more."""
    names = cp.kubectl("get", "markets", "-n", namespace, "-o", "name", check=False).stdout.split()
    for name in names:
        cp.kubectl(
            "patch", name, "-n", namespace, "--type=merge",
            "-p", json.dumps({"metadata": {"finalizers": None}}), check=False,
        )  # fmt: skip


def environment(base: dict[str, str], cp: ControlPlane, **values: str) -> dict[str, str]:
    return dict(os.environ) | base | {"KUBECONFIG": str(cp.kubeconfig)} | values


def iter_lines(text: str) -> Iterator[dict[str, Any]]:
    """The JSON log records of a process (other lines skipped)."""
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record

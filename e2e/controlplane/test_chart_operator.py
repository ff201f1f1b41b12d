"""The operator works with exactly what the chart gives it: its ServiceAccount's RBAC and the
environment of its Deployment.

The chart is installed watching one namespace; `cex-operator` then runs here as a process
(kwok runs no containers) with a kubeconfig holding a token of the chart's operator
ServiceAccount, and the env of the chart's operator container, only the infrastructure
addresses and listen ports replaced by the test's. A Market applied in the watched namespace
becomes Ready, its engine StatefulSet takes the image and the environment ConfigMap/Secret
from the chart, and the operator never hits a Forbidden.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fixtures import unique

from cex.infra.postgres import migrate
from cex.stack.settings import StackSettings

from .exchange import delete_topics, free_port, is_ready, release_markets, stop
from .kube import REPO_ROOT, ControlPlane, wait_until
from .test_chart import EXTERNAL, Helm, Release, install, new_ns
from .test_chart import chart_crds as chart_crds  # the fixtures
from .test_chart import helm as helm
from .test_chart import namespaces as namespaces
from .test_chart import releases as releases

CEX_OPERATOR = Path(sys.executable).with_name("cex-operator")
EXAMPLE = REPO_ROOT / "examples" / "btc-usdt.yaml"


def token_kubeconfig(cp: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest token)."""
    token = cp.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cp.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "cex-local", "cluster": cluster}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": account,
                        "context": {
                            "cluster": "cex-local",
                            "user": account,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": account,
            }
        )
    )
    path.chmod(0o600)
    return path


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    orders, executions = unique("orders"), unique("executions")
    yield orders, executions
    await delete_topics(kafka_bootstrap, orders, executions)


def start_operator(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen([str(CEX_OPERATOR)], env=env, stdout=log, stderr=log)


@pytest.fixture
def operator_process() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The operator processes a test started; stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process)


async def test_operator_reconciles_with_the_charts_rbac_and_environment(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    namespaces: list[str],
    releases: list[Release],
    pg_dsn: str,
    kafka_bootstrap: str,
    redis_prefix: str,
    topics: tuple[str, str],
    operator_process: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    cp = control_plane
    ns = new_ns(cp, namespaces)
    release = install(
        helm, releases, ns, "-f", EXTERNAL, "--set", f"operator.watchNamespaces={{{ns}}}"
    )
    full = f"{release.name}-cex"
    await migrate(pg_dsn)

    deployment = cp.get_json("deployment", f"{full}-operator", "-n", ns)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["cex-operator"]
    chart_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    orders, executions = topics
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CEX_")},
        **chart_env,
        # What the pod would get from the chart's ConfigMap and Secret, pointed at the
        # test's own database, topics and Redis prefix; and ports free on this machine.
        "CEX_ENVIRONMENT": "test",
        "CEX_POSTGRES_DSN": pg_dsn,
        "CEX_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CEX_REDIS_URL": StackSettings().redis_url,
        "CEX_REDIS_PREFIX": redis_prefix,
        "CEX_ORDERS_TOPIC": orders,
        "CEX_EXECUTIONS_TOPIC": executions,
        "CEX_HTTP_HOST": "127.0.0.1",
        "CEX_METRICS_PORT": str(free_port()),
        "CEX_OPERATOR_HEALTH_PORT": str(free_port()),
        "KUBECONFIG": str(token_kubeconfig(cp, ns, f"{full}-operator", tmp_path / "kubeconfig")),
    }
    log_path = tmp_path / "operator.log"
    operator_process.append(start_operator(env, log_path))

    def log() -> str:
        return log_path.read_text(errors="replace")

    try:
        cp.kubectl("apply", "-n", ns, "-f", str(EXAMPLE))
        wait_until(
            lambda: is_ready(cp, ns, "btc-usdt") or operator_process[0].poll() is not None,
            timeout=90,
            what=f"btc-usdt Ready; operator log:\n{log()[-4000:]}",
        )
        assert operator_process[0].poll() is None, f"the operator exited:\n{log()[-4000:]}"

        sts: dict[str, Any] = cp.get_json("statefulset", "btc-usdt-engine", "-n", ns)
        (engine,) = sts["spec"]["template"]["spec"]["containers"]
        assert engine["image"] == chart_env["CEX_OPERATOR_ENGINE_IMAGE"] == "cex:0.1.0"
        assert engine["envFrom"] == [
            {"configMapRef": {"name": f"{full}-env"}},
            {"secretRef": {"name": f"{full}-env"}},
        ]
        for forbidden in ("Forbidden", '"code":403', "status 403"):
            assert forbidden not in log(), f"the operator was refused something:\n{log()}"
    finally:
        stop(operator_process[0])
        release_markets(cp, ns)

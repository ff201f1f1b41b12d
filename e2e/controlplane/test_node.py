"""The real node runs pods for real: a container is a process whose output `kubectl logs`
reads back from the kubelet, a ClusterIP Service reaches it through kube-proxy, CoreDNS
answers for cluster names, and pods reach the API server through the `kubernetes` Service.

Images come from the node's containerd (busybox, imported by scripts/cluster/up.sh); nothing
is pulled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .kube import REAL_NODE_SELECTOR, SCRIPTS, ControlPlane, wait_until

BUSYBOX = "localhost/cex/busybox:e2e"
# Debian's static busybox crashes in wget (its static glibc's resolver), so the pods speak
# HTTP with nc and resolve names with nslookup, which has its own DNS client.
SHELL_HELPERS = (
    "resolve() { nslookup \"$1\" | awk '/^Address: /{a=$2} END{print a}'; }; "
    'get() { printf \'GET %s HTTP/1.0\\r\\n\\r\\n\' "$3" | nc -w 5 "$1" "$2"; }; '
)


@pytest.fixture(scope="module")
def node_namespace(control_plane: ControlPlane) -> Iterator[str]:
    node = control_plane.real_node()
    assert node is not None, (
        "the running cluster has no real node: it was started with CEX_REAL_NODE=false; "
        f"restart it with {SCRIPTS}/down.sh and up.sh"
    )
    name = f"e2e-node-{uuid.uuid4().hex[:8]}"
    control_plane.create_namespace(name, real_node=True)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                }
            ],
            **spec,
        },
    }


def phase(cp: ControlPlane, ns: str, name: str) -> str:
    return str(cp.get_json("pod", name, "-n", ns).get("status", {}).get("phase", ""))


def run_to_completion(cp: ControlPlane, ns: str, name: str, script: str) -> str:
    """Run `script` in a pod on the real node; its output (from `kubectl logs`)."""
    cp.create_obj(pod(name, script), "-n", ns)
    wait_until(
        lambda: phase(cp, ns, name) in ("Succeeded", "Failed"),
        timeout=60,
        what=f"pod {name} to finish",
    )
    logs = cp.kubectl("logs", name, "-n", ns).stdout
    assert phase(cp, ns, name) == "Succeeded", logs
    return logs


def test_a_pod_runs_a_real_process_whose_logs_kubectl_reads(
    control_plane: ControlPlane, node_namespace: str
) -> None:
    cp, ns = control_plane, node_namespace
    token = uuid.uuid4().hex
    script = f'echo "token={token} sum=$((40 + 2)) host=$(hostname)"; cat /proc/1/cmdline; echo'
    logs = run_to_completion(cp, ns, "hello", script)
    # The shell computed the sum and saw the pod's host name: a process ran in the container.
    assert f"token={token} sum=42 host=hello" in logs
    assert "/bin/sh" in logs
    node = cp.get_json("pod", "hello", "-n", ns)["spec"]["nodeName"]
    assert node == cp.real_node()["metadata"]["name"]  # type: ignore[index]
    assert REAL_NODE_SELECTOR.split("=")[0] in cp.get_json("node", node)["metadata"]["labels"]


def test_a_cluster_ip_service_reaches_a_pod_by_name_and_address(
    control_plane: ControlPlane, node_namespace: str
) -> None:
    cp, ns = control_plane, node_namespace
    token = uuid.uuid4().hex
    server = pod(
        "web",
        f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www",
        restartPolicy="Always",
    )
    server["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }
    cp.create_obj(server, "-n", ns)
    cp.create_obj(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        "-n",
        ns,
    )
    cp.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", ns, "--timeout=60s")
    cluster_ip = cp.get_json("service", "web", "-n", ns)["spec"]["clusterIP"]
    logs = run_to_completion(
        cp,
        ns,
        "client",
        SHELL_HELPERS + f"get $(resolve web.{ns}.svc.cluster.local) 80 / && get {cluster_ip} 80 /",
    )
    assert logs.count("HTTP/1.1 200 OK") == 2, logs
    assert logs.count(token) == 2, logs


def test_dns_resolves_the_kubernetes_service_and_pods_reach_the_api_server(
    control_plane: ControlPlane, node_namespace: str
) -> None:
    cp, ns = control_plane, node_namespace
    service_ip = cp.get_json("service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    logs = run_to_completion(
        cp,
        ns,
        "dns",
        SHELL_HELPERS + "nslookup kubernetes.default.svc.cluster.local && "
        "get $(resolve kubernetes.default.svc.cluster.local) 443 /version",
    )
    assert f"Address: {service_ip}" in logs, logs
    # The API server (Go's TLS server) answers a plain request through the Service and the
    # relay; the operator's pods speak TLS to it in the exchange's tests.
    assert "Client sent an HTTP request to an HTTPS server" in logs, logs

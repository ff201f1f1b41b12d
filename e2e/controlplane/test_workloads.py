"""The control plane runs workloads the way the operator will rely on: the controller
manager makes pods from a StatefulSet, the scheduler binds them to the kwok node, kwok marks
them Running and Ready, and deleting the StatefulSet garbage-collects its pod."""

from __future__ import annotations

import uuid
from typing import Any

from .kube import ControlPlane, wait_until

LABELS = {"app.kubernetes.io/name": "e2e-engine"}


def statefulset(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "containers": [
                        {
                            "name": "engine",
                            # kwok pulls nothing; the image only has to be well-formed.
                            "image": "example.invalid/cex/engine:e2e",
                            "readinessProbe": {"tcpSocket": {"port": 8080}},
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        },
    }


def headless_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {"clusterIP": "None", "selector": LABELS, "ports": [{"port": 8080}]},
    }


def test_node_is_ready_and_untainted(control_plane: ControlPlane) -> None:
    nodes = control_plane.get_json("nodes")["items"]
    assert nodes, "no Node for kwok to manage"
    node = nodes[0]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert not node["spec"].get("taints")


def test_statefulset_pod_becomes_running_and_ready(
    control_plane: ControlPlane, namespace: str
) -> None:
    ns = ("-n", namespace)
    control_plane.apply_obj(headless_service("engine"), *ns)
    control_plane.apply_obj(statefulset("engine"), *ns)

    def ready_replicas() -> int:
        status = control_plane.get_json("statefulset", "engine", *ns).get("status", {})
        return int(status.get("readyReplicas", 0))

    wait_until(lambda: ready_replicas() == 1, timeout=90, what="StatefulSet readyReplicas=1")

    pod = control_plane.get_json("pod", "engine-0", *ns)
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"], "the scheduler did not bind the pod"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"

    # The garbage collector removes the pod with its owner.
    control_plane.kubectl("delete", "statefulset", "engine", *ns, "--wait=true", "--timeout=60s")

    def pod_gone() -> bool:
        proc = control_plane.kubectl("get", "pod", "engine-0", *ns, check=False)
        return proc.returncode != 0 and "NotFound" in proc.stderr

    wait_until(pod_gone, timeout=90, what="pod engine-0 deleted with its StatefulSet")


def test_namespace_deletion_finishes(control_plane: ControlPlane) -> None:
    """Needs the namespace controller of kube-controller-manager."""
    name = f"e2e-doomed-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.apply_obj(headless_service("svc"), "-n", name)
    control_plane.kubectl("delete", "namespace", name, "--wait=true", "--timeout=90s")

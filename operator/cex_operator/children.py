"""The Kubernetes objects a Market owns, as plain manifests (pure: no API calls).

Per market, in the Market's namespace:

* ConfigMap ``<market>-engine``: ``market.yaml``, the Market *as its command stream began*
  (the genesis spec from the registry). An engine replaying its partition from the first
  command must start from those fees and that status; later changes reach it as commands.
* Service ``<market>-engine`` (headless): a stable DNS name for the engine's probes and
  ``/metrics`` (port ``http``), which the chart's ServiceMonitor scrapes.
* StatefulSet ``<market>-engine`` with one replica: at most one engine per market at a time
  (a second one would be fenced by Kafka anyway, through its transactional id).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from cex.infra.manifests import market_document
from cex_operator.settings import ENGINE_HTTP_PORT, ENGINE_MARKET_DIR, OperatorSettings

MARKET_FILE = "market.yaml"
COMPONENT = "engine"
MANAGED_BY = "cex-operator"
MARKET_LABEL = "cex.dev/market"
CONFIG_HASH_ANNOTATION = "cex.dev/market-config-hash"


def engine_name(market: str) -> str:
    """Name of each child; the CRD caps market names so that it stays a valid pod name."""
    return f"{market}-{COMPONENT}"


def selector_labels(market: str) -> dict[str, str]:
    """The labels that select a market's engine pod (never change: selectors are immutable)."""
    return {
        "app.kubernetes.io/name": "cex",
        "app.kubernetes.io/component": COMPONENT,
        MARKET_LABEL: market,
    }


def labels(market: str) -> dict[str, str]:
    return {
        **selector_labels(market),
        "app.kubernetes.io/instance": engine_name(market),
        "app.kubernetes.io/part-of": "cex",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _metadata(market: str, namespace: str) -> dict[str, Any]:
    return {"name": engine_name(market), "namespace": namespace, "labels": labels(market)}


def engine_configmap(market: str, namespace: str, genesis_spec: dict[str, Any]) -> dict[str, Any]:
    document = market_document(market, genesis_spec)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(market, namespace),
        "data": {MARKET_FILE: yaml.safe_dump(document, sort_keys=False)},
    }


def engine_service(market: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(market, namespace),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(market),
            "ports": [{"name": "http", "port": ENGINE_HTTP_PORT, "targetPort": "http"}],
        },
    }


def config_hash(configmap: dict[str, Any]) -> str:
    """Changes when the engine's market file does, so the pod restarts to read it."""
    return hashlib.sha256(json.dumps(configmap["data"], sort_keys=True).encode()).hexdigest()[:16]


def engine_statefulset(
    market: str,
    namespace: str,
    partition: int,
    configmap: dict[str, Any],
    settings: OperatorSettings,
) -> dict[str, Any]:
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": settings.engine_env_configmap}}]
    if settings.engine_env_secret:
        env_from.append({"secretRef": {"name": settings.engine_env_secret}})
    probe = {"periodSeconds": 5, "timeoutSeconds": 2}
    container = {
        "name": COMPONENT,
        "image": settings.engine_image,
        "imagePullPolicy": settings.engine_pull_policy,
        "args": ["serve", "engine", "--market", market],
        "envFrom": env_from,
        "env": [
            {"name": "CEX_MARKET_FILE", "value": f"{ENGINE_MARKET_DIR}/{MARKET_FILE}"},
            {"name": "CEX_MARKET_PARTITION", "value": str(partition)},
            {"name": "CEX_METRICS_PORT", "value": str(ENGINE_HTTP_PORT)},
            {"name": "CEX_HTTP_HOST", "value": "0.0.0.0"},
        ],
        "ports": [{"name": "http", "containerPort": ENGINE_HTTP_PORT, "protocol": "TCP"}],
        # Recovery replays the partition before /readyz turns 200: no liveness deadline on
        # readiness, only on the process answering at all.
        "readinessProbe": probe | {"httpGet": {"path": "/readyz", "port": "http"}},
        "livenessProbe": probe
        | {"httpGet": {"path": "/healthz", "port": "http"}, "failureThreshold": 6},
        "resources": {
            "requests": {"cpu": settings.engine_cpu, "memory": settings.engine_memory},
            "limits": {"memory": settings.engine_memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "market", "mountPath": ENGINE_MARKET_DIR, "readOnly": True}],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # Long enough to commit the batch in flight and write a last snapshot.
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "market", "configMap": {"name": engine_name(market)}}],
    }
    if settings.engine_service_account:
        pod_spec["serviceAccountName"] = settings.engine_service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(market, namespace),
        "spec": {
            "replicas": 1,
            "serviceName": engine_name(market),
            "selector": {"matchLabels": selector_labels(market)},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": labels(market),
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(configmap)},
                },
                "spec": pod_spec,
            },
        },
    }

"""The operator's configuration, from environment variables (the Helm chart sets them).

====================================  =========================================================
``CEX_OPERATOR_NAMESPACES``           comma-separated namespaces to watch; empty: every
                                      namespace (cluster-wide, the chart's default)
``CEX_OPERATOR_PEERING``              name of the (Cluster)KopfPeering object the operators
                                      share, so that only one of them is active
``CEX_OPERATOR_PRIORITY``             this operator's peering priority; the highest active one
                                      works, the others pause. Default: random, so that two
                                      replicas of one Deployment never tie
``CEX_OPERATOR_PEERING_LIFETIME_S``   how long a silent peer is still counted as alive
``CEX_OPERATOR_ENGINE_IMAGE``         image of the engine pods
``CEX_OPERATOR_ENGINE_PULL_POLICY``   their imagePullPolicy
``CEX_OPERATOR_ENGINE_ENV_CONFIGMAP`` ConfigMap (in the Market's namespace) whose keys become
                                      the engine's environment (``CEX_KAFKA_BOOTSTRAP``, …)
``CEX_OPERATOR_ENGINE_ENV_SECRET``    Secret likewise (``CEX_POSTGRES_DSN``); optional
``CEX_OPERATOR_ENGINE_CPU``           engine container CPU request (and memory below)
``CEX_OPERATOR_ENGINE_MEMORY``
``CEX_OPERATOR_ENGINE_SERVICE_ACCOUNT``  ServiceAccount of the engine pods (none needs RBAC)
``CEX_OPERATOR_DRAIN_TIMEOUT_S``      how long a deleted Market waits for its open orders to
                                      be cancelled and settled before the operator retries
``CEX_METRICS_PORT``                  ``/metrics`` of the operator (Prometheus)
``CEX_OPERATOR_HEALTH_PORT``          Kopf's liveness endpoint ``/healthz``
``CEX_HTTP_HOST``                     address both listen on (loopback by default)
====================================  =========================================================

Kafka, Postgres, Redis and topic names come from :class:`cex.infra.settings.InfraSettings`
(``CEX_KAFKA_BOOTSTRAP``, ``CEX_POSTGRES_DSN``, ``CEX_REDIS_URL``, …): the operator provisions
through the same code as the local stack.
"""

from __future__ import annotations

import secrets

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The engine container's probes and metrics port (``CEX_METRICS_PORT`` of the engine).
ENGINE_HTTP_PORT = 9400
#: Where the Market's ConfigMap is mounted in the engine pod.
ENGINE_MARKET_DIR = "/etc/cex/market"


def _random_priority() -> int:
    return 1000 + secrets.randbelow(1_000_000)


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEX_OPERATOR_", frozen=True, extra="ignore")

    namespaces: str = ""
    peering: str = "cex"
    priority: int = Field(default_factory=_random_priority)
    peering_lifetime_s: int = 30
    engine_image: str = "cex:latest"
    engine_pull_policy: str = "IfNotPresent"
    engine_env_configmap: str = "cex-env"
    engine_env_secret: str = ""
    engine_cpu: str = "500m"
    engine_memory: str = "512Mi"
    engine_service_account: str = ""
    drain_timeout_s: float = 120.0
    health_port: int = 8080
    metrics_port: int | None = Field(default=9090, validation_alias="CEX_METRICS_PORT")
    #: Where /metrics and /healthz listen: loopback unless told (the chart sets 0.0.0.0).
    http_host: str = Field(default="127.0.0.1", validation_alias="CEX_HTTP_HOST")

    @property
    def namespace_list(self) -> list[str]:
        return [ns.strip() for ns in self.namespaces.split(",") if ns.strip()]

    @property
    def clusterwide(self) -> bool:
        return not self.namespace_list

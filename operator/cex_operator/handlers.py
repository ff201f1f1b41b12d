"""Kopf handlers: each ``Market`` (cex.dev/v1alpha1) becomes a provisioned market with an
engine, and leaves through a drain.

* create / update / resume → :func:`reconcile`: provision through
  :func:`cex.infra.provisioning.provision_market` (registry entry and partition, topics,
  Redis key; a change of fees or status is queued for the engine as a command), then apply
  the engine's ConfigMap, Service and StatefulSet (server-side apply, adopted by the Market).
  Idempotent: running it again changes nothing.
* every few seconds → :func:`observe`: conditions from what exists (registry row, the
  StatefulSet's ready replicas, undelivered changes); the status is patched only on change.
* delete, behind the ``cex.dev/drain`` finalizer → :func:`drain`: cancel-only and every open
  order cancelled through the engine; once settlement reports none open, the children are
  deleted and the finalizer released. Financial data, the partition and the snapshot key
  stay.

Kopf keeps its own progress in annotations (the CRD's status is fully typed and would drop
Kopf's fields). Errors: an invalid spec or a registry conflict is permanent until the spec
changes (reason from the error's class in the conditions); anything else (Kafka, Postgres,
Redis or the API server unavailable) is retried.
"""

from __future__ import annotations

import copy
import datetime
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import kopf
import lightkube
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Service
from prometheus_client import start_http_server

from cex.core.errors import MarketConfigError
from cex.infra import provisioning, registry
from cex.infra.settings import InfraSettings
from cex_operator import children, metrics
from cex_operator.settings import OperatorSettings
from cex_operator.status import (
    Check,
    Observation,
    conditions,
    delivery_check,
    engine_check,
    error_reason,
    failed,
)

GROUP, VERSION, PLURAL = "cex.dev", "v1alpha1", "markets"
FINALIZER = "cex.dev/drain"
ANNOTATIONS_PREFIX = "operator.cex.dev"
FIELD_MANAGER = "cex-operator"
OBSERVE_INTERVAL_S = 5.0
RETRY_DELAY_S = 10.0
DRAIN_POLL_S = 3.0

ClusterKopfPeering = create_global_resource(
    "kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings"
)
KopfPeering = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")
_CHILD_KINDS = (StatefulSet, Service, ConfigMap)  # deleted in this order


@dataclass
class Runtime:
    """What the handlers share, built at startup (kept in Kopf's memo)."""

    settings: OperatorSettings
    infra: InfraSettings
    kube: lightkube.AsyncClient
    pool: asyncpg.Pool
    ready: dict[str, bool] = field(default_factory=dict)  # market key → Ready, for metrics


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


def _owner(namespace: str, name: str) -> str:
    """How the registry records a market provisioned from this Market resource."""
    return f"{namespace}/{name}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- lifecycle


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    operator = OperatorSettings()
    infra = InfraSettings()
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATIONS_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration"
    )
    settings.peering.name = operator.peering
    settings.peering.mandatory = True
    settings.peering.priority = operator.priority
    settings.peering.lifetime = operator.peering_lifetime_s
    # Kubernetes Events only for what deserves one (posted explicitly below), not one per
    # handler run: the observe timer alone would post one per market every few seconds.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.watching.connect_timeout = 10
    kube = lightkube.AsyncClient(field_manager=FIELD_MANAGER)
    await _ensure_peering(kube, operator)
    pool = await asyncpg.create_pool(infra.postgres_dsn, min_size=1, max_size=4)
    memo.runtime = Runtime(operator, infra, kube, pool)
    if operator.metrics_port is not None:
        start_http_server(operator.metrics_port, addr=operator.http_host)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        await runtime.pool.close()
        await runtime.kube.close()


async def _ensure_peering(kube: lightkube.AsyncClient, operator: OperatorSettings) -> None:
    """The peering objects must exist before Kopf can record itself in them (it stays
    paused otherwise); the chart creates them too, this covers a bare install."""
    objects: list[Any]
    if operator.clusterwide:
        objects = [ClusterKopfPeering(metadata=ObjectMeta(name=operator.peering))]
    else:
        objects = [
            KopfPeering(metadata=ObjectMeta(name=operator.peering, namespace=ns))
            for ns in operator.namespace_list
        ]
    for obj in objects:
        try:
            await kube.create(obj)
        except ApiError as exc:
            if exc.status.code != 409:  # 409: it exists already
                raise


# --------------------------------------------------------------------------- reconcile


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    assert namespace is not None  # Market is a namespaced resource
    runtime = _runtime(memo)
    spec = copy.deepcopy(dict(body["spec"]))
    generation = int(body.metadata.get("generation") or 0)
    previous = list(status.get("conditions") or [])
    try:
        registration = await provisioning.provision_market(
            runtime.infra, name, spec, owner=_owner(namespace, name)
        )
    except (MarketConfigError, ValueError) as exc:
        reason = "InvalidGrid" if isinstance(exc, MarketConfigError) else "RegistryConflict"
        _set_conditions(patch, failed(reason, str(exc)), previous, generation)
        metrics.RECONCILE_ERRORS.labels(market=name).inc()
        raise kopf.PermanentError(f"{reason}: {exc}") from exc
    except Exception as exc:
        _set_conditions(patch, failed(error_reason(exc), str(exc)), previous, generation)
        metrics.RECONCILE_ERRORS.labels(market=name).inc()
        raise kopf.TemporaryError(f"provisioning failed: {exc!r}", delay=RETRY_DELAY_S) from exc
    if registration.commands:
        kinds = ", ".join(type(c).__name__ for c in registration.commands)
        kopf.info(body, reason="ChangeQueued", message=f"queued for the engine: {kinds}")
    if status.get("partition") is None:
        kopf.info(
            body, reason="Provisioned", message=f"partition {registration.partition} assigned"
        )

    configmap = children.engine_configmap(name, namespace, registration.genesis_spec)
    manifests = [
        configmap,
        children.engine_service(name, namespace),
        children.engine_statefulset(
            name, namespace, registration.partition, configmap, runtime.settings
        ),
    ]
    kopf.adopt(manifests, owner=body)
    try:
        for manifest in manifests:
            await runtime.kube.apply(codecs.from_dict(manifest), force=True)
    except ApiError as exc:
        metrics.RECONCILE_ERRORS.labels(market=name).inc()
        raise kopf.TemporaryError(
            f"applying the engine failed: {exc}", delay=RETRY_DELAY_S
        ) from exc

    provisioned = Check(True, "Provisioned", f"partition {registration.partition}")
    observation = await _observe(runtime, name, namespace, provisioned)
    patch.status["partition"] = registration.partition
    patch.status["observedGeneration"] = generation
    _set_conditions(patch, observation, previous, generation)
    _record_ready(runtime, namespace, name, observation)
    metrics.RECONCILES.inc()


@kopf.timer(GROUP, VERSION, PLURAL, interval=OBSERVE_INTERVAL_S, initial_delay=OBSERVE_INTERVAL_S)
async def observe(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: Any,
    **_: Any,
) -> None:
    """Refresh the conditions of a market whose current spec has been reconciled (a failed
    one keeps the failure until its spec changes)."""
    assert namespace is not None
    generation = int(body.metadata.get("generation") or 0)
    if body.metadata.deletion_timestamp or status.get("observedGeneration") != generation:
        return
    runtime = _runtime(memo)
    try:
        state = await registry.market_state(runtime.pool, name)
    except (OSError, asyncpg.PostgresError) as exc:
        state = None
        partition = Check(False, error_reason(exc), str(exc))
    else:
        partition = (
            Check(True, "Provisioned", f"partition {state.partition}")
            if state is not None and state.partition == status.get("partition")
            else Check(False, "RegistryEntryMissing", "the market is not in the registry")
        )
    observation = await _observe(runtime, name, namespace, partition, state=state)
    previous = list(status.get("conditions") or [])
    new = conditions(observation, previous, generation=generation, now=_now())
    if _comparable(new) != _comparable(previous):
        patch.status["conditions"] = new
    _record_ready(runtime, namespace, name, observation)


async def _observe(
    runtime: Runtime,
    name: str,
    namespace: str,
    partition: Check,
    *,
    state: registry.MarketState | None = None,
) -> Observation:
    try:
        statefulset = await runtime.kube.get(
            StatefulSet, children.engine_name(name), namespace=namespace
        )
        engine = engine_check(statefulset.to_dict())
    except ApiError as exc:
        engine = (
            engine_check(None)
            if exc.status.code == 404
            else Check(False, error_reason(exc), str(exc))
        )
    if state is None and partition.ok:
        state = await registry.market_state(runtime.pool, name)
    pending = state.pending_changes if state is not None else 0
    return Observation(
        partition=partition, engine=engine, changes_delivered=delivery_check(pending)
    )


def _set_conditions(
    patch: kopf.Patch, observation: Observation, previous: list[dict[str, Any]], generation: int
) -> None:
    patch.status["conditions"] = conditions(
        observation, previous, generation=generation, now=_now()
    )


def _comparable(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            c.get("type"),
            c.get("status"),
            c.get("reason"),
            c.get("message"),
            c.get("observedGeneration"),
        )
        for c in items
    ]


def _record_ready(runtime: Runtime, namespace: str, name: str, observation: Observation) -> None:
    runtime.ready[f"{namespace}/{name}"] = all(
        check.ok
        for check in (observation.partition, observation.engine, observation.changes_delivered)
    )
    metrics.set_markets(runtime.ready)


# --------------------------------------------------------------------------- delete


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def drain(
    name: str,
    namespace: str | None,
    status: kopf.Status,
    body: kopf.Body,
    patch: kopf.Patch,
    retry: int,
    runtime: datetime.timedelta,
    memo: Any,
    **_: Any,
) -> None:
    """Cancel-only, cancel every open order through the engine, wait until settlement has
    booked them all, then remove the engine. Nothing financial is deleted."""
    assert namespace is not None
    rt = _runtime(memo)
    generation = int(body.metadata.get("generation") or 0)
    previous = list(status.get("conditions") or [])
    owner = _owner(namespace, name)
    try:
        if await registry.market_owner(rt.pool, name) not in (None, owner):
            remaining = 0  # a duplicate that was refused: the registered market is not ours
        else:
            # Every poll: CANCEL_ALL only for an open order none queued so far reaches (one
            # cancelled by the engine but not yet settled gets no other).
            queued = await provisioning.begin_drain(rt.infra, name, owner=owner)
            if retry == 0:
                kopf.info(
                    body,
                    reason="Draining",
                    message=f"cancel-only; CANCEL_ALL queued for {queued or 0} user(s)",
                )
            elif queued:
                kopf.info(
                    body,
                    reason="Draining",
                    message=f"CANCEL_ALL queued for {queued} user(s) with orders placed since",
                )
            remaining = await provisioning.open_orders(rt.infra, name)
    except Exception as exc:
        raise kopf.TemporaryError(f"draining failed: {exc!r}", delay=RETRY_DELAY_S) from exc
    if remaining:
        message = f"waiting for {remaining} open order(s) to be cancelled and settled"
        draining = Check(False, "Draining", message)
        _set_conditions(patch, Observation(draining, draining, draining), previous, generation)
        if runtime.total_seconds() > rt.settings.drain_timeout_s:
            kopf.warn(body, reason="DrainStalled", message=f"{message} for {runtime}")
        raise kopf.TemporaryError(message, delay=DRAIN_POLL_S)
    for kind in _CHILD_KINDS:
        try:
            await rt.kube.delete(kind, children.engine_name(name), namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise kopf.TemporaryError(
                    f"deleting {kind.__name__}: {exc}", delay=RETRY_DELAY_S
                ) from exc
    rt.ready.pop(f"{namespace}/{name}", None)
    metrics.set_markets(rt.ready)
    kopf.info(body, reason="Drained", message="no open orders; engine removed, data kept")

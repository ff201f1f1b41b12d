"""A Market's status from what the operator observed (pure).

Conditions (``crds/market.yaml``):

* ``PartitionReady``: the registry entry, the Kafka partition and the Redis key exist;
* ``EngineReady``: the engine StatefulSet has a ready replica (its pod answers ``/readyz``,
  which it does only once it has recovered and caught up with its partition);
* ``Ready``: both, and every change of fees, limits or status has been delivered to the engine's
  partition (no MARKET_CONTROL / CONFIG_UPDATE command still waits in the outbox).

A condition keeps its ``lastTransitionTime`` while its status stays the same. Reasons are
single CamelCase words; for failures they are the class of the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PARTITION_READY = "PartitionReady"
ENGINE_READY = "EngineReady"
READY = "Ready"


@dataclass(frozen=True)
class Check:
    """One observed aspect: whether it holds, why (a CamelCase word) and a detail."""

    ok: bool
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Observation:
    partition: Check
    engine: Check
    changes_delivered: Check


def ready(observation: Observation) -> Check:
    for check in (observation.partition, observation.engine, observation.changes_delivered):
        if not check.ok:
            return check
    return Check(True, "MarketReady", "partition provisioned, engine serving, changes delivered")


def conditions(
    observation: Observation,
    previous: list[dict[str, Any]] | None,
    *,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The three conditions, each keeping its transition time if its status is unchanged."""
    before = {c.get("type"): c for c in previous or ()}
    out = []
    for kind, check in (
        (PARTITION_READY, observation.partition),
        (ENGINE_READY, observation.engine),
        (READY, ready(observation)),
    ):
        status = "True" if check.ok else "False"
        old = before.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == status else now
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": check.reason,
                "message": check.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return out


def failed(reason: str, message: str) -> Observation:
    """Nothing could be provisioned (an invalid spec, a registry conflict)."""
    check = Check(False, reason, message)
    return Observation(partition=check, engine=check, changes_delivered=check)


def error_reason(exc: BaseException) -> str:
    """The condition reason for an error: its class name (Strimzi does the same)."""
    return type(exc).__name__


def engine_check(statefulset: dict[str, Any] | None) -> Check:
    """EngineReady from the StatefulSet as the API server reports it."""
    if statefulset is None:
        return Check(False, "EngineMissing", "the engine StatefulSet does not exist yet")
    status = statefulset.get("status") or {}
    ready_replicas = status.get("readyReplicas") or 0
    if ready_replicas >= 1:
        return Check(True, "EngineServing", "the engine pod is ready")
    return Check(False, "EngineNotReady", "waiting for the engine pod to become ready")


def delivery_check(pending_changes: int) -> Check:
    if pending_changes:
        return Check(
            False,
            "ChangesPending",
            f"{pending_changes} config/status command(s) not yet delivered to the engine",
        )
    return Check(True, "ChangesDelivered")

"""The engine's Kubernetes objects and the Market's conditions (pure functions)."""

from __future__ import annotations

import yaml

from cex.infra.manifests import parse_market
from cex_operator import children
from cex_operator.settings import OperatorSettings
from cex_operator.status import (
    Check,
    Observation,
    conditions,
    delivery_check,
    engine_check,
    failed,
)
from tests.fixtures import example_specs

SPEC = example_specs()["btc-usdt"]
SETTINGS = OperatorSettings(
    engine_image="registry.invalid/cex:1.2.3", engine_env_secret="cex-db", priority=1
)


def test_the_configmap_holds_a_market_file_the_engine_can_load() -> None:
    genesis = SPEC | {"makerFee": "0.002"}
    configmap = children.engine_configmap("btc-usdt", "markets", genesis)
    config = parse_market(yaml.safe_load(configmap["data"][children.MARKET_FILE]))
    assert (config.name, config.symbol, config.maker_fee_ppm) == ("btc-usdt", "BTCUSDT", 2000)
    assert configmap["metadata"]["namespace"] == "markets"


def test_the_statefulset_runs_one_engine_on_the_market_partition() -> None:
    configmap = children.engine_configmap("btc-usdt", "markets", SPEC)
    sts = children.engine_statefulset("btc-usdt", "markets", 3, configmap, SETTINGS)
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"]["matchLabels"] == children.selector_labels("btc-usdt")
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.invalid/cex:1.2.3"
    assert container["args"] == ["serve", "engine", "--market", "btc-usdt"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["CEX_MARKET_PARTITION"] == "3"
    assert env["CEX_MARKET_FILE"] == "/etc/cex/market/market.yaml"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "cex-env"}},
        {"secretRef": {"name": "cex-db"}},
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_new_market_file_restarts_the_pod_and_an_equal_one_does_not() -> None:
    def pod_annotations(spec: dict[str, object]) -> dict[str, str]:
        configmap = children.engine_configmap("btc-usdt", "ns", spec)
        sts = children.engine_statefulset("btc-usdt", "ns", 0, configmap, SETTINGS)
        return sts["spec"]["template"]["metadata"]["annotations"]  # type: ignore[no-any-return]

    assert pod_annotations(SPEC) == pod_annotations(dict(SPEC))
    assert pod_annotations(SPEC) != pod_annotations(SPEC | {"takerFee": "0.003"})


def test_the_service_exposes_the_metrics_port_by_name() -> None:
    service = children.engine_service("btc-usdt", "ns")
    assert service["spec"]["ports"] == [{"name": "http", "port": 9400, "targetPort": "http"}]
    assert service["spec"]["selector"] == children.selector_labels("btc-usdt")


OK = Check(True, "Fine")


def test_ready_needs_partition_engine_and_delivered_changes() -> None:
    now = "2026-01-01T00:00:00Z"
    ready = conditions(Observation(OK, OK, OK), None, generation=4, now=now)
    assert [(c["type"], c["status"]) for c in ready] == [
        ("PartitionReady", "True"), ("EngineReady", "True"), ("Ready", "True"),
    ]  # fmt: skip
    assert {c["observedGeneration"] for c in ready} == {4}

    pending = Observation(OK, OK, delivery_check(2))
    (_, _, ready_condition) = conditions(pending, ready, generation=4, now="later")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "ChangesPending")
    assert ready_condition["lastTransitionTime"] == "later"

    engine_down = Observation(OK, engine_check({"status": {"readyReplicas": 0}}), OK)
    after = conditions(engine_down, ready, generation=4, now="later")
    assert after[0]["lastTransitionTime"] == now  # PartitionReady did not change
    assert (after[1]["status"], after[1]["reason"]) == ("False", "EngineNotReady")
    assert after[1]["lastTransitionTime"] == "later"


def test_a_failure_names_its_reason_everywhere() -> None:
    out = conditions(failed("InvalidGrid", "min_qty off grid"), None, generation=1, now="t")
    assert {(c["status"], c["reason"], c["message"]) for c in out} == {
        ("False", "InvalidGrid", "min_qty off grid")
    }


def test_engine_check_reads_the_statefulset() -> None:
    assert engine_check(None).reason == "EngineMissing"
    assert engine_check({"status": {}}).ok is False
    assert engine_check({"status": {"readyReplicas": 1}}).ok is True

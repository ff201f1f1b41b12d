"""The chart's monitoring: alerts and dashboards query metrics that the code exports, in
PromQL that Prometheus' own parser accepts; ServiceMonitors select the Services the chart and
the operator create; monitoring renders when the cluster serves monitoring.coreos.com/v1 (or
when forced); every value is documented."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from .test_chart import CHART, EXTERNAL, Helm
from .test_chart import helm as helm  # the fixture

MONITORING_API = "monitoring.coreos.com/v1"
METRIC = re.compile(r"\bcex_[a-z0-9_]+")
# Prometheus' PromQL parser, built once with the Go toolchain install.sh needs anyway.
PROMETHEUS_VERSION = "v0.305.0"
PROMQL_CHECK = """package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
)

// Reads a JSON list of expressions on stdin; prints one line per expression that does not parse.
func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		panic(err)
	}
	for _, e := range exprs {
		if _, err := parser.ParseExpr(e); err != nil {
			fmt.Printf("%q: %v\\n", e, err)
		}
	}
}
"""
# The modules that define the exported metrics (prometheus_client registers them on import).
METRIC_MODULES = (
    "cex.api.app",
    "cex.trading.app",
    "cex.relay.service",
    "cex.settlement.service",
    "cex.lifecycle.service",
    "cex.candles.aggregator",
    "cex.candles.persister",
    "cex.gateway.metrics",
    "cex.engine.metrics",
    "cex_operator.metrics",
)
# The shared services (components.*) by id: their objects, job and component label.
SERVICES = (
    "api", "trading", "relay", "settlement", "lifecycle", "candles", "candle-persist", "gateway",
)  # fmt: skip
# Grafana's variables, replaced by something PromQL accepts before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "ns", "$market": "m"}


def exported_metrics() -> set[str]:
    """Every sample name the services, engines and operator export."""
    for module in METRIC_MODULES:
        importlib.import_module(module)

    suffixes = {
        "counter": ["_total"],
        "gauge": [""],
        "histogram": ["_bucket", "_sum", "_count"],
        "summary": ["_sum", "_count", ""],
    }
    names = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
    return {n for n in names if n.startswith("cex_")}


def render(helm: Helm, *args: str) -> list[dict[str, Any]]:
    return helm.template("rel", CHART, "-n", "exchange", "-f", EXTERNAL, *args)


@pytest.fixture(scope="module")
def monitoring(helm: Helm) -> list[dict[str, Any]]:
    return render(helm, "--set", "monitoring.enabled=true")


def rule_expressions(docs: list[dict[str, Any]]) -> list[str]:
    return [
        rule["expr"]
        for doc in docs
        if doc["kind"] == "PrometheusRule"
        for group in doc["spec"]["groups"]
        for rule in group["rules"]
    ]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((CHART / "dashboards").glob("*.json"))
    }


def dashboard_expressions() -> list[str]:
    exprs = []
    for board in dashboards().values():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                exprs.append(expr)
    return exprs


def test_alerts_and_dashboards_use_metrics_that_exist(
    monitoring: list[dict[str, Any]],
) -> None:
    exported = exported_metrics()
    used = {
        m for e in rule_expressions(monitoring) + dashboard_expressions() for m in METRIC.findall(e)
    }
    assert used, "no cex_ metric in the alerts and dashboards"
    assert used <= exported, f"not exported by any service: {sorted(used - exported)}"
    # Each alert group has something to say about each part.
    for metric in ("cex_settlement_lag_records", "cex_engine_input_lag", "cex_relay_leader"):
        assert any(metric in e for e in rule_expressions(monitoring)), metric
    assert any("cex_operator_reconcile_errors_total" in e for e in rule_expressions(monitoring))
    # The dashboards show every service, the candles and the gateway included.
    board = dashboard_expressions()
    for prefix in ("cex_trading_", "cex_relay_", "cex_settlement_", "cex_lifecycle_",
                   "cex_candles_", "cex_candle_persist_", "cex_gateway_"):  # fmt: skip
        assert any(prefix in e for e in board), f"no dashboard panel for {prefix}*"
    for job in ("candles", "candle-persist", "gateway"):
        assert any(f'job=~".+-{job}"' in e for e in board), f"no pods-up panel for {job}"


@pytest.fixture(scope="session")
def promql_check() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = cache / "cex" / "promql-check" / PROMETHEUS_VERSION
    binary = directory / "promql-check"
    if binary.exists():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.go").write_text(PROMQL_CHECK)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}

    def go(*args: str) -> None:
        proc = subprocess.run(
            ["go", *args], cwd=directory, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"go {' '.join(args)}: {proc.stderr}"

    if not (directory / "go.mod").exists():
        go("mod", "init", "cex.local/promql-check")
    go("get", f"github.com/prometheus/prometheus/promql/parser@{PROMETHEUS_VERSION}")
    go("build", "-o", f"{binary}.tmp", ".")
    Path(f"{binary}.tmp").rename(binary)
    return binary


def test_every_expression_parses_as_promql(
    monitoring: list[dict[str, Any]], promql_check: Path
) -> None:
    exprs = rule_expressions(monitoring) + dashboard_expressions()
    proc = subprocess.run(
        [str(promql_check)], input=json.dumps(exprs), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"PromQL that does not parse:\n{proc.stdout}"


def test_alerts_are_complete(monitoring: list[dict[str, Any]]) -> None:
    (rule,) = [d for d in monitoring if d["kind"] == "PrometheusRule"]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names = {a["alert"] for a in alerts}
    assert {
        "CexServiceDown", "CexRelayNoPublisher", "CexRelayBacklog", "CexSettlementLag",
        "CexSettlementStalled", "CexEngineDown", "CexEngineInputLag", "CexEngineStalled",
        "CexMarketNotReady", "CexOperatorDown", "CexOperatorReconcileErrors", "CexCandlesLag",
        "CexCandlePersistFailing",
    } <= names  # fmt: skip
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["annotations"]["description"], alert["alert"]
    down = [a for a in alerts if a["alert"] == "CexServiceDown"]
    assert {a["labels"]["component"] for a in down} == set(SERVICES)
    # Each one's job is the one its ServiceMonitor target gets: "<fullname>-<component>".
    for alert in down:
        assert f'job="rel-cex-{alert["labels"]["component"]}"' in alert["expr"]


def test_service_monitors_select_what_is_scraped(monitoring: list[dict[str, Any]]) -> None:
    from cex_operator.children import engine_service

    monitors = {d["metadata"]["name"]: d for d in monitoring if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {"rel-cex-services", "rel-cex-engines", "rel-cex-operator"}
    services = {d["metadata"]["name"]: d for d in monitoring if d["kind"] == "Service"}

    def selects(monitor: dict[str, Any], service: dict[str, Any]) -> bool:
        selector = monitor["spec"]["selector"]
        labels = service["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
            return False
        for expr in selector.get("matchExpressions", []):
            assert expr["operator"] == "In"
            if labels.get(expr["key"]) not in expr["values"]:
                return False
        ports = {p["name"] for p in service["spec"]["ports"]}
        return all(e["port"] in ports for e in monitor["spec"]["endpoints"])

    scraped = {name for name, svc in services.items() if selects(monitors["rel-cex-services"], svc)}
    assert scraped == {f"rel-cex-{c}" for c in SERVICES}
    assert {n for n, s in services.items() if selects(monitors["rel-cex-operator"], s)} == {
        "rel-cex-operator"
    }
    # The engines' Services are the operator's: the selector must match what it creates.
    engine = engine_service("btc-usdt", "markets")
    assert selects(monitors["rel-cex-engines"], engine)
    assert monitors["rel-cex-engines"]["spec"]["namespaceSelector"] == {"any": True}
    assert not any(selects(monitors["rel-cex-engines"], s) for s in services.values())


def test_disabled_services_are_neither_scraped_nor_alerted_on(helm: Helm) -> None:
    docs = render(
        helm, "--set", "monitoring.enabled=true", "--set", "components.candles.enabled=false",
        "--set", "components.candlePersist.enabled=false",
        "--set", "components.gateway.enabled=false",
    )  # fmt: skip
    (services,) = [d for d in docs if d["metadata"]["name"] == "rel-cex-services"]
    (expression,) = services["spec"]["selector"]["matchExpressions"]
    assert expression["values"] == ["api", "lifecycle", "relay", "settlement", "trading"]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert "cex.candles" not in {g["name"] for g in rule["spec"]["groups"]}
    down = {
        r["labels"]["component"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == "CexServiceDown"
    }
    assert down == {"api", "lifecycle", "relay", "settlement", "trading"}


def test_engine_monitor_follows_the_watched_namespaces(helm: Helm) -> None:
    docs = render(
        helm, "--set", "monitoring.enabled=true", "--set", "operator.watchNamespaces={a,b}"
    )
    (engines,) = [d for d in docs if d["metadata"]["name"] == "rel-cex-engines"]
    assert engines["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}


@pytest.mark.parametrize(
    ("enabled", "api", "rendered"),
    [
        ("auto", False, False),
        ("auto", True, True),
        ("true", False, True),
        ("false", True, False),
    ],
)
def test_monitoring_renders_when_the_api_is_served_or_forced(
    helm: Helm, enabled: str, api: bool, rendered: bool
) -> None:
    args = ["--set", f"monitoring.enabled={enabled}"]
    if api:
        args += ["--api-versions", MONITORING_API]
    kinds = {d["kind"] for d in render(helm, *args)}
    assert ("ServiceMonitor" in kinds) is rendered
    assert ("PrometheusRule" in kinds) is rendered


def test_dashboards_become_labelled_configmaps(monitoring: list[dict[str, Any]]) -> None:
    boards = dashboards()
    assert len(boards) >= 2
    uids = [b["uid"] for b in boards.values()]
    assert len(uids) == len(set(uids))
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        assert board["title"].startswith("cex / ")
    configmaps = [
        d
        for d in monitoring
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    shipped = {key: json.loads(value) for cm in configmaps for key, value in cm["data"].items()}
    assert shipped == boards


# --------------------------------------------------------------------------- values


def undocumented_values(text: str) -> list[str]:
    """Keys of values.yaml that neither carry a `# --` comment nor sit under one that does
    (helm-docs' convention): a documented key covers its whole subtree."""
    lines = text.splitlines()
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    for index, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z0-9_-]+):(.*)$", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        covered = any(documented for _, _, documented in stack)
        comment = index - 1
        while comment >= 0 and lines[comment].strip().startswith("#"):
            if lines[comment].strip().startswith("# --"):
                break
            comment -= 1
        documented = (
            comment >= 0
            and lines[comment].strip().startswith("# --")
            and all(lines[i].strip().startswith("#") for i in range(comment, index))
        )
        stack.append((indent, key, documented or covered))
        rest = match.group(3).strip()
        has_children = (
            not rest
            and index + 1 < len(lines)
            and (
                len(lines[index + 1]) - len(lines[index + 1].lstrip()) > indent
                or lines[index + 1].lstrip().startswith("#")
            )
        )
        if not (documented or covered or has_children):
            missing.append(".".join(k for _, k, _ in stack))
    return missing


def test_every_value_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    assert undocumented_values(text) == []
    # The checker itself notices a bare key.
    assert undocumented_values("a:\n  # -- documented\n  b: 1\n  c: 2\n") == ["a.c"]


def test_schema_closes_every_object_of_the_values() -> None:
    """values.schema.json forbids unknown keys wherever the values are a fixed set of
    fields, so a misspelt value fails instead of being ignored."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    open_maps = {"commonLabels", "podAnnotations", "podLabels", "nodeSelector", "affinity",
                 "podSecurityContext", "securityContext", "annotations", "labels", "alertLabels",
                 "env", "resources", "strategy", "components"}  # fmt: skip

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else node

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        if not isinstance(value, dict) or path.rsplit(".", 1)[-1] in open_maps:
            return
        assert node.get("additionalProperties") is False, f"{path or '.'} accepts unknown keys"
        for key, child in value.items():
            assert key in node["properties"], f"{path}.{key} is not in the schema"
            walk(child, node["properties"][key], f"{path}.{key}".lstrip("."))

    walk(values, schema, "")
    component = schema["$defs"]["component"]
    for name, entry in values["components"].items():
        walk(entry, component, f"components.{name}")

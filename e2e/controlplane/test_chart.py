"""The Helm chart (charts/cex) against the real control plane.

`helm lint` accepts the chart and refuses bad values through values.schema.json; every object
`helm template` renders (monitoring, the public API's Ingress and the trading API's
NetworkPolicy included) passes the API server's validation (`kubectl apply --dry-run=server`);
the public API reaches the trading Service and reads its secrets from Secrets, and the
NetworkPolicy admits only it to the trading pods; the candle aggregator, the candle persister
and the WebSocket gateway get the shared environment, their ports and probes, and the Ingress
sends `/ws` and `/stream` to the gateway, `/` to the web UI (its own image, probes, read-only
root, the release's API and gateway as its rewrites' targets) and the API's own prefixes to the
public API;
`helm install --wait` brings the release up on the kwok node (the migration hook's Job
completes, the Deployments, the gateways and the candle services included, become ready), with
the CRDs installed, and RBAC that grants the operator what it needs and nothing else;
`helm uninstall` removes the release and keeps the CRDs (Helm never deletes what it installed
from crds/).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .kube import REPO_ROOT, SCRIPTS, ControlPlane, KubectlError, wait_until

CHART = REPO_ROOT / "charts" / "cex"
EXTERNAL = CHART / "ci" / "external-values.yaml"
DEV = CHART / "ci" / "dev-values.yaml"
ROOT_CRDS = {
    "market.yaml": REPO_ROOT / "crds" / "market.yaml",
    "kopf-peering.yaml": REPO_ROOT / "crds" / "kopf-peering.yaml",
}
SYMLINK_NOTICE = "found symbolic link in path"
# The public API's Secrets named in ci/external-values.yaml.
API_KEYS_SECRET = "cex-api-keys"
API_OPERATOR_SECRET = "cex-api-operator"
# The shared services (components.*) by object name suffix.
SERVICES = (
    "api", "trading", "relay", "settlement", "lifecycle", "candles", "candle-persist", "gateway",
)  # fmt: skip
# Everything optional switched on: the public API's Ingress and a Prometheus scraper.
INGRESS_AND_SCRAPER: list[str | Path] = [
    "--set", "ingress.enabled=true",
    "--set", "ingress.className=nginx",
    "--set", "ingress.hosts={api.example.com,api2.example.com}",
    "--set", "ingress.tls[0].secretName=cex-api-tls",
    "--set", "ingress.tls[0].hosts={api.example.com}",
    "--set", "ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt",
    "--set-json", "networkPolicy.metricsFrom=" + json.dumps([{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]),
]  # fmt: skip


@dataclass
class Helm:
    """The helm built by scripts/cluster/install.sh, pointed at the control plane."""

    binary: Path
    kubeconfig: Path

    def __call__(
        self, *args: str | Path, check: bool = True, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        # Helm notes every symlinked file it follows (crds/ links to the repository's CRDs).
        proc.stderr = "\n".join(
            line for line in proc.stderr.splitlines() if SYMLINK_NOTICE not in line
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
            )
        return proc

    def template(self, *args: str | Path) -> list[dict[str, Any]]:
        out = self("template", *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def prometheus_crds_dir() -> Path:
    out = subprocess.run(
        [
            "bash",
            "-c",
            'source "$1"; printf "%s" "$CEX_PROMETHEUS_CRDS_DIR"',
            "_",
            SCRIPTS / "lib.sh",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Path(out)


@pytest.fixture(scope="session")
def helm(control_plane: ControlPlane) -> Helm:
    return Helm(control_plane.bin_dir / "helm", control_plane.kubeconfig)


@pytest.fixture(scope="session")
def chart_crds(control_plane: ControlPlane, helm: Helm) -> list[str]:
    """The chart's CRDs (what `helm show crds` prints), applied and established."""
    names = control_plane.apply_crds(helm("show", "crds", CHART).stdout)
    # `helm show crds` concatenates the files: each must start a YAML document of its own.
    assert sorted(names) == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "markets.cex.dev",
    ]
    return names


@pytest.fixture(scope="session")
def prometheus_crds(control_plane: ControlPlane) -> list[str]:
    """ServiceMonitor and PrometheusRule CRDs from scripts/cluster/install.sh's cache."""
    directory = prometheus_crds_dir()
    files = sorted(directory.glob("monitoring.coreos.com_*.yaml"))
    if len(files) < 2:  # a control plane started before install.sh fetched them
        subprocess.run([SCRIPTS / "install.sh"], check=True, capture_output=True, timeout=1800)
        files = sorted(directory.glob("monitoring.coreos.com_*.yaml"))
    return control_plane.apply_crds("\n---\n".join(path.read_text() for path in files))


@pytest.fixture
def namespaces(control_plane: ControlPlane) -> Iterator[list[str]]:
    """The namespaces a test made with new_ns; deleted afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def new_ns(control_plane: ControlPlane, made: list[str], prefix: str = "chart") -> str:
    name = unique(prefix)
    control_plane.kubectl("create", "namespace", name)
    made.append(name)
    return name


@dataclass
class Release:
    name: str
    namespace: str
    helm: Helm

    def uninstall(self) -> None:
        self.helm("uninstall", self.name, "-n", self.namespace, "--wait", "--timeout", "120s")


@pytest.fixture
def releases(helm: Helm) -> Iterator[list[Release]]:
    """Releases installed by a test; uninstalled afterwards if the test did not."""
    installed: list[Release] = []
    yield installed
    for release in installed:
        helm("uninstall", release.name, "-n", release.namespace, "--wait", check=False)


def install(
    helm: Helm, releases: list[Release], namespace: str, *args: str | Path, name: str = ""
) -> Release:
    release = Release(name or unique("rel"), namespace, helm)
    releases.append(release)
    helm_wait(
        helm,
        namespace,
        "install",
        release.name,
        CHART,
        "-n",
        namespace,
        # A ClusterKopfPeering is cluster-wide: each test release gets its own.
        "--set",
        f"operator.peering={unique('peering')}",
        *args,
    )
    return release


def helm_wait(helm: Helm, namespace: str, *args: str | Path) -> None:
    """`helm <args> --wait`; on failure, say what in the namespace was not ready."""
    proc = helm(*args, "--wait", "--timeout", "180s", timeout=300, check=False)
    if proc.returncode != 0:
        state = subprocess.run(
            [str(helm.binary.with_name("kubectl")), f"--kubeconfig={helm.kubeconfig}", "get",
             "deployments,statefulsets,jobs,pods", "-n", namespace, "-o", "wide"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        raise AssertionError(
            f"helm {' '.join(map(str, args))} --wait failed:\n{proc.stderr}\n"
            f"{state.stdout}{state.stderr}"
        )


def create_api_secrets(control_plane: ControlPlane, namespace: str) -> None:
    """The Secrets ci/external-values.yaml names, as an operator of the exchange makes them."""
    key = base64.b64encode(os.urandom(32)).decode()
    control_plane.kubectl(
        "create", "secret", "generic", API_KEYS_SECRET, "-n", namespace,
        "--from-literal=keyId=k1", f"--from-literal=keys={json.dumps({'k1': key})}",
    )  # fmt: skip
    control_plane.kubectl(
        "create", "secret", "generic", API_OPERATOR_SECRET, "-n", namespace,
        f"--from-literal=token={uuid.uuid4().hex}",
    )  # fmt: skip


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def can_i(control_plane: ControlPlane, who: str, verb: str, resource: str, *args: str) -> bool:
    proc = control_plane.kubectl("auth", "can-i", verb, resource, f"--as={who}", *args, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i: {proc.stdout} {proc.stderr}"
    return answer == "yes"


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# --------------------------------------------------------------------------- lint


@pytest.mark.parametrize("values", [None, EXTERNAL, DEV], ids=["defaults", "external", "dev"])
def test_lint_passes_strict(helm: Helm, values: Path | None) -> None:
    args: list[str | Path] = ["-f", values] if values else []
    proc = helm("lint", CHART, "--strict", *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("components.trading.replicas=-1", "at '/components/trading/replicas': minimum"),
        ("operator.watchNamespace={a}", "additional properties 'watchNamespace' not allowed"),
        ("monitoring.enabled=sometimes", "at '/monitoring/enabled': value must be one of"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
        ("infra.postgres.dsn=mysql://x", "at '/infra/postgres/dsn'"),
        (
            "components.new-service.enabled=true",
            "at '/components/new-service': missing properties 'replicas'",
        ),
        ("api.rateLimits.ordersPerDay=0", "at '/api/rateLimits/ordersPerDay': minimum"),
        ("api.secretsKeys.name=x", "additional properties 'name' not allowed"),
        ("api.tradingUrl=trading:8080", "at '/api/tradingUrl'"),
        ("ingress.hosts={Not_A_Host}", "at '/ingress/hosts/0'"),
        ("networkPolicy.metricsFrom[0].pods=x", "additional properties 'pods' not allowed"),
        ("networkPolicy.enabled=yes", "at '/networkPolicy/enabled'"),
        (
            "components.gateway.preStopSleepSeconds=-1",
            "at '/components/gateway/preStopSleepSeconds': minimum",
        ),
        ("components.candlePersist.replica=1", "additional properties 'replica' not allowed"),
        ("components.Gateway.enabled=true", "'Gateway' does not match pattern"),
    ],
)
def test_lint_fails_on_a_bad_value(helm: Helm, setting: str, message: str) -> None:
    proc = helm("lint", CHART, "-f", EXTERNAL, "--set", setting, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stdout + proc.stderr
    assert message in proc.stdout + proc.stderr


def test_install_without_infrastructure_says_what_to_set(helm: Helm) -> None:
    proc = helm("template", "rel", CHART, check=False)
    assert proc.returncode != 0
    for value in ("infra.kafka.bootstrap", "infra.redis.url", "infra.postgres.dsn"):
        assert value in proc.stderr
    assert "devInfra.enabled=true" in proc.stderr
    # Only what is missing is named.
    proc = helm("template", "rel", CHART, "--set", "infra.redis.url=redis://r:6379/0", check=False)
    assert "infra.kafka.bootstrap" in proc.stderr
    assert "infra.redis.url" not in proc.stderr


def test_lint_passes_with_everything_optional(helm: Helm) -> None:
    proc = helm("lint", CHART, "--strict", "-f", EXTERNAL, *INGRESS_AND_SCRAPER)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "api.secretsKeys.existingSecret="],
            "api.secretsKeys.existingSecret is required",
        ),
        (["--set", "components.trading.enabled=false"], "api.tradingUrl is required"),
        (["--set", "api.faucetEnabled=true"], "only allowed with environment=dev"),
        (
            ["--set", "components.api.enabled=false", "--set", "ingress.enabled=true"],
            "needs components.api.enabled=true",
        ),
    ],
    ids=["secrets-keys", "trading-url", "faucet", "ingress-without-api"],
)
def test_public_api_says_what_is_missing(helm: Helm, args: list[str], message: str) -> None:
    proc = helm("template", "rel", CHART, "-f", EXTERNAL, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_public_api_can_be_left_out(helm: Helm) -> None:
    """Without the public API no secret of its own is needed, and nothing may reach trading."""
    docs = helm.template(
        "rel", CHART, "-f", EXTERNAL, "--set", "components.api.enabled=false",
        "--set", "api.secretsKeys.existingSecret=", "--set", "api.operatorToken.existingSecret=",
    )  # fmt: skip
    assert "rel-cex-api" not in by_kind(docs, "Deployment")
    (policy,) = by_kind(docs, "NetworkPolicy").values()
    assert policy["spec"]["ingress"] == []


# --------------------------------------------------------------------------- public API


def test_public_api_calls_the_trading_service_with_secrets_from_secrets(helm: Helm) -> None:
    docs = helm.template("exch", CHART, "-n", "money", "-f", EXTERNAL)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    api = deployments["exch-cex-api"]
    assert api["spec"]["replicas"] == 2
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", "api"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = env_of(api)
    assert env["CEX_API_HOST"] == {"name": "CEX_API_HOST", "value": "0.0.0.0"}
    assert env["CEX_API_PORT"] == {"name": "CEX_API_PORT", "value": "8080"}

    # CEX_TRADING_URL is the trading Service of this release, on its port.
    url = env["CEX_TRADING_URL"]["value"]
    trading = services["exch-cex-trading"]
    (port,) = trading["spec"]["ports"]
    assert url == f"http://{trading['metadata']['name']}:{port['port']}"
    assert port["targetPort"] == "http"

    # Secrets come from the Secrets of the values, never from plain values.
    assert env["CEX_SECRETS_KEYS"]["valueFrom"] == {
        "secretKeyRef": {"name": API_KEYS_SECRET, "key": "keys"}
    }
    assert env["CEX_SECRETS_KEY_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": API_KEYS_SECRET, "key": "keyId"}
    }
    assert env["CEX_API_OPERATOR_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": API_OPERATOR_SECRET, "key": "token"}
    }
    for name in ("CEX_SECRETS_KEYS", "CEX_SECRETS_KEY_ID", "CEX_API_OPERATOR_TOKEN"):
        assert "value" not in env[name], name
    assert not any(d["kind"] == "Secret" and "api" in d["metadata"]["name"] for d in docs)
    assert {k: env[k]["value"] for k in (
        "CEX_API_FAUCET_ENABLED", "CEX_API_WEIGHT_PER_MINUTE", "CEX_API_ORDERS_PER_10S",
        "CEX_API_ORDERS_PER_DAY",
    )} == {
        "CEX_API_FAUCET_ENABLED": "false", "CEX_API_WEIGHT_PER_MINUTE": "6000",
        "CEX_API_ORDERS_PER_10S": "100", "CEX_API_ORDERS_PER_DAY": "200000",
    }  # fmt: skip
    assert "FORWARDED_ALLOW_IPS" not in env
    # Only the public API gets them.
    assert "CEX_SECRETS_KEYS" not in env_of(deployments["exch-cex-trading"])

    # The URL follows the names; an operator token is optional; values reach the env.
    docs = helm.template(
        "other", CHART, "-f", EXTERNAL, "--set", "fullnameOverride=x",
        "--set", "components.trading.port=9000", "--set", "api.operatorToken.existingSecret=",
        "--set", "api.rateLimits.ordersPerDay=1000000", "--set", "api.forwardedAllowIps=10.0.0.0/8",
    )  # fmt: skip
    env = env_of(by_kind(docs, "Deployment")["x-api"])
    assert env["CEX_TRADING_URL"]["value"] == "http://x-trading:9000"
    assert "CEX_API_OPERATOR_TOKEN" not in env
    assert env["CEX_API_ORDERS_PER_DAY"]["value"] == "1000000"
    assert env["FORWARDED_ALLOW_IPS"]["value"] == "10.0.0.0/8"
    docs = helm.template(
        "rel", CHART, "-f", EXTERNAL, "--set", "api.tradingUrl=http://trading.elsewhere:80",
        "--set", "components.trading.enabled=false",
    )  # fmt: skip
    env = env_of(by_kind(docs, "Deployment")["rel-cex-api"])
    assert env["CEX_TRADING_URL"]["value"] == "http://trading.elsewhere:80"


def test_dev_generates_the_public_api_secret(helm: Helm) -> None:
    docs = helm.template("rel", CHART, "-f", DEV, "--set", "api.faucetEnabled=true")
    secret = by_kind(docs, "Secret")["rel-cex-api"]
    data = secret["stringData"]
    keys = json.loads(data["keys"])
    assert data["keyId"] in keys
    assert all(len(base64.b64decode(k)) == 32 for k in keys.values())
    assert len(data["token"]) >= 32
    env = env_of(by_kind(docs, "Deployment")["rel-cex-api"])
    for name, key in [
        ("CEX_SECRETS_KEYS", "keys"), ("CEX_SECRETS_KEY_ID", "keyId"),
        ("CEX_API_OPERATOR_TOKEN", "token"),
    ]:  # fmt: skip
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "rel-cex-api", "key": key}}
    assert env["CEX_API_FAUCET_ENABLED"]["value"] == "true"
    # The user's Secrets win over generated ones.
    docs = helm.template(
        "rel", CHART, "-f", DEV, "--set", "api.secretsKeys.existingSecret=mine",
        "--set", "api.operatorToken.existingSecret=mine",
    )  # fmt: skip
    assert "rel-cex-api" not in by_kind(docs, "Secret")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_network_policy_admits_only_the_public_api_to_trading(helm: Helm) -> None:
    docs = helm.template("rel", CHART, "-n", "exchange", "-f", EXTERNAL)
    (policy,) = by_kind(docs, "NetworkPolicy").values()
    spec = policy["spec"]
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for name, d in by_kind(docs, "Deployment").items()
    }
    assert "rel-cex-api" in pods
    assert "rel-cex-trading" in pods
    # It selects the trading pods and nothing else of the release.
    assert {n for n, labels in pods.items() if selects(spec["podSelector"], labels)} == {
        "rel-cex-trading"
    }
    assert spec["policyTypes"] == ["Ingress"]
    # One rule: from the public API's pods (same namespace: no namespaceSelector), to the
    # trading container's port.
    (rule,) = spec["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}
    assert {n for n, labels in pods.items() if selects(peer["podSelector"], labels)} == {
        "rel-cex-api"
    }
    (trading,) = by_kind(docs, "Deployment")["rel-cex-trading"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert rule["ports"] == [{"port": trading["ports"][0]["name"], "protocol": "TCP"}]
    # Selector labels are the standard ones.
    assert set(spec["podSelector"]["matchLabels"]) == {
        "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
    }  # fmt: skip

    # metricsFrom adds the scrapers, as given, on the same port.
    docs = helm.template("rel", CHART, "-n", "exchange", "-f", EXTERNAL, *INGRESS_AND_SCRAPER)
    (policy,) = by_kind(docs, "NetworkPolicy").values()
    api_rule, scrape_rule = policy["spec"]["ingress"]
    assert api_rule == rule
    assert scrape_rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }]  # fmt: skip
    assert scrape_rule["ports"] == rule["ports"]

    docs = helm.template("rel", CHART, "-f", EXTERNAL, "--set", "networkPolicy.enabled=false")
    assert not by_kind(docs, "NetworkPolicy")


def ingress_routes(docs: list[dict[str, Any]]) -> list[dict[str, tuple[str, list[str]]]]:
    """Per Ingress rule: path → (Service, the `args` of the Deployment whose pods that Service
    selects on the backend's port), checking that the port exists."""
    (ingress,) = by_kind(docs, "Ingress").values()
    services = by_kind(docs, "Service")
    deployments = by_kind(docs, "Deployment").values()
    routes = []
    for rule in ingress["spec"]["rules"]:
        route = {}
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix"
            backend = path["backend"]["service"]
            service = services[backend["name"]]
            (port,) = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
            (target,) = [
                d for d in deployments
                if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                       for k, v in service["spec"]["selector"].items())
            ]  # fmt: skip
            (container,) = target["spec"]["template"]["spec"]["containers"]
            assert port["targetPort"] in {p["name"] for p in container["ports"]}
            route[path["path"]] = (backend["name"], container.get("args"))
        routes.append(route)
    return routes


def test_ingress_routes_streams_to_the_gateway_and_the_rest_to_the_public_api(
    helm: Helm,
) -> None:
    docs = helm.template("rel", CHART, "-f", EXTERNAL)
    assert not by_kind(docs, "Ingress")
    docs = helm.template("rel", CHART, "-f", EXTERNAL, *INGRESS_AND_SCRAPER)
    (ingress,) = by_kind(docs, "Ingress").values()
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "cex-api-tls", "hosts": ["api.example.com"]}]
    assert [r["host"] for r in spec["rules"]] == ["api.example.com", "api2.example.com"]
    api = ("rel-cex-api", ["serve", "api"])
    gateway = ("rel-cex-gateway", ["serve", "gateway"])
    web = ("rel-cex-web", None)
    expected = {"/ws-api": api, "/ws": gateway, "/stream": gateway, "/api": api, "/sapi": api,
                "/cex": api, "/openapi.json": api, "/docs": api, "/": web}  # fmt: skip
    assert ingress_routes(docs) == [expected, expected]
    # The WebSocket API (/ws-api/v3) is the public API's, even for a controller that matches
    # plain string prefixes: its own path is longer than /ws.
    paths = [p["path"] for p in spec["rules"][0]["http"]["paths"]]
    assert paths.index("/ws-api") < paths.index("/ws")

    # No hosts: one rule for every host.
    docs = helm.template("rel", CHART, "-f", EXTERNAL, "--set", "ingress.enabled=true")
    (ingress,) = by_kind(docs, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    assert "host" not in rule
    assert "ingressClassName" not in ingress["spec"]
    assert ingress_routes(docs) == [expected]
    # Without the gateway the streams' paths go nowhere special.
    docs = helm.template(
        "rel", CHART, "-f", EXTERNAL, "--set", "ingress.enabled=true",
        "--set", "components.gateway.enabled=false",
    )  # fmt: skip
    assert ingress_routes(docs) == [{k: v for k, v in expected.items()
                                     if k not in ("/ws", "/stream")}]  # fmt: skip
    # Without the web UI the public API answers at `/`, as before it existed.
    docs = helm.template(
        "rel", CHART, "-f", EXTERNAL, "--set", "ingress.enabled=true", "--set", "web.enabled=false",
    )  # fmt: skip
    assert ingress_routes(docs) == [{"/ws-api": api, "/ws": gateway, "/stream": gateway, "/": api}]


def test_web_ui_has_its_image_probes_and_the_release_services_as_targets(helm: Helm) -> None:
    docs = helm.template(
        "rel", CHART, "-n", "exchange", "-f", EXTERNAL,
        "--set", "web.image.repository=registry.example/cex-web", "--set", "web.image.tag=1.2.3",
        "--set", "web.replicas=3", "--set", "web.env.NEXT_TELEMETRY_DISABLED=1",
    )  # fmt: skip
    web = by_kind(docs, "Deployment")["rel-cex-web"]
    spec = web["spec"]["template"]["spec"]
    assert web["spec"]["replicas"] == 3
    assert web["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/cex-web:1.2.3"
    env = {e["name"]: e["value"] for e in container["env"]}
    api_port = by_kind(docs, "Service")["rel-cex-api"]["spec"]["ports"][0]["port"]
    gateway_port = by_kind(docs, "Service")["rel-cex-gateway"]["spec"]["ports"][0]["port"]
    assert env == {
        "HOSTNAME": "0.0.0.0", "PORT": "3000", "NEXT_TELEMETRY_DISABLED": "1",
        "CEX_API_URL": f"http://rel-cex-api:{api_port}",
        "CEX_GATEWAY_URL": f"http://rel-cex-gateway:{gateway_port}",
    }  # fmt: skip
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Like every cex container: non-root, nothing to escalate, a read-only root with only
    # /tmp and Next's cache writable.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/app/.next/cache"}
    assert container["resources"]["limits"]["memory"] == "512Mi"
    service = by_kind(docs, "Service")["rel-cex-web"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}
    ]

    docs = helm.template("rel", CHART, "-f", EXTERNAL, "--set", "web.enabled=false")
    assert "rel-cex-web" not in by_kind(docs, "Deployment")
    assert "rel-cex-web" not in by_kind(docs, "Service")


# --------------------------------------------------------------------------- market data


def test_candles_persister_and_gateway_get_the_shared_env_ports_and_probes(helm: Helm) -> None:
    docs = helm.template("rel", CHART, "-n", "exchange", "-f", EXTERNAL)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    env_cm = by_kind(docs, "ConfigMap")["rel-cex-env"]["data"]
    env_secret = by_kind(docs, "Secret")["rel-cex-env"]["stringData"]
    # Postgres (the persister, the gateway's tickers) and Redis (all three) come with the
    # shared environment, like every other service's.
    assert {"CEX_REDIS_URL", "CEX_REDIS_PREFIX", "CEX_KAFKA_BOOTSTRAP",
            "CEX_EXECUTIONS_TOPIC"} <= set(env_cm)  # fmt: skip
    assert "CEX_POSTGRES_DSN" in env_secret

    expected = {
        # name: (args, replicas, strategy, port env, host env, port)
        "candles": (["serve", "candles"], 1, {"type": "Recreate"},
                    "CEX_METRICS_PORT", "CEX_HTTP_HOST", 9090),
        "candle-persist": (["serve", "candle-persist"], 1, None,
                           "CEX_METRICS_PORT", "CEX_HTTP_HOST", 9090),
        "gateway": (["serve", "gateway"], 2,
                    {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                    "CEX_GATEWAY_PORT", "CEX_GATEWAY_HOST", 8090),
    }  # fmt: skip
    for name, (args, replicas, strategy, port_env, host_env, port) in expected.items():
        deployment = deployments[f"rel-cex-{name}"]
        spec = deployment["spec"]
        assert spec["replicas"] == replicas, name
        assert spec.get("strategy") == strategy, name
        labels = spec["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == name
        pod = spec["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["name"] == name
        assert container["args"] == args
        assert container["envFrom"] == [
            {"configMapRef": {"name": "rel-cex-env"}}, {"secretRef": {"name": "rel-cex-env"}},
        ]  # fmt: skip
        env = env_of(deployment)
        assert env[host_env] == {"name": host_env, "value": "0.0.0.0"}, name
        assert env[port_env] == {"name": port_env, "value": str(port)}, name
        assert "CEX_SECRETS_KEYS" not in env  # the public API's only
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        service = services[f"rel-cex-{name}"]
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == name
        assert service["spec"]["ports"] == [
            {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}
        ]
    # Long-lived WebSocket connections: the gateway sleeps before SIGTERM while the endpoints
    # drop it, and has time to close its connections afterwards; the workers have no hook.
    gateway = deployments["rel-cex-gateway"]["spec"]["template"]["spec"]
    (container,) = gateway["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert gateway["terminationGracePeriodSeconds"] >= 10 + 30
    for name in ("candles", "candle-persist", "api"):
        (container,) = deployments[f"rel-cex-{name}"]["spec"]["template"]["spec"]["containers"]
        assert "lifecycle" not in container, name

    # Values reach them; and no hook with preStopSleepSeconds=0.
    docs = helm.template(
        "rel", CHART, "-f", EXTERNAL, "--set", "components.gateway.replicas=5",
        "--set", "components.gateway.port=9443",
        "--set", "components.gateway.preStopSleepSeconds=0",
        "--set", "components.gateway.env.CEX_GATEWAY_CONNECTIONS_PER_IP=100000",
        "--set", "components.candlePersist.env.CEX_CANDLE_PERSIST_INTERVAL_S=0.5",
    )  # fmt: skip
    deployments = by_kind(docs, "Deployment")
    gateway = deployments["rel-cex-gateway"]
    assert gateway["spec"]["replicas"] == 5
    env = env_of(gateway)
    assert env["CEX_GATEWAY_PORT"]["value"] == "9443"
    assert env["CEX_GATEWAY_CONNECTIONS_PER_IP"]["value"] == "100000"
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert "lifecycle" not in container
    persist = env_of(deployments["rel-cex-candle-persist"])
    assert persist["CEX_CANDLE_PERSIST_INTERVAL_S"]["value"] == "0.5"
    # Each can be left out.
    docs = helm.template(
        "rel", CHART, "-f", EXTERNAL, "--set", "components.candles.enabled=false",
        "--set", "components.candlePersist.enabled=false",
        "--set", "components.gateway.enabled=false",
    )  # fmt: skip
    assert not {"rel-cex-candles", "rel-cex-candle-persist", "rel-cex-gateway"} & (
        set(by_kind(docs, "Deployment")) | set(by_kind(docs, "Service"))
    )


def test_component_keys_that_name_the_same_objects_are_refused(helm: Helm) -> None:
    proc = helm(
        "template", "rel", CHART, "-f", EXTERNAL,
        "--set-json", "components.candle-persist=" + json.dumps(
            {"enabled": True, "replicas": 1, "args": ["serve", "candle-persist"], "port": 9090,
             "portEnv": "CEX_METRICS_PORT", "hostEnv": "CEX_HTTP_HOST"}
        ),
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert 'would both be named "candle-persist"' in proc.stderr


# --------------------------------------------------------------------------- CRDs


def test_chart_crds_are_the_repository_crds(helm: Helm, tmp_path: Path) -> None:
    """charts/cex/crds/ links to crds/: lint, template and package carry the real files."""
    for name, root_file in ROOT_CRDS.items():
        linked = CHART / "crds" / name
        assert linked.read_bytes() == root_file.read_bytes(), f"{linked} differs from {root_file}"

    shown = helm("show", "crds", CHART).stdout
    for root_file in ROOT_CRDS.values():
        for doc in yaml.safe_load_all(root_file.read_text()):
            assert f"name: {doc['metadata']['name']}" in shown

    helm("package", CHART, "-d", tmp_path)
    (package,) = tmp_path.glob("cex-*.tgz")
    with tarfile.open(package) as archive:
        for name, root_file in ROOT_CRDS.items():
            member = archive.getmember(f"cex/crds/{name}")
            assert member.isfile(), f"{name} is packaged as a link, not as a file"
            extracted = archive.extractfile(member)
            assert extracted is not None
            assert extracted.read() == root_file.read_bytes()


# --------------------------------------------------------------------------- server-side


@pytest.mark.parametrize(
    "variant",
    ["external", "dev", "namespaced"],
)
def test_rendered_objects_pass_server_side_validation(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    prometheus_crds: list[str],
    namespaces: list[str],
    variant: str,
) -> None:
    ns = new_ns(control_plane, namespaces)
    args: list[str | Path] = ["-n", ns, "--set", "monitoring.enabled=true"]
    if variant == "external":
        args += ["-f", EXTERNAL, *INGRESS_AND_SCRAPER]
    elif variant == "dev":
        args += ["-f", DEV, "--set", "devInfra.persistence.enabled=true"]
    else:
        watched = [new_ns(control_plane, namespaces, "watched") for _ in range(2)]
        args += ["-f", EXTERNAL, "--set", f"operator.watchNamespaces={{{','.join(watched)}}}"]
    docs = helm.template("rel", CHART, *args)
    kinds = {doc["kind"] for doc in docs}
    assert {"ServiceMonitor", "PrometheusRule", "Deployment", "Job", "NetworkPolicy"} <= kinds
    if variant == "external":
        assert "Ingress" in kinds
    if variant == "dev":
        assert {"StatefulSet"} <= kinds
        assert "rel-cex-api" in by_kind(docs, "Secret")
    if variant == "namespaced":
        assert {"Role", "RoleBinding", "KopfPeering"} <= kinds
    else:
        assert "ClusterKopfPeering" in kinds
    proc = control_plane.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout


# --------------------------------------------------------------------------- install


def test_install_upgrade_uninstall(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    namespaces: list[str],
    releases: list[Release],
) -> None:
    ns = new_ns(control_plane, namespaces)
    create_api_secrets(control_plane, ns)
    release = install(helm, releases, ns, "-f", EXTERNAL)
    full = f"{release.name}-cex"

    deployments = {
        d["metadata"]["name"]: d for d in control_plane.get_json("deployments", "-n", ns)["items"]
    }
    assert set(deployments) == {f"{full}-{c}" for c in (*SERVICES, "operator", "web")}
    for name, deployment in deployments.items():
        status = deployment["status"]
        assert status.get("readyReplicas") == deployment["spec"]["replicas"], name
    # The market-data services: one aggregator, one persister, two gateways, all ready.
    assert deployments[f"{full}-candles"]["spec"]["replicas"] == 1
    assert deployments[f"{full}-candles"]["spec"]["strategy"] == {"type": "Recreate"}
    assert deployments[f"{full}-candle-persist"]["spec"]["replicas"] == 1
    gateway = deployments[f"{full}-gateway"]
    assert gateway["status"].get("readyReplicas") == 2
    assert gateway["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    gateway_service = control_plane.get_json("service", f"{full}-gateway", "-n", ns)
    assert gateway_service["spec"]["ports"][0]["targetPort"] == "http"
    trading = deployments[f"{full}-trading"]["spec"]["template"]["spec"]
    assert trading["automountServiceAccountToken"] is False
    container = trading["containers"][0]
    assert container["args"] == ["serve", "trading"]
    assert {"name": "CEX_TRADING_HOST", "value": "0.0.0.0"} in container["env"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    # The web UI: two ready replicas of its own image, behind a Service on its port.
    web = deployments[f"{full}-web"]
    assert web["status"].get("readyReplicas") == 2
    assert web["spec"]["template"]["spec"]["containers"][0]["image"].startswith("cex-web:")
    web_service = control_plane.get_json("service", f"{full}-web", "-n", ns)
    assert web_service["spec"]["ports"][0]["targetPort"] == "http"

    # The public API: two ready replicas, pointed at the trading Service, secrets from Secrets.
    api = deployments[f"{full}-api"]
    assert api["status"].get("readyReplicas") == 2
    env = env_of(api)
    trading_service = control_plane.get_json("service", f"{full}-trading", "-n", ns)
    assert env["CEX_TRADING_URL"]["value"] == (
        f"http://{full}-trading:{trading_service['spec']['ports'][0]['port']}"
    )
    assert env["CEX_SECRETS_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == API_KEYS_SECRET
    control_plane.kubectl("get", "service", f"{full}-api", "-n", ns)
    policy = control_plane.get_json("networkpolicy", f"{full}-trading", "-n", ns)
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "trading"

    # The migration ran as a pre-install hook and its Job and Secret were cleaned up.
    assert not control_plane.get_json("jobs", "-n", ns)["items"]
    secrets = {s["metadata"]["name"] for s in control_plane.get_json("secrets", "-n", ns)["items"]}
    assert f"{full}-env" in secrets
    assert f"{full}-migrate" not in secrets

    # Engine pods will read this environment in the Market's namespace.
    env = control_plane.get_json("configmap", f"{full}-env", "-n", ns)["data"]
    assert env["CEX_KAFKA_BOOTSTRAP"] == "kafka.example.internal:9092"
    assert set(env) >= {
        "CEX_ENVIRONMENT", "CEX_KAFKA_BOOTSTRAP", "CEX_REDIS_URL", "CEX_REDIS_PREFIX",
        "CEX_ORDERS_TOPIC", "CEX_EXECUTIONS_TOPIC",
    }  # fmt: skip

    for crd in ("markets.cex.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        control_plane.kubectl("get", "crd", crd)

    # An upgrade runs the migration hook again and rolls the changed Deployment.
    helm_wait(
        helm, ns, "upgrade", release.name, CHART, "-n", ns, "--reuse-values",
        "--set", "components.lifecycle.replicas=2",
    )  # fmt: skip
    lifecycle = control_plane.get_json("deployment", f"{full}-lifecycle", "-n", ns)
    assert lifecycle["status"].get("readyReplicas") == 2

    release.uninstall()
    releases.remove(release)
    assert not control_plane.get_json("deployments", "-n", ns)["items"]
    assert not control_plane.get_json("services", "-n", ns)["items"]
    gone = control_plane.kubectl("get", "clusterrole", f"{full}-{ns}-operator", check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
    # Helm never deletes CRDs: Markets (and the money behind them) outlive the release.
    control_plane.kubectl("get", "crd", "markets.cex.dev")


def test_cluster_wide_rbac_is_least_privilege(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    namespaces: list[str],
    releases: list[Release],
) -> None:
    ns = new_ns(control_plane, namespaces)
    other = new_ns(control_plane, namespaces, "other")
    release = install(helm, releases, ns, "-f", EXTERNAL)
    full = f"{release.name}-cex"
    operator = service_account(ns, f"{full}-operator")

    def op(verb: str, resource: str, *args: str) -> bool:
        return can_i(control_plane, operator, verb, resource, *args)

    for where in (ns, other):
        assert op("patch", "markets.cex.dev", "--subresource=status", "-n", where)
        assert op("watch", "markets.cex.dev", "-n", where)
        assert op("create", "statefulsets.apps", "-n", where)
        assert op("delete", "services", "-n", where)
        assert op("patch", "configmaps", "-n", where)
        assert op("create", "events", "-n", where)
        assert not op("create", "markets.cex.dev", "-n", where)
        assert not op("delete", "markets.cex.dev", "-n", where)
        assert not op("get", "secrets", "-n", where)
        assert not op("delete", "secrets", "-n", where)
        assert not op("create", "pods", "-n", where)
        assert not op("create", "deployments.apps", "-n", where)
        assert not op("create", "roles.rbac.authorization.k8s.io", "-n", where)
    assert op("list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not op("create", "customresourcedefinitions.apiextensions.k8s.io")
    assert op("patch", "clusterkopfpeerings.kopf.dev")
    assert not op("delete", "clusterkopfpeerings.kopf.dev")
    assert op("watch", "namespaces")
    assert not op("create", "namespaces")
    assert not op("list", "nodes")

    # The services' ServiceAccount is granted nothing at all.
    services = service_account(ns, full)
    for verb, resource in [
        ("get", "configmaps"), ("list", "pods"), ("get", "secrets"),
        ("get", "markets.cex.dev"), ("list", "services"), ("create", "events"),
    ]:  # fmt: skip
        assert not can_i(control_plane, services, verb, resource, "-n", ns), (verb, resource)
    sa = control_plane.get_json("serviceaccount", full, "-n", ns)
    assert sa["automountServiceAccountToken"] is False


def test_namespaced_operator_gets_roles_only_where_it_watches(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    namespaces: list[str],
    releases: list[Release],
) -> None:
    ns = new_ns(control_plane, namespaces)
    watched = [new_ns(control_plane, namespaces, "watched") for _ in range(2)]
    unwatched = new_ns(control_plane, namespaces, "unwatched")
    release = install(
        helm, releases, ns, "-f", EXTERNAL,
        "--set", f"operator.watchNamespaces={{{','.join(watched)}}}",
    )  # fmt: skip
    full = f"{release.name}-cex"
    operator = service_account(ns, f"{full}-operator")

    def op(verb: str, resource: str, *args: str) -> bool:
        return can_i(control_plane, operator, verb, resource, *args)

    env = control_plane.get_json("deployment", f"{full}-operator", "-n", ns)["spec"]["template"][
        "spec"
    ]["containers"][0]["env"]
    assert {"name": "CEX_OPERATOR_NAMESPACES", "value": ",".join(watched)} in env
    for where in watched:
        assert op("patch", "markets.cex.dev", "--subresource=status", "-n", where)
        assert op("create", "statefulsets.apps", "-n", where)
        assert op("patch", "kopfpeerings.kopf.dev", "-n", where)
        assert not op("get", "secrets", "-n", where)
        # Each watched namespace holds the engines' environment and a peering object.
        control_plane.kubectl("get", "configmap", f"{full}-env", "-n", where)
        control_plane.kubectl("get", "secret", f"{full}-env", "-n", where)
        control_plane.kubectl("get", "kopfpeerings.kopf.dev", "-n", where)
    for where in (unwatched, "default"):
        assert not op("list", "markets.cex.dev", "-n", where)
        assert not op("create", "statefulsets.apps", "-n", where)
    assert op("list", "customresourcedefinitions.apiextensions.k8s.io")
    assert op("watch", "namespaces")  # Kopf lists them even for a fixed list
    assert not op("patch", "namespaces")
    assert not op("patch", "clusterkopfpeerings.kopf.dev")
    cluster_roles = {
        r["metadata"]["name"]
        for r in control_plane.get_json(
            "clusterroles", "-l", f"app.kubernetes.io/instance={release.name}"
        )["items"]
    }
    assert cluster_roles == {f"{full}-{ns}-operator-cluster-read"}


def test_same_release_name_in_two_namespaces(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    namespaces: list[str],
    releases: list[Release],
) -> None:
    """Cluster-scoped names carry the release's name and namespace, so they never clash."""
    name = unique("twin")
    first, second = (new_ns(control_plane, namespaces) for _ in range(2))
    for ns in (first, second):
        install(helm, releases, ns, "-f", EXTERNAL, name=name)
    roles = {
        r["metadata"]["name"]
        for r in control_plane.get_json("clusterroles", "-l", f"app.kubernetes.io/instance={name}")[
            "items"
        ]
    }
    assert roles == {f"{name}-cex-{first}-operator", f"{name}-cex-{second}-operator"}


def test_dev_infrastructure_install(
    control_plane: ControlPlane,
    helm: Helm,
    chart_crds: list[str],
    namespaces: list[str],
    releases: list[Release],
) -> None:
    """devInfra: Kafka, PostgreSQL and Redis StatefulSets, the addresses pointing at them, and
    the migration as a Job of the release (a hook would run before the database exists)."""
    ns = new_ns(control_plane, namespaces)
    release = install(helm, releases, ns, "-f", DEV)
    full = f"{release.name}-cex"
    statefulsets = {
        s["metadata"]["name"]: s for s in control_plane.get_json("statefulsets", "-n", ns)["items"]
    }
    assert set(statefulsets) == {f"{full}-{c}" for c in ("kafka", "postgres", "redis")}
    for name, sts in statefulsets.items():
        assert sts["status"].get("readyReplicas") == 1, name
    env = control_plane.get_json("configmap", f"{full}-env", "-n", ns)["data"]
    assert env["CEX_KAFKA_BOOTSTRAP"] == f"{full}-kafka.{ns}.svc:9092"
    assert env["CEX_REDIS_URL"] == f"redis://{full}-redis.{ns}.svc:6379/0"

    jobs = control_plane.get_json("jobs", "-n", ns)["items"]
    assert [j["metadata"]["name"] for j in jobs] == [f"{full}-migrate-1"]

    def migrated() -> bool:
        job = control_plane.get_json("job", f"{full}-migrate-1", "-n", ns)
        return int(job.get("status", {}).get("succeeded", 0)) == 1

    wait_until(migrated, timeout=60, what="the migration Job to complete")

    # The public API's generated dev Secret survives an upgrade unchanged: the API keys
    # sealed with its keys stay readable.
    secret = control_plane.get_json("secret", f"{full}-api", "-n", ns)["data"]
    assert set(secret) == {"keys", "keyId", "token"}
    helm_wait(helm, ns, "upgrade", release.name, CHART, "-n", ns, "--reuse-values")
    assert control_plane.get_json("secret", f"{full}-api", "-n", ns)["data"] == secret


def test_bad_value_fails_install_before_creating_anything(
    control_plane: ControlPlane, helm: Helm, namespaces: list[str]
) -> None:
    ns = new_ns(control_plane, namespaces)
    proc = helm(
        "install", "rel", CHART, "-n", ns, "-f", EXTERNAL,
        "--set", "operator.replicas=two", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "at '/operator/replicas'" in proc.stderr
    assert not control_plane.get_json("all", "-n", ns)["items"]
    with pytest.raises(KubectlError):
        control_plane.kubectl("get", "secret", "rel-cex-env", "-n", ns)

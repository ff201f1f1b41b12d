"""The whole exchange on the real node, as `make k8s-up` runs it (scripts/images/k8s-up.sh:
the locally built images imported into the node, the chart with every service, the operator
and devInfra's Kafka, PostgreSQL and Redis in namespace `default`, the example Markets).

A Market applied with kubectl becomes Ready with its engine pod really running; orders sent
to the public API's Service trade and settle; `cex check` passes in a Job; the engine pod
deleted while orders flow comes back, recovers, and no order is lost or duplicated.
Everything goes through kubectl and the Services, as an operator of the exchange would."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from e2e.api.signing import Signer

from .exchange import conditions, is_ready
from .kube import REPO_ROOT, ControlPlane, wait_until

NS = "default"
RELEASE = "cex"
K8S_UP = REPO_ROOT / "scripts" / "images" / "k8s-up.sh"
LIB = REPO_ROOT / "scripts" / "cluster" / "lib.sh"


@dataclass
class K8sExchange:
    cp: ControlPlane
    api: str  # the public API's Service, http://<cluster ip>:<port> (kube-proxy on the host)

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("-n", NS, *args, **kw)

    def cex(self, *args: str) -> Any:
        """The `cex` command in the API's pod (the chart's environment: its database)."""
        out = self.kubectl("exec", f"deploy/{RELEASE}-api", "--", "cex", *args, timeout=120)
        return json.loads(out.stdout) if out.stdout.strip().startswith("{") else out.stdout

    def trader(self, email: str, deposits: dict[str, str]) -> Signer:
        self.cex("admin", "user", "create", email)
        for asset, amount in deposits.items():
            self.cex("admin", "deposit", email, asset, amount, "--external-id", f"{email}-{asset}")
        key = self.cex("admin", "apikey", "create", email)
        return Signer.hmac(key["api_key"], key["secret"])

    def signed(self, method: str, path: str, signer: Signer, params: dict[str, Any]) -> Any:
        with httpx.Client(base_url=self.api, timeout=30) as http:
            if method == "GET":
                response = http.get(f"{path}?{signer.query(params)}", headers=signer.headers)
            else:
                response = http.request(
                    method,
                    path,
                    content=signer.form(params),
                    headers=signer.headers | {"Content-Type": "application/x-www-form-urlencoded"},
                )
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def balances(self, signer: Signer) -> dict[str, tuple[Decimal, Decimal]]:
        account = self.signed("GET", "/api/v3/account", signer, {})
        return {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}


def helm(cp: ControlPlane, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    cmd = [str(cp.bin_dir / "helm"), f"--kubeconfig={cp.kubeconfig}", "-n", NS, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture(scope="module")
def k8s(control_plane: ControlPlane) -> Iterator[K8sExchange]:
    """`make k8s-up` on the test session's cluster (quick if it is already up). An exchange
    the tests installed is uninstalled afterwards (as make k8s-down does): its operator
    watches every namespace, and the kwok-based operator tests run operators of their own."""
    installed_before = helm(control_plane, "status", RELEASE).returncode == 0
    env = {**os.environ, "CEX_REAL_NODE": "true"}
    started = time.monotonic()
    proc = subprocess.run(
        [str(K8S_UP)], capture_output=True, text=True, env=env, timeout=45 * 60, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, f"k8s-up.sh failed:\n{proc.stderr[-6000:]}"
    print(f"make k8s-up took {time.monotonic() - started:.0f} s")
    svc = control_plane.get_json("service", f"{RELEASE}-api", "-n", NS)
    api = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    # helm's --wait covers the chart's Deployments; the engines roll after it, when the new
    # operator gives their StatefulSets the new image. Tests start once that is done.
    exchange = K8sExchange(control_plane, api)
    wait_until(lambda: engines_rolled_out(exchange), timeout=300, what="engines on the new image")
    try:
        yield exchange
    finally:
        if not installed_before:
            # The operator drains the Markets while it still runs, then the release goes.
            control_plane.kubectl(
                "delete", "markets", "--all", "-n", NS, "--timeout=180s", check=False, timeout=200
            )
            helm(control_plane, "uninstall", RELEASE, "--wait", "--timeout", "5m")


def engines_rolled_out(k8s: K8sExchange) -> bool:
    api = k8s.cp.get_json("deployment", f"{RELEASE}-api", "-n", NS)
    image = api["spec"]["template"]["spec"]["containers"][0]["image"]
    for market in ("btc-usdt", "eth-usdt"):
        sts = k8s.cp.get_json("statefulset", f"{market}-engine", "-n", NS)
        status = sts.get("status", {})
        if (
            sts["spec"]["template"]["spec"]["containers"][0]["image"] != image
            or status.get("updateRevision") != status.get("currentRevision")
            or status.get("readyReplicas") != 1
            or not engine_running(k8s, market)
        ):
            return False
    return True


def engine_running(k8s: K8sExchange, market: str) -> bool:
    pod = k8s.kubectl("get", "pod", f"{market}-engine-0", "-o", "json", check=False)
    if pod.returncode != 0:
        return False
    statuses = json.loads(pod.stdout).get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in s["state"] and s["ready"] for s in statuses)


def market_manifest(name: str, symbol: str, base: str) -> dict[str, Any]:
    return {
        "apiVersion": "cex.dev/v1alpha1",
        "kind": "Market",
        "metadata": {"name": name},
        "spec": {
            "symbol": symbol,
            "base": base,
            "quote": "USDT",
            "basePrecision": 8,
            "quotePrecision": 6,
            "tickSize": "0.1",
            "lotSize": "0.00001",
            "minQty": "0.00001",
            "maxQty": "9000",
            "minNotional": "5",
            "makerFee": "0.001",
            "takerFee": "0.001",
            "status": "Trading",
        },
    }


def test_examples_run_real_engine_pods(k8s: K8sExchange) -> None:
    for market in ("btc-usdt", "eth-usdt"):
        assert is_ready(k8s.cp, NS, market), conditions(k8s.cp, NS, market)
        assert engine_running(k8s, market)
        pod = k8s.cp.get_json("pod", f"{market}-engine-0", "-n", NS)
        assert pod["spec"]["nodeName"] == k8s.cp.real_node()["metadata"]["name"]  # type: ignore[index]
        # Its own process in its own container: pid 1 of the container is the engine.
        cmdline = k8s.kubectl("exec", f"{market}-engine-0", "--", "cat", "/proc/1/cmdline")
        assert "cex" in cmdline.stdout.replace("\0", " "), cmdline.stdout


def test_applied_market_becomes_ready_with_a_running_engine_and_drains_on_delete(
    k8s: K8sExchange,
) -> None:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    symbol = f"E{name[-6:].upper()}USDT"
    manifest = market_manifest(name, symbol, f"E{name[-6:].upper()}")
    started = time.monotonic()
    k8s.cp.apply_obj(manifest, "-n", NS)
    wait_until(
        lambda: is_ready(k8s.cp, NS, name) and engine_running(k8s, name),
        timeout=120,
        interval=0.2,
        what=f"{name} Ready with a running engine pod ({conditions(k8s.cp, NS, name)})",
    )
    took = time.monotonic() - started
    print(f"FIGURE market apply -> Ready with a running engine pod: {took:.1f} s")
    status = k8s.cp.get_json("market", name, "-n", NS)["status"]
    assert isinstance(status["partition"], int)
    # The registry entry and the Redis key, read in devInfra's pods.
    sql = f"SELECT partition, status FROM markets WHERE name = '{name}'"
    rows = k8s.kubectl(
        "exec", f"{RELEASE}-postgres-0", "--", "sh", "-c",
        f'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U cex -d cex -tAc "{sql}"',
    ).stdout.strip()  # fmt: skip
    assert rows == f"{status['partition']}|TRADING", rows
    keys = k8s.kubectl(
        "exec", f"{RELEASE}-redis-0", "--", "redis-cli", "--scan", "--pattern", f"*market:{name}"
    ).stdout.split()
    assert keys, "no Redis key for the market"

    k8s.kubectl("delete", "market", name, "--timeout=180s")
    wait_until(
        lambda: k8s.kubectl("get", "pod", f"{name}-engine-0", check=False).returncode != 0,
        timeout=120,
        what="the engine pod gone after the drain",
    )


def test_orders_through_the_public_api_service_trade_and_settle(k8s: K8sExchange) -> None:
    tag = uuid.uuid4().hex[:8]
    seller = k8s.trader(f"seller-{tag}@example.com", {"BTC": "1"})
    buyer = k8s.trader(f"buyer-{tag}@example.com", {"USDT": "10000"})
    sell = k8s.signed(
        "POST", "/api/v3/order", seller,
        {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01", "price": "50000", "newOrderRespType": "RESULT"},
    )  # fmt: skip
    assert sell["status"] == "NEW", sell
    buy = k8s.signed(
        "POST", "/api/v3/order", buyer,
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01", "price": "50000", "newOrderRespType": "FULL"},
    )  # fmt: skip
    assert buy["status"] == "FILLED", buy
    assert Decimal(buy["executedQty"]) == Decimal("0.01")

    # Settled: the buyer has the BTC less the taker fee, the seller the USDT less the maker fee.
    def settled() -> bool:
        return k8s.balances(buyer).get("BTC", (Decimal(0), Decimal(0)))[0] > 0

    wait_until(settled, timeout=60, what="the trade settled")
    assert k8s.balances(buyer)["BTC"] == (Decimal("0.00999"), Decimal(0))
    assert k8s.balances(buyer)["USDT"] == (Decimal("9500"), Decimal(0))
    assert k8s.balances(seller)["USDT"] == (Decimal("499.5"), Decimal(0))
    assert k8s.balances(seller)["BTC"] == (Decimal("0.99"), Decimal(0))
    trades = k8s.signed("GET", "/api/v3/myTrades", buyer, {"symbol": "BTCUSDT"})
    assert [(Decimal(t["price"]), Decimal(t["qty"]), t["isBuyer"]) for t in trades] == [
        (Decimal("50000"), Decimal("0.01"), True)
    ], trades


def run_check_job(k8s: K8sExchange) -> str:
    """`cex check` in a Job of the exchange's image and environment; its output."""
    api = k8s.cp.get_json("deployment", f"{RELEASE}-api", "-n", NS)
    (container,) = api["spec"]["template"]["spec"]["containers"]
    name = f"cex-check-{uuid.uuid4().hex[:6]}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "check",
                            "image": container["image"],
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["cex", "check"],
                            "env": container.get("env", []),
                            "envFrom": container.get("envFrom", []),
                        }
                    ],
                }
            },
        },
    }
    k8s.cp.create_obj(job, "-n", NS)
    wait_until(
        lambda: any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in k8s.cp.get_json("job", name, "-n", NS).get("status", {}).get("conditions", [])
        ),
        timeout=180,
        what=f"job {name} to finish",
    )
    logs = k8s.kubectl("logs", f"job/{name}").stdout
    status = k8s.cp.get_json("job", name, "-n", NS)["status"]
    k8s.kubectl("delete", "job", name, "--cascade=foreground", "--wait=false")
    assert status.get("succeeded") == 1, logs
    return logs


def test_cex_check_passes_in_a_job(k8s: K8sExchange) -> None:
    run_check_job(k8s)


def test_engine_pod_deleted_mid_trading_recovers_with_nothing_lost(k8s: K8sExchange) -> None:
    tag = uuid.uuid4().hex[:8]
    maker = k8s.trader(f"maker-{tag}@example.com", {"ETH": "10"})
    taker = k8s.trader(f"taker-{tag}@example.com", {"USDT": "100000"})
    placed: list[int] = []
    uid_before = k8s.cp.get_json("pod", "eth-usdt-engine-0", "-n", NS)["metadata"]["uid"]
    for i in range(20):
        if i == 8:
            k8s.kubectl("delete", "pod", "eth-usdt-engine-0", "--wait=false")
        order = k8s.signed(
            "POST", "/api/v3/order", maker,
            {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.1", "price": "2000", "newOrderRespType": "ACK"},
        )  # fmt: skip
        placed.append(order["orderId"])
    wait_until(
        lambda: (
            engine_running(k8s, "eth-usdt")
            and k8s.cp.get_json("pod", "eth-usdt-engine-0", "-n", NS)["metadata"]["uid"]
            != uid_before
        ),
        timeout=120,
        what="the engine pod restarted by its StatefulSet",
    )
    # Every order reaches the book once: 20 open sells of 0.1.
    wait_until(
        lambda: len(k8s.signed("GET", "/api/v3/openOrders", maker, {"symbol": "ETHUSDT"})) == 20,
        timeout=90,
        what="all 20 orders open",
    )
    # The taker sweeps them: exactly 2 ETH trades, no order filled twice.
    buy = k8s.signed(
        "POST", "/api/v3/order", taker,
        {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
         "quantity": "2.5", "price": "2000", "newOrderRespType": "FULL"},
    )  # fmt: skip
    assert Decimal(buy["executedQty"]) == Decimal("2"), buy
    trades = k8s.signed("GET", "/api/v3/myTrades", maker, {"symbol": "ETHUSDT"})
    assert sorted(t["orderId"] for t in trades) == sorted(placed)
    run_check_job(k8s)


def deployment_pod(k8s: K8sExchange, component: str) -> dict[str, Any]:
    pods = k8s.cp.get_json("pods", "-n", NS, "-l", f"app.kubernetes.io/component={component}")
    (pod,) = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    return pod  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("component", "price"), [("operator", "1900"), ("settlement", "1800"), ("relay", "1700")]
)
def test_a_service_pod_deleted_mid_trading_is_replaced_with_nothing_lost(
    k8s: K8sExchange, component: str, price: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    maker = k8s.trader(f"maker-{component}-{tag}@example.com", {"ETH": "10"})
    taker = k8s.trader(f"taker-{component}-{tag}@example.com", {"USDT": "100000"})
    before = deployment_pod(k8s, component)["metadata"]["uid"]
    placed: list[int] = []
    for i in range(10):
        if i == 4:
            k8s.kubectl(
                "delete", "pod", "-l", f"app.kubernetes.io/component={component}", "--wait=false"
            )
        order = k8s.signed(
            "POST", "/api/v3/order", maker,
            {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.1", "price": price, "newOrderRespType": "ACK"},
        )  # fmt: skip
        placed.append(order["orderId"])

    def replaced() -> bool:
        try:
            pod = deployment_pod(k8s, component)
        except ValueError:  # the old one terminating beside the new one
            return False
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return (
            bool(statuses)
            and pod["metadata"]["uid"] != before
            and all(s["ready"] for s in statuses)
        )

    wait_until(replaced, timeout=180, what=f"a new {component} pod Ready")
    wait_until(
        lambda: len(k8s.signed("GET", "/api/v3/openOrders", maker, {"symbol": "ETHUSDT"})) == 10,
        timeout=120,
        what="all 10 orders open",
    )
    buy = k8s.signed(
        "POST", "/api/v3/order", taker,
        {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
         "quantity": "1", "price": price, "newOrderRespType": "FULL"},
    )  # fmt: skip
    assert Decimal(buy["executedQty"]) == Decimal("1"), buy
    trades = k8s.signed("GET", "/api/v3/myTrades", maker, {"symbol": "ETHUSDT"})
    assert sorted(t["orderId"] for t in trades) == sorted(placed)
    # Settled once: 1 ETH less the 0.1% taker fee, and the maker's USDT less its fee.
    wait_until(
        lambda: k8s.balances(taker).get("ETH", (Decimal(0), Decimal(0)))[0] > 0,
        timeout=120,
        what="the trades settled",
    )
    assert k8s.balances(taker)["ETH"] == (Decimal("0.999"), Decimal(0))
    assert k8s.balances(maker)["USDT"] == (Decimal(price) * Decimal("0.999"), Decimal(0))
    # The Market is Ready again: its engine pod may flap unready for a moment on a loaded
    # node (seen once in a full run), so it gets time, not an instant's look.
    wait_until(
        lambda: is_ready(k8s.cp, NS, "eth-usdt"), timeout=90, what="the eth-usdt Market Ready"
    )


def containerd_socket() -> str:
    out = subprocess.run(
        ["bash", "-c", 'source "$1"; echo "$CEX_CONTAINERD_SOCKET"', "socket", str(LIB)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def test_helm_upgrade_to_a_new_image_rolls_the_services_with_no_lost_order(
    k8s: K8sExchange,
) -> None:
    api = k8s.cp.get_json("deployment", f"{RELEASE}-api", "-n", NS)
    image = api["spec"]["template"]["spec"]["containers"][0]["image"]  # cex:<tag>
    new_tag = f"e2e-{uuid.uuid4().hex[:6]}"
    # A new image for the node: the same content under a new name, as a release would be.
    ctr = ["ctr", "--address", containerd_socket(), "-n", "k8s.io"]
    subprocess.run([*ctr, "images", "tag", f"docker.io/library/{image}",
                    f"docker.io/library/cex:{new_tag}"], check=True)  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    maker = k8s.trader(f"maker-upgrade-{tag}@example.com", {"ETH": "10"})
    taker = k8s.trader(f"taker-upgrade-{tag}@example.com", {"USDT": "100000"})
    helm_cmd = [str(k8s.cp.bin_dir / "helm"), f"--kubeconfig={k8s.cp.kubeconfig}", "-n", NS]
    upgrade = subprocess.Popen(
        [*helm_cmd, "upgrade", RELEASE, str(REPO_ROOT / "charts" / "cex"), "--reuse-values",
         "--set", f"image.tag={new_tag}", "--wait", "--timeout", "10m"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    accepted: list[int] = []
    refused = 0
    while upgrade.poll() is None or len(accepted) < 5:
        # A client that retries what was refused or never answered, as a trading bot does.
        try:
            order = k8s.signed(
                "POST", "/api/v3/order", maker,
                {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.1", "price": "2500", "newOrderRespType": "ACK"},
            )  # fmt: skip
            accepted.append(order["orderId"])
        except (AssertionError, httpx.HTTPError):
            refused += 1
        time.sleep(0.5)
        if len(accepted) >= 90:
            break
    out, _ = upgrade.communicate(timeout=600)
    assert upgrade.returncode == 0, out
    for component in ("api", "trading", "settlement", "relay", "operator"):
        deployment = k8s.cp.get_json("deployment", f"{RELEASE}-{component}", "-n", NS)
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(new_tag)
    # Every accepted order is in the book once; nothing was lost in the roll.
    wait_until(
        lambda: (
            sorted(
                o["orderId"]
                for o in k8s.signed("GET", "/api/v3/openOrders", maker, {"symbol": "ETHUSDT"})
            )
            == sorted(accepted)
        ),
        timeout=120,
        what=f"the {len(accepted)} accepted orders open ({refused} refused during the roll)",
    )
    print(f"helm upgrade: {len(accepted)} orders accepted, {refused} refused during the roll")
    # The engines roll after helm (the new operator gives their StatefulSets the new image):
    # once they have, orders crossing the resting ones trade with every one of them (a
    # recovery that lost them from the book would leave the buy unfilled).
    wait_until(lambda: engines_rolled_out(k8s), timeout=300, what="engines on the new image")
    quantity = Decimal("0.1") * len(accepted)
    buy = k8s.signed(
        "POST", "/api/v3/order", taker,
        {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
         "quantity": str(quantity), "price": "2500", "newOrderRespType": "FULL"},
    )  # fmt: skip
    assert Decimal(buy["executedQty"]) == quantity, buy
    trades = k8s.signed("GET", "/api/v3/myTrades", maker, {"symbol": "ETHUSDT"})
    assert sorted(t["orderId"] for t in trades) == sorted(accepted)


def ctr_images() -> set[str]:
    ctr = ["ctr", "--address", containerd_socket(), "-n", "k8s.io", "images", "ls", "-q"]
    return set(subprocess.run(ctr, check=True, capture_output=True, text=True).stdout.split())


def pod_images(k8s: K8sExchange) -> set[str]:
    """The images every pod of the cluster names, as containerd names them."""
    pods = k8s.cp.get_json("pods", "-A")["items"]
    names = {c["image"] for p in pods for c in p["spec"]["containers"]}
    return {n if "/" in n else f"docker.io/library/{n}" for n in names}


def test_the_node_has_one_pause_image_and_imports_drop_unused_older_images(
    k8s: K8sExchange,
) -> None:
    # The pod sandbox's pause image is the cluster's (scripts/cluster/install.sh): the
    # images' build no longer makes a second one.
    lib = subprocess.run(
        ["bash", "-c", 'source "$1"; echo "$CEX_PAUSE_IMAGE"', "pause", str(LIB)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert [i for i in ctr_images() if "pause" in i] == [lib]
    # An older name of the exchange's image that nothing uses goes with the next import;
    # what pods use stays (nothing can be pulled again).
    api = k8s.cp.get_json("deployment", f"{RELEASE}-api", "-n", NS)
    image = api["spec"]["template"]["spec"]["containers"][0]["image"]
    unused = f"docker.io/library/cex:e2e-unused-{uuid.uuid4().hex[:6]}"
    ctr = ["ctr", "--address", containerd_socket(), "-n", "k8s.io"]
    subprocess.run([*ctr, "images", "tag", f"docker.io/library/{image}", unused], check=True)
    in_use = pod_images(k8s)
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "images" / "import.sh"), "cex"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    after = ctr_images()
    assert unused not in after, proc.stderr
    assert in_use <= after, (in_use - after, proc.stderr)


def symbol_status(k8s: K8sExchange, symbol: str) -> str:
    with httpx.Client(base_url=k8s.api, timeout=30) as http:
        info = http.get("/api/v3/exchangeInfo", params={"symbol": symbol}).json()
    return str(info["symbols"][0]["status"])


def test_market_halt_and_fee_change_reach_the_running_engine_pod(k8s: K8sExchange) -> None:
    tag = uuid.uuid4().hex[:8]
    maker = k8s.trader(f"maker-halt-{tag}@example.com", {"ETH": "1"})
    taker = k8s.trader(f"taker-halt-{tag}@example.com", {"USDT": "10000"})

    def patch(spec: dict[str, str]) -> None:
        k8s.kubectl("patch", "market", "eth-usdt", "--type=merge", "-p",
                    json.dumps({"spec": spec}))  # fmt: skip

    try:
        patch({"makerFee": "0.0005", "status": "Halted"})
        wait_until(lambda: symbol_status(k8s, "ETHUSDT") == "HALT", timeout=60, what="HALT")
        with httpx.Client(base_url=k8s.api, timeout=30) as http:
            refused = http.post(
                "/api/v3/order",
                content=maker.form({"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT",
                                    "timeInForce": "GTC", "quantity": "0.1", "price": "1500"}),
                headers=maker.headers | {"Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
        assert refused.status_code == 400, refused.text
        patch({"status": "Trading"})
        wait_until(lambda: symbol_status(k8s, "ETHUSDT") == "TRADING", timeout=60, what="TRADING")
        wait_until(lambda: is_ready(k8s.cp, NS, "eth-usdt"), timeout=60, what="eth-usdt Ready")
        k8s.signed(
            "POST", "/api/v3/order", maker,
            {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.1", "price": "1500", "newOrderRespType": "ACK"},
        )  # fmt: skip
        buy = k8s.signed(
            "POST", "/api/v3/order", taker,
            {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
             "quantity": "0.1", "price": "1500", "newOrderRespType": "FULL"},
        )  # fmt: skip
        assert Decimal(buy["executedQty"]) == Decimal("0.1"), buy
        # The engine charged the new maker fee (0.05% of 150 USDT).
        wait_until(
            lambda: k8s.balances(maker).get("USDT", (Decimal(0), Decimal(0)))[0] > 0,
            timeout=60,
            what="the trade settled",
        )
        assert k8s.balances(maker)["USDT"] == (Decimal("149.925"), Decimal(0))
        assert engine_running(k8s, "eth-usdt")
    finally:
        patch({"makerFee": "0.001", "status": "Trading"})


def price_in_the_spread(k8s: K8sExchange, symbol: str) -> str:
    """A whole price between the best bid and the best ask: orders resting from earlier tests
    take no part in a trade there."""
    with httpx.Client(base_url=k8s.api, timeout=30) as http:
        depth = http.get("/api/v3/depth", params={"symbol": symbol, "limit": 5}).json()
    bid = Decimal(depth["bids"][0][0]) if depth["bids"] else Decimal(30000)
    ask = Decimal(depth["asks"][0][0]) if depth["asks"] else Decimal(50000)
    price = ((bid + ask) / 2).quantize(Decimal(1))
    assert bid < price < ask, depth
    return str(price)


def test_helm_uninstall_keeps_the_crd_the_markets_and_the_data(k8s: K8sExchange) -> None:
    tag = uuid.uuid4().hex[:8]
    seller = k8s.trader(f"seller-keep-{tag}@example.com", {"BTC": "1"})
    buyer = k8s.trader(f"buyer-keep-{tag}@example.com", {"USDT": "10000"})
    price = price_in_the_spread(k8s, "BTCUSDT")
    k8s.signed(
        "POST", "/api/v3/order", seller,
        {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.02", "price": price, "newOrderRespType": "RESULT"},
    )  # fmt: skip
    buy = k8s.signed(
        "POST", "/api/v3/order", buyer,
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01", "price": price, "newOrderRespType": "FULL"},
    )  # fmt: skip
    assert buy["status"] == "FILLED", buy
    wait_until(
        lambda: k8s.balances(buyer).get("BTC", (Decimal(0), Decimal(0)))[0] > 0,
        timeout=60,
        what="the trade settled",
    )

    def state() -> dict[str, Any]:
        return {
            "seller": k8s.balances(seller),
            "buyer": k8s.balances(buyer),
            "open": k8s.signed("GET", "/api/v3/openOrders", seller, {"symbol": "BTCUSDT"}),
            "orders": k8s.signed("GET", "/api/v3/allOrders", buyer, {"symbol": "BTCUSDT"}),
            "trades": k8s.signed("GET", "/api/v3/myTrades", buyer, {"symbol": "BTCUSDT"}),
        }

    before = state()
    assert [Decimal(o["executedQty"]) for o in before["open"]] == [Decimal("0.01")]

    out = helm(k8s.cp, "uninstall", RELEASE, "--wait", "--timeout", "5m")
    assert out.returncode == 0, out.stderr
    # The CRD (the chart's crds/) and the Markets stay; so do devInfra's claims.
    assert k8s.cp.kubectl("get", "crd", "markets.cex.dev", check=False).returncode == 0
    assert {m["metadata"]["name"] for m in k8s.cp.get_json("markets", "-n", NS)["items"]} >= {
        "btc-usdt",
        "eth-usdt",
    }
    claims = {c["metadata"]["name"] for c in k8s.cp.get_json("pvc", "-n", NS)["items"]}
    assert {f"data-{RELEASE}-{c}-0" for c in ("kafka", "postgres", "redis")} <= claims

    # Installed again (make k8s-up: helm upgrade --install), it finds everything.
    proc = subprocess.run(
        [str(K8S_UP)], capture_output=True, text=True, timeout=45 * 60, cwd=REPO_ROOT,
        env={**os.environ, "CEX_REAL_NODE": "true"},
    )  # fmt: skip
    assert proc.returncode == 0, f"k8s-up.sh failed:\n{proc.stderr[-6000:]}"
    svc = k8s.cp.get_json("service", f"{RELEASE}-api", "-n", NS)
    k8s.api = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"
    wait_until(lambda: engines_rolled_out(k8s), timeout=300, what="engines on the new image")
    wait_until(
        lambda: all(is_ready(k8s.cp, NS, m) for m in ("btc-usdt", "eth-usdt")),
        timeout=120,
        what="the Markets Ready again",
    )
    assert state() == before
    # The engine's book came back too: the rest of the resting sell trades.
    again = k8s.signed(
        "POST", "/api/v3/order", buyer,
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
         "quantity": "0.01", "price": price, "newOrderRespType": "FULL"},
    )  # fmt: skip
    assert again["status"] == "FILLED", again
    run_check_job(k8s)

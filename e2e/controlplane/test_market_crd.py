"""The Market CRD on a real API server: examples apply, printer columns and `kubectl explain`
work, and the server itself rejects invalid markets with a message that says what is wrong."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from .kube import REPO_ROOT, ControlPlane, KubectlError

EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(scope="module")
def btc_usdt(control_plane: ControlPlane) -> dict[str, Any]:
    """examples/btc-usdt.yaml as a dict (kubectl does the YAML parsing)."""
    out = control_plane.kubectl(
        "create", "--dry-run=client", "-o", "json", "-f", str(EXAMPLES / "btc-usdt.yaml")
    ).stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def market(base: dict[str, Any], name: str = "m", **spec: Any) -> dict[str, Any]:
    """A copy of `base` named `name` with spec fields overridden (None deletes one)."""
    obj = copy.deepcopy(base)
    obj["metadata"] = {"name": name}
    for key, value in spec.items():
        if value is None:
            obj["spec"].pop(key, None)
        else:
            obj["spec"][key] = value
    return obj


def rejection(cp: ControlPlane, obj: dict[str, Any], namespace: str) -> str:
    """Create `obj` for real and return the API server's error; fail if it was accepted."""
    proc = cp.create_obj(obj, "-n", namespace, check=False)
    assert proc.returncode != 0, f"the API server accepted an invalid Market: {obj['spec']}"
    assert "is invalid" in proc.stderr or "error" in proc.stderr.lower(), proc.stderr
    return proc.stderr


def test_crd_is_established_with_names(control_plane: ControlPlane, market_crd: str) -> None:
    crd = control_plane.get_json("crd", market_crd)
    names = crd["spec"]["names"]
    assert names["kind"] == "Market"
    assert names["shortNames"] == ["mkt"]
    assert names["categories"] == ["cex"]
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    # Structural, no preserve-unknown-fields anywhere: nothing unknown survives.
    assert "x-kubernetes-preserve-unknown-fields" not in json.dumps(crd["spec"])


def test_examples_apply_and_print_columns(
    control_plane: ControlPlane, market_crd: str, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    out = control_plane.kubectl("get", "markets", "-n", namespace).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SYMBOL", "STATUS", "READY", "PARTITION", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["btc-usdt"][1:3] == ["BTCUSDT", "Trading"]
    assert rows["eth-usdt"][1:3] == ["ETHUSDT", "Trading"]

    # The short name and the category reach the same objects.
    for resource in ("mkt", "cex"):
        names = control_plane.kubectl("get", resource, "-n", namespace, "-o", "name").stdout
        assert set(names.split()) == {"market.cex.dev/btc-usdt", "market.cex.dev/eth-usdt"}

    wide = control_plane.kubectl("get", "mkt", "-n", namespace, "-o", "wide").stdout
    assert wide.splitlines()[0].split() == [
        "NAME", "SYMBOL", "STATUS", "READY", "PARTITION", "TICK", "LOT", "AGE",
    ]  # fmt: skip

    # Applying the same files again changes nothing.
    again = control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES)).stdout
    assert again.count("unchanged") == 2, again


def test_status_subresource_feeds_ready_and_partition_columns(
    control_plane: ControlPlane, market_crd: str, namespace: str, btc_usdt: dict[str, Any]
) -> None:
    control_plane.create_obj(market(btc_usdt, "btc-usdt"), "-n", namespace)
    ready: dict[str, Any] = {
        "type": "Ready",
        "status": "True",
        "reason": "EngineServing",
        "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    status = {"status": {"observedGeneration": 1, "partition": 3, "conditions": [ready]}}
    control_plane.kubectl(
        "patch", "market", "btc-usdt", "-n", namespace,
        "--subresource=status", "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip
    row = control_plane.kubectl("get", "mkt", "btc-usdt", "-n", namespace, "--no-headers")
    assert row.stdout.split()[:5] == ["btc-usdt", "BTCUSDT", "Trading", "True", "3"]

    # Status written through the main resource is ignored (it is a subresource).
    control_plane.kubectl(
        "patch", "market", "btc-usdt", "-n", namespace,
        "--type=merge", "-p", '{"status": {"partition": 9}}',
    )  # fmt: skip
    assert control_plane.get_json("market", "btc-usdt", "-n", namespace)["status"]["partition"] == 3

    bad = {"status": {"conditions": [{**ready, "type": "Happy"}]}}
    proc = control_plane.kubectl(
        "patch", "market", "btc-usdt", "-n", namespace,
        "--subresource=status", "--type=merge", "-p", json.dumps(bad), check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Unsupported value" in proc.stderr
    assert "Happy" in proc.stderr


def test_status_defaults_to_trading(
    control_plane: ControlPlane, market_crd: str, namespace: str, btc_usdt: dict[str, Any]
) -> None:
    control_plane.create_obj(market(btc_usdt, "defaulted", status=None), "-n", namespace)
    obj = control_plane.get_json("market", "defaulted", "-n", namespace)
    assert obj["spec"]["status"] == "Trading"


def test_explain_teaches_the_fields(control_plane: ControlPlane, market_crd: str) -> None:
    out = control_plane.kubectl("explain", "market.spec.tickSize").stdout
    assert "FIELD: tickSize <string>" in out
    assert "Price increment" in out
    assert "quotePrecision" in out

    spec = control_plane.kubectl("explain", "market.spec").stdout
    for field in (
        "symbol", "base", "quote", "basePrecision", "quotePrecision", "tickSize", "lotSize",
        "minQty", "maxQty", "minNotional", "makerFee", "takerFee", "status", "engine",
    ):  # fmt: skip
        assert f"  {field}\t" in spec, f"{field} missing from `kubectl explain market.spec`"
    assert "-required-" in spec

    conditions = control_plane.kubectl("explain", "mkt.status.conditions.type").stdout
    assert "ENUM" in conditions
    assert "PartitionReady" in conditions


# (spec overrides, text the API server's message must contain)
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "grid-not-exact": (
        {"tickSize": "0.01", "lotSize": "0.00001", "minQty": "0.00001"},
        "decimal places of tickSize plus those of lotSize must not exceed quotePrecision",
    ),
    "lot-finer-than-base-unit": (
        {"basePrecision": 4, "tickSize": "1"},
        "lotSize has more decimal places than basePrecision allows",
    ),
    "min-qty-off-lot-grid": ({"minQty": "0.000015"}, "minQty has more decimal places than lotSize"),
    "min-notional-finer-than-quote-unit": (
        {"minNotional": "0.0000001"},
        "minNotional has more decimal places than quotePrecision allows",
    ),
    "decimal-trailing-zero": ({"tickSize": "0.10"}, "spec.tickSize in body should match"),
    "decimal-exponent": ({"lotSize": "1e-5"}, "spec.lotSize in body should match"),
    "decimal-as-number": ({"minNotional": 5}, 'spec.minNotional: Invalid value: "integer"'),
    "decimal-zero": ({"maxQty": "0"}, "maxQty must be greater than zero"),
    "negative-fee": ({"makerFee": "-0.001"}, "makerFee must not be negative"),
    "fee-above-bound": ({"takerFee": "0.2"}, "takerFee must be at most 0.1"),
    "fee-too-many-decimals": ({"takerFee": "0.0000001"}, "spec.takerFee: Too long"),
    "fee-one": ({"makerFee": "1"}, "spec.makerFee in body should match"),
    "min-qty-above-max-qty": (
        {"minQty": "10", "maxQty": "9"},
        "minQty must not be greater than maxQty",
    ),
    "symbol-not-base-plus-quote": ({"symbol": "XBTUSDT"}, "symbol must be base followed by quote"),
    "symbol-lowercase": ({"symbol": "btcusdt"}, "spec.symbol in body should match"),
    "precision-above-18": ({"quotePrecision": 19}, "should be less than or equal to 18"),
    "unknown-status": ({"status": "Paused"}, 'spec.status: Unsupported value: "Paused"'),
    "missing-required": ({"lotSize": None}, "spec.lotSize: Required value"),
    "unknown-engine-field": ({"engine": {"replicas": 2}}, 'unknown field "spec.engine.replicas"'),
    "snapshot-interval-zero": (
        {"engine": {"snapshotEverySeconds": 0}},
        "should be greater than or equal to 1",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_market_is_rejected(
    control_plane: ControlPlane,
    market_crd: str,
    namespace: str,
    btc_usdt: dict[str, Any],
    case: str,
) -> None:
    overrides, expected = INVALID[case]
    message = rejection(control_plane, market(btc_usdt, case, **overrides), namespace)
    assert expected in message, message
    if case == "negative-fee":
        # Only the relevant rules fire: a negative fee is not also "above 0.1".
        assert "at most 0.1" not in message, message


def test_unknown_field_is_rejected_not_pruned(
    control_plane: ControlPlane, market_crd: str, namespace: str, btc_usdt: dict[str, Any]
) -> None:
    obj = market(btc_usdt, "typo")
    obj["spec"]["tickSise"] = "0.1"
    message = rejection(control_plane, obj, namespace)
    assert 'unknown field "spec.tickSise"' in message, message


@pytest.mark.parametrize(
    ("min_qty", "max_qty", "valid"),
    [
        ("0.00001", "9000", True),
        ("2", "2", True),
        ("0.45", "0.5", True),
        ("0.5", "0.45", False),
        ("9", "10", True),
        ("10", "9", False),
        ("100.5", "100.49", False),
        ("100.49", "100.5", True),
        ("1.00001", "1", False),
    ],
)
def test_min_qty_max_qty_ordering(
    control_plane: ControlPlane,
    market_crd: str,
    namespace: str,
    btc_usdt: dict[str, Any],
    min_qty: str,
    max_qty: str,
    valid: bool,
) -> None:
    obj = market(btc_usdt, "ordering", minQty=min_qty, maxQty=max_qty)
    proc = control_plane.create_obj(obj, "-n", namespace, "--dry-run=server", check=False)
    if valid:
        assert proc.returncode == 0, proc.stderr
    else:
        assert "minQty must not be greater than maxQty" in proc.stderr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("symbol", "ETHUSDT"),
        ("base", "ETH"),
        ("quote", "USDC"),
        ("basePrecision", 9),
        ("quotePrecision", 8),
        ("tickSize", "1"),
        ("lotSize", "0.001"),
    ],
)
def test_identity_fields_are_immutable(
    control_plane: ControlPlane,
    market_crd: str,
    namespace: str,
    btc_usdt: dict[str, Any],
    field: str,
    value: Any,
) -> None:
    control_plane.create_obj(market(btc_usdt, "btc-usdt"), "-n", namespace)
    proc = control_plane.kubectl(
        "patch", "market", "btc-usdt", "-n", namespace,
        "--type=merge", "-p", json.dumps({"spec": {field: value}}), check=False,
    )  # fmt: skip
    assert proc.returncode != 0, f"{field} changed on an existing Market"
    assert f"{field} is immutable" in proc.stderr, proc.stderr


def test_changed_symbol_via_apply_is_rejected(
    control_plane: ControlPlane, market_crd: str, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "btc-usdt.yaml"))
    changed = (EXAMPLES / "btc-usdt.yaml").read_text().replace("BTCUSDT", "XBTUSDT")
    with pytest.raises(KubectlError) as err:
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", stdin=changed)
    assert "symbol is immutable" in err.value.stderr
    assert control_plane.get_json("mkt", "btc-usdt", "-n", namespace)["spec"]["symbol"] == "BTCUSDT"


def test_limits_fees_and_status_can_change(
    control_plane: ControlPlane, market_crd: str, namespace: str, btc_usdt: dict[str, Any]
) -> None:
    control_plane.create_obj(market(btc_usdt, "btc-usdt"), "-n", namespace)
    patch = {
        "spec": {
            "minQty": "0.0001",
            "maxQty": "100",
            "minNotional": "10",
            "makerFee": "0",
            "takerFee": "0.1",
            "status": "CancelOnly",
            "engine": {
                "image": "example.invalid/cex/engine:0.1.0",
                "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
                "snapshotEveryCommands": 10000,
                "snapshotEverySeconds": 30,
            },
        }
    }
    control_plane.kubectl(
        "patch", "market", "btc-usdt", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    spec = control_plane.get_json("market", "btc-usdt", "-n", namespace)["spec"]
    assert spec["status"] == "CancelOnly"
    assert spec["takerFee"] == "0.1"
    assert spec["engine"]["resources"]["requests"]["memory"] == "256Mi"

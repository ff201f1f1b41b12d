from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cex.core.errors import AmountError, MarketConfigError
from cex.core.events import ConfigUpdateV2, MarketControl, MarketControlAction, MarketStatus
from cex.core.market import MarketConfig, fee, transition_commands

from .helpers import SYMBOL, config

SPEC: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "base": "BTC",
    "quote": "USDT",
    "basePrecision": 8,
    "quotePrecision": 8,
    "tickSize": "0.01",
    "lotSize": "0.00001",
    "minQty": "0.00001",
    "maxQty": "9000",
    "minNotional": "5",
    "makerFee": "0.001",
    "takerFee": "0.002",
    "status": "CancelOnly",
}


def test_from_spec_reads_the_crd_shape() -> None:
    m = MarketConfig.from_spec("btc-usdt", SPEC)
    assert m.name == "btc-usdt"
    assert m.tick_size == Decimal("0.01")
    assert (m.maker_fee_ppm, m.taker_fee_ppm) == (1000, 2000)
    assert m.status is MarketStatus.CANCEL_ONLY
    assert m.quote_units_per_tick_lot == 10  # 0.01 × 0.00001 × 1e8
    assert m.base_units_per_lot == 1000
    assert (m.min_qty_lots, m.max_qty_lots) == (1, 900_000_000)
    assert m.min_notional_units == 500_000_000


def test_from_spec_errors_are_config_errors() -> None:
    with pytest.raises(MarketConfigError, match="missing 'tickSize'"):
        MarketConfig.from_spec("btc-usdt", {k: v for k, v in SPEC.items() if k != "tickSize"})
    with pytest.raises(MarketConfigError, match="status"):
        MarketConfig.from_spec("btc-usdt", {**SPEC, "status": "Open"})
    with pytest.raises(MarketConfigError, match="tick_size"):
        MarketConfig.from_spec("btc-usdt", {**SPEC, "tickSize": "1e-2"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quote_precision": 2}, "notionals not exact"),
        ({"base_precision": 2}, "finer than the base asset"),
        ({"min_qty": "2", "max_qty": "1"}, "max_qty must not be below min_qty"),
        ({"min_qty": "0.0015"}, "multiple of"),
        ({"tick_size": "0"}, "tick_size"),
        ({"maker_fee": "0.2"}, "maker_fee"),
        ({"symbol": "ETHUSDT"}, "symbol must be"),
        ({"name": "BTC_USDT"}, "DNS label"),
        ({"base": "usdt"}, "asset codes"),
        ({"base": "USDT"}, "must differ"),
        ({"quote_precision": 40}, "quote_precision"),
        ({"min_notional": "0.0000001"}, "min_notional"),
        ({"max_qty": "10000000000000000000"}, "more than a 64-bit quantity"),
        ({"tick_size": "1", "max_qty": "100000000000000"}, "38-digit amounts"),
    ],
)
def test_invalid_configs(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MarketConfigError, match=message):
        config(**changes)


def test_notional_base_units_and_fees() -> None:
    m = config()
    assert m.notional(12345, 7) == 12345 * 7 * 10
    assert m.base_units(7) == 700_000
    # fees round up, in the exchange's favour
    assert m.maker_fee(999) == 1  # 0.999 → 1
    assert m.taker_fee(1000) == 2
    assert m.taker_fee(0) == 0
    assert fee(1_000_001, 1) == 2


def test_edges_parse_and_format() -> None:
    m = config()
    assert m.price_to_ticks("123.45") == 12345
    assert m.qty_to_lots("0.005") == 5
    assert m.format_price(12345) == "123.45"
    assert m.format_qty(5) == "0.005"
    assert m.format_quote(1) == "0.000001"
    assert m.quote_to_units("1.5") == 1_500_000
    assert m.format_base(m.base_to_units("0.1")) == "0.10000000"
    with pytest.raises(AmountError):
        m.qty_to_lots("1000.001")  # above max_qty
    with pytest.raises(AmountError):
        m.price_to_ticks("1.001")  # off the tick


def test_copies_are_validated_and_codec_round_trips() -> None:
    m = config()
    assert m.with_fees(5, 6).taker_fee_ppm == 6
    assert m.with_status(MarketStatus.HALTED).status is MarketStatus.HALTED
    with pytest.raises(MarketConfigError):
        m.with_fees(-1, 0)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(m), type=MarketConfig) == m
    with pytest.raises(msgspec.ValidationError, match="maker_fee_ppm"):
        msgspec.msgpack.decode(
            msgspec.msgpack.encode(msgspec.structs.asdict(m) | {"maker_fee_ppm": 10**6}),
            type=MarketConfig,
        )


@given(
    tick=st.integers(min_value=0, max_value=6),
    lot=st.integers(min_value=0, max_value=6),
    qp=st.integers(min_value=0, max_value=12),
)
def test_validation_guarantees_exact_notionals(tick: int, lot: int, qp: int) -> None:
    """Either the config is refused, or every notional is a whole number of quote units."""
    try:
        m = config(tick_size=f"{Decimal(1).scaleb(-tick)}", lot_size="1", min_qty="1",
                   max_qty="10", quote_precision=qp, base_precision=lot)  # fmt: skip
    except MarketConfigError:
        assert tick > qp
        return
    price, qty = 12345, 7
    exact = Decimal(price) * m.tick_size * Decimal(qty) * m.lot_size
    assert exact.scaleb(qp) == m.notional(price, qty)


def test_the_example_market_resources_are_valid_configs() -> None:
    """The Market resources shipped in examples/ build configs the engine can trade."""
    import pathlib

    yaml = pytest.importorskip("yaml")
    root = pathlib.Path(__file__).resolve().parents[2] / "examples"
    markets = [
        doc
        for path in sorted(root.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "Market"
    ]
    if not markets:
        pytest.skip("no example Market resources")
    for doc in markets:
        m = MarketConfig.from_spec(doc["metadata"]["name"], doc["spec"])
        assert m.quote_units_per_tick_lot >= 1
        assert m.name == doc["metadata"]["name"]


def test_transition_commands_fees_first_then_status() -> None:
    old = config()
    assert transition_commands(old, config(), ts=5) == []
    new = config(maker_fee="0.0005").with_status(MarketStatus.CANCEL_ONLY)
    assert transition_commands(old, new, ts=5) == [
        ConfigUpdateV2(
            market=SYMBOL,
            ts=5,
            maker_fee_ppm=500,
            taker_fee_ppm=2000,
            min_qty_lots=1,
            max_qty_lots=1_000_000,
            min_notional_units=0,
        ),
        MarketControl(market=SYMBOL, ts=5, action=MarketControlAction.CANCEL_ONLY),
    ]
    resumed = transition_commands(new, new.with_status(MarketStatus.TRADING), ts=6)
    assert resumed == [MarketControl(market=SYMBOL, ts=6, action=MarketControlAction.RESUME)]

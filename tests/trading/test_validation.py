"""Order requests against the market config: each bad input gets Binance's code and a
message naming the problem (pure: no database)."""

from __future__ import annotations

import pytest

from cex.core.events import OrderType, Side, TimeInForce
from cex.core.market import MarketConfig
from cex.trading.errors import TradingError
from cex.trading.validation import LOCK_ALL_AVAILABLE, OrderRequest, validate
from tests.fixtures import example_specs

BTC = MarketConfig.from_spec("btc-usdt", example_specs()["btc-usdt"])  # tick 0.1, lot 0.00001


def request(**overrides: object) -> OrderRequest:
    fields: dict[str, object] = {
        "user_id": 7,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "newClientOrderId": "c1",
        "timeInForce": "GTC",
        "quantity": "0.5",
        "price": "30000.1",
    }
    fields.update(overrides)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def test_limit_buy_locks_its_notional_in_quote_units() -> None:
    order = validate(request(), BTC)
    assert (order.side, order.type, order.time_in_force) == (
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.GTC,
    )
    assert order.price == 300001  # ticks of 0.1
    assert order.quantity == 50000  # lots of 0.00001
    assert order.locked_asset == "USDT"
    assert order.lock == 15_000_050_000  # 15000.05 USDT in micro-USDT


def test_limit_sell_locks_base_units() -> None:
    order = validate(request(side="SELL"), BTC)
    assert (order.locked_asset, order.lock) == ("BTC", 50_000_000)  # 0.5 BTC in satoshi


def test_market_buy_by_quote_locks_the_quote_amount() -> None:
    order = validate(
        request(type="MARKET", price=None, timeInForce=None, quantity=None, quoteOrderQty="100"),
        BTC,
    )
    assert (order.quote_order_qty, order.lock, order.time_in_force) == (
        100_000_000,
        100_000_000,
        TimeInForce.IOC,
    )


def test_market_buy_by_quantity_locks_everything_available() -> None:
    order = validate(request(type="MARKET", price=None, timeInForce=None), BTC)
    assert order.lock == LOCK_ALL_AVAILABLE


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"price": "30000.15"}, -1013, "Filter failure: PRICE_FILTER"),
        ({"price": "0"}, -1013, "Filter failure: PRICE_FILTER"),
        ({"price": "-1"}, -1100, "parameter 'price'"),
        ({"price": "1e5"}, -1100, "parameter 'price'"),
        ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"quantity": "9000.00001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"quantity": "0.00001", "price": "100"}, -1013, "Filter failure: NOTIONAL"),
        ({"quantity": None}, -1102, "'quantity'"),
        ({"timeInForce": None}, -1102, "'timeInForce'"),
        ({"timeInForce": "GTX"}, -1115, "Invalid timeInForce."),
        ({"side": "HOLD"}, -1117, "Invalid side."),
        ({"type": "TRAILING"}, -1116, "Invalid orderType."),
        ({"quoteOrderQty": "10"}, -1106, "'quoteOrderQty' sent when not required"),
        ({"stopPrice": "29000"}, -1106, "'stopPrice' sent when not required"),
        ({"timeInForce": "GTT"}, -1102, "'goodTillDate'"),
        ({"newClientOrderId": "has space"}, -1100, "newClientOrderId"),
        ({"selfTradePreventionMode": "MAYBE"}, -1171, "selfTradePreventionMode"),
    ],
)
def test_bad_input_gets_a_specific_error(
    overrides: dict[str, object], code: int, message: str
) -> None:
    with pytest.raises(TradingError) as caught:
        validate(request(**overrides), BTC)
    assert caught.value.code == code
    assert message in caught.value.msg


def test_stop_limit_needs_a_stop_price_on_the_tick_grid() -> None:
    with pytest.raises(TradingError, match="'stopPrice'"):
        validate(request(type="STOP_LOSS_LIMIT"), BTC)
    with pytest.raises(TradingError, match="PRICE_FILTER"):
        validate(request(type="STOP_LOSS_LIMIT", stopPrice="29000.05"), BTC)
    order = validate(request(type="STOP_LOSS_LIMIT", stopPrice="29000.5"), BTC)
    assert order.stop_price == 290005


HUGE = "9" * 30  # far beyond 64 bits in any unit
MARKET_BY_QUOTE = {"type": "MARKET", "price": None, "timeInForce": None, "quantity": None}


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        ({"price": HUGE}, -1013, "Filter failure: PRICE_FILTER"),
        ({"price": "922337203685477580.8"}, -1013, "Filter failure: PRICE_FILTER"),  # 2**63 ticks
        ({"side": "SELL", "price": HUGE}, -1013, "Filter failure: PRICE_FILTER"),
        ({"quantity": HUGE}, -1013, "Filter failure: LOT_SIZE"),
        # Both on the grid and in range, but the notional is beyond 64 bits of micro-USDT.
        ({"price": "922337203685477580.7", "quantity": "9000"}, -1013, "Filter failure: NOTIONAL"),
        ({"type": "STOP_LOSS_LIMIT", "stopPrice": HUGE}, -1013, "Filter failure: PRICE_FILTER"),
        (MARKET_BY_QUOTE | {"quoteOrderQty": HUGE}, -1013, "Filter failure: NOTIONAL"),
        ({"timeInForce": "GTT", "goodTillDate": 2**63}, -1100, "'goodTillDate'"),
        ({"timeInForce": "GTT", "goodTillDate": 0}, -1100, "'goodTillDate'"),
        ({"user_id": 2**63}, -1100, "'user_id'"),
        ({"user_id": 0}, -1100, "'user_id'"),
    ],
)
def test_values_beyond_the_database_columns_are_refused_at_the_edge(
    overrides: dict[str, object], code: int, message: str
) -> None:
    with pytest.raises(TradingError) as caught:
        validate(request(**overrides), BTC)
    assert caught.value.code == code
    assert message in caught.value.msg


def test_the_largest_price_that_fits_is_accepted_when_its_notional_fits() -> None:
    order = validate(request(price="922337203685477580.7", quantity="0.00001"), BTC)
    assert order.price == 2**63 - 1
    assert order.lock == 2**63 - 1  # one lot × one tick is one micro-USDT


def test_a_missing_client_order_id_is_generated_like_binance() -> None:
    ids = {validate(request(newClientOrderId=None), BTC).client_order_id for _ in range(50)}
    assert len(ids) == 50
    for cid in ids:
        assert len(cid) == 22
        assert cid.isascii()
        assert cid.isalnum()


def test_a_given_client_order_id_is_kept() -> None:
    assert validate(request(newClientOrderId="my-id_1"), BTC).client_order_id == "my-id_1"


def test_parsed_values_are_kept_per_config_and_refusals_never() -> None:
    """Parsed prices and quantities are kept by (text, config): a config with another grid
    parses the same text anew, and a refused value is refused every time."""
    coarse = MarketConfig.from_spec(
        "btc-usdt", {**example_specs()["btc-usdt"], "tickSize": "1", "minQty": "0.001"}
    )
    assert validate(request(price="30000"), BTC).price == 300000
    assert validate(request(price="30000"), coarse).price == 30000
    for _ in range(2):
        with pytest.raises(TradingError, match="PRICE_FILTER"):
            validate(request(price="30000.1"), coarse)
        with pytest.raises(TradingError, match="LOT_SIZE"):
            validate(request(quantity="0.0002", price="30000"), coarse)
    assert validate(request(quantity="0.0002"), BTC).quantity == 20


def test_an_unknown_enum_value_is_refused_with_its_code() -> None:
    for field, code in (("side", -1117), ("type", -1116), ("selfTradePreventionMode", -1171)):
        with pytest.raises(TradingError) as caught:
            validate(request(**{field: "NOPE"}), BTC)
        assert caught.value.code == code

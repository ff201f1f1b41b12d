"""The OpenAPI schema documents every response (no infrastructure: the app is built, its
lifespan never runs).

* Every `/api/v3/*` and `/cex/v1/*` operation documents its 200 body with a real shape
  (not a bare string, not "any object"), and its errors as Binance's `{"code", "msg"}`.
* The bodies the handlers' helpers build (`cex.api.orders`, `routes.general`,
  `routes.market`, `routes.orders`, `cex.core.tickers`) validate against the schema the
  API publishes for the operations that return them: the schema is the code's shape.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
import yaml

from cex.api import schemas
from cex.api.app import create_app
from cex.api.orders import Outcome, ack, outcome_of, render_order, render_trade, result
from cex.api.ratelimit import Limits
from cex.api.routes.general import symbol_info
from cex.api.routes.market import trade_json
from cex.api.routes.orders import _cancel_response, commission_for_order
from cex.api.settings import ApiSettings
from cex.core import tickers
from cex.core.events import OrderOpened, OrderStatus, Side, TradeExecuted
from cex.core.market import MarketConfig
from cex.infra.registry import RegisteredMarket
from tests.fixtures import REPO

SPEC: dict[str, Any] = create_app(ApiSettings()).openapi()
COMPONENTS = SPEC["components"]
PREFIXES = ("/api/v3/", "/cex/v1/")
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in SPEC["paths"].items()
    if path.startswith(PREFIXES)
    for method, operation in item.items()
]


def cases() -> list[Any]:
    return [
        pytest.param(method, path, operation, id=f"{method} {path}")
        for method, path, operation in OPERATIONS
    ]


CONFIG = MarketConfig.from_spec(
    "btc-usdt", yaml.safe_load((REPO / "examples" / "btc-usdt.yaml").read_text())["spec"]
)


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    return resolve(COMPONENTS["schemas"][ref.rsplit("/", 1)[1]])


def informative(schema: dict[str, Any], nested: bool = False) -> bool:
    """Whether `schema` says what the body is: objects name their fields (or are closed),
    arrays say what they hold, unions are made of such schemas; inside an array a typed
    scalar (an integer, a decimal string) says enough. A `$ref` wins over the loose
    siblings FastAPI leaves beside it (from the handler's `dict[str, Any]`)."""
    if "$ref" in schema:
        return informative(resolve(schema), nested)
    if "anyOf" in schema or "oneOf" in schema:
        return all(informative(s, nested) for s in schema.get("anyOf", schema.get("oneOf")))
    if schema.get("type") == "array":
        items = schema.get("items")
        if "prefixItems" in schema:
            return True
        return isinstance(items, dict) and informative(items, nested=True)
    if schema.get("type") == "object":
        return bool(schema.get("properties")) or schema.get("additionalProperties") is False
    return nested and schema.get("type") in ("integer", "string", "boolean")


def json_schema(operation: dict[str, Any], status: str) -> dict[str, Any]:
    response = operation["responses"][status]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


@pytest.mark.parametrize(("method", "path", "operation"), cases())
def test_every_operation_documents_its_200_body(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    assert "200" in operation["responses"], (method, path)
    assert informative(json_schema(operation, "200")), (method, path, json_schema(operation, "200"))


@pytest.mark.parametrize(("method", "path", "operation"), cases())
def test_every_operation_documents_binances_error_body(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    errors = [s for s in responses if s.startswith("4")]
    assert errors, (method, path, list(responses))
    assert "default" in responses, "5XX answers are the error body too"
    # Validation errors are Binance's 400 (-1102, -1130): FastAPI's 422 never happens.
    assert "422" not in responses
    for status in [*errors, "default"]:
        body = resolve(json_schema(operation, status))
        assert body["properties"]["code"]["type"] == "integer", (method, path, status)
        assert body["properties"]["msg"]["type"] == "string", (method, path, status)
        assert set(body["required"]) == {"code", "msg"}, (method, path, status)
        assert responses[status]["description"]


def test_the_operations_are_all_there() -> None:
    """A guard against the parametrized tests silently testing nothing."""
    assert len(OPERATIONS) >= 40
    assert ("GET", "/api/v3/ticker/24hr") in {(m, p) for m, p, _ in OPERATIONS}


# --------------------------------------------------------------------------- bodies


def validator(method: str, path: str, status: str = "200") -> Callable[[Any], None]:
    """Validates a body against what `/openapi.json` says `method path` answers."""
    schema = copy.deepcopy(json_schema(SPEC["paths"][path][method.lower()], status))
    schema["components"] = COMPONENTS
    checker = jsonschema_rs.Draft202012Validator(schema)

    def check(body: Any) -> None:
        errors = [f"{e.instance_path}: {e.message}" for e in checker.iter_errors(body)]
        assert not errors, (method, path, body, errors)

    return check


def refused(method: str, path: str, body: Any) -> bool:
    schema = copy.deepcopy(json_schema(SPEC["paths"][path][method.lower()], "200"))
    schema["components"] = COMPONENTS
    return not jsonschema_rs.Draft202012Validator(schema).is_valid(body)


def order_row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": 7, "market": "btc-usdt", "user_id": 5, "client_order_id": "c-1", "side": "BUY",
        "type": "LIMIT", "time_in_force": "GTC", "price": 300000, "quantity": 10000,
        "quote_order_qty": None, "stop_price": None, "expire_at": None, "stp_mode": "EXPIRE_MAKER",
        "status": "PENDING", "filled_qty": 0, "cumulative_quote": 0, "reason": None,
        "created_ms": 1_700_000_000_000, "updated_ms": 1_700_000_000_500,
    }  # fmt: skip
    return row | changes


ORDER_ROWS = [
    order_row(),
    order_row(status="PARTIALLY_FILLED", filled_qty=4000, cumulative_quote=1_200_000_000),
    order_row(
        type="MARKET",
        price=None,
        quantity=None,
        quote_order_qty=50_000_000,
        status="FILLED",
        time_in_force="IOC",
    ),
    order_row(
        type="STOP_LOSS_LIMIT", stop_price=290000, time_in_force="GTT", expire_at=1_800_000_000_000
    ),
    order_row(status="REJECTED", reason="FOK_NOT_FILLABLE", time_in_force="FOK"),
    order_row(status="CANCELED", updated_ms=None),
]


def placed(**changes: Any) -> dict[str, Any]:
    """What the trading API answers for a placed order (`cex.trading.app.render`)."""
    return {
        "symbol": "BTCUSDT", "orderId": 42, "clientOrderId": "c", "userId": 5, "side": "BUY",
        "type": "LIMIT", "timeInForce": "GTC", "price": "30000.0", "origQty": "0.10000",
        "origQuoteOrderQty": "0", "stopPrice": "0", "executedQty": "0.00000",
        "cummulativeQuoteQty": "0.000000", "status": "PENDING",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": None, "transactTime": 5,
        "lockedAsset": "USDT", "locked": "3000.000000", "lockedRemaining": "3000.000000",
    } | changes  # fmt: skip


def test_orders_as_queried_listed_and_cancelled() -> None:
    check_one, check_all = validator("GET", "/api/v3/order"), validator("GET", "/api/v3/allOrders")
    check_cancel = validator("DELETE", "/api/v3/order")
    rendered = [render_order(row, CONFIG) for row in ORDER_ROWS]
    for order in rendered:
        check_one(order)
    check_all(rendered)
    validator("GET", "/api/v3/openOrders")(rendered[:2])
    cancelled = [_cancel_response(row, None, CONFIG, None) for row in ORDER_ROWS]
    for answer in cancelled:
        check_cancel(answer)
    validator("DELETE", "/api/v3/openOrders")(cancelled)
    assert refused("GET", "/api/v3/order", rendered[0] | {"extra": 1})
    assert refused("GET", "/api/v3/order", rendered[0] | {"price": "1E-7"})
    assert refused("GET", "/api/v3/order", rendered[0] | {"status": "PENDING"})


def test_new_order_ack_result_and_full() -> None:
    check = validator("POST", "/api/v3/order")
    taker = TradeExecuted(
        market="BTCUSDT", offset=9, ts=1, seq=2, trade_id=11, price=300000, qty=10000,
        quote_amount=3_000_000_000, base_amount=10_000_000, taker_side=Side.BUY,
        maker_order_id=1, maker_user_id=6, taker_order_id=42, taker_user_id=5,
        maker_fee=3_000_000, taker_fee=10000,
    )  # fmt: skip
    filled = OrderOpened(
        market="BTCUSDT", offset=9, ts=1, seq=3, order_id=42, user_id=5, side=Side.BUY,
        status=OrderStatus.FILLED, filled_qty=10000, remaining_qty=0, locked_remaining=0,
        released=0, client_order_id="c", price=300000, working=True,
    )  # fmt: skip
    outcome = outcome_of(42, "BUY", [taker, filled], CONFIG)
    assert outcome.fills
    check(ack(placed(), CONFIG))
    check(result(placed(), outcome, CONFIG, full=False))
    check(result(placed(), outcome, CONFIG, full=True))
    stop = placed(type="STOP_LOSS_LIMIT", stopPrice="29000.0")
    check(result(stop, Outcome(status="NEW", working=False), CONFIG, full=True))
    check(result(placed(), Outcome(status="EXPIRED"), CONFIG, full=False))


def test_test_order_cancel_replace_and_amend() -> None:
    check = validator("POST", "/api/v3/order/test")
    check({})
    check(commission_for_order(CONFIG))
    cancelled = _cancel_response(order_row(status="CANCELED"), None, CONFIG, "new-id")
    validator("POST", "/api/v3/order/cancelReplace")({
        "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": cancelled,
        "newOrderResponse": ack(placed(), CONFIG),
    })  # fmt: skip
    failure = {
        "code": -2021, "msg": "Order cancel-replace partially failed.",
        "data": {"cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
                 "cancelResponse": cancelled,
                 "newOrderResponse": {"code": -2010, "msg": "Duplicate order sent."}},
    }  # fmt: skip
    validator("POST", "/api/v3/order/cancelReplace", "400")(failure)
    validator("POST", "/api/v3/order/cancelReplace", "400")({"code": -1102, "msg": "m"})
    order = render_order(order_row(), CONFIG)
    validator("PUT", "/api/v3/order/amend/keepPriority")({
        "transactTime": order["updateTime"], "executionId": 0,
        "amendedOrder": {
            "symbol": "BTCUSDT", "orderId": 7, "orderListId": -1, "origClientOrderId": "c-1",
            "clientOrderId": "c-1", "price": order["price"], "qty": order["origQty"],
            "executedQty": order["executedQty"], "preventedQty": "0",
            "quoteOrderQty": order["origQuoteOrderQty"],
            "cumulativeQuoteQty": order["cummulativeQuoteQty"], "status": order["status"],
            "timeInForce": order["timeInForce"], "type": order["type"], "side": order["side"],
            "workingTime": order["workingTime"],
            "selfTradePreventionMode": order["selfTradePreventionMode"],
        },
    })  # fmt: skip


def test_my_trades_from_both_sides() -> None:
    row = {
        "market": "btc-usdt", "trade_id": 11, "price": 300000, "qty": 10000,
        "quote_amount": 3_000_000_000, "taker_side": "BUY", "maker_order_id": 1,
        "taker_order_id": 42, "maker_fee": 3_000_000, "taker_fee": 10000, "ts": 5,
    }  # fmt: skip
    validator("GET", "/api/v3/myTrades")([
        render_trade(row | {"is_maker": True}, CONFIG, 6),
        render_trade(row | {"is_maker": False}, CONFIG, 5),
    ])  # fmt: skip


def test_exchange_info() -> None:
    validator("GET", "/api/v3/exchangeInfo")({
        "timezone": "UTC", "serverTime": 1, "exchangeFilters": [],
        "rateLimits": Limits(6000, 100, 200_000).exchange_info(),
        "symbols": [symbol_info(RegisteredMarket(CONFIG, 0, status))
                    for status in ("TRADING", "HALTED", "CANCEL_ONLY")],
    })  # fmt: skip


def test_market_data() -> None:
    trade = {"trade_id": 3, "price": 300000, "qty": 10000, "quote_amount": 3_000_000_000,
             "ts": 5, "taker_side": "SELL"}  # fmt: skip
    validator("GET", "/api/v3/trades")([trade_json(CONFIG, trade)])
    validator("GET", "/api/v3/historicalTrades")([])
    agg = tickers.AggTrade(3, 300000, 20000, 3, 4, 5, True)
    validator("GET", "/api/v3/aggTrades")([agg.to_binance(CONFIG)])
    validator("GET", "/api/v3/depth")({
        "lastUpdateId": 9, "bids": [["30000.0", "0.10000"]], "asks": [],
    })  # fmt: skip
    traded = tickers.WindowStats(
        count=2, first_id=3, last_id=4, open_ticks=300000, high_ticks=301000,
        low_ticks=299000, last_ticks=299500, last_lots=10000, volume_lots=20000,
        quote_units=6_000_000_000, prev_close_ticks=None,
    )  # fmt: skip
    quiet = tickers.WindowStats(0, None, None, 0, 0, 0, 0, 0, 0, 0, 290000)
    for path, kind in (("/api/v3/ticker/24hr", "24hr"), ("/api/v3/ticker", "rolling")):
        check = validator("GET", path)
        for type_ in ("FULL", "MINI"):
            described = [
                tickers.rolling_ticker(CONFIG, stats, open_time=0, close_time=1, kind=kind,
                                       type_=type_, book=tickers.Book(bid=(1, 2), ask=(3, 4)))
                for stats in (traded, quiet)
            ]  # fmt: skip
            check(described[0])
            check(described)
    validator("GET", "/api/v3/ticker/price")({"symbol": "BTCUSDT", "price": "0.0"})
    book = {"symbol": "BTCUSDT", "bidPrice": "0.0", "bidQty": "0.00000", "askPrice": "1.0",
            "askQty": "0.00001"}  # fmt: skip
    validator("GET", "/api/v3/ticker/bookTicker")([book])
    price = tickers.average_price(CONFIG, 6_000_000_000, 20000)
    validator("GET", "/api/v3/avgPrice")({"mins": 5, "price": price, "closeTime": 0})
    # A MINI ticker is not a FULL one with fields missing, nor the other way round.
    full = tickers.rolling_ticker(CONFIG, traded, open_time=0, close_time=1, kind="24hr",
                                  type_="FULL")  # fmt: skip
    assert refused("GET", "/api/v3/ticker", full)


def test_error_body_model() -> None:
    body = {"code": -1121, "msg": "Invalid symbol."}
    assert schemas.ErrorBody.model_validate(body).code == -1121
    with pytest.raises(ValueError, match="extra"):
        schemas.ErrorBody.model_validate(body | {"detail": "x"})

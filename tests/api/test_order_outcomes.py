"""RESULT / FULL answers from the engine's events for a new order (pure)."""

from __future__ import annotations

import pytest
import yaml

from cex.api import errors
from cex.api.orders import Outcome, binance_status, outcome_of, result
from cex.core.events import (
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderUpdated,
    RejectReason,
    Side,
    TradeExecuted,
    UpdateCause,
)
from cex.core.market import MarketConfig
from tests.fixtures import REPO

CONFIG = MarketConfig.from_spec(
    "btc-usdt",
    yaml.safe_load((REPO / "examples" / "btc-usdt.yaml").read_text())["spec"],
)
HEAD = {"market": "BTCUSDT", "offset": 9, "ts": 1}


def opened(order_id: int, status: OrderStatus = OrderStatus.NEW, filled: int = 0) -> OrderOpened:
    return OrderOpened(**HEAD, seq=1, order_id=order_id, user_id=5, side=Side.BUY, status=status,
                       filled_qty=filled, remaining_qty=0, locked_remaining=0, released=0,
                       client_order_id="c", price=300000, working=True)  # fmt: skip


def trade(trade_id: int, taker: int, price: int, qty: int) -> TradeExecuted:
    quote = price * qty  # tick 0.1 × lot 0.00001 = 1 micro-USDT per tick·lot
    return TradeExecuted(**HEAD, seq=1 + trade_id, trade_id=trade_id, price=price, qty=qty,
                         quote_amount=quote, base_amount=qty * 1000, taker_side=Side.BUY,
                         maker_order_id=1, maker_user_id=6, taker_order_id=taker,
                         taker_user_id=5, maker_fee=quote // 1000,
                         taker_fee=qty)  # fmt: skip


def test_a_taker_that_fills_reports_every_fill_with_its_fee_in_the_asset_received() -> None:
    events = [
        opened(42),
        trade(1, 42, 300000, 20000),
        trade(2, 42, 300100, 10000),
        OrderUpdated(**HEAD, seq=9, order_id=42, user_id=5, side=Side.BUY,
                     status=OrderStatus.FILLED, filled_qty=30000, remaining_qty=0,
                     locked_remaining=0, released=0, cause=UpdateCause.TRADE, price=300100,
                     locked_added=0),
    ]  # fmt: skip
    outcome = outcome_of(42, "BUY", events, CONFIG)
    assert (outcome.status, outcome.executed_qty) == ("FILLED", 30000)
    assert outcome.cumulative_quote == 300000 * 20000 + 300100 * 10000
    assert outcome.fills == [
        {"price": "30000.0", "qty": "0.20000", "commission": "0.00020000",
         "commissionAsset": "BTC", "tradeId": 1},
        {"price": "30010.0", "qty": "0.10000", "commission": "0.00010000",
         "commissionAsset": "BTC", "tradeId": 2},
    ]  # fmt: skip


def test_trades_of_the_order_as_a_maker_are_not_its_taker_fills() -> None:
    outcome = outcome_of(42, "BUY", [opened(42), trade(1, 77, 300000, 100)], CONFIG)
    assert (outcome.status, outcome.fills, outcome.cumulative_quote) == ("NEW", [], 0)


def test_refusals_binance_answers_with_an_error() -> None:
    rejected = OrderRejected(**HEAD, seq=2, order_id=42, user_id=5, side=Side.BUY,
                             status=OrderStatus.REJECTED, filled_qty=0, remaining_qty=0,
                             locked_remaining=0, released=10,
                             reason=RejectReason.POST_ONLY_WOULD_TAKE)  # fmt: skip
    with pytest.raises(errors.ApiError) as caught:
        outcome_of(42, "BUY", [rejected], CONFIG)
    assert (caught.value.code, caught.value.msg) == (
        -2010, "Order would immediately match and take.")  # fmt: skip


def test_a_fok_that_cannot_fill_is_expired_as_on_binance() -> None:
    rejected = OrderRejected(**HEAD, seq=2, order_id=42, user_id=5, side=Side.BUY,
                             status=OrderStatus.REJECTED, filled_qty=0, remaining_qty=0,
                             locked_remaining=0, released=10,
                             reason=RejectReason.FOK_NOT_FILLABLE)  # fmt: skip
    assert outcome_of(42, "BUY", [rejected], CONFIG).status == "EXPIRED"
    assert binance_status("REJECTED", "FOK_NOT_FILLABLE") == "EXPIRED"
    assert binance_status("PENDING", None) == "NEW"


def test_result_and_full_shapes() -> None:
    placed = {
        "orderId": 42,
        "clientOrderId": "c",
        "transactTime": 5,
        "price": "30000.0",
        "origQty": "0.10000",
        "origQuoteOrderQty": "0",
        "timeInForce": "GTC",
        "type": "LIMIT",
        "side": "BUY",
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    outcome = Outcome(status="NEW")
    answer = result(placed, outcome, CONFIG, full=False)
    assert "fills" not in answer
    assert (answer["status"], answer["executedQty"], answer["orderListId"]) == (
        "NEW",
        "0.00000",
        -1,
    )
    assert result(placed, outcome, CONFIG, full=True)["fills"] == []

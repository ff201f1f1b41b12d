"""Orders and trades in Binance's shapes, from database rows and from engine events.

Our order states map onto Binance's: PENDING (stored, not yet seen by the engine) is
reported as NEW; a FOK order that could not fill is REJECTED by our engine and EXPIRED on
Binance. Amounts are decimal strings formatted by the market's grid, never floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cex.api import errors
from cex.core.events import (
    CommandRejected,
    Event,
    OrderCancelled,
    OrderExpired,
    OrderOpened,
    OrderRejected,
    OrderUpdated,
    RejectReason,
    Side,
    TradeExecuted,
)
from cex.core.market import MarketConfig

OPEN_STATUSES = ("PENDING", "NEW", "PARTIALLY_FILLED")
ORDER_EVENTS = (OrderOpened, OrderUpdated, OrderCancelled, OrderExpired)
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT")

#: Engine refusals that Binance answers with an error (-2010 and its message), not with
#: an order in a final state.
REJECTION_MESSAGES = {
    RejectReason.POST_ONLY_WOULD_TAKE: "Order would immediately match and take.",
    RejectReason.STOP_WOULD_TRIGGER: "Stop price would trigger immediately.",
    RejectReason.MARKET_HALTED: "Market is closed.",
    RejectReason.MARKET_CANCEL_ONLY: "Market is closed.",
    RejectReason.INSUFFICIENT_LOCKED: "Account has insufficient balance for requested action.",
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: "Duplicate order sent.",
    RejectReason.GTT_EXPIRED: "Order would immediately expire.",
}


def binance_status(status: str, reason: str | None) -> str:
    if status == "PENDING":
        return "NEW"
    if status == "REJECTED" and reason == RejectReason.FOK_NOT_FILLABLE.value:
        return "EXPIRED"
    return status


def _opt(value: Any, fmt: Any) -> str:
    return "0" if value is None else str(fmt(int(value)))


def render_order(row: Mapping[str, Any], config: MarketConfig) -> dict[str, Any]:
    """An order row (orders table) as GET /api/v3/order answers."""
    status = binance_status(row["status"], row.get("reason"))
    updated = row.get("updated_ms") or row["created_ms"]
    rendered = {
        "symbol": config.symbol,
        "orderId": row["id"],
        "orderListId": -1,
        "clientOrderId": row["client_order_id"],
        "price": _opt(row["price"], config.format_price),
        "origQty": _opt(row["quantity"], config.format_qty),
        "executedQty": config.format_qty(int(row.get("filled_qty") or 0)),
        "cummulativeQuoteQty": config.format_quote(int(row.get("cumulative_quote") or 0)),
        "status": status,
        "timeInForce": row["time_in_force"],
        "type": row["type"],
        "side": row["side"],
        "stopPrice": _opt(row["stop_price"], config.format_price),
        "icebergQty": "0",
        "time": row["created_ms"],
        "updateTime": updated,
        "isWorking": row["type"] not in STOP_TYPES or bool(row.get("working")),
        "workingTime": row["created_ms"],
        "origQuoteOrderQty": _opt(row["quote_order_qty"], config.format_quote),
        "selfTradePreventionMode": row["stp_mode"],
    }
    if row.get("expire_at") is not None:
        rendered["goodTillDate"] = row["expire_at"]
    return rendered


def render_trade(row: Mapping[str, Any], config: MarketConfig, user_id: int) -> dict[str, Any]:
    """A trades row as GET /api/v3/myTrades answers, from `user_id`'s side (maker if the
    user was the maker; a self-trade is reported from the taker's side by its own row)."""
    is_maker = bool(row["is_maker"])
    taker_buys = row["taker_side"] == Side.BUY.value
    is_buyer = taker_buys != is_maker
    commission = int(row["maker_fee"] if is_maker else row["taker_fee"])
    # Fees are charged in the asset received: the buyer pays in base, the seller in quote.
    commission_asset = config.base if is_buyer else config.quote
    fmt = config.format_base if is_buyer else config.format_quote
    return {
        "symbol": config.symbol,
        "id": row["trade_id"],
        "orderId": row["maker_order_id"] if is_maker else row["taker_order_id"],
        "orderListId": -1,
        "price": config.format_price(int(row["price"])),
        "qty": config.format_qty(int(row["qty"])),
        "quoteQty": config.format_quote(int(row["quote_amount"])),
        "commission": fmt(commission),
        "commissionAsset": commission_asset,
        "time": row["ts"],
        "isBuyer": is_buyer,
        "isMaker": is_maker,
        "isBestMatch": True,
    }


def ack(row: Mapping[str, Any], config: MarketConfig) -> dict[str, Any]:
    return {
        "symbol": config.symbol,
        "orderId": row["orderId"],
        "orderListId": -1,
        "clientOrderId": row["clientOrderId"],
        "transactTime": row["transactTime"],
    }


@dataclass
class Outcome:
    """What the engine did with a new order in the command that created it."""

    status: str
    executed_qty: int = 0
    cumulative_quote: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    working: bool = True


def outcome_of(order_id: int, side: str, events: list[Event], config: MarketConfig) -> Outcome:
    """The order's state after its create command, from the engine's events for it.
    Raises the Binance error for refusals Binance answers with an error."""
    outcome = Outcome(status="NEW")
    is_buy = side == Side.BUY.value
    for event in events:
        if isinstance(event, TradeExecuted):
            if event.taker_order_id != order_id:
                continue  # a later command's trade against our resting order
            fee = event.taker_fee
            outcome.cumulative_quote += event.quote_amount
            outcome.fills.append({
                "price": config.format_price(event.price),
                "qty": config.format_qty(event.qty),
                "commission": (config.format_base if is_buy else config.format_quote)(fee),
                "commissionAsset": config.base if is_buy else config.quote,
                "tradeId": event.trade_id,
            })  # fmt: skip
        elif isinstance(event, OrderRejected):
            message = REJECTION_MESSAGES.get(event.reason)
            if message is not None:
                raise errors.new_order_rejected(message)
            outcome.status = binance_status("REJECTED", event.reason.value)
        elif isinstance(event, CommandRejected):
            raise errors.new_order_rejected(
                REJECTION_MESSAGES.get(event.reason, "Order was rejected.")
            )
        elif isinstance(event, ORDER_EVENTS) and event.order_id == order_id:
            outcome.status = binance_status(event.status.value, None)
            outcome.executed_qty = event.filled_qty
            if isinstance(event, OrderOpened):
                outcome.working = event.working
    return outcome


def result(placed: Mapping[str, Any], outcome: Outcome, config: MarketConfig,
           *, full: bool) -> dict[str, Any]:  # fmt: skip
    """A RESULT (or FULL, with fills) response for a placed order and its outcome."""
    response = ack(placed, config) | {
        "price": placed["price"],
        "origQty": placed["origQty"],
        "executedQty": config.format_qty(outcome.executed_qty),
        "origQuoteOrderQty": placed["origQuoteOrderQty"],
        "cummulativeQuoteQty": config.format_quote(outcome.cumulative_quote),
        "status": outcome.status,
        "timeInForce": placed["timeInForce"],
        "type": placed["type"],
        "side": placed["side"],
        "workingTime": placed["transactTime"] if outcome.working else -1,
        "selfTradePreventionMode": placed["selfTradePreventionMode"],
    }
    if placed["type"] in STOP_TYPES:
        response["stopPrice"] = placed["stopPrice"]
    if full:
        response["fills"] = outcome.fills
    return response

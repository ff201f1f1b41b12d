"""Trading endpoints (SIGNED): new, test, query, cancel, cancel-replace, amend, open orders.

Writes go to the internal trading API (funds locked, outbox) and through the engine;
reads come from Postgres. RESULT / FULL responses, cancels and amends wait (bounded by
`api_result_wait_s`) for settlement to publish the engine's outcome for the order, and
answer with what is known at the deadline, as Binance does when its engine is busy.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter

from cex.api import errors, queries, schemas
from cex.api.deps import Signed, State, signed
from cex.api.orders import (
    ORDER_EVENTS,
    Outcome,
    ack,
    binance_status,
    outcome_of,
    render_order,
    result,
)
from cex.api.params import SIGNED, Param, Params, openapi
from cex.api.state import ApiState
from cex.core.events import (
    CommandRejected,
    Event,
)
from cex.core.market import MarketConfig

router = APIRouter(prefix="/api/v3", tags=["Trading"])

RESP_TYPES = ("ACK", "RESULT", "FULL")
#: Binance's engine refuses these before acknowledging them (a post-only order that would
#: take, a stop that would trigger at once): even an ACK waits for our engine's verdict.
REFUSED_BY_THE_ENGINE = frozenset({"LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT"})
ORDER_PARAMS = (
    Param("symbol", required=True),
    Param("side", required=True, enum=("BUY", "SELL")),
    Param("type", required=True,
          enum=("LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT")),
    Param("timeInForce", enum=("GTC", "IOC", "FOK", "GTT")),
    Param("quantity", "decimal"),
    Param("quoteOrderQty", "decimal", description="MARKET: spend (BUY) or receive (SELL)."),
    Param("price", "decimal"),
    Param("newClientOrderId", description="Unique among your open orders; generated if absent."),
    Param("stopPrice", "decimal", description="STOP_LOSS and STOP_LOSS_LIMIT."),
    Param("goodTillDate", "integer", description="GTT: expiry in ms since the epoch."),
    Param("newOrderRespType", enum=RESP_TYPES),
    Param("selfTradePreventionMode",
          enum=("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT")),
    Param("strategyId", "integer"),
    Param("strategyType", "integer"),
)  # fmt: skip
ORDER_REF = (
    Param("symbol", required=True),
    Param("orderId", "integer"),
    Param("origClientOrderId"),
)
_UNSUPPORTED = ("trailingDelta", "icebergQty", "pegPriceType", "pegOffsetValue", "pegOffsetType")


def _order_body(p: Params, user_id: int) -> dict[str, Any]:
    """The new order's fields for the trading API, checked for their syntax here."""
    for name in _UNSUPPORTED:
        value = p.text(name)
        if value is not None and value not in ("0", "0.0"):
            raise errors.not_required(name)
    return {
        "user_id": user_id,
        "symbol": p.required_text("symbol", max_len=32),
        "side": p.required_text("side", max_len=8),
        "type": p.required_text("type", max_len=24),
        "timeInForce": p.text("timeInForce", max_len=8),
        "quantity": p.decimal("quantity"),
        "quoteOrderQty": p.decimal("quoteOrderQty"),
        "price": p.decimal("price"),
        "stopPrice": p.decimal("stopPrice"),
        "goodTillDate": p.integer("goodTillDate", low=0),
        "newClientOrderId": p.text("newClientOrderId", max_len=36),
        "selfTradePreventionMode": p.text("selfTradePreventionMode", max_len=16),
    }  # fmt: skip


def _resp_type(p: Params, order_type: str) -> str:
    chosen = p.enum("newOrderRespType", RESP_TYPES, errors.invalid_parameter("newOrderRespType"))
    if chosen is not None:
        return chosen
    return "FULL" if order_type in ("LIMIT", "MARKET") else "ACK"


async def place(state: ApiState, user_id: int, p: Params) -> dict[str, Any]:
    """Place a new order and answer as Binance does for its newOrderRespType."""
    body = _order_body(p, user_id)
    config = state.markets.config(body["symbol"])
    resp_type = _resp_type(p, body["type"])
    if resp_type == "ACK" and body["type"] not in REFUSED_BY_THE_ENGINE:
        return ack(await state.trading.place(body), config)
    with state.outcomes.watch(user_id) as waiter:
        placed = await state.trading.place(body)
        events = await waiter.wait_for(placed["orderId"], state.settings.api_result_wait_s)
    outcome = (
        outcome_of(placed["orderId"], placed["side"], events, config)
        if events is not None
        else Outcome(status=binance_status(placed["status"], None))
    )
    if resp_type == "ACK":
        return ack(placed, config)
    return result(placed, outcome, config, full=resp_type == "FULL")


@router.post(
    "/order",
    summary="New order",
    openapi_extra=openapi(*ORDER_PARAMS, *SIGNED, form=True),
    responses=schemas.documented(
        schemas.NewOrder,
        "ACK, RESULT or FULL, as newOrderRespType asks (FULL by default for LIMIT and "
        "MARKET, ACK for the others)",
        *schemas.SIGNED,
    ),
)
async def new_order(
    state: State, s: Annotated[Signed, signed("trade", 1, new_order=True)]
) -> dict[str, Any]:
    return await place(state, s.user_id, s.params)


@router.post(
    "/order/test",
    summary="Test new order (validated, not placed)",
    openapi_extra=openapi(*ORDER_PARAMS, Param("computeCommissionRates", "boolean"), *SIGNED,
                          form=True),
    responses=schemas.documented(
        schemas.TestOrder,
        "`{}`, or the commission rates with computeCommissionRates=true",
        *schemas.SIGNED,
    ),
)  # fmt: skip
async def test_order(state: State, s: Annotated[Signed, signed("trade", 1)]) -> dict[str, Any]:
    body = _order_body(s.params, s.user_id)
    config = state.markets.config(body["symbol"])
    await state.trading.call("POST", "/internal/v1/orders/test", body=body)
    if not s.params.boolean("computeCommissionRates"):
        return {}
    return commission_for_order(config)


def commission_for_order(config: MarketConfig) -> dict[str, Any]:
    zero = _rate(0)
    return {
        "standardCommissionForOrder": {"maker": _rate(config.maker_fee_ppm),
                                       "taker": _rate(config.taker_fee_ppm)},
        "specialCommissionForOrder": {"maker": zero, "taker": zero},
        "taxCommissionForOrder": {"maker": zero, "taker": zero},
        "discount": {"enabledForAccount": False, "enabledForSymbol": False,
                     "discountAsset": None, "discount": zero},
    }  # fmt: skip


def _rate(ppm: int) -> str:
    """A fee rate as Binance writes it (8 decimals), from parts per million."""
    whole, frac = divmod(ppm, 1_000_000)
    return f"{whole}.{frac:06d}00"


def _order_ref(p: Params, prefix: str = "") -> tuple[int | None, str | None]:
    """`orderId` / `origClientOrderId` (or `cancelOrderId` / `cancelOrigClientOrderId`)."""
    id_name = f"{prefix}OrderId" if prefix else "orderId"
    client_name = f"{prefix}OrigClientOrderId" if prefix else "origClientOrderId"
    order_id = p.integer(id_name, low=0)
    client_id = p.text(client_name, max_len=36)
    if order_id is None and client_id is None:
        raise errors.mandatory_either(client_name, id_name)
    return order_id, client_id


@router.get(
    "/order",
    summary="Query order",
    openapi_extra=openapi(*ORDER_REF, *SIGNED),
    responses=schemas.documented(schemas.Order, "The order", *schemas.SIGNED),
)
async def query_order(state: State, s: Annotated[Signed, signed("read", 4)]) -> dict[str, Any]:
    config = state.markets.config(s.params.required_text("symbol", max_len=32))
    order_id, client_id = _order_ref(s.params)
    row = await queries.order(state.pool, s.user_id, config.name, order_id, client_id)
    if row is None:
        raise errors.no_such_order()
    return render_order(row, config)


async def _settled(
    state: ApiState, waiter: Any, order_ids: list[int], seconds: float
) -> dict[int, list[Event]]:
    """The settled events for each order (those that arrived before the deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    found: dict[int, list[Event]] = {}
    for order_id in order_ids:
        events = await waiter.wait_for(order_id, max(0.0, deadline - loop.time()))
        if events is not None:
            found[order_id] = events
    return found


def _cancel_response(
    row: dict[str, Any], events: list[Event] | None, config: MarketConfig, client_id: str | None
) -> dict[str, Any]:
    """Binance's cancel answer: the order after the engine cancelled it (or as known)."""
    order = render_order(row, config)
    for event in events or ():
        if isinstance(event, CommandRejected):
            raise errors.cancel_rejected()
        if isinstance(event, ORDER_EVENTS) and event.order_id == row["id"]:
            order["status"] = binance_status(event.status.value, None)
            order["executedQty"] = config.format_qty(event.filled_qty)
    return {
        "symbol": config.symbol,
        "origClientOrderId": row["client_order_id"],
        "orderId": row["id"],
        "orderListId": -1,
        "clientOrderId": client_id or row["client_order_id"],
        "transactTime": row.get("updated_ms") or row["created_ms"],
        "price": order["price"],
        "origQty": order["origQty"],
        "executedQty": order["executedQty"],
        "origQuoteOrderQty": order["origQuoteOrderQty"],
        "cummulativeQuoteQty": order["cummulativeQuoteQty"],
        "status": order["status"],
        "timeInForce": order["timeInForce"],
        "type": order["type"],
        "side": order["side"],
        "selfTradePreventionMode": order["selfTradePreventionMode"],
    }


async def cancel(
    state: ApiState, user_id: int, config: MarketConfig, order_id: int | None,
    client_id: str | None, new_client_id: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Cancel through the engine; answer once settlement released the funds (or at the
    deadline with what is known)."""
    with state.outcomes.watch(user_id) as waiter:
        row = await state.trading.call(
            "POST", "/internal/v1/orders/cancel",
            query={"user_id": user_id, "symbol": config.symbol, "orderId": order_id,
                   "origClientOrderId": client_id},
        )  # fmt: skip
        settled = await _settled(state, waiter, [row["orderId"]], state.settings.api_result_wait_s)
    fresh = await queries.order(state.pool, user_id, config.name, row["orderId"], None)
    assert fresh is not None
    return _cancel_response(fresh, settled.get(row["orderId"]), config, new_client_id)


@router.delete(
    "/order",
    summary="Cancel order",
    openapi_extra=openapi(*ORDER_REF, Param("newClientOrderId"), Param("cancelRestrictions",
                          enum=("ONLY_NEW", "ONLY_PARTIALLY_FILLED")), *SIGNED, form=True),
    responses=schemas.documented(schemas.CanceledOrder, "The cancelled order", *schemas.SIGNED),
)  # fmt: skip
async def cancel_order(state: State, s: Annotated[Signed, signed("trade", 1)]) -> dict[str, Any]:
    config = state.markets.config(s.params.required_text("symbol", max_len=32))
    order_id, client_id = _order_ref(s.params)
    new_client_id = s.params.text("newClientOrderId", max_len=36)
    return await cancel(state, s.user_id, config, order_id, client_id, new_client_id)


@router.get(
    "/openOrders",
    summary="Current open orders",
    openapi_extra=openapi(Param("symbol"), *SIGNED),
    responses=schemas.documented(list[schemas.Order], "Open orders", *schemas.SIGNED),
)
async def open_orders(
    state: State,
    s: Annotated[Signed, signed("read", lambda p: 6 if p.raw("symbol") else 80)],
) -> list[dict[str, Any]]:
    symbol = s.params.text("symbol", max_len=32)
    configs = [state.markets.config(symbol)] if symbol else [
        m.config for m in state.markets.sorted()]  # fmt: skip
    by_name = {c.name: c for c in configs}
    rows = await queries.open_orders(state.pool, s.user_id, list(by_name))
    return [render_order(r, by_name[r["market"]]) for r in rows]


@router.delete(
    "/openOrders",
    summary="Cancel all open orders on a symbol",
    openapi_extra=openapi(Param("symbol", required=True), *SIGNED, form=True),
    responses=schemas.documented(
        list[schemas.CanceledOrder], "The cancelled orders", *schemas.SIGNED
    ),
)
async def cancel_open_orders(
    state: State, s: Annotated[Signed, signed("trade", 1)]
) -> list[dict[str, Any]]:
    config = state.markets.config(s.params.required_text("symbol", max_len=32))
    with state.outcomes.watch(s.user_id) as waiter:
        rows = await state.trading.call(
            "POST", "/internal/v1/orders/cancel-all",
            query={"user_id": s.user_id, "symbol": config.symbol},
        )  # fmt: skip
        ids = [r["orderId"] for r in rows]
        settled = await _settled(state, waiter, ids, state.settings.api_result_wait_s)
    answers = []
    for order_id in ids:
        fresh = await queries.order(state.pool, s.user_id, config.name, order_id, None)
        assert fresh is not None
        answers.append(_cancel_response(fresh, settled.get(order_id), config, None))
    return answers


@router.get(
    "/allOrders",
    summary="All orders of a symbol (open, closed)",
    openapi_extra=openapi(
        Param("symbol", required=True), Param("orderId", "integer"),
        Param("startTime", "integer"), Param("endTime", "integer"),
        Param("limit", "integer", description="Default 500; max 1000."), *SIGNED,
    ),
    responses=schemas.documented(list[schemas.Order], "Orders, ascending id", *schemas.SIGNED),
)  # fmt: skip
async def all_orders(
    state: State, s: Annotated[Signed, signed("read", 20)]
) -> list[dict[str, Any]]:
    p = s.params
    config = state.markets.config(p.required_text("symbol", max_len=32))
    start, end = p.integer("startTime", low=0), p.integer("endTime", low=0)
    if start is not None and end is not None and end - start > 24 * 3_600_000:
        raise errors.lookup_interval_too_big()
    limit = p.integer("limit", low=1, high=1000) or 500
    rows = await queries.all_orders(
        state.pool, s.user_id, config.name, from_id=p.integer("orderId", low=0),
        start_ms=start, end_ms=end, limit=limit,
    )  # fmt: skip
    return [render_order(r, config) for r in rows]


@router.post(
    "/order/cancelReplace",
    summary="Cancel an existing order and send a new order",
    openapi_extra=openapi(
        *ORDER_PARAMS,
        Param("cancelReplaceMode", required=True, enum=("STOP_ON_FAILURE", "ALLOW_FAILURE")),
        Param("cancelOrderId", "integer"), Param("cancelOrigClientOrderId"),
        Param("cancelNewClientOrderId"),
        Param("cancelRestrictions", enum=("ONLY_NEW", "ONLY_PARTIALLY_FILLED")),
        *SIGNED, form=True,
    ),
    responses=schemas.documented(
        schemas.CancelReplace,
        "Both steps succeeded",
        *schemas.SIGNED,
        error=schemas.CancelReplaceError,
    ),
)  # fmt: skip
async def cancel_replace(
    state: State, s: Annotated[Signed, signed("trade", 1, new_order=True)]
) -> dict[str, Any]:
    p = s.params
    mode = p.enum("cancelReplaceMode", ("STOP_ON_FAILURE", "ALLOW_FAILURE"),
                  errors.invalid_parameter("cancelReplaceMode"))  # fmt: skip
    if mode is None:
        raise errors.mandatory("cancelReplaceMode")
    config = state.markets.config(p.required_text("symbol", max_len=32))
    order_id, client_id = _order_ref(p, "cancel")
    _order_body(p, s.user_id)  # the new order's syntax is checked before anything changes
    try:
        cancelled: dict[str, Any] | None = await cancel(
            state, s.user_id, config, order_id, client_id, p.text("cancelNewClientOrderId")
        )
        cancel_error = None
    except errors.ApiError as exc:
        cancelled, cancel_error = None, {"code": exc.code, "msg": exc.msg}
    if cancel_error is not None and mode == "STOP_ON_FAILURE":
        raise errors.ApiError(-2022, "Order cancel-replace failed.", data={
            "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
            "cancelResponse": cancel_error, "newOrderResponse": None})  # fmt: skip
    try:
        placed: dict[str, Any] | None = await place(state, s.user_id, p)
        place_error = None
    except errors.ApiError as exc:
        placed, place_error = None, {"code": exc.code, "msg": exc.msg}
    answer = {
        "cancelResult": "FAILURE" if cancel_error else "SUCCESS",
        "newOrderResult": "FAILURE" if place_error else "SUCCESS",
        "cancelResponse": cancel_error or cancelled,
        "newOrderResponse": place_error or placed,
    }
    if cancel_error or place_error:
        code, msg = ((-2021, "Order cancel-replace partially failed.")
                     if (cancel_error is None) != (place_error is None)
                     else (-2022, "Order cancel-replace failed."))  # fmt: skip
        raise errors.ApiError(code, msg, data=answer)
    return answer


@router.put(
    "/order/amend/keepPriority",
    summary="Reduce the quantity of an open order, keeping its place in the book",
    openapi_extra=openapi(*ORDER_REF, Param("newClientOrderId"),
                          Param("newQty", "decimal", required=True), *SIGNED, form=True),
    responses=schemas.documented(schemas.Amended, "The amended order", *schemas.SIGNED),
)  # fmt: skip
async def amend_keep_priority(
    state: State, s: Annotated[Signed, signed("trade", 4)]
) -> dict[str, Any]:
    p = s.params
    config = state.markets.config(p.required_text("symbol", max_len=32))
    order_id, client_id = _order_ref(p)
    new_qty = p.decimal("newQty", required=True)
    row = await queries.order(state.pool, s.user_id, config.name, order_id, client_id)
    if row is None or row["status"] not in ("PENDING", "NEW", "PARTIALLY_FILLED"):
        raise errors.no_such_order()
    try:
        lots = config.qty_to_lots(new_qty or "")
    except ValueError:
        raise errors.filter_failure("LOT_SIZE") from None
    if row["quantity"] is None or lots >= int(row["quantity"]):
        # keepPriority only reduces: an increase would lose the order's place.
        raise errors.ApiError(-2038, "Order amend (quantity increase) is not supported.")
    with state.outcomes.watch(s.user_id) as waiter:
        await state.trading.call(
            "POST", "/internal/v1/orders/amend",
            query={"user_id": s.user_id, "symbol": config.symbol, "orderId": row["id"],
                   "newQty": new_qty},
        )  # fmt: skip
        events = await waiter.wait_for(row["id"], state.settings.api_result_wait_s)
    for event in events or ():
        if isinstance(event, CommandRejected):
            raise errors.ApiError(-2038, "Order amend (quantity) was rejected.")
    fresh = await queries.order(state.pool, s.user_id, config.name, row["id"], None)
    assert fresh is not None
    order = render_order(fresh, config)
    return {
        "transactTime": order["updateTime"],
        "executionId": events[-1].seq if events else 0,
        "amendedOrder": {
            "symbol": config.symbol, "orderId": fresh["id"], "orderListId": -1,
            "origClientOrderId": fresh["client_order_id"],
            "clientOrderId": p.text("newClientOrderId", max_len=36) or fresh["client_order_id"],
            "price": order["price"], "qty": order["origQty"],
            "executedQty": order["executedQty"], "preventedQty": "0",
            "quoteOrderQty": order["origQuoteOrderQty"],
            "cumulativeQuoteQty": order["cummulativeQuoteQty"], "status": order["status"],
            "timeInForce": order["timeInForce"], "type": order["type"], "side": order["side"],
            "workingTime": order["workingTime"],
            "selfTradePreventionMode": order["selfTradePreventionMode"],
        },
    }  # fmt: skip

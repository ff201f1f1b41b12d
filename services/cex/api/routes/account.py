"""Account endpoints (SIGNED, USER_DATA): balances, trades, prevented matches, commission,
order rate limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from cex.api import errors, queries, schemas
from cex.api.deps import Signed, State, signed
from cex.api.orders import render_trade
from cex.api.params import SIGNED, Param, openapi
from cex.api.routes.orders import commission_for_order
from cex.core.money import asset_step, format_units

router = APIRouter(prefix="/api/v3", tags=["Account"])


def _bps(ppm: int) -> int:
    """Binance's integer commission (basis points) from parts per million, rounded up."""
    return -(-ppm // 100)


@router.get(
    "/account",
    summary="Account information: commissions, permissions, balances",
    openapi_extra=openapi(Param("omitZeroBalances", "boolean"), *SIGNED),
    responses=schemas.documented(
        schemas.Account, "Commissions, permissions, balances", *schemas.SIGNED
    ),
)
async def account(state: State, s: Annotated[Signed, signed("read", 20)]) -> dict[str, Any]:
    omit_zero = s.params.boolean("omitZeroBalances") or False
    rows = await queries.balances(state.pool, s.user_id)
    balances = []
    for row in rows:
        free, locked = int(row["available"]), int(row["locked"])
        if omit_zero and free == 0 and locked == 0:
            continue
        step = asset_step(int(row["precision"]))
        balances.append({"asset": row["asset"], "free": format_units(free, step),
                         "locked": format_units(locked, step)})  # fmt: skip
    configs = [m.config for m in state.markets.sorted()]
    maker = max((c.maker_fee_ppm for c in configs), default=0)
    taker = max((c.taker_fee_ppm for c in configs), default=0)
    permissions = s.caller.key.permissions if s.caller.key else frozenset({"read", "trade"})
    rates = commission_for_order(configs[0])["standardCommissionForOrder"] if configs else {}
    return {
        "makerCommission": _bps(maker),
        "takerCommission": _bps(taker),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": rates.get("maker", "0.00000000"),
                            "taker": rates.get("taker", "0.00000000"),
                            "buyer": "0.00000000", "seller": "0.00000000"},
        "canTrade": "trade" in permissions,
        "canWithdraw": "withdraw" in permissions,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": state.clock_ms(),
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": s.user_id,
    }  # fmt: skip


@router.get(
    "/myTrades",
    summary="Account trade list of a symbol",
    openapi_extra=openapi(
        Param("symbol", required=True), Param("orderId", "integer"),
        Param("startTime", "integer"), Param("endTime", "integer"), Param("fromId", "integer"),
        Param("limit", "integer", description="Default 500; max 1000."), *SIGNED,
    ),
    responses=schemas.documented(list[schemas.MyTrade], "Your trades, ascending id",
                                 *schemas.SIGNED),
)  # fmt: skip
async def my_trades(
    state: State, s: Annotated[Signed, signed("read", lambda p: 5 if p.raw("orderId") else 20)]
) -> list[dict[str, Any]]:
    p = s.params
    config = state.markets.config(p.required_text("symbol", max_len=32))
    start, end = p.integer("startTime", low=0), p.integer("endTime", low=0)
    from_id = p.integer("fromId", low=0)
    if from_id is not None and (start is not None or end is not None):
        raise errors.optional_combination()
    if start is not None and end is not None and end - start > 24 * 3_600_000:
        raise errors.lookup_interval_too_big()
    rows = await queries.my_trades(
        state.pool, s.user_id, config.name, order_id=p.integer("orderId", low=0),
        from_id=from_id, start_ms=start, end_ms=end,
        limit=p.integer("limit", low=1, high=1000) or 500,
    )  # fmt: skip
    return [render_trade(r, config, s.user_id) for r in rows]


@router.get(
    "/myPreventedMatches",
    summary="Matches of a symbol that self-trade prevention stopped",
    description="One prevented match by `preventedMatchId` (weight 2), or those of "
    "`orderId` as taker or maker (weight 20), from `fromPreventedMatchId` up; ascending id.",
    openapi_extra=openapi(
        Param("symbol", required=True), Param("preventedMatchId", "integer"),
        Param("orderId", "integer"),
        Param("fromPreventedMatchId", "integer", description="Only with orderId."),
        Param("limit", "integer", description="Default 500; max 1000."), *SIGNED,
    ),
    responses=schemas.documented(list[schemas.PreventedMatch], "Your prevented matches",
                                 *schemas.SIGNED),
)  # fmt: skip
async def my_prevented_matches(
    state: State,
    s: Annotated[Signed, signed("read", lambda p: 2 if p.raw("preventedMatchId") else 20)],
) -> list[dict[str, Any]]:
    p = s.params
    config = state.markets.config(p.required_text("symbol", max_len=32))
    match_id = p.integer("preventedMatchId", low=0)
    order_id = p.integer("orderId", low=0)
    from_id = p.integer("fromPreventedMatchId", low=0)
    limit = p.integer("limit", low=1, high=1000) or 500
    # Binance's combinations: preventedMatchId | orderId [+ fromPreventedMatchId [+ limit]]
    if match_id is None and order_id is None:
        raise errors.mandatory_either("preventedMatchId", "orderId")
    if match_id is not None and (order_id is not None or from_id is not None):
        raise errors.optional_combination()
    rows = await queries.prevented_matches(
        state.pool, s.user_id, config.name, prevented_match_id=match_id, order_id=order_id,
        from_id=from_id, limit=limit,
    )  # fmt: skip
    return [
        {"symbol": config.symbol, "preventedMatchId": r["prevented_match_id"],
         "takerOrderId": r["taker_order_id"], "makerSymbol": config.symbol,
         "makerOrderId": r["maker_order_id"], "tradeGroupId": -1,
         "selfTradePreventionMode": r["stp_mode"],
         "price": config.format_price(int(r["price"])),
         "makerPreventedQuantity": config.format_qty(int(r["prevented_qty"])),
         "transactTime": r["ts"]}
        for r in rows
    ]  # fmt: skip


@router.get(
    "/account/commission",
    summary="Commission rates of a symbol",
    openapi_extra=openapi(Param("symbol", required=True), *SIGNED),
    responses=schemas.documented(schemas.Commission, "The rates", *schemas.SIGNED),
)
async def commission(state: State, s: Annotated[Signed, signed("read", 20)]) -> dict[str, Any]:
    config = state.markets.config(s.params.required_text("symbol", max_len=32))
    rates = commission_for_order(config)
    return {
        "symbol": config.symbol,
        "standardCommission": rates["standardCommissionForOrder"]
        | {"buyer": "0.00000000", "seller": "0.00000000"},
        "specialCommission": rates["specialCommissionForOrder"]
        | {"buyer": "0.00000000", "seller": "0.00000000"},
        "taxCommission": rates["taxCommissionForOrder"]
        | {"buyer": "0.00000000", "seller": "0.00000000"},
        "discount": rates["discount"],
    }


@router.get(
    "/rateLimit/order",
    summary="Unfilled order count (the ORDERS limits and their current counts)",
    openapi_extra=openapi(*SIGNED),
    responses=schemas.documented(
        list[schemas.OrderCount], "The ORDERS limits and counts", *schemas.SIGNED
    ),
)
async def order_rate_limits(
    state: State, s: Annotated[Signed, signed("read", 40)]
) -> list[dict[str, Any]]:
    ten_s, day = await state.limiter.order_counts(s.user_id, state.clock_ms())
    limits = state.limiter.limits
    return [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
         "limit": limits.orders_per_10s, "count": ten_s},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
         "limit": limits.orders_per_day, "count": day},
    ]  # fmt: skip

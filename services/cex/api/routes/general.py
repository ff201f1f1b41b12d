"""General endpoints: connectivity, server time, exchange information."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from cex.api import errors, schemas
from cex.api.deps import State, public
from cex.api.params import Param, Params, openapi
from cex.core.events import OrderType, StpMode
from cex.core.market import MAX_INT64, MarketConfig
from cex.core.money import format_units
from cex.infra.registry import RegisteredMarket

router = APIRouter(prefix="/api/v3", tags=["General"])

#: Registry status → Binance's symbol status.
SYMBOL_STATUS = {"TRADING": "TRADING", "HALTED": "HALT", "CANCEL_ONLY": "BREAK"}
ORDER_TYPES = [t.value for t in (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET,
                                 OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)]  # fmt: skip


@router.get(
    "/ping",
    summary="Test connectivity",
    dependencies=[public(1)],
    responses=schemas.documented(schemas.Empty, "`{}`", *schemas.PUBLIC),
)
async def ping() -> dict[str, Any]:
    return {}


@router.get(
    "/time",
    summary="Server time (ms since the epoch)",
    dependencies=[public(1)],
    responses=schemas.documented(schemas.ServerTime, "The server's clock", *schemas.PUBLIC),
)
async def server_time(state: State) -> dict[str, int]:
    return {"serverTime": state.clock_ms()}


def _info_weight(p: Params) -> int:
    return 20


@router.get(
    "/exchangeInfo",
    summary="Trading rules and symbol information",
    openapi_extra=openapi(
        Param("symbol", description="One symbol, e.g. BTCUSDT."),
        Param("symbols", "symbols", description="Several symbols as a JSON array."),
        Param("permissions", description="Accepted for compatibility; every market is SPOT."),
        Param("showPermissionSets", "boolean"),
        Param("symbolStatus", enum=("TRADING", "HALT", "BREAK")),
    ),
    responses=schemas.documented(
        schemas.ExchangeInfo, "Rate limits and the symbols' rules", *schemas.PUBLIC
    ),
)
async def exchange_info(state: State, p: Annotated[Params, public(_info_weight)]) -> dict[str, Any]:
    symbol = p.text("symbol")
    symbols = p.symbols()
    status = p.enum("symbolStatus", ("TRADING", "HALT", "BREAK"), errors.invalid_parameter(
        "symbolStatus"))  # fmt: skip
    if symbol is not None and symbols is not None:
        raise errors.optional_combination()
    if symbol is not None:
        markets = [state.markets.get(symbol)]
    elif symbols is not None:
        markets = [state.markets.get(s) for s in dict.fromkeys(symbols)]
    else:
        markets = state.markets.sorted()
    described = [symbol_info(m) for m in markets]
    if status is not None:
        described = [d for d in described if d["status"] == status]
    return {
        "timezone": "UTC",
        "serverTime": state.clock_ms(),
        "rateLimits": state.limiter.limits.exchange_info(),
        "exchangeFilters": [],
        "symbols": described,
    }


def symbol_info(market: RegisteredMarket) -> dict[str, Any]:
    config = market.config
    return {
        "symbol": config.symbol,
        "status": SYMBOL_STATUS.get(market.status, "BREAK"),
        "baseAsset": config.base,
        "baseAssetPrecision": config.base_precision,
        "quoteAsset": config.quote,
        "quotePrecision": config.quote_precision,
        "quoteAssetPrecision": config.quote_precision,
        "baseCommissionPrecision": config.base_precision,
        "quoteCommissionPrecision": config.quote_precision,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": filters(config),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": StpMode.EXPIRE_MAKER.value,
        "allowedSelfTradePreventionModes": [m.value for m in StpMode],
    }


def filters(config: MarketConfig) -> list[dict[str, Any]]:
    max_notional = format_units(MAX_INT64, config.tick_size * config.lot_size)
    return [
        {"filterType": "PRICE_FILTER", "minPrice": config.format_price(1),
         "maxPrice": config.format_price(MAX_INT64), "tickSize": config.format_price(1)},
        {"filterType": "LOT_SIZE", "minQty": format(config.min_qty, "f"),
         "maxQty": format(config.max_qty, "f"), "stepSize": config.format_qty(1)},
        {"filterType": "MARKET_LOT_SIZE", "minQty": format(config.min_qty, "f"),
         "maxQty": format(config.max_qty, "f"), "stepSize": config.format_qty(1)},
        {"filterType": "NOTIONAL", "minNotional": format(config.min_notional, "f"),
         "applyMinToMarket": True, "maxNotional": max_notional, "applyMaxToMarket": False,
         "avgPriceMins": 5},
    ]  # fmt: skip

"""The public API's response bodies, for the OpenAPI schema only.

Routes return plain dicts shaped like Binance's responses, rendered by msgspec
(`cex.api.app.JSON`); these models *document* them: a route attaches its models with
`responses=documented(Model, "…", 400, 429)` (or `errors_only(…)` when it already has a
`response_model`), which puts them in `/openapi.json` without validating anything at run
time. `tests/api/test_openapi.py` checks every operation is documented, and
`e2e/api/test_response_schemas.py` checks real answers against the published schema.

Conventions, as on Binance: amounts are decimal strings on the market's (or asset's)
grid, never numbers and never in exponent notation; ids and times (ms since the epoch)
are integers; enums are the values the code can actually answer. Every model forbids
other fields (`additionalProperties: false`), so the schema is the exact shape.

Every error is Binance's `{"code": -NNNN, "msg": "…"}` (`ErrorBody`) and means nothing
changed; a 5XX means the outcome is unknown.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- helpers

#: A decimal string as the API writes amounts: plain digits, optional sign and fraction.
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


#: A decimal string inside an array (a book level, a kline).
Dec = Annotated[str, Field(pattern=DECIMAL_PATTERN)]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def decimal(description: str = "", example: str = "0.10000000") -> Any:
    """A decimal-string field."""
    return Field(description=description or None, pattern=DECIMAL_PATTERN, examples=[example])


def absent(description: str) -> Any:
    """A field that is sometimes left out (never null): not required, no default shown."""
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class Body(BaseModel):
    """A response body: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"]
OrderType = Literal["LIMIT", "MARKET", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTT"]
Side = Literal["BUY", "SELL"]
StpMode = Literal["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"]
SymbolStatus = Literal["TRADING", "HALT", "BREAK"]

ORDER_LIST_ID = "Always -1: orders are never part of an order list (OCO/OTO) here."
STATUS = (
    "NEW also for an order stored but not yet seen by the matching engine; EXPIRED for a "
    "FOK order that could not fill, or the unfilled rest of an IOC/MARKET order; REJECTED "
    "for another refusal by the engine."
)
CUMMULATIVE = "Quote amount filled so far (Binance's spelling)."


# --------------------------------------------------------------------------- errors


class ErrorBody(Body):
    """Binance's error object."""

    code: int = Field(
        description="Binance's error code (negative): -1000..-1999 general and parameter "
        "errors, -2010..-2038 order refusals, -9000..-9099 the account endpoints' own.",
        examples=[-1121],
    )
    msg: str = Field(examples=["Invalid symbol."])
    data: dict[str, Any] = absent("Extra detail some errors carry.")


class ErrorRef(Body):
    """A failed step of a cancel-replace."""

    code: int
    msg: str


# --------------------------------------------------------------------------- general


class Empty(Body):
    """An empty object `{}`."""


class ServerTime(Body):
    serverTime: int = Field(description="ms since the epoch")


class RateLimit(Body):
    rateLimitType: Literal["REQUEST_WEIGHT", "ORDERS"] = Field(
        description="REQUEST_WEIGHT per client IP; ORDERS (new orders) per account."
    )
    interval: Literal["SECOND", "MINUTE", "DAY"]
    intervalNum: int = Field(description="The window is intervalNum × interval.")
    limit: int


class PriceFilter(Body):
    filterType: Literal["PRICE_FILTER"]
    minPrice: str = decimal("The tick size: the lowest price.")
    maxPrice: str = decimal("The highest price (the largest 64-bit number of ticks).")
    tickSize: str = decimal("Prices are multiples of it.")


class LotSizeFilter(Body):
    filterType: Literal["LOT_SIZE", "MARKET_LOT_SIZE"]
    minQty: str = decimal()
    maxQty: str = decimal()
    stepSize: str = decimal("Quantities are multiples of it (the lot size).")


class NotionalFilter(Body):
    filterType: Literal["NOTIONAL"]
    minNotional: str = decimal("Smallest price × quantity, in the quote asset.")
    applyMinToMarket: bool
    maxNotional: str = decimal("Largest price × quantity the ledger can hold.")
    applyMaxToMarket: bool
    avgPriceMins: int = Field(description="Minutes of the average price MARKET orders use.")


SymbolFilter = PriceFilter | LotSizeFilter | NotionalFilter


class SymbolInfo(Body):
    symbol: str = Field(examples=["BTCUSDT"])
    status: SymbolStatus = Field(
        description="TRADING; HALT (halted); BREAK (cancel-only, or not trading)."
    )
    baseAsset: str
    baseAssetPrecision: int = Field(description="Decimals of the base asset's smallest unit.")
    quoteAsset: str
    quotePrecision: int
    quoteAssetPrecision: int
    baseCommissionPrecision: int
    quoteCommissionPrecision: int
    orderTypes: list[OrderType]
    icebergAllowed: bool
    ocoAllowed: bool
    otoAllowed: bool
    quoteOrderQtyMarketAllowed: bool
    allowTrailingStop: bool
    cancelReplaceAllowed: bool
    amendAllowed: bool
    pegInstructionsAllowed: bool
    isSpotTradingAllowed: bool
    isMarginTradingAllowed: bool
    filters: list[SymbolFilter]
    permissions: list[str] = Field(description="Always empty: see permissionSets.")
    permissionSets: list[list[str]]
    defaultSelfTradePreventionMode: StpMode
    allowedSelfTradePreventionModes: list[StpMode]


class ExchangeInfo(Body):
    timezone: Literal["UTC"]
    serverTime: int
    rateLimits: list[RateLimit] = Field(description="Exactly the limits enforced.")
    exchangeFilters: list[dict[str, Any]] = Field(description="Always empty.")
    symbols: list[SymbolInfo]


# --------------------------------------------------------------------------- market data

Level = tuple[Dec, Dec]


class Depth(Body):
    lastUpdateId: int = Field(
        description="The book's sequence number: a depth diff stream chains onto it."
    )
    bids: list[Level] = Field(description="[price, quantity], best (highest) first.")
    asks: list[Level] = Field(description="[price, quantity], best (lowest) first.")


#: A kline: [openTime, open, high, low, close, volume, closeTime, quoteVolume, trades,
#: takerBuyBaseVolume, takerBuyQuoteVolume, "0"] (`/api/v3/klines`, `/api/v3/uiKlines`).
#: An array of 12 (times and counts as integers, amounts as decimal strings): OpenAPI's
#: tuple form (`prefixItems`) is not kept by the schema generator, so the positions are
#: described here rather than typed one by one.
Kline = Annotated[list[int | Dec], Field(min_length=12, max_length=12)]


class Trade(Body):
    id: int
    price: str = decimal()
    qty: str = decimal()
    quoteQty: str = decimal("price × qty, in the quote asset.")
    time: int
    isBuyerMaker: bool = Field(description="True when the taker sold.")
    isBestMatch: bool = Field(description="Always true.")


class AggTrade(Body):
    a: int = Field(description="Aggregate id: the id of its first trade (`f`).")
    p: str = decimal("Price.")
    q: str = decimal("Quantity, summed over the aggregate's trades.")
    f: int = Field(description="First trade id.")
    l: int = Field(description="Last trade id.")  # noqa: E741 (Binance's name)
    T: int = Field(description="Time (ms since the epoch).")
    m: bool = Field(description="Was the buyer the maker?")
    M: bool = Field(description="Always true (best price match).")


class TickerMini(Body):
    """A MINI ticker (`type=MINI`)."""

    symbol: str
    openPrice: str = decimal("Price of the window's first trade; 0 if none.")
    highPrice: str = decimal()
    lowPrice: str = decimal()
    lastPrice: str = decimal("Price of the window's last trade, else the previous close.")
    volume: str = decimal("Base asset volume.")
    quoteVolume: str = decimal("Quote asset volume.")
    openTime: int
    closeTime: int
    firstId: int = Field(description="First trade id of the window; -1 if none.")
    lastId: int = Field(description="Last trade id of the window; -1 if none.")
    count: int = Field(description="Number of trades in the window.")


class RollingTicker(TickerMini):
    """A FULL rolling-window ticker (`/api/v3/ticker`)."""

    priceChange: str = decimal("lastPrice - openPrice (may be negative).", "-12.50")
    priceChangePercent: str = decimal("At 3 decimals.", "-0.125")
    weightedAvgPrice: str = decimal("quoteVolume / volume; 0 if nothing traded.")


class Ticker24hr(RollingTicker):
    """A FULL 24 hour ticker (`/api/v3/ticker/24hr`)."""

    prevClosePrice: str = decimal("Price of the last trade before the window; 0 if none.")
    lastQty: str = decimal()
    bidPrice: str = decimal("Best bid now; 0 if none.")
    bidQty: str = decimal()
    askPrice: str = decimal("Best ask now; 0 if none.")
    askQty: str = decimal()


class PriceTicker(Body):
    symbol: str
    price: str = decimal("Last trade price; 0 if the market never traded.")


class BookTicker(Body):
    symbol: str
    bidPrice: str = decimal("0 when the side is empty.")
    bidQty: str = decimal()
    askPrice: str = decimal("0 when the side is empty.")
    askQty: str = decimal()


class AvgPrice(Body):
    mins: int = Field(description="Window of the average, in minutes (5).")
    price: str = decimal()
    closeTime: int = Field(description="Time of the last trade; 0 if none.")


# --------------------------------------------------------------------------- orders


class OrderAck(Body):
    """`newOrderRespType=ACK` (the default for LIMIT_MAKER and stop orders)."""

    symbol: str
    orderId: int
    orderListId: int = Field(description=ORDER_LIST_ID)
    clientOrderId: str
    transactTime: int


class OrderResult(OrderAck):
    """`newOrderRespType=RESULT`: the order after the matching engine's first verdict (or
    as stored, if that did not arrive in time)."""

    price: str = decimal("0 for a MARKET order.")
    origQty: str = decimal("0 for a MARKET order by quoteOrderQty.")
    executedQty: str = decimal()
    origQuoteOrderQty: str = decimal("quoteOrderQty of a MARKET order; else 0.")
    cummulativeQuoteQty: str = decimal(CUMMULATIVE)
    status: OrderStatus = Field(description=STATUS)
    timeInForce: TimeInForce
    type: OrderType
    side: Side
    workingTime: int = Field(description="When the order went on the book; -1 if not yet.")
    selfTradePreventionMode: StpMode
    stopPrice: str = absent("STOP_LOSS and STOP_LOSS_LIMIT orders only.")


class Fill(Body):
    price: str = decimal()
    qty: str = decimal()
    commission: str = decimal("Fee paid, in commissionAsset.")
    commissionAsset: str = Field(description="The asset received: base on a buy, quote on a sell.")
    tradeId: int


class OrderFull(OrderResult):
    """`newOrderRespType=FULL` (the default for LIMIT and MARKET): RESULT and its fills."""

    fills: list[Fill] = Field(description="The trades of the order as taker.")


NewOrder = OrderAck | OrderResult | OrderFull


class Order(Body):
    """An order as queried."""

    symbol: str
    orderId: int
    orderListId: int = Field(description=ORDER_LIST_ID)
    clientOrderId: str
    price: str = decimal("0 for a MARKET order.")
    origQty: str = decimal("0 for a MARKET order by quoteOrderQty.")
    executedQty: str = decimal()
    cummulativeQuoteQty: str = decimal(CUMMULATIVE)
    status: OrderStatus = Field(description=STATUS)
    timeInForce: TimeInForce
    type: OrderType
    side: Side
    stopPrice: str = decimal("0 unless a stop order.")
    icebergQty: str = decimal("Always 0 (no iceberg orders).")
    time: int
    updateTime: int
    isWorking: bool = Field(description="On the book (a stop order: triggered).")
    workingTime: int
    origQuoteOrderQty: str = decimal("quoteOrderQty of a MARKET order; else 0.")
    selfTradePreventionMode: StpMode
    goodTillDate: int = absent("GTT orders only: expiry, ms since the epoch.")


class CanceledOrder(Body):
    """The order once cancelled (or as known when the engine's answer did not arrive in
    time)."""

    symbol: str
    origClientOrderId: str
    orderId: int
    orderListId: int = Field(description=ORDER_LIST_ID)
    clientOrderId: str = Field(description="newClientOrderId if given, else the order's own.")
    transactTime: int
    price: str = decimal()
    origQty: str = decimal()
    executedQty: str = decimal()
    origQuoteOrderQty: str = decimal()
    cummulativeQuoteQty: str = decimal(CUMMULATIVE)
    status: OrderStatus = Field(description=STATUS)
    timeInForce: TimeInForce
    type: OrderType
    side: Side
    selfTradePreventionMode: StpMode


class Rates(Body):
    maker: str = decimal("Rate, e.g. 0.00100000 for 0.1%.", "0.00100000")
    taker: str = decimal("Rate, e.g. 0.00100000 for 0.1%.", "0.00100000")


class AllRates(Rates):
    buyer: str = decimal("Always 0.", "0.00000000")
    seller: str = decimal("Always 0.", "0.00000000")


class Discount(Body):
    enabledForAccount: bool
    enabledForSymbol: bool
    discountAsset: str | None = Field(description="Always null: no fee discount asset.")
    discount: str = decimal()


class CommissionForOrder(Body):
    """`computeCommissionRates=true`: the rates the order would pay."""

    standardCommissionForOrder: Rates
    specialCommissionForOrder: Rates = Field(description="Always 0.")
    taxCommissionForOrder: Rates = Field(description="Always 0.")
    discount: Discount


TestOrder = Empty | CommissionForOrder


class CancelReplace(Body):
    """Both steps succeeded (otherwise the answer is error -2021 or -2022)."""

    cancelResult: Literal["SUCCESS"]
    newOrderResult: Literal["SUCCESS"]
    cancelResponse: CanceledOrder
    newOrderResponse: NewOrder


class CancelReplaceFailure(Body):
    cancelResult: Literal["SUCCESS", "FAILURE"]
    newOrderResult: Literal["SUCCESS", "FAILURE", "NOT_ATTEMPTED"]
    cancelResponse: ErrorRef | CanceledOrder
    newOrderResponse: ErrorRef | NewOrder | None


class CancelReplaceError(ErrorBody):
    """An error; -2021 (one step failed) and -2022 (both failed, or the cancel failed in
    STOP_ON_FAILURE mode) carry each step's result in `data`."""

    data: CancelReplaceFailure = absent("Each step's result (-2021, -2022).")  # type: ignore[assignment]


class AmendedOrder(Body):
    symbol: str
    orderId: int
    orderListId: int = Field(description=ORDER_LIST_ID)
    origClientOrderId: str
    clientOrderId: str
    price: str = decimal()
    qty: str = decimal("The new quantity.")
    executedQty: str = decimal()
    preventedQty: str = decimal("Always 0.")
    quoteOrderQty: str = decimal()
    cumulativeQuoteQty: str = decimal()
    status: OrderStatus = Field(description=STATUS)
    timeInForce: TimeInForce
    type: OrderType
    side: Side
    workingTime: int
    selfTradePreventionMode: StpMode


class Amended(Body):
    transactTime: int
    executionId: int = Field(description="Sequence number of the engine's event; 0 if unknown.")
    amendedOrder: AmendedOrder


# --------------------------------------------------------------------------- account


class AccountBalance(Body):
    asset: str
    free: str = decimal("Available.")
    locked: str = decimal("Held by open orders and pending withdrawals.")


class Account(Body):
    makerCommission: int = Field(description="Basis points (the highest of any market).")
    takerCommission: int = Field(description="Basis points (the highest of any market).")
    buyerCommission: int
    sellerCommission: int
    commissionRates: AllRates
    canTrade: bool
    canWithdraw: bool
    canDeposit: bool
    brokered: bool
    requireSelfTradePrevention: bool
    preventSor: bool
    updateTime: int
    accountType: Literal["SPOT"]
    balances: list[AccountBalance]
    permissions: list[Literal["SPOT"]]
    uid: int


class MyTrade(Body):
    symbol: str
    id: int
    orderId: int = Field(description="Your order in this trade.")
    orderListId: int = Field(description=ORDER_LIST_ID)
    price: str = decimal()
    qty: str = decimal()
    quoteQty: str = decimal()
    commission: str = decimal("Fee paid, in commissionAsset.")
    commissionAsset: str = Field(description="The asset received: base on a buy, quote on a sell.")
    time: int
    isBuyer: bool
    isMaker: bool
    isBestMatch: bool = Field(description="Always true.")


class PreventedMatch(Body):
    """A match that self-trade prevention stopped: no trade happened."""

    symbol: str
    preventedMatchId: int = Field(description="Unique per symbol; ascending in time.")
    takerOrderId: int
    makerSymbol: str = Field(description="Always the symbol: both orders are in one market.")
    makerOrderId: int
    tradeGroupId: int = Field(description="Always -1: accounts are not in trade groups here.")
    selfTradePreventionMode: Literal["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"]
    price: str = decimal("The maker's price.")
    makerPreventedQuantity: str = decimal(
        "The maker's quantity that did not trade: its remaining quantity (EXPIRE_TAKER: it "
        "stays on the book; EXPIRE_MAKER, EXPIRE_BOTH: it expired), or the quantity removed "
        "from both orders (DECREMENT)."
    )
    transactTime: int


class Commission(Body):
    symbol: str
    standardCommission: AllRates
    specialCommission: AllRates = Field(description="Always 0.")
    taxCommission: AllRates = Field(description="Always 0.")
    discount: Discount


class OrderCount(Body):
    rateLimitType: Literal["ORDERS"]
    interval: Literal["SECOND", "DAY"]
    intervalNum: int
    limit: int
    count: int = Field(description="New orders counted in the current window.")


# --------------------------------------------------------------------------- /cex/v1


class KeyDeleted(Body):
    id: int
    deleted: Literal[True]


# --------------------------------------------------------------------------- responses=

ERRORS: dict[int | str, str] = {
    400: "Refused (a parameter, filter, order or account error): Binance's code and "
    "message; nothing changed.",
    401: "Not authenticated: API key missing, malformed or refused (-2014, -2015), or no "
    "valid session (-9010..-9012), or wrong operator token (-9041).",
    403: "Forbidden: the faucet (-9035) or the operator role (-9040) is disabled.",
    404: "Not found (-9021 API key, -9033 user, -9036 withdrawal).",
    409: "Conflict: an idempotency key reused with other values (-9034), or a withdrawal "
    "already final the other way (-9037).",
    429: "Rate limited: request weight (-1003), new orders (-1015), login codes (-9001, -9002).",
    "default": "Server error (5XX: -1000 unknown error, -1001 internal error, -1008 "
    "overloaded): the outcome is unknown.",
}

PUBLIC = (400, 429)
SIGNED = (400, 401, 429)


def errors_only(
    *statuses: int, error: type[ErrorBody] = ErrorBody, default: bool = True
) -> dict[int | str, Any]:
    """`responses=` documenting the error body for `statuses` and 5XX (`default`).

    `default` also stands for FastAPI's 422, which this API never answers: its validation
    errors are Binance's 400 (-1102, -1130), and so is a body it cannot parse."""
    keys: tuple[int | str, ...] = (*statuses, "default") if default else statuses
    return {
        status: {"model": error if status == 400 else ErrorBody, "description": ERRORS[status]}
        for status in keys
    }


def documented(
    model: Any, description: str, *statuses: int, error: type[ErrorBody] = ErrorBody
) -> dict[int | str, Any]:
    """`responses=` documenting the 200 body (`model`: a model, a list or union of models)
    and the errors of `statuses`."""
    return {200: {"model": model, "description": description}} | errors_only(*statuses, error=error)

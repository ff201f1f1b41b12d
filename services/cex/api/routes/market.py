"""Market-data endpoints: order book, trades, aggregate trades, tickers, average price.

Binance's paths, parameters, fields and request weights. Prices and quantities are
formatted at the market's tick and lot precisions, averages at the quote precision (or the
tick's, if finer; `cex.core.tickers`). The book comes from the engine's L2 key in Redis
(`lastUpdateId` is its `seq`), trades from Postgres (`cex.api.marketdata`).

Aggregate trade ids: an aggregate's id `a` is the id of its first trade (`f`); ids are
therefore increasing but not consecutive, and `fromId` selects the aggregates whose first
trade id is ≥ `fromId` (so `fromId = a + 1` of the last page continues with the next one).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter

from cex.api import errors, marketdata, schemas
from cex.api.deps import State, public
from cex.api.params import Param, Params, openapi
from cex.api.routes.general import SYMBOL_STATUS
from cex.api.state import ApiState
from cex.core import tickers
from cex.core.market import MarketConfig
from cex.infra.registry import RegisteredMarket

router = APIRouter(prefix="/api/v3", tags=["Market data"])

DAY_MS = 86_400_000
AVG_PRICE_MINS = 5
STATUSES = ("TRADING", "HALT", "BREAK")
#: The most symbols `/api/v3/ticker` takes in one request.
ROLLING_MAX_SYMBOLS = 100

SYMBOL = Param("symbol", required=True, description="The symbol, e.g. BTCUSDT.")
ONE_OF_SYMBOL = Param("symbol", description="One symbol, e.g. BTCUSDT; not with `symbols`.")
SYMBOLS = Param("symbols", "symbols", description='Several symbols, e.g. ["BTCUSDT","ETHUSDT"].')
SYMBOL_STATUS_PARAM = Param(
    "symbolStatus",
    enum=STATUSES,
    description="Only symbols with this status: for one symbol a mismatch is error -1220, "
    "for several or all the others are left out.",
)
TYPE = Param("type", enum=("FULL", "MINI"), description="FULL (default) or MINI.")


def invalid_symbol_status() -> errors.ApiError:
    return errors.ApiError(-1122, "Invalid symbolStatus.")


def symbol_status_mismatch() -> errors.ApiError:
    return errors.ApiError(-1220, "The symbol's status does not match the requested symbolStatus.")


# --------------------------------------------------------------------------- parameters


def _limit(p: Params, default: int, most: int) -> int:
    """`limit` as Binance's spot API takes it: below 1 is refused, above `most` is served
    as `most`."""
    limit = p.integer("limit")
    if limit is None:
        return default
    if limit < 1:
        raise errors.invalid_parameter("limit")
    return min(limit, most)


def _status(p: Params) -> str | None:
    return p.enum("symbolStatus", STATUSES, invalid_symbol_status())


def _market(state: ApiState, p: Params) -> RegisteredMarket:
    """The required `symbol`, checked against `symbolStatus` when given."""
    market = state.markets.get(p.required_text("symbol"))
    status = _status(p)
    if status is not None and SYMBOL_STATUS.get(market.status, "BREAK") != status:
        raise symbol_status_mismatch()
    return market


def _markets(
    state: ApiState, p: Params, *, required: bool = False, most: int | None = None
) -> tuple[list[RegisteredMarket], bool]:
    """The markets of `symbol` or `symbols` (or every market), and whether one object
    (not an array) is answered. `symbolStatus` refuses a single mismatching symbol and
    filters several."""
    symbol = p.text("symbol")
    symbols = p.symbols()
    if symbol is not None and symbols is not None:
        raise errors.optional_combination()
    if symbol is not None:
        return [_market(state, p)], True
    status = _status(p)
    if symbols is not None:
        if most is not None and len(symbols) > most:
            raise errors.too_many_parameters()
        markets = [state.markets.get(s) for s in dict.fromkeys(symbols)]
    elif required:
        raise errors.mandatory_either("symbol", "symbols")
    else:
        markets = state.markets.sorted()
    if status is not None:
        markets = [m for m in markets if SYMBOL_STATUS.get(m.status, "BREAK") == status]
    return markets, False


def _symbol_count(p: Params) -> int | None:
    """How many symbols `symbols` names (None without it or when it does not parse: the
    request then fails, at the lowest weight)."""
    try:
        symbols = p.symbols()
    except errors.ApiError:
        return None
    return None if symbols is None else len(symbols)


def _type(p: Params) -> Literal["FULL", "MINI"]:
    kind = p.enum("type", ("FULL", "MINI"), errors.invalid_parameter("type"))
    return cast(Literal["FULL", "MINI"], kind or "FULL")


# --------------------------------------------------------------------------- weights


def depth_weight(p: Params) -> int:
    try:
        limit = _limit(p, 100, 5000)
    except errors.ApiError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def ticker_24hr_weight(p: Params) -> int:
    if p.text("symbol") is not None:
        return 2
    count = _symbol_count(p)
    if count is None:
        return 2 if "symbols" in p else 80
    return 2 if count <= 20 else 40 if count <= 100 else 80


def one_or_many_weight(p: Params) -> int:
    """ticker/price and ticker/bookTicker: 2 for one symbol, 4 for several or all."""
    return 2 if p.text("symbol") is not None else 4


def rolling_weight(p: Params) -> int:
    """ticker: 4 per symbol, at most 200."""
    count = 1 if p.text("symbol") is not None else _symbol_count(p) or 1
    return min(4 * count, 200)


# --------------------------------------------------------------------------- book


@router.get(
    "/depth",
    summary="Order book",
    openapi_extra=openapi(
        SYMBOL,
        Param(
            "limit",
            "integer",
            description="Levels per side: default 100, at most 5000 "
            "(more is served as 5000). Weight 5 (≤ 100), 25 (≤ 500), 50 (≤ 1000), 250.",
        ),
        SYMBOL_STATUS_PARAM,
    ),
    responses=schemas.documented(schemas.Depth, "The order book", *schemas.PUBLIC),
)
async def depth(state: State, p: Annotated[Params, public(depth_weight)]) -> dict[str, Any]:
    market = _market(state, p)
    limit = _limit(p, 100, 5000)
    config = market.config
    [book] = await marketdata.read_books(state.redis, state.settings.redis_prefix, [config.name])
    return {
        "lastUpdateId": book.seq,
        "bids": [[config.format_price(px), config.format_qty(q)] for px, q in book.bids[:limit]],
        "asks": [[config.format_price(px), config.format_qty(q)] for px, q in book.asks[:limit]],
    }


# --------------------------------------------------------------------------- trades

TRADES_LIMIT = Param("limit", "integer", description="Default 500, at most 1000.")


def trade_json(config: MarketConfig, row: Any) -> dict[str, Any]:
    return {
        "id": row["trade_id"],
        "price": config.format_price(row["price"]),
        "qty": config.format_qty(row["qty"]),
        "quoteQty": config.format_quote(int(row["quote_amount"])),
        "time": row["ts"],
        "isBuyerMaker": row["taker_side"] == "SELL",
        "isBestMatch": True,
    }


@router.get(
    "/trades",
    summary="Recent trades (weight 25)",
    openapi_extra=openapi(SYMBOL, TRADES_LIMIT),
    responses=schemas.documented(list[schemas.Trade], "Trades, oldest first", *schemas.PUBLIC),
)
async def trades(state: State, p: Annotated[Params, public(25)]) -> list[dict[str, Any]]:
    config = state.markets.get(p.required_text("symbol")).config
    limit = _limit(p, 500, 1000)
    rows = await marketdata.recent_trades(state.pool, config.name, limit)
    return [trade_json(config, row) for row in rows]


@router.get(
    "/historicalTrades",
    summary="Older trades (weight 25)",
    openapi_extra=openapi(
        SYMBOL,
        TRADES_LIMIT,
        Param(
            "fromId",
            "integer",
            description="Trade id to start from (inclusive); the most recent trades without it.",
        ),
    ),
    responses=schemas.documented(list[schemas.Trade], "Trades, oldest first", *schemas.PUBLIC),
)
async def historical_trades(state: State, p: Annotated[Params, public(25)]) -> list[dict[str, Any]]:
    config = state.markets.get(p.required_text("symbol")).config
    limit = _limit(p, 500, 1000)
    from_id = p.integer("fromId", low=0)
    if from_id is None:
        rows = await marketdata.recent_trades(state.pool, config.name, limit)
    else:
        rows = await marketdata.trades_from(state.pool, config.name, from_id, limit)
    return [trade_json(config, row) for row in rows]


@router.get(
    "/aggTrades",
    summary="Aggregate trades (weight 4)",
    description="Consecutive trades of one taker order at one price and time, quantities "
    "summed. An aggregate's id `a` is the id of its first trade `f`: ids increase but are "
    "not consecutive, and `fromId` returns the aggregates whose first trade id is ≥ it. "
    "`fromId` cannot be combined with `startTime`/`endTime` (-1128).",
    openapi_extra=openapi(
        SYMBOL,
        Param("fromId", "integer", description="Aggregate id to start from (inclusive)."),
        Param(
            "startTime",
            "integer",
            description="From this time (ms, inclusive); the oldest aggregates first.",
        ),
        Param(
            "endTime",
            "integer",
            description="Until this time (ms, inclusive); alone, the "
            "most recent aggregates before it.",
        ),
        TRADES_LIMIT,
    ),
    responses=schemas.documented(
        list[schemas.AggTrade], "Aggregate trades, oldest first", *schemas.PUBLIC
    ),
)
async def agg_trades(state: State, p: Annotated[Params, public(4)]) -> list[dict[str, Any]]:
    config = state.markets.get(p.required_text("symbol")).config
    from_id = p.integer("fromId", low=0)
    start = p.integer("startTime", low=0)
    end = p.integer("endTime", low=0)
    limit = _limit(p, 500, 1000)
    if from_id is not None and (start is not None or end is not None):
        raise errors.optional_combination()
    if start is not None and end is not None and start > end:
        return []
    found = await marketdata.agg_trades(
        state.pool, config.name, limit=limit, from_id=from_id, start=start, end=end
    )
    return [agg.to_binance(config) for agg in found]


# --------------------------------------------------------------------------- tickers


def _answer(described: list[dict[str, Any]], single: bool) -> Any:
    return described[0] if single else described


@router.get(
    "/ticker/24hr",
    summary="24 hour rolling window price change statistics",
    description="Weight 2 for one symbol or up to 20 `symbols`, 40 for 21-100, 80 for more "
    "or for all symbols.",
    openapi_extra=openapi(ONE_OF_SYMBOL, SYMBOLS, TYPE, SYMBOL_STATUS_PARAM),
    responses=schemas.documented(
        schemas.Ticker24hr | schemas.TickerMini | list[schemas.Ticker24hr | schemas.TickerMini],
        "One ticker for `symbol`, else an array; FULL (default) or MINI",
        *schemas.PUBLIC,
    ),
)
async def ticker_24hr(state: State, p: Annotated[Params, public(ticker_24hr_weight)]) -> Any:
    markets, single = _markets(state, p)
    type_ = _type(p)
    close_time = state.clock_ms()
    open_time = close_time - DAY_MS
    names = [m.config.name for m in markets]
    stats = await marketdata.window_stats(state.pool, names, open_time, close_time)
    books: list[marketdata.L2Book | None] = [None] * len(markets)
    if type_ == "FULL":
        books = list(await marketdata.read_books(state.redis, state.settings.redis_prefix, names))
    described = [
        tickers.rolling_ticker(
            m.config, stats[m.config.name], open_time=open_time, close_time=close_time,
            kind="24hr", type_=type_, book=book.best() if book is not None else None,
        )
        for m, book in zip(markets, books, strict=True)
    ]  # fmt: skip
    return _answer(described, single)


@router.get(
    "/ticker",
    summary="Rolling window price change statistics",
    description="The window opens on a minute boundary (up to 59999 ms wider than "
    "`windowSize`) and closes now. Weight 4 per symbol, at most 200.",
    openapi_extra=openapi(
        ONE_OF_SYMBOL,
        Param(
            "symbols",
            "symbols",
            description="Up to 100 symbols, e.g. "
            '["BTCUSDT","ETHUSDT"]. `symbol` or `symbols` is required.',
        ),
        Param("windowSize", description="1m..59m, 1h..23h or 1d..7d (default 1d)."),
        TYPE,
        SYMBOL_STATUS_PARAM,
    ),
    responses=schemas.documented(
        schemas.RollingTicker
        | schemas.TickerMini
        | list[schemas.RollingTicker | schemas.TickerMini],
        "One ticker for `symbol`, else an array; FULL (default) or MINI",
        *schemas.PUBLIC,
    ),
)
async def ticker_rolling(state: State, p: Annotated[Params, public(rolling_weight)]) -> Any:
    markets, single = _markets(state, p, required=True, most=ROLLING_MAX_SYMBOLS)
    type_ = _type(p)
    size = p.text("windowSize") or "1d"
    window = tickers.window_ms(size)
    if window is None:
        raise errors.invalid_parameter("windowSize")
    close_time = state.clock_ms()
    open_time = tickers.rolling_open_time(close_time, window)
    names = [m.config.name for m in markets]
    stats = await marketdata.window_stats(state.pool, names, open_time, close_time)
    described = [
        tickers.rolling_ticker(
            m.config, stats[m.config.name], open_time=open_time, close_time=close_time,
            kind="rolling", type_=type_,
        )
        for m in markets
    ]  # fmt: skip
    return _answer(described, single)


@router.get(
    "/ticker/price",
    summary="Latest price (weight 2 for one symbol, 4 otherwise)",
    openapi_extra=openapi(ONE_OF_SYMBOL, SYMBOLS, SYMBOL_STATUS_PARAM),
    responses=schemas.documented(
        schemas.PriceTicker | list[schemas.PriceTicker],
        "One price for `symbol`, else an array",
        *schemas.PUBLIC,
    ),
)
async def ticker_price(state: State, p: Annotated[Params, public(one_or_many_weight)]) -> Any:
    markets, single = _markets(state, p)
    prices = await marketdata.last_prices(state.pool, [m.config.name for m in markets])
    described = [
        {"symbol": m.config.symbol, "price": m.config.format_price(prices[m.config.name] or 0)}
        for m in markets
    ]
    return _answer(described, single)


@router.get(
    "/ticker/bookTicker",
    summary="Best price and quantity on the book (weight 2 for one symbol, 4 otherwise)",
    openapi_extra=openapi(ONE_OF_SYMBOL, SYMBOLS, SYMBOL_STATUS_PARAM),
    responses=schemas.documented(
        schemas.BookTicker | list[schemas.BookTicker],
        "One book ticker for `symbol`, else an array",
        *schemas.PUBLIC,
    ),
)
async def book_ticker(state: State, p: Annotated[Params, public(one_or_many_weight)]) -> Any:
    markets, single = _markets(state, p)
    books = await marketdata.read_books(
        state.redis, state.settings.redis_prefix, [m.config.name for m in markets]
    )
    described = []
    for market, book in zip(markets, books, strict=True):
        config, best = market.config, book.best()
        described.append({
            "symbol": config.symbol,
            "bidPrice": config.format_price(best.bid[0]),
            "bidQty": config.format_qty(best.bid[1]),
            "askPrice": config.format_price(best.ask[0]),
            "askQty": config.format_qty(best.ask[1]),
        })  # fmt: skip
    return _answer(described, single)


@router.get(
    "/avgPrice",
    summary="Current average price (weight 2)",
    description="Volume-weighted average price of the last 5 minutes of trades, exact at the "
    "quote asset's precision; the last price when nothing traded in those 5 minutes (0 if "
    "the market never traded). `closeTime` is the last trade's time (0 if none).",
    openapi_extra=openapi(SYMBOL),
    responses=schemas.documented(schemas.AvgPrice, "The average price", *schemas.PUBLIC),
)
async def avg_price(state: State, p: Annotated[Params, public(2)]) -> dict[str, Any]:
    config = state.markets.get(p.required_text("symbol")).config
    now = state.clock_ms()
    found = await marketdata.average(state.pool, config.name, now - AVG_PRICE_MINS * 60_000, now)
    if found.volume_lots:
        price = tickers.average_price(config, found.quote_units, found.volume_lots)
    else:
        price = tickers.price_at_average_places(config, found.last[0] if found.last else 0)
    return {
        "mins": AVG_PRICE_MINS,
        "price": price,
        "closeTime": found.last[1] if found.last else 0,
    }

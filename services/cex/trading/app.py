"""The trading API's HTTP routes (internal; the public API calls them).

Amounts go in and out as decimal strings with Binance's parameter names; errors are
`{"code": -NNNN, "msg": "..."}` with Binance's codes, and mean nothing changed.

The two placement routes (`POST /internal/v1/orders` and `/internal/v1/orders/batch`) are
every order's path, so they are served by :class:`PlacementLane`, a plain ASGI handler in
front of FastAPI: msgspec decodes and encodes, and no middleware, dependency or pydantic
model runs per request (that machinery was four fifths of the API's CPU per order). Their
FastAPI routes stay declared for the OpenAPI schema and behave the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import Receive, Scope, Send

from cex.core.market import MAX_INT64, MarketConfig
from cex.infra.settings import InfraSettings
from cex.trading import errors
from cex.trading.store import OrderStore, create_order_pool
from cex.trading.validation import AmendRequest, OrderRequest, validate, validate_amend

log = logging.getLogger(__name__)

ORDERS = Counter("cex_trading_orders_total", "Order placements by outcome", ["outcome"])
#: Order batches in flight at once (`OrderStore`'s workers), each on its own connection.
BATCH_WORKERS = 3
ACCEPTED, REJECTED, FAILED = (ORDERS.labels(o) for o in ("accepted", "rejected", "failed"))
LATENCY = Histogram(
    "cex_trading_place_seconds",
    "Time to validate, fund and commit one order",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


async def get_store(request: Request) -> OrderStore:
    # async: FastAPI runs a plain `def` dependency in a worker thread, for every request.
    return request.app.state.store  # type: ignore[no-any-return]


Store = Annotated[OrderStore, Depends(get_store)]
#: Ids are 64-bit in the database: larger ones are refused (-1100), never a failed query.
UserId = Annotated[int, Query(gt=0, le=MAX_INT64)]
OrderId = Annotated[int | None, Query(gt=0, le=MAX_INT64)]


def create_app(
    settings: InfraSettings | None = None, store: OrderStore | None = None
) -> PlacementLane:
    return PlacementLane(create_api(settings, store))


def create_api(settings: InfraSettings | None = None, store: OrderStore | None = None) -> FastAPI:
    """The trading API's FastAPI application (every route; `create_app` serves it)."""
    settings = settings or InfraSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        if store is None:
            dsn = settings.postgres_dsn
            the_store = OrderStore(
                await create_order_pool(dsn),
                workers=BATCH_WORKERS,
                batch_pool=await create_order_pool(dsn, max_size=BATCH_WORKERS, generic_plans=True),
            )
            await the_store.start()
        else:
            the_store = store
        app.state.store = the_store
        try:
            yield
        finally:
            if owned:
                await the_store.stop()
                await the_store.batch_pool.close()
                await the_store.pool.close()

    app = FastAPI(title="cex trading API (internal)", lifespan=lifespan)
    app.state.store = store  # a store given by the caller is usable without the lifespan

    @app.exception_handler(errors.TradingError)
    async def trading_error(_: Request, exc: errors.TradingError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        if first.get("type") == "missing":
            error = errors.mandatory(param)
        else:
            error = errors.illegal_value(param)
        return JSONResponse({"code": error.code, "msg": error.msg}, status_code=400)

    @app.post("/internal/v1/orders", status_code=201)
    async def place_order(body: OrderRequest, store: Store) -> dict[str, Any]:
        with LATENCY.time():
            try:
                config = store.market_for_symbol(body.symbol)
                order = validate(body, config)
                row = await store.place(order)
            except errors.TradingError:
                REJECTED.inc()
                raise
        ACCEPTED.inc()
        return render(row, config)

    @app.post("/internal/v1/orders/batch")
    async def place_orders(request: Request, store: Store) -> Response:
        """Several placements in one request (the public API sends what is waiting): a JSON
        array of orders → an array of outcomes in the same order, each the order placed or
        `{"code", "msg", "status"}`. One order's failure never fails another's."""
        try:
            batch = _decode_batch(await request.body())
        except msgspec.DecodeError as exc:
            raise errors.TradingError(
                -1130, f"Data sent for parameter 'orders' is not valid: {exc}."
            ) from None
        outcomes = await asyncio.gather(*(_place_one(store, body) for body in batch))
        return Response(msgspec.json.encode(outcomes), media_type="application/json")

    @app.post("/internal/v1/orders/test")
    async def test_order(body: OrderRequest, store: Store) -> dict[str, Any]:
        """Validate a new order against its market (grid, bounds, filters, fields) without
        placing it or touching funds: Binance's `POST /api/v3/order/test`."""
        config = store.market_for_symbol(body.symbol)
        if not store.markets[config.name].accepts_orders:
            raise errors.market_closed()
        validate(body, config)
        return {}

    @app.get("/internal/v1/order")
    async def query_order(
        user_id: UserId,
        symbol: str,
        store: Store,
        orderId: OrderId = None,
        origClientOrderId: str | None = None,
    ) -> dict[str, Any]:
        """One of the user's orders by orderId, else by origClientOrderId (its open order,
        else the most recent one with that id)."""
        row = await store.get(user_id, symbol, orderId, origClientOrderId)
        return render(row, store.market_for_symbol(symbol))

    @app.get("/internal/v1/orders/{order_id}")
    async def get_order(
        order_id: Annotated[int, Path(gt=0, le=MAX_INT64)],
        user_id: UserId,
        symbol: str,
        store: Store,
    ) -> dict[str, Any]:
        row = await store.get(user_id, symbol, order_id, None)
        return render(row, store.market_for_symbol(symbol))

    @app.get("/internal/v1/orders")
    async def open_orders(
        user_id: UserId, store: Store, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        rows = await store.open_orders(user_id, symbol)
        return [render(r, store.markets[r["market"]].config) for r in rows]

    @app.post("/internal/v1/orders/cancel")
    async def cancel_order(
        user_id: UserId,
        symbol: str,
        store: Store,
        orderId: OrderId = None,
        origClientOrderId: str | None = None,
    ) -> dict[str, Any]:
        row = await store.cancel(user_id, symbol, orderId, origClientOrderId)
        return render(row, store.market_for_symbol(symbol))

    @app.post("/internal/v1/orders/amend")
    async def amend_order(
        user_id: UserId,
        symbol: str,
        store: Store,
        orderId: OrderId = None,
        origClientOrderId: str | None = None,
        newQty: str | None = None,
        newPrice: str | None = None,
    ) -> dict[str, Any]:
        """Queue an amend of an open limit order through the engine; the order as stored
        (its price and quantity change once the engine's answer is settled) and the
        amendment, with what it locked on top."""
        config = store.market_for_symbol(symbol)
        amend = validate_amend(
            AmendRequest(user_id=user_id, symbol=symbol, orderId=orderId,
                         origClientOrderId=origClientOrderId, newQty=newQty,
                         newPrice=newPrice),
            config,
        )  # fmt: skip
        row = await store.amend(amend)
        locked_fmt = (
            config.format_quote if row["locked_asset"] == config.quote else config.format_base
        )
        return render(row, config) | {
            "amendment": {
                "newQty": None if amend.new_quantity is None else config.format_qty(
                    amend.new_quantity),
                "newPrice": None if amend.new_price is None else config.format_price(
                    amend.new_price),
                "additionalLocked": locked_fmt(row["additional_locked"]),
            }
        }  # fmt: skip

    @app.post("/internal/v1/orders/cancel-all")
    async def cancel_all(user_id: UserId, symbol: str, store: Store) -> list[dict[str, Any]]:
        rows = await store.cancel_all(user_id, symbol)
        config = store.market_for_symbol(symbol)
        return [render(r, config) for r in rows]

    @app.post("/internal/v1/markets/refresh")
    async def refresh_markets(store: Store) -> dict[str, list[str]]:
        await store.refresh_markets()
        return {"markets": sorted(store.markets)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(store: Store) -> dict[str, str]:
        await store.pool.fetchval("SELECT 1")
        return {"status": "ready"}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


_decode_order = msgspec.json.Decoder(OrderRequest).decode
_decode_batch = msgspec.json.Decoder(list[OrderRequest]).decode
_encode = msgspec.json.Encoder().encode
_JSON_HEADERS = [(b"content-type", b"application/json")]


class PlacementLane:
    """The trading API as an ASGI application: the placement routes served directly (the
    module's docstring says why), everything else, lifespan included, by FastAPI."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.state = api.state
        self._routes = {
            "/internal/v1/orders": self._place_order,
            "/internal/v1/orders/batch": self._place_orders,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self._routes.get(scope["path"])
            if route is not None:
                status, body = await route(await _read_body(receive))
                length = (b"content-length", str(len(body)).encode())
                await send({"type": "http.response.start", "status": status,
                            "headers": [*_JSON_HEADERS, length]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await self.api(scope, receive, send)

    async def _place_order(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = _decode_order(body)
        except msgspec.ValidationError as exc:
            error = _invalid_field(str(exc))
            return 400, _encode({"code": error.code, "msg": error.msg})
        except msgspec.DecodeError:
            error = errors.illegal_value("body")
            return 400, _encode({"code": error.code, "msg": error.msg})
        outcome = await _place_one(self.state.store, request)
        if "code" in outcome:
            status = outcome.pop("status")
            return status, _encode(outcome)
        return 201, _encode(outcome)

    async def _place_orders(self, body: bytes) -> tuple[int, bytes]:
        try:
            batch = _decode_batch(body)
        except msgspec.DecodeError as exc:
            msg = f"Data sent for parameter 'orders' is not valid: {exc}."
            return 400, _encode({"code": -1130, "msg": msg})
        store = self.state.store
        return 200, _encode(await asyncio.gather(*(_place_one(store, b) for b in batch)))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _invalid_field(message: str) -> errors.TradingError:
    """Binance's error for a msgspec validation message: a missing field is mandatory
    (-1102), any other wrong field has illegal characters (-1100)."""
    if message.startswith("Object missing required field `"):
        return errors.mandatory(message.split("`")[1])
    _, at, path = message.rpartition(" - at `$.")
    return errors.illegal_value(path.rstrip("`") if at else "body")


async def _place_one(store: OrderStore, body: OrderRequest) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        config = store.market_for_symbol(body.symbol)
        row = await store.place(validate(body, config))
    except errors.TradingError as exc:
        REJECTED.inc()
        return {"code": exc.code, "msg": exc.msg, "status": exc.status}
    except Exception:
        log.exception("placing an order failed")
        FAILED.inc()
        return {"code": -1000, "msg": "An unknown error occurred while processing the request.",
                "status": 500}  # fmt: skip
    finally:
        LATENCY.observe(time.perf_counter() - started)
    ACCEPTED.inc()
    return render(row, config)


def render(row: dict[str, Any], config: MarketConfig) -> dict[str, Any]:
    """An order row in Binance's shape (decimal strings) plus our locked-funds fields."""

    def opt(value: int | None, kind: str) -> str:
        return "0" if value is None else _formatted(config, kind, int(value))

    locked_kind = "quote" if row["locked_asset"] == config.quote else "base"
    return {
        "symbol": config.symbol,
        "orderId": row["id"],
        "clientOrderId": row["client_order_id"],
        "userId": row["user_id"],
        "side": row["side"],
        "type": row["type"],
        "timeInForce": row["time_in_force"],
        "price": opt(row["price"], "price"),
        "origQty": opt(row["quantity"], "qty"),
        "origQuoteOrderQty": opt(row["quote_order_qty"], "quote"),
        "stopPrice": opt(row["stop_price"], "price"),
        "executedQty": _formatted(config, "qty", int(row.get("filled_qty") or 0)),
        "cummulativeQuoteQty": _formatted(config, "quote", int(row.get("cumulative_quote") or 0)),
        "status": row["status"],
        "selfTradePreventionMode": row["stp_mode"],
        "goodTillDate": row["expire_at"],
        "transactTime": row["created_ms"],
        "lockedAsset": row["locked_asset"],
        "locked": _formatted(config, locked_kind, int(row["locked"])),
        "lockedRemaining": _formatted(config, locked_kind, int(row["locked_remaining"])),
    }


# Every answer formats six amounts, and they repeat (prices near the book, round sizes,
# zero): a decimal formatting each was a tenth of the server's CPU per order.
@functools.lru_cache(maxsize=8192)
def _formatted(config: MarketConfig, kind: str, value: int) -> str:
    """`value` (market units) as a decimal string: ``price`` (ticks), ``qty`` (lots),
    ``quote`` or ``base`` (the asset's smallest units)."""
    formats = {"price": config.format_price, "qty": config.format_qty,
               "quote": config.format_quote, "base": config.format_base}  # fmt: skip
    return formats[kind](value)

"""`create_app`: builds and wires the public API; routes live one resource per module."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from cex.api import errors
from cex.api.routes import ROUTERS
from cex.api.settings import ApiSettings
from cex.api.state import ApiState
from cex.api.wsapi import router as wsapi_router

log = logging.getLogger(__name__)

REQUESTS = Counter("cex_api_errors_total", "Requests refused, by Binance code", ["code"])

DESCRIPTION = """\
Binance-Spot-compatible REST API (`/api/v3/...`: same paths, parameters, fields, signatures,
errors and rate limits; parameters in the query string and/or a form body) and the
exchange's own account endpoints (`/cex/v1/...`: email one-time-password login, sessions,
API keys, deposits and withdrawals).
"""


class JSON(JSONResponse):
    """JSON rendered by msgspec (several times faster than the standard library). A
    `JSONResponse`, so the OpenAPI schema documents each route's JSON response (FastAPI
    documents any other default response class as a plain string)."""

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def error_body(error: errors.ApiError) -> dict[str, Any]:
    """Binance's error object (counted by code)."""
    REQUESTS.labels(str(error.code)).inc()
    body: dict[str, Any] = {"code": error.code, "msg": error.msg}
    if error.data is not None:
        body["data"] = error.data
    return body


def error_response(request: Request, error: errors.ApiError) -> JSON:
    headers = {**getattr(request.state, "rate_headers", {}), **error.headers}
    return JSON(error_body(error), status_code=error.status, headers=headers)


def create_app(settings: ApiSettings | None = None, state: ApiState | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state is None
        app.state.api = state or await ApiState.open(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.api.close()

    app = FastAPI(
        title="cex public API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSON,
    )
    app.state.api = state

    @app.exception_handler(errors.ApiError)
    async def api_error(request: Request, exc: errors.ApiError) -> JSON:
        return error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        """The framework's own refusals in Binance's shape: a body it could not parse is
        -1130; an unknown path or method keeps its status with -1000's body."""
        if exc.status_code == 400:
            return error_response(request, errors.invalid_parameter("body"))
        error = errors.ApiError(-1000, str(exc.detail), exc.status_code)
        response = error_response(request, error)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSON:
        first = exc.errors()[0] if exc.errors() else {}
        param = str(first.get("loc", ("", "body"))[-1])
        if first.get("type") == "missing":
            return error_response(request, errors.mandatory(param))
        return error_response(request, errors.invalid_parameter(param))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(request, errors.unknown_error())

    for router in ROUTERS:
        app.include_router(router)
    app.include_router(wsapi_router)  # the WebSocket API, /ws-api/v3

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, str]:
        api: ApiState = request.app.state.api
        await api.pool.fetchval("SELECT 1")
        await api.redis.ping()
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app

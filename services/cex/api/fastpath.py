"""The hot path: `POST /api/v3/order` signed with an API key, served straight from ASGI.

Order placement is what bots send most. Through FastAPI each request spends most of its
CPU in the framework (middleware layers, dependency resolution, telemetry), so this thin
ASGI wrapper answers key-signed new orders itself, with the very functions the FastAPI
route uses (`deps.authorize_key`, `routes.orders.place`): same parameters, checks, limits,
errors and headers. Anything else — other paths, session-authenticated orders, lifespan —
goes to the FastAPI app, which also documents the route in the OpenAPI schema.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from cex.api import errors
from cex.api.app import error_body
from cex.api.deps import authorize_key
from cex.api.params import FORM, Params
from cex.api.routes.orders import place
from cex.api.state import ApiState

log = logging.getLogger(__name__)

_encode = msgspec.json.encode


class OrderFastPath:
    def __init__(self, app: Any) -> None:
        self.app: ASGIApp = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/v3/order" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        api_key = headers.get(b"x-mbx-apikey")
        if api_key is None:  # a web session, or a request to refuse: FastAPI's way
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload, extra = await self._new_order(scope, headers, api_key, body)
        response_headers = [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]  # fmt: skip
        response_headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": response_headers})  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _new_order(
        self, scope: Scope, headers: dict[bytes, bytes], api_key: bytes, body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        state: ApiState = self.app.state.api  # type: ignore[attr-defined]
        rate_headers: dict[str, str] = {}
        try:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            form = body if body and (content_type.startswith(FORM) or not content_type) else b""
            try:
                params = Params(scope["query_string"].decode("latin-1"), form.decode())
            except UnicodeDecodeError:
                raise errors.invalid_parameter("body") from None
            client = scope.get("client")
            signed_request, rate_headers = await authorize_key(
                state, "POST", api_key.decode("latin-1"), client[0] if client else "unknown",
                params, "trade", 1, new_order=True,
            )  # fmt: skip
            answer = await place(state, signed_request.user_id, params)
            return 200, _encode(answer), rate_headers
        except errors.ApiError as exc:
            return exc.status, _encode(error_body(exc)), rate_headers | exc.headers
        except Exception:
            log.exception("unexpected error placing an order")
            error = errors.unknown_error()
            return error.status, _encode(error_body(error)), rate_headers

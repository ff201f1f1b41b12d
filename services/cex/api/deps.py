"""Dependencies of the routes, as typed `Annotated` aliases and factories.

* `State`: the shared `ApiState`.
* `public(weight)`: parameters of an unsigned endpoint, after counting its request weight.
* `signed(permission, weight, …)`: a `Signed` request (caller and parameters) after the
  weight, the signature (`cex.api.auth`) and, for new orders, the ORDERS counters.

The rate-limit headers go on the response, and on an error response too (the exception
handler reads them from `request.state`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from cex.api import auth, errors, params
from cex.api.params import Params
from cex.api.state import ApiState

Weight = int | Callable[[Params], int]


async def get_state(request: Request) -> ApiState:
    # async: FastAPI runs a plain `def` dependency in a worker thread, for every request.
    return request.app.state.api  # type: ignore[no-any-return]


State = Annotated[ApiState, Depends(get_state)]
Parsed = Annotated[Params, Depends(params.read)]


@dataclass(frozen=True)
class Signed:
    caller: auth.Caller
    params: Params

    @property
    def user_id(self) -> int:
        return self.caller.user_id


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _remember(request: Request, response: Response, headers: dict[str, str]) -> None:
    request.state.rate_headers = headers
    response.headers.update(headers)


async def _spend(
    request: Request, response: Response, state: ApiState, weight: Weight, p: Params,
    orders_of: int | None = None, once: tuple[str, int] | None = None,
) -> None:  # fmt: skip
    cost = weight(p) if callable(weight) else weight
    try:
        headers = await state.limiter.spend(
            client_ip(request), cost, state.clock_ms(), orders_of=orders_of, once=once
        )
    except Exception as exc:
        request.state.rate_headers = getattr(exc, "headers", {})
        raise
    _remember(request, response, headers)


def public(weight: Weight) -> Any:
    async def dependency(request: Request, response: Response, state: State, p: Parsed) -> Params:
        await _spend(request, response, state, weight, p)
        return p

    return Depends(dependency)


def _has_session(request: Request) -> bool:
    return "x-mbx-apikey" not in request.headers and (
        "authorization" in request.headers or "cex_session" in request.cookies
    )


async def authorize_key(
    state: ApiState, method: str, api_key: str | None, ip: str, p: Params, permission: str,
    weight: Weight, *, new_order: bool = False,
) -> tuple[Signed, dict[str, str]]:  # fmt: skip
    """A request signed with an API key, authorized and counted: the caller and the
    rate-limit headers. Errors carry the headers too.

    The signature is checked first (no I/O once the key is cached); then one call to Redis
    counts the weight, the new order and the signature's single use. A refused request
    still counts its weight."""
    cost = weight(p) if callable(weight) else weight
    now = state.clock_ms()
    try:
        caller, recv_window = await auth.authenticate(state.keys, api_key, p, now, permission)
    except errors.ApiError as exc:
        exc.headers = await state.limiter.spend(ip, cost, now)  # a 429 takes precedence
        raise
    once = None
    if method != "GET":
        once = (p.raw("signature") or "", recv_window + auth.MAX_AHEAD_MS + 1_000)
    headers = await state.limiter.spend(
        ip, cost, now, orders_of=caller.user_id if new_order else None, once=once
    )
    return Signed(caller, p), headers


def signed(permission: str, weight: Weight, *, new_order: bool = False) -> Any:
    """A signed endpoint needing `permission`; `new_order` counts ORDERS. A request that
    changes state is accepted once (a replayed signature is refused).

    The web UI calls the same endpoints with its login session instead of a key (no
    `X-MBX-APIKEY`; a bearer token, or the session cookie plus the CSRF header on anything
    but GET): a session may read and trade, never withdraw (`cex.api.sessions`)."""

    async def dependency(request: Request, response: Response, state: State, p: Parsed) -> Signed:
        if _has_session(request) and permission in ("read", "trade"):
            # Imported here: the session dependencies build on this module's `State`.
            from cex.api.sessions import current_session

            await _spend(request, response, state, weight, p)
            session = await current_session(request, state)
            caller = auth.Caller(session.user_id, None)
            if new_order:
                await _spend(request, response, state, 0, p, orders_of=caller.user_id)
            return Signed(caller, p)
        try:
            signed_request, headers = await authorize_key(
                state, request.method, request.headers.get("x-mbx-apikey"), client_ip(request),
                p, permission, weight, new_order=new_order,
            )  # fmt: skip
        except errors.ApiError as exc:
            request.state.rate_headers = exc.headers
            raise
        _remember(request, response, headers)
        return signed_request

    return Depends(dependency)

"""One WebSocket API connection: requests in, responses and user data events out.

Requests run concurrently (a RESULT/FULL order waits for settlement, the rest must not
wait for it), at most `MAX_IN_FLIGHT` at a time; responses may come back in another order,
matched by their `id`, as on Binance. Everything sent goes through one bounded outbox: a
client that does not read is disconnected (close code 1008) instead of growing memory or
slowing the others.

Authentication, per request:

* `apiKey` + `timestamp` + `signature` in `params` (HMAC-SHA256 or Ed25519): the signature
  covers the other params sorted by name as `name=value&…` (as sent; a client that
  percent-encoded values is accepted too). Checked like the REST API (`cex.api.deps`).
* after `session.logon` (Ed25519 keys only, as Binance): `timestamp` only; the key is
  re-checked on every request (a deleted key stops working at once).
* a web UI session: `session.logon` with a `sessionToken` param (the login's bearer
  token), or the `cex_session` cookie / `Authorization: Bearer` header of the upgrade
  request (same-origin only). A session may read and trade, never withdraw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

import msgspec
from starlette.websockets import WebSocket

from cex.api import auth, errors
from cex.api.channels import UserChannels
from cex.api.deps import Signed, Weight, authorize_key
from cex.api.params import Params
from cex.api.state import ApiState
from cex.api.wsapi.userdata import Renderer
from cex.infra import apikeys, sessions
from cex.infra import redis as keys

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32
#: Messages waiting to be sent before the client counts as not reading.
OUTBOX_LIMIT = 2_000
#: User data messages waiting to be rendered, per subscription.
STREAM_QUEUE = 1_000
SESSION_COOKIE = "cex_session"

Result = tuple[Any, dict[str, str]]


def rate_limits(headers: dict[str, str], state: ApiState) -> list[dict[str, Any]]:
    """Binance's `rateLimits` array from the counters the limiter returned."""
    limits = state.limiter.limits
    out: list[dict[str, Any]] = []
    if "X-MBX-USED-WEIGHT-1M" in headers:
        out.append({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                    "limit": limits.weight_per_minute,
                    "count": int(headers["X-MBX-USED-WEIGHT-1M"])})  # fmt: skip
    if "X-MBX-ORDER-COUNT-10S" in headers:
        out.append({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                    "limit": limits.orders_per_10s,
                    "count": int(headers["X-MBX-ORDER-COUNT-10S"])})  # fmt: skip
        out.append({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                    "limit": limits.orders_per_day,
                    "count": int(headers["X-MBX-ORDER-COUNT-1D"])})  # fmt: skip
    return out


def params_of(raw: dict[str, Any]) -> Params:
    """The request's params, with the signature payload of the WebSocket API: every param
    but `signature`, sorted by name, as `name=value` joined by `&`."""
    p = Params.of(raw)
    pairs = sorted((k, v) for k, v in p.values.items() if k != "signature")
    p.signed_payload = "&".join(f"{k}={v}" for k, v in pairs)
    p.encoded_payload = urlencode(pairs)  # type: ignore[attr-defined]
    return p


@dataclass
class Subscription:
    id: int
    user_id: int
    by_signature: bool
    queue: asyncio.Queue[keys.UserUpdate | keys.BalanceChange]
    task: asyncio.Task[None] | None = None

    def listener(self, message: keys.UserUpdate | keys.BalanceChange) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(message)


class Connection:
    def __init__(
        self, websocket: WebSocket, state: ApiState, streams: UserChannels[keys.UserData]
    ) -> None:
        self.ws = websocket
        self.state = state
        self.streams = streams
        self.ip = websocket.client.host if websocket.client else "unknown"
        self.return_rate_limits = websocket.query_params.get("returnRateLimits") != "false"
        self.connected_since = state.clock_ms()
        self.key: apikeys.ApiKey | None = None
        self.session_token: str | None = None
        self.session_user: int | None = None
        self.authorized_since: int | None = None
        self.subscriptions: dict[int, Subscription] = {}
        self._next_subscription = 0
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        await self.ws.accept()
        await self._session_from_handshake()
        writer = asyncio.create_task(self._write(), name="ws-api-writer")
        try:
            while not self._closed:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    data = message.get("bytes") or b""
                    text = data.decode(errors="replace")
                if len(self._tasks) >= MAX_IN_FLIGHT:
                    self._send_error(None, errors.server_busy(), {})
                    continue
                task = asyncio.create_task(self._handle(text))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self._closed = True
            for task in list(self._tasks):
                task.cancel()
            for subscription_id in list(self.subscriptions):
                await self._unsubscribe(subscription_id)
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is None:
                if self._closed:
                    return
                with contextlib.suppress(Exception):  # the client lags: drop it
                    await self.ws.close(code=1008, reason="Too many messages queued")
                return
            try:
                await self.ws.send_text(item)
            except Exception:
                self._closed = True
                return

    def send(self, message: dict[str, Any]) -> None:
        if self._closed:
            return
        if self._outbox.qsize() >= OUTBOX_LIMIT:
            self._closed = True
            self._outbox.put_nowait(None)
            return
        self._outbox.put_nowait(msgspec.json.encode(message).decode())

    async def _session_from_handshake(self) -> None:
        """A web UI session from the upgrade request (cookie or bearer), same origin only:
        a cookie alone must not let another site's page open our user's stream."""
        token = self.ws.cookies.get(SESSION_COOKIE)
        bearer = self.ws.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
        elif token is not None:
            origin = self.ws.headers.get("origin")
            if origin is not None and urlparse(origin).netloc != self.ws.headers.get("host"):
                return
        if not token:
            return
        user_id = await sessions.user_for_session_token(self.state.pool, token,
                                                        self.state.clock_ms())  # fmt: skip
        if user_id is not None:
            self.session_token, self.session_user = token, user_id
            self.authorized_since = self.state.clock_ms()

    # ------------------------------------------------------------------ requests

    async def _handle(self, text: str) -> None:
        request_id: Any = None
        headers: dict[str, str] = {}
        try:
            try:
                request = json.loads(text)
            except ValueError:
                raise errors.ApiError(-1102, "Malformed request: not a JSON object.") from None
            if not isinstance(request, dict):
                raise errors.ApiError(-1102, "Malformed request: not a JSON object.")
            request_id = request.get("id")
            if not (request_id is None or isinstance(request_id, str | int)) or (
                isinstance(request_id, str) and len(request_id) > 36
            ):
                request_id = None
                raise errors.invalid_parameter("id")
            method = request.get("method")
            if not isinstance(method, str):
                raise errors.mandatory("method")
            raw = request.get("params") or {}
            if not isinstance(raw, dict):
                raise errors.invalid_parameter("params")
            handler = METHODS.get(method)
            if handler is None:
                raise errors.ApiError(-1020, f"Unknown method '{method[:64]}'.")
            result, headers = await handler(self, params_of(raw))
        except errors.ApiError as exc:
            self._send_error(request_id, exc, exc.headers or headers)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error in a WebSocket API request")
            self._send_error(request_id, errors.unknown_error(), headers)
            return
        response: dict[str, Any] = {"id": request_id, "status": 200, "result": result}
        if self.return_rate_limits and raw.get("returnRateLimits") is not False:
            response["rateLimits"] = rate_limits(headers, self.state)
        self.send(response)

    def _send_error(self, request_id: Any, exc: errors.ApiError, headers: dict[str, str]) -> None:
        error: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
        if exc.data is not None:
            error["data"] = exc.data
        response: dict[str, Any] = {"id": request_id, "status": exc.status, "error": error}
        if self.return_rate_limits and headers:
            response["rateLimits"] = rate_limits(headers, self.state)
        self.send(response)

    async def public(self, p: Params, weight: Weight) -> dict[str, str]:
        cost = weight(p) if callable(weight) else weight
        return await self.state.limiter.spend(self.ip, cost, self.state.clock_ms())

    async def signed(
        self, p: Params, permission: str, weight: Weight, *, new_order: bool = False,
        changes: bool = False,
    ) -> tuple[Signed, dict[str, str]]:  # fmt: skip
        """The caller of a request: signed in its params, or the connection's logon."""
        state = self.state
        if "signature" in p:
            api_key = p.raw("apiKey")
            await self._pick_payload(p, api_key)
            return await authorize_key(state, "POST" if changes else "GET", api_key, self.ip, p,
                                       permission, weight, new_order=new_order)  # fmt: skip
        cost = weight(p) if callable(weight) else weight
        now = state.clock_ms()
        try:
            caller = await self._logged_on_caller(p, permission, now)
        except errors.ApiError as exc:
            exc.headers = await state.limiter.spend(self.ip, cost, now)
            raise
        headers = await state.limiter.spend(
            self.ip, cost, now, orders_of=caller.user_id if new_order else None
        )
        return Signed(caller, p), headers

    async def _pick_payload(self, p: Params, api_key: str | None) -> None:
        """Use the percent-encoded payload when that is what the client signed."""
        encoded: str = p.encoded_payload  # type: ignore[attr-defined]
        if encoded == p.signed_payload or not api_key:
            return
        key = await self.state.keys.get(api_key)
        if key is None:
            return
        try:
            auth.verify_signature(key, p.signed_payload, p.raw("signature") or "")
        except errors.ApiError:
            p.signed_payload = encoded

    async def _logged_on_caller(self, p: Params, permission: str, now: int) -> auth.Caller:
        if self.key is not None:
            key = await self.state.keys.get(self.key.api_key)
            if key is None:
                self._logout()
                raise errors.rejected_api_key()
            auth.check_timestamp(p, now)
            if permission not in key.permissions:
                raise errors.rejected_api_key()
            return auth.Caller(key.user_id, key)
        if self.session_user is not None and self.session_token is not None:
            if permission not in ("read", "trade"):
                raise errors.rejected_api_key()
            user_id = await sessions.user_for_session_token(self.state.pool, self.session_token,
                                                            now)  # fmt: skip
            if user_id is None:
                self._logout()
                raise errors.ApiError(-9011, "Session expired or revoked: log in again.", 401)
            return auth.Caller(user_id, None)
        raise errors.mandatory("apiKey")

    # ------------------------------------------------------------------ session

    def session_status(self) -> dict[str, Any]:
        return {
            "apiKey": self.key.api_key if self.key else None,
            "authorizedSince": self.authorized_since,
            "connectedSince": self.connected_since,
            "returnRateLimits": self.return_rate_limits,
            "serverTime": self.state.clock_ms(),
            "userDataStream": any(not s.by_signature for s in self.subscriptions.values()),
        }

    def _logout(self) -> None:
        self.key = None
        self.session_user = self.session_token = None
        self.authorized_since = None

    async def logout(self) -> None:
        self._logout()
        for sub in list(self.subscriptions.values()):
            if not sub.by_signature:
                await self._unsubscribe(sub.id)

    def logged_on_user(self) -> int | None:
        if self.key is not None:
            return self.key.user_id
        return self.session_user

    # ------------------------------------------------------------------ user data

    async def subscribe(self, user_id: int, *, by_signature: bool) -> int:
        if len(self.subscriptions) >= 1_000:
            raise errors.ApiError(-2039, "Too many user data stream subscriptions.")
        subscription = Subscription(self._next_subscription, user_id, by_signature,
                                    asyncio.Queue(STREAM_QUEUE))  # fmt: skip
        self._next_subscription += 1
        renderer = Renderer(self.state.pool, self.state.markets, user_id, self.state.clock_ms)
        subscription.task = asyncio.create_task(self._stream(subscription, renderer))
        self.subscriptions[subscription.id] = subscription
        await self.streams.add(user_id, subscription.listener)
        return subscription.id

    async def _unsubscribe(self, subscription_id: int) -> None:
        subscription = self.subscriptions.pop(subscription_id, None)
        if subscription is None:
            return
        await self.streams.remove(subscription.user_id, subscription.listener)
        if subscription.task is not None:
            subscription.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscription.task

    async def unsubscribe(self, subscription_id: int | None) -> None:
        if subscription_id is None:
            for known in list(self.subscriptions):
                await self._unsubscribe(known)
            return
        if subscription_id not in self.subscriptions:
            raise errors.ApiError(-2036, "User Data Stream subscription not active.")
        await self._unsubscribe(subscription_id)

    async def _stream(self, subscription: Subscription, renderer: Renderer) -> None:
        while True:
            message = await subscription.queue.get()
            try:
                events = await renderer.render(message)
            except Exception:
                log.exception("rendering a user data event failed")
                continue
            for event in events:
                self.send({"subscriptionId": subscription.id, "event": event})


Method = Callable[[Connection, Params], Awaitable[Result]]

# Filled by `cex.api.wsapi.methods` (imported by the package).
METHODS: dict[str, Method] = {}

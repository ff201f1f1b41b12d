"""The WebSocket API's methods, with Binance's names, parameters, weights and results.

Each method reuses what the REST route of the same request runs (the route functions are
plain async functions of the state and the parsed request), so both APIs answer alike.
"""

from __future__ import annotations

from collections.abc import Callable

from cex.api import errors
from cex.api.params import Params
from cex.api.routes import account, general, market, orders
from cex.api.wsapi.connection import METHODS, Connection, Method, Result

__all__ = ["METHODS"]
from cex.infra import sessions


def method(name: str) -> Callable[[Method], Method]:
    def register(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------- general


@method("ping")
async def ping(c: Connection, p: Params) -> Result:
    return {}, await c.public(p, 1)


@method("time")
async def time(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 1)
    return {"serverTime": c.state.clock_ms()}, headers


@method("exchangeInfo")
async def exchange_info(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 20)
    return await general.exchange_info(c.state, p), headers


@method("depth")
async def depth(c: Connection, p: Params) -> Result:
    headers = await c.public(p, market.depth_weight)
    return await market.depth(c.state, p), headers


# --------------------------------------------------------------------------- session


@method("session.logon")
async def session_logon(c: Connection, p: Params) -> Result:
    """Ed25519 keys only (as Binance); or a web UI session with `sessionToken`."""
    token = p.text("sessionToken", max_len=256)
    if token is not None:
        headers = await c.public(p, 2)
        user_id = await sessions.user_for_session_token(c.state.pool, token, c.state.clock_ms())
        if user_id is None:
            raise errors.ApiError(-9011, "Session expired or revoked: log in again.", 401)
        c.key, c.session_token, c.session_user = None, token, user_id
        c.authorized_since = c.state.clock_ms()
        return c.session_status(), headers
    signed, headers = await c.signed(p, "read", 2)
    key = signed.caller.key
    assert key is not None
    if key.kind != "ED25519":
        raise errors.ApiError(-4056, "HMAC_SHA256 API key is not supported.")
    c.key, c.session_token, c.session_user = key, None, None
    c.authorized_since = c.state.clock_ms()
    return c.session_status(), headers


@method("session.status")
async def session_status(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 2)
    return c.session_status(), headers


@method("session.logout")
async def session_logout(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 2)
    await c.logout()
    return c.session_status(), headers


@method("session.subscriptions")
async def session_subscriptions(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 2)
    return [{"subscriptionId": s} for s in sorted(c.subscriptions)], headers


# --------------------------------------------------------------------------- user data


@method("userDataStream.subscribe")
async def user_data_subscribe(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 2)
    user_id = c.logged_on_user()
    if user_id is None:
        raise errors.rejected_api_key()  # not logged on
    if any(not s.by_signature for s in c.subscriptions.values()):
        raise errors.ApiError(-2035, "User Data Stream subscription already active.")
    return {"subscriptionId": await c.subscribe(user_id, by_signature=False)}, headers


@method("userDataStream.subscribe.signature")
async def user_data_subscribe_signature(c: Connection, p: Params) -> Result:
    if "signature" not in p:
        raise errors.mandatory("signature")
    signed, headers = await c.signed(p, "read", 2)
    return {"subscriptionId": await c.subscribe(signed.user_id, by_signature=True)}, headers


@method("userDataStream.unsubscribe")
async def user_data_unsubscribe(c: Connection, p: Params) -> Result:
    headers = await c.public(p, 2)
    await c.unsubscribe(p.integer("subscriptionId", low=0))
    return {}, headers


# --------------------------------------------------------------------------- trading


@method("order.place")
async def order_place(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "trade", 1, new_order=True, changes=True)
    return await orders.place(c.state, signed.user_id, p), headers


@method("order.test")
async def order_test(c: Connection, p: Params) -> Result:
    weight = 20 if p.boolean("computeCommissionRates") else 1
    signed, headers = await c.signed(p, "trade", weight)
    return await orders.test_order(c.state, signed), headers


@method("order.status")
async def order_status(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "read", 4)
    return await orders.query_order(c.state, signed), headers


@method("order.cancel")
async def order_cancel(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "trade", 1, changes=True)
    return await orders.cancel_order(c.state, signed), headers


@method("openOrders.status")
async def open_orders_status(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "read", lambda q: 6 if q.raw("symbol") else 80)
    return await orders.open_orders(c.state, signed), headers


@method("openOrders.cancelAll")
async def open_orders_cancel_all(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "trade", 1, changes=True)
    return await orders.cancel_open_orders(c.state, signed), headers


# --------------------------------------------------------------------------- account


@method("account.status")
async def account_status(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "read", 20)
    return await account.account(c.state, signed), headers


@method("account.commission")
async def account_commission(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "read", 20)
    return await account.commission(c.state, signed), headers


@method("account.rateLimits.orders")
async def account_rate_limits_orders(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "read", 40)
    return await account.order_rate_limits(c.state, signed), headers


@method("myTrades")
async def my_trades(c: Connection, p: Params) -> Result:
    signed, headers = await c.signed(p, "read", lambda q: 5 if q.raw("orderId") else 20)
    return await account.my_trades(c.state, signed), headers

"""Binance's WebSocket API at `/ws-api/v3`, served by the public API process.

It needs what the public API owns (key verification, rate limits, order placement through
the trading API, Binance rendering), so it lives here rather than in the market-streams
gateway.

Requests are `{"id", "method", "params"}`; responses `{"id", "status", "result"}` or
`{"id", "status", "error": {"code", "msg"}}`, with Binance's `rateLimits` (REQUEST_WEIGHT,
and the ORDERS counts for `order.place`) unless the connection URL has
`?returnRateLimits=false`. Methods (`cex.api.wsapi.methods`): `ping`, `time`,
`exchangeInfo`, `depth`, `session.logon` / `session.status` / `session.logout` /
`session.subscriptions`, `userDataStream.subscribe` (after logon),
`userDataStream.subscribe.signature`, `userDataStream.unsubscribe`, `order.place`,
`order.test`, `order.status`, `order.cancel`, `openOrders.status`, `openOrders.cancelAll`,
`account.status`, `account.commission`, `account.rateLimits.orders`, `myTrades`.

User data events arrive as `{"subscriptionId": n, "event": {...}}`
(`cex.api.wsapi.userdata`). Authentication: `cex.api.wsapi.connection`.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from cex.api.state import ApiState
from cex.api.wsapi import methods as _methods  # registers the methods
from cex.api.wsapi.connection import Connection
from cex.api.wsapi.userdata import user_streams

__all__ = ["router"]

router = APIRouter()
del _methods


@router.websocket("/ws-api/v3")
async def ws_api(websocket: WebSocket) -> None:
    state: ApiState = websocket.app.state.api
    streams = getattr(websocket.app.state, "user_streams", None)
    if streams is None:
        streams = user_streams(state.redis, state.settings.redis_prefix)
        websocket.app.state.user_streams = streams
    await Connection(websocket, state, streams).run()

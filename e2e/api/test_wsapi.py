"""The WebSocket API's protocol with a plain WebSocket client: response envelope and
rateLimits, errors with Binance's codes, HMAC-signed requests (refused when replayed or
mis-signed), HMAC keys refused by `session.logon`, and the web UI's session token."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
import asyncpg
from tests.fixtures import unique

from cex.infra import sessions

from .conftest import Exchange, Trader
from .test_user_stream import ws_api_url


def _signed(trader: Trader, **params: Any) -> dict[str, Any]:
    params = {**params, "apiKey": trader.api_key, "timestamp": int(time.time() * 1000)}
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    signature = hmac.new(trader.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return {**params, "signature": signature}


async def _call(ws: aiohttp.ClientWebSocketResponse, request_id: Any, method: str,
                params: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    await ws.send_str(json.dumps({"id": request_id, "method": method, "params": params or {}}))
    while True:
        message = json.loads((await ws.receive(timeout=30)).data)
        if "subscriptionId" not in message or "event" not in message:
            assert message["id"] == request_id
            return message  # type: ignore[no-any-return]


async def test_protocol_errors_and_signatures(exchange: Exchange) -> None:
    trader = await exchange.trader(f"{unique('wsapi')}@example.com", {"USDT": "100"})
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_api_url(exchange)) as ws:
        pong = await _call(ws, 1, "ping")
        assert (pong["status"], pong["result"]) == (200, {})
        (weight,) = pong["rateLimits"]
        assert (weight["rateLimitType"], weight["interval"], weight["intervalNum"]) == (
            "REQUEST_WEIGHT", "MINUTE", 1)  # fmt: skip
        assert weight["count"] >= 1

        unknown = await _call(ws, "x-1", "nope")
        assert (unknown["status"], unknown["error"]["code"]) == (400, -1020)

        unsigned = await _call(ws, 2, "account.status", {"timestamp": int(time.time() * 1000)})
        assert unsigned["error"]["code"] == -1102  # no apiKey, not logged on

        account = await _call(ws, 3, "account.status", _signed(trader))
        assert account["status"] == 200
        assert {b["asset"]: b["free"] for b in account["result"]["balances"]}["USDT"] == (
            "100.000000")  # fmt: skip

        forged = _signed(trader)
        forged["timestamp"] += 1
        bad = await _call(ws, 4, "account.status", forged)
        assert (bad["status"], bad["error"]["code"]) == (400, -1022)

        order = _signed(trader, symbol="ETHUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                        quantity="0.01", price="1000", newOrderRespType="ACK")  # fmt: skip
        placed = await _call(ws, 5, "order.place", order)
        assert placed["status"] == 200, placed
        kinds = [(r["rateLimitType"], r["interval"]) for r in placed["rateLimits"]]
        assert kinds == [("REQUEST_WEIGHT", "MINUTE"), ("ORDERS", "SECOND"), ("ORDERS", "DAY")]
        assert placed["rateLimits"][1]["count"] == 1
        replayed = await _call(ws, 6, "order.place", order)
        assert replayed["error"]["code"] == -1022

        hmac_logon = await _call(ws, 7, "session.logon", _signed(trader))
        assert hmac_logon["error"]["code"] == -4056
        status = await _call(ws, 8, "session.status")
        assert status["result"]["apiKey"] is None

        cancelled = await _call(ws, 9, "openOrders.cancelAll", _signed(trader, symbol="ETHUSDT"))
        assert [o["orderId"] for o in cancelled["result"]] == [placed["result"]["orderId"]]


async def test_web_session_token_logs_on(exchange: Exchange) -> None:
    trader = await exchange.trader(f"{unique('wsweb')}@example.com", {"USDT": "100"})
    conn = await asyncpg.connect(exchange.dsn)
    try:
        session = await sessions.create_session(conn, trader.user_id,
                                                int(time.time() * 1000), 3_600_000)  # fmt: skip
    finally:
        await conn.close()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_api_url(exchange)) as ws:
        refused = await _call(ws, 1, "session.logon", {"sessionToken": "not-a-token"})
        assert (refused["status"], refused["error"]["code"]) == (401, -9011)
        logon = await _call(ws, 2, "session.logon", {"sessionToken": session.token})
        assert logon["status"] == 200
        assert logon["result"]["authorizedSince"] is not None
        subscribed = await _call(ws, 3, "userDataStream.subscribe")
        assert subscribed["result"] == {"subscriptionId": 0}
        again = await _call(ws, 4, "userDataStream.subscribe")
        assert again["error"]["code"] == -2035
        account = await _call(ws, 5, "account.status", {"timestamp": int(time.time() * 1000)})
        assert account["result"]["uid"] == trader.user_id
        assert (await _call(ws, 6, "session.status"))["result"]["userDataStream"] is True
        await _call(ws, 7, "session.logout")
        status = (await _call(ws, 8, "session.status"))["result"]
        assert (status["userDataStream"], status["authorizedSince"]) == (False, None)
        after = await _call(ws, 9, "account.status", {"timestamp": int(time.time() * 1000)})
        assert after["error"]["code"] == -1102


async def test_deposits_and_withdrawals_reach_the_user_stream(exchange: Exchange) -> None:
    """balanceUpdate + outboundAccountPosition after the faucet, a withdrawal request and
    the operator's reject, each once committed."""
    trader = await exchange.trader(f"{unique('wsbal')}@example.com", {})
    conn = await asyncpg.connect(exchange.dsn)
    try:
        session = await sessions.create_session(conn, trader.user_id,
                                                int(time.time() * 1000), 3_600_000)  # fmt: skip
    finally:
        await conn.close()
    bearer = {"Authorization": f"Bearer {session.token}"}
    operator = {"Authorization": f"Bearer {exchange.operator_token}"}

    async def events(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
        got = []
        while len(got) < n:
            message = json.loads((await ws.receive(timeout=30)).data)
            if "event" in message:
                got.append(message["event"])
        return got

    async with (
        aiohttp.ClientSession(exchange.url) as http,
        http.ws_connect(ws_api_url(exchange)) as ws,
    ):
        assert (await _call(ws, 1, "session.logon", {"sessionToken": session.token}))[
            "status"] == 200  # fmt: skip
        await _call(ws, 2, "userDataStream.subscribe")
        async with http.post("/cex/v1/faucet", json={"asset": "USDT", "amount": "250.5"},
                             headers=bearer) as response:  # fmt: skip
            assert response.status == 200, await response.text()
        deposit, position = await events(ws, 2)
        assert (deposit["e"], deposit["a"], deposit["d"]) == ("balanceUpdate", "USDT", "250.500000")
        assert position["e"] == "outboundAccountPosition"
        assert [(b["a"], b["f"], b["l"]) for b in position["B"]] == [
            ("USDT", "250.500000", "0.000000")]  # fmt: skip

        async with http.post("/cex/v1/withdrawals", headers=bearer,
                             json={"asset": "USDT", "amount": "100", "address": "addr-1"},
                             ) as response:  # fmt: skip
            withdrawal = await response.json()
        request, position = await events(ws, 2)
        assert (request["e"], request["d"]) == ("balanceUpdate", "-100.000000")
        assert [(b["f"], b["l"]) for b in position["B"]] == [("150.500000", "100.000000")]

        async with http.post(f"/cex/v1/operator/withdrawals/{withdrawal['id']}/reject",
                             headers=operator, json={"reason": "test"}) as response:  # fmt: skip
            assert response.status == 200, await response.text()
        back, position = await events(ws, 2)
        assert (back["e"], back["d"]) == ("balanceUpdate", "100.000000")
        assert [(b["f"], b["l"]) for b in position["B"]] == [("250.500000", "0.000000")]

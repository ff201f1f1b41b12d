"""The web UI's way in: sign in with an emailed code, then trade on the same Binance
endpoints with the session instead of an API key (bearer token, or the HttpOnly cookie
with the CSRF header on anything that changes state)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx

from .conftest import Exchange


async def test_a_session_trades_on_the_binance_endpoints(exchange: Exchange) -> None:
    email = "web-session@example.com"
    async with httpx.AsyncClient(base_url=exchange.url, timeout=30) as web:
        assert (await web.post("/cex/v1/auth/otp", json={"email": email})).status_code == 200
        sent = [json.loads(line) for line in exchange.otp_outbox.read_text().splitlines()]
        code = [s["code"] for s in sent if s["email"] == email][-1]
        login = await web.post("/cex/v1/auth/verify", json={"email": email, "code": code})
        assert login.status_code == 200, login.text
        assert {"cex_session", "cex_csrf"} <= set(web.cookies)
        funded = await web.post(
            "/cex/v1/faucet", json={"asset": "USDT", "amount": "500"},
            headers={"X-CSRF-Token": web.cookies["cex_csrf"]},
        )  # fmt: skip
        assert funded.status_code == 200, funded.text

        order = {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.1", "price": "1234", "newOrderRespType": "RESULT"}  # fmt: skip
        # The cookie alone cannot change anything: a cross-site form would carry it too.
        forged = await web.post("/api/v3/order", data=order)
        assert (forged.status_code, forged.json()["code"]) == (401, -9012)
        placed = await web.post("/api/v3/order", data=order,
                                headers={"X-CSRF-Token": web.cookies["cex_csrf"]})  # fmt: skip
        assert placed.status_code == 200, placed.text
        assert placed.json()["status"] == "NEW"
        # Reads need no CSRF token; the account is the session's.
        account = (await web.get("/api/v3/account")).json()
        usdt = {b["asset"]: b for b in account["balances"]}["USDT"]
        assert (Decimal(usdt["free"]), Decimal(usdt["locked"])) == (Decimal("376.6"),
                                                                   Decimal("123.4"))  # fmt: skip
        mine = (await web.get("/api/v3/openOrders", params={"symbol": "ETHUSDT"})).json()
        assert [o["orderId"] for o in mine] == [placed.json()["orderId"]]

        token = login.json()["token"]
        async with httpx.AsyncClient(base_url=exchange.url, timeout=30) as script:
            bearer = {"Authorization": f"Bearer {token}"}
            cancelled = await script.delete(
                "/api/v3/order", params={"symbol": "ETHUSDT",
                                         "orderId": placed.json()["orderId"]}, headers=bearer,
            )  # fmt: skip
            assert cancelled.json()["status"] == "CANCELED", (cancelled.elapsed, cancelled.json())
            await script.post("/cex/v1/auth/logout", headers=bearer)
            after = await script.get("/api/v3/account", headers=bearer)
            assert (after.status_code, after.json()["code"]) == (401, -9011)

"""Real answers of the running exchange against the schema it publishes (`/openapi.json`).

schemathesis (`test_schema.py`) checks every answer whose status is documented, but its
generated requests are unsigned and rarely valid, so most of what it sees are errors.
Here real traders make the successful calls: public market data, every signed trading and
account endpoint (a real trade between two accounts, so fills, trades and partially
filled orders are in the answers), a cancel-replace failure, and the account endpoints of
a web session; each JSON body is validated (jsonschema_rs, Draft 2020-12, as OpenAPI 3.1
says) against the schema of its operation and status.

The book is shared with the other tests: the trade happens inside the spread, so the
taker only meets our maker, and every order is cancelled at the end.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import jsonschema_rs
from tests.fixtures import unique

from .conftest import Exchange
from .signing import Signer

SYMBOL = "BTCUSDT"
TICK = Decimal("0.1")


class Checked:
    """An HTTP client that validates every answer against the published schema."""

    def __init__(self, http: httpx.AsyncClient, spec: dict[str, Any]) -> None:
        self.http = http
        self.spec = spec
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: httpx.Response) -> Any:
        operation = self.spec["paths"][path][method.lower()]
        status = str(response.status_code)
        documented = operation["responses"].get(status) or operation["responses"]["default"]
        schema = dict(documented["content"]["application/json"]["schema"])
        schema["components"] = self.spec["components"]
        body = response.json()
        errors = [
            f"{e.instance_path}: {e.message}"
            for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(body)
        ]
        assert not errors, (method, path, status, body, errors)
        self.seen.add((method, path, response.status_code))
        return body

    async def call(
        self, method: str, path: str, status: int = 200, *, signer: Signer | None = None,
        headers: dict[str, str] | None = None, route: str | None = None, **params: Any,
    ) -> Any:  # fmt: skip
        """`method path` with `params` in the query string (signed by `signer`); `route`
        is the path's template in the schema when it has parameters."""
        query = signer.query(params) if signer else httpx.QueryParams(params)
        response = await self.http.request(
            method, path, params=query, headers=(signer.headers if signer else {}) | (headers or {})
        )
        assert response.status_code == status, (method, path, params, response.text)
        return self.check(method, route or path, response)


def inside_the_spread(depth: dict[str, Any]) -> Decimal:
    """A price above every bid and below every ask (so only our own orders meet there)."""
    bid = Decimal(depth["bids"][0][0]) if depth["bids"] else Decimal(30000)
    ask = Decimal(depth["asks"][0][0]) if depth["asks"] else bid + 2000
    price = ((bid + ask) / 2).quantize(TICK)
    assert bid < price < ask, (bid, ask)
    return price


async def test_successful_answers_match_the_published_schema(exchange: Exchange) -> None:
    maker_key = await exchange.trader(f"{unique('schema-maker')}@example.com", {"BTC": "1"})
    taker_key = await exchange.trader(f"{unique('schema-taker')}@example.com",
                                      {"USDT": "200000"})  # fmt: skip
    maker = Signer.hmac(maker_key.api_key, maker_key.secret)
    taker = Signer.hmac(taker_key.api_key, taker_key.secret)
    async with httpx.AsyncClient(base_url=exchange.url, timeout=30) as http:
        spec = (await http.get("/openapi.json")).json()
        api = Checked(http, spec)

        # ------------------------------------------------------------- public
        await api.call("GET", "/api/v3/ping")
        await api.call("GET", "/api/v3/time")
        await api.call("GET", "/api/v3/exchangeInfo")
        await api.call("GET", "/api/v3/exchangeInfo", symbol=SYMBOL)
        depth = await api.call("GET", "/api/v3/depth", symbol=SYMBOL, limit=5)
        price = inside_the_spread(depth)

        # ------------------------------------------------------------- a trade
        ask = await api.call("POST", "/api/v3/order", signer=maker, symbol=SYMBOL, side="SELL",
                             type="LIMIT", timeInForce="GTC", quantity="0.002", price=price,
                             newOrderRespType="RESULT")  # fmt: skip
        assert ask["status"] == "NEW", ask
        bought = await api.call("POST", "/api/v3/order", signer=taker, symbol=SYMBOL, side="BUY",
                                type="LIMIT", timeInForce="IOC", quantity="0.001", price=price,
                                newOrderRespType="FULL")  # fmt: skip
        assert (bought["status"], len(bought["fills"])) == ("FILLED", 1), bought
        low_bid = await api.call("POST", "/api/v3/order", signer=taker, symbol=SYMBOL,
                                 side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.5",
                                 price="10.0", newOrderRespType="ACK")  # fmt: skip
        assert set(low_bid) == {"symbol", "orderId", "orderListId", "clientOrderId",
                                "transactTime"}  # fmt: skip

        # ------------------------------------------------------------- market data
        await api.call("GET", "/api/v3/trades", symbol=SYMBOL, limit=5)
        await api.call("GET", "/api/v3/historicalTrades", symbol=SYMBOL, limit=5)
        await api.call("GET", "/api/v3/historicalTrades", symbol=SYMBOL, fromId=1, limit=5)
        await api.call("GET", "/api/v3/aggTrades", symbol=SYMBOL, limit=5)
        await api.call("GET", "/api/v3/depth", symbol=SYMBOL)
        await api.call("GET", "/api/v3/ticker/24hr", symbol=SYMBOL)
        await api.call("GET", "/api/v3/ticker/24hr", type="MINI")
        await api.call("GET", "/api/v3/ticker/24hr")
        await api.call("GET", "/api/v3/ticker", symbol=SYMBOL, windowSize="1h")
        await api.call("GET", "/api/v3/ticker", symbols=json.dumps([SYMBOL, "ETHUSDT"]),
                       type="MINI")  # fmt: skip
        await api.call("GET", "/api/v3/ticker/price", symbol=SYMBOL)
        await api.call("GET", "/api/v3/ticker/price")
        await api.call("GET", "/api/v3/ticker/bookTicker", symbol=SYMBOL)
        await api.call("GET", "/api/v3/ticker/bookTicker")
        await api.call("GET", "/api/v3/avgPrice", symbol=SYMBOL)

        # ------------------------------------------------------------- orders, account
        order = await api.call("GET", "/api/v3/order", signer=maker, symbol=SYMBOL,
                               orderId=ask["orderId"])  # fmt: skip
        assert order["status"] == "PARTIALLY_FILLED", order
        assert await api.call("GET", "/api/v3/openOrders", signer=maker, symbol=SYMBOL)
        await api.call("GET", "/api/v3/openOrders", signer=maker)
        await api.call("GET", "/api/v3/allOrders", signer=taker, symbol=SYMBOL)
        trades = await api.call("GET", "/api/v3/myTrades", signer=maker, symbol=SYMBOL)
        assert [t["isMaker"] for t in trades] == [True]
        await api.call("GET", "/api/v3/myTrades", signer=taker, symbol=SYMBOL,
                       orderId=bought["orderId"])  # fmt: skip
        await api.call("GET", "/api/v3/myPreventedMatches", signer=maker, symbol=SYMBOL,
                       orderId=ask["orderId"])  # fmt: skip
        await api.call("GET", "/api/v3/account", signer=maker)
        await api.call("GET", "/api/v3/account", signer=taker, omitZeroBalances="true")
        await api.call("GET", "/api/v3/account/commission", signer=maker, symbol=SYMBOL)
        await api.call("GET", "/api/v3/rateLimit/order", signer=taker)
        test_order = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": "0.001", "price": "10000.0"}  # fmt: skip
        assert await api.call("POST", "/api/v3/order/test", signer=taker, **test_order) == {}
        await api.call("POST", "/api/v3/order/test", signer=taker, computeCommissionRates="true",
                       **test_order)  # fmt: skip
        amended = await api.call(
            "PUT",
            "/api/v3/order/amend/keepPriority",
            signer=maker,
            symbol=SYMBOL,
            orderId=ask["orderId"],
            newQty="0.0015",
        )
        assert amended["amendedOrder"]["qty"] == "0.00150", amended
        replaced = await api.call(
            "POST", "/api/v3/order/cancelReplace", signer=maker, symbol=SYMBOL,
            cancelReplaceMode="STOP_ON_FAILURE", cancelOrderId=ask["orderId"], side="SELL",
            type="LIMIT", timeInForce="GTC", quantity="0.001", price=price + 1000,
        )  # fmt: skip
        assert replaced["cancelResponse"]["status"] == "CANCELED", replaced
        failed = await api.call(
            "POST", "/api/v3/order/cancelReplace", 400, signer=maker, symbol=SYMBOL,
            cancelReplaceMode="ALLOW_FAILURE", cancelOrderId=ask["orderId"], side="SELL",
            type="LIMIT", timeInForce="GTC", quantity="0.001", price=price + 1000,
        )  # fmt: skip
        assert (failed["code"], failed["data"]["cancelResult"]) == (-2021, "FAILURE"), failed
        cancelled = await api.call("DELETE", "/api/v3/order", signer=maker, symbol=SYMBOL,
                                   orderId=replaced["newOrderResponse"]["orderId"])  # fmt: skip
        assert cancelled["status"] == "CANCELED", cancelled
        await api.call("DELETE", "/api/v3/openOrders", signer=maker, symbol=SYMBOL)
        swept = await api.call("DELETE", "/api/v3/openOrders", signer=taker, symbol=SYMBOL)
        assert {o["status"] for o in swept} == {"CANCELED"}, swept

        # ------------------------------------------------------------- errors
        await api.call("GET", "/api/v3/order", 400, signer=taker, symbol=SYMBOL, orderId=1)
        await api.call("GET", "/api/v3/depth", 400, symbol="NOPE")
        await api.call("GET", "/api/v3/account", 401)

        # ------------------------------------------------------------- a web session
        email = f"{unique('schema-web')}@example.com"
        api.check("POST", "/cex/v1/auth/otp",
                        await http.post("/cex/v1/auth/otp", json={"email": email}))  # fmt: skip
        sent = [json.loads(line) for line in exchange.otp_outbox.read_text().splitlines()]
        code = [s["code"] for s in sent if s["email"] == email][-1]
        login = await http.post("/cex/v1/auth/verify", json={"email": email, "code": code})
        token = api.check("POST", "/cex/v1/auth/verify", login)["token"]
        http.cookies.clear()  # the bearer token alone: no CSRF header needed
        bearer = {"Authorization": f"Bearer {token}"}
        await api.call("GET", "/cex/v1/auth/session", headers=bearer)
        api.check(
            "POST",
            "/cex/v1/faucet",
            await http.post(
                "/cex/v1/faucet", json={"asset": "USDT", "amount": "10"}, headers=bearer
            ),
        )
        await api.call("GET", "/cex/v1/balances", headers=bearer)
        key = api.check(
            "POST",
            "/cex/v1/api-keys",
            await http.post("/cex/v1/api-keys", json={"label": "schema"}, headers=bearer),
        )
        await api.call("GET", "/cex/v1/api-keys", headers=bearer)
        route = "/cex/v1/api-keys/{key_id}"
        await api.call("DELETE", f"/cex/v1/api-keys/{key['id']}", headers=bearer, route=route)
        await api.call("DELETE", f"/cex/v1/api-keys/{key['id']}", 404, headers=bearer,
                       route=route)  # fmt: skip
        api.check("POST", "/cex/v1/withdrawals", await http.post(
            "/cex/v1/withdrawals", json={"asset": "USDT", "amount": "1", "address": "addr-1"},
            headers=bearer))  # fmt: skip
        await api.call("GET", "/cex/v1/withdrawals", headers=bearer)
        api.check("POST", "/cex/v1/auth/logout",
                        await http.post("/cex/v1/auth/logout", headers=bearer))  # fmt: skip
        await api.call("GET", "/cex/v1/auth/session", 401, headers=bearer)

    ok = {(m, p) for m, p, status in api.seen if status == 200}
    signed = {(m, p) for p, item in spec["paths"].items() if p.startswith("/api/v3/")
              for m in map(str.upper, item) if "401" in item[m.lower()]["responses"]}  # fmt: skip
    assert signed <= ok, sorted(signed - ok)

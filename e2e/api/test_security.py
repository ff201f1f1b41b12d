"""Security of the public API, over raw HTTP against the whole exchange (`exchange`):

* no endpoint lets one account read or change another's data (one test per endpoint that
  takes an id or lists the caller's data);
* signed requests: clock window, recvWindow bound, tampering, replay, missing / unknown /
  deleted / read-only keys, Ed25519 keys;
* email login codes: wrong guesses burn a code; per-email and per-IP rate limits;
* Binance's rate limits (a second API process with small limits and its own counters);
* bad numbers are refused with Binance's codes and place nothing;
* last: no API secret, login code or session token in any process's log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cex.infra import apikeys

from .conftest import Exchange, Trader
from .signing import Signer, now_ms, public_pem

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: Every secret handed out in this module: none may appear in a log (last test).
SECRETS: set[str] = set()


def signer(trader: Trader) -> Signer:
    SECRETS.add(trader.secret)
    return Signer.hmac(trader.api_key, trader.secret)


async def signed(
    http: httpx.AsyncClient, method: str, url: str, who: Signer, params: dict[str, Any]
) -> httpx.Response:
    """A signed request: parameters in the query string for GET, in a form body otherwise."""
    if method == "GET":
        return await http.get(f"{url}?{who.query(params)}", headers=who.headers)
    return await http.request(method, url, content=who.form(params), headers=who.headers | FORM)


def error(response: httpx.Response) -> int:
    body = response.json()
    assert isinstance(body, dict), (response.status_code, body)
    assert "code" in body, (response.status_code, body)
    return int(body["code"])


async def order_count(exchange: Exchange, user_id: int) -> int:
    conn = await asyncpg.connect(exchange.dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE user_id = $1", user_id))
    finally:
        await conn.close()


async def login(http: httpx.AsyncClient, url: str, exchange: Exchange, email: str) -> str:
    """Log in by email code (read from the OTP outbox); the bearer token."""
    sent = await http.post(f"{url}/cex/v1/auth/otp", json={"email": email})
    assert sent.status_code == 200, sent.text
    code = latest_code(exchange, email)
    done = await http.post(f"{url}/cex/v1/auth/verify", json={"email": email, "code": code})
    assert done.status_code == 200, done.text
    body = done.json()
    SECRETS.update((body["token"], body["csrfToken"]))
    return str(body["token"])


def latest_code(exchange: Exchange, email: str) -> str:
    lines = [json.loads(line) for line in exchange.otp_outbox.read_text().splitlines()]
    return str([line["code"] for line in lines if line["email"] == email][-1])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # No cookie jar: a session cookie from a login would authenticate later requests.
    jar = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(timeout=30, cookies=jar) as client:
        yield client


@pytest.fixture(scope="module")
async def accounts_url(exchange: Exchange) -> str:
    """An API process sharing the exchange's Redis counters but with a login limit per IP
    high enough for every login of this module (all from 127.0.0.1)."""
    return await exchange.extra_api("api-accounts", CEX_API_AUTH_PER_IP="1000000")


@dataclass
class Pair:
    victim: Trader
    attacker: Trader
    v: Signer
    a: Signer
    #: The victim's open BUY on BTCUSDT, its client id, and its trade on ETHUSDT.
    order_id: int
    client_id: str
    trade_order_id: int
    #: The attacker's own open order.
    own_order_id: int


@pytest.fixture(scope="module")
async def pair(exchange: Exchange, http: httpx.AsyncClient) -> Pair:
    victim = await exchange.trader("sec-victim@example.com", {"USDT": "10000"})
    attacker = await exchange.trader("sec-attacker@example.com", {"USDT": "1000"})
    seller = await exchange.trader("sec-seller@example.com", {"ETH": "1"})
    v, a, s = signer(victim), signer(attacker), signer(seller)
    url = f"{exchange.url}/api/v3/order"
    resting = await signed(http, "POST", url, v, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "1000", "newClientOrderId": "victim-order-1"})  # fmt: skip
    assert resting.status_code == 200, resting.text
    own = await signed(http, "POST", url, a, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "1000", "newClientOrderId": "victim-order-1"})  # fmt: skip
    assert own.status_code == 200, own.text
    ask = await signed(http, "POST", url, s, {
        "symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "1500"})  # fmt: skip
    assert ask.status_code == 200, ask.text
    take = await signed(http, "POST", url, v, {
        "symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
        "quantity": "0.01", "price": "1500"})  # fmt: skip
    assert take.status_code == 200, take.text
    pair = Pair(victim, attacker, v, a, resting.json()["orderId"], "victim-order-1",
                take.json()["orderId"], own.json()["orderId"])  # fmt: skip
    try:
        async with asyncio.timeout(60):  # the trade is settled (myTrades reads settled trades)
            while not (await my_trades(http, exchange, v, {"symbol": "ETHUSDT"})):
                await asyncio.sleep(0.1)
    except TimeoutError:
        conn = await asyncpg.connect(exchange.dsn)
        rows = await conn.fetch("SELECT id, user_id, market, side, status FROM orders ORDER BY id")
        await conn.close()
        names = ("relay", "trading", "settlement", "engine-eth-usdt")
        logs = {name: exchange.log(name)[-3000:] for name in names}
        raise AssertionError(f"no settled trade: {take.text} {rows} {logs}") from None
    return pair


async def my_trades(
    http: httpx.AsyncClient, exchange: Exchange, who: Signer, params: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await signed(http, "GET", f"{exchange.url}/api/v3/myTrades", who, params)
    assert response.status_code == 200, response.text
    return list(response.json())


async def assert_victim_untouched(http: httpx.AsyncClient, exchange: Exchange, pair: Pair) -> None:
    response = await signed(http, "GET", f"{exchange.url}/api/v3/order", pair.v,
                            {"symbol": "BTCUSDT", "orderId": pair.order_id})  # fmt: skip
    assert response.status_code == 200, response.text
    order = response.json()
    assert (order["status"], order["origQty"], order["price"], order["executedQty"]) == (
        "NEW", "0.01000", "1000.0", "0.00000")  # fmt: skip


# --------------------------------------------------------------- one account, not another's


@pytest.mark.parametrize("ref", ["orderId", "origClientOrderId"])
async def test_query_order_of_another_user_does_not_exist(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair, ref: str
) -> None:
    value = pair.order_id if ref == "orderId" else pair.client_id
    if ref == "origClientOrderId":
        # The attacker has an open order with the same client id: it sees its own.
        response = await signed(http, "GET", f"{exchange.url}/api/v3/order", pair.a,
                                {"symbol": "BTCUSDT", ref: value})  # fmt: skip
        assert response.json()["orderId"] == pair.own_order_id
        value = "victim-only-id"
        await _victim_order(http, exchange, pair, value)
    response = await signed(http, "GET", f"{exchange.url}/api/v3/order", pair.a,
                            {"symbol": "BTCUSDT", ref: value})  # fmt: skip
    assert (response.status_code, error(response)) == (400, -2013)


async def _victim_order(http: httpx.AsyncClient, exchange: Exchange, pair: Pair, cid: str) -> int:
    response = await signed(http, "POST", f"{exchange.url}/api/v3/order", pair.v, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "1000", "newClientOrderId": cid})  # fmt: skip
    if response.status_code == 400 and error(response) == -2010:  # already open (a rerun)
        return 0
    assert response.status_code == 200, response.text
    return int(response.json()["orderId"])


@pytest.mark.parametrize("ref", ["orderId", "origClientOrderId"])
async def test_cancel_order_of_another_user_is_unknown(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair, ref: str
) -> None:
    other = "victim-cancel-target"
    other_id = await _victim_order(http, exchange, pair, other)
    value = pair.order_id if ref == "orderId" else other
    response = await signed(http, "DELETE", f"{exchange.url}/api/v3/order", pair.a,
                            {"symbol": "BTCUSDT", ref: value})  # fmt: skip
    assert (response.status_code, error(response)) == (400, -2011)
    await assert_victim_untouched(http, exchange, pair)
    if other_id:
        still = await signed(http, "GET", f"{exchange.url}/api/v3/order", pair.v,
                             {"symbol": "BTCUSDT", "origClientOrderId": other})  # fmt: skip
        assert still.json()["status"] == "NEW"


async def test_cancel_replace_of_another_users_order_fails_and_places_nothing(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    before = await order_count(exchange, pair.attacker.user_id)
    for mode in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        response = await signed(http, "POST", f"{exchange.url}/api/v3/order/cancelReplace",
                                pair.a, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "0.02",
                                         "price": "1000", "cancelReplaceMode": mode,
                                         "cancelOrderId": pair.order_id})  # fmt: skip
        body = response.json()
        assert response.status_code == 400, body
        assert body["data"]["cancelResult"] == "FAILURE"
        assert body["data"]["cancelResponse"]["code"] == -2011
        if mode == "STOP_ON_FAILURE":
            assert (body["code"], body["data"]["newOrderResult"]) == (-2022, "NOT_ATTEMPTED")
    await assert_victim_untouched(http, exchange, pair)
    # ALLOW_FAILURE places the attacker's own new order, as on Binance; nothing else.
    assert await order_count(exchange, pair.attacker.user_id) <= before + 1


async def test_amend_of_another_users_order_changes_nothing(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    other = "victim-amend-target"
    await _victim_order(http, exchange, pair, other)
    for ref, value in (("orderId", pair.order_id), ("origClientOrderId", other)):
        response = await signed(http, "PUT", f"{exchange.url}/api/v3/order/amend/keepPriority",
                                pair.a, {"symbol": "BTCUSDT", ref: value,
                                         "newQty": "0.005"})  # fmt: skip
        assert response.status_code >= 400, response.text
        if response.status_code == 400:  # the endpoint exists: Binance's unknown order
            assert error(response) == -2013
    await assert_victim_untouched(http, exchange, pair)
    still = await signed(http, "GET", f"{exchange.url}/api/v3/order", pair.v,
                         {"symbol": "BTCUSDT", "origClientOrderId": other})  # fmt: skip
    assert (still.json()["status"], still.json()["origQty"]) == ("NEW", "0.01000")


async def test_cancel_all_cancels_only_the_callers_orders(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    mine = await signed(http, "POST", f"{exchange.url}/api/v3/order", pair.a, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "900"})  # fmt: skip
    assert mine.status_code == 200, mine.text
    response = await signed(http, "DELETE", f"{exchange.url}/api/v3/openOrders", pair.a,
                            {"symbol": "BTCUSDT"})  # fmt: skip
    assert response.status_code == 200, response.text
    cancelled = {o["orderId"] for o in response.json()}
    assert mine.json()["orderId"] in cancelled
    assert pair.order_id not in cancelled
    await assert_victim_untouched(http, exchange, pair)
    # Put the attacker's own resting order back for the listing tests.
    again = await signed(http, "POST", f"{exchange.url}/api/v3/order", pair.a, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.01", "price": "1000", "newClientOrderId": "victim-order-1"})  # fmt: skip
    assert again.status_code == 200, again.text
    pair.own_order_id = again.json()["orderId"]


async def _attacker_order_ids(exchange: Exchange, pair: Pair) -> set[int]:
    conn = await asyncpg.connect(exchange.dsn)
    try:
        rows = await conn.fetch("SELECT id FROM orders WHERE user_id = $1", pair.attacker.user_id)
    finally:
        await conn.close()
    return {int(r["id"]) for r in rows}


async def test_open_orders_lists_only_the_callers(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    mine = await _attacker_order_ids(exchange, pair)
    for params in ({"symbol": "BTCUSDT"}, {}):
        response = await signed(http, "GET", f"{exchange.url}/api/v3/openOrders", pair.a, params)
        assert response.status_code == 200, response.text
        listed = {o["orderId"] for o in response.json()}
        assert pair.own_order_id in listed
        assert listed <= mine


async def test_all_orders_lists_only_the_callers(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    mine = await _attacker_order_ids(exchange, pair)
    for params in ({"symbol": "BTCUSDT"}, {"symbol": "BTCUSDT", "orderId": pair.order_id},
                   {"symbol": "ETHUSDT"}):  # fmt: skip
        response = await signed(http, "GET", f"{exchange.url}/api/v3/allOrders", pair.a, params)
        assert response.status_code == 200, response.text
        listed = {o["orderId"] for o in response.json()}
        assert listed <= mine
        assert pair.order_id not in listed
        assert pair.trade_order_id not in listed


async def test_my_trades_lists_only_the_callers(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    assert await my_trades(http, exchange, pair.v, {"symbol": "ETHUSDT"})
    assert await my_trades(http, exchange, pair.a, {"symbol": "ETHUSDT"}) == []
    assert await my_trades(http, exchange, pair.a,
                           {"symbol": "ETHUSDT", "orderId": pair.trade_order_id}) == []  # fmt: skip
    assert await my_trades(http, exchange, pair.a, {"symbol": "ETHUSDT", "fromId": 0}) == []


async def test_account_shows_only_the_callers_balances(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair
) -> None:
    response = await signed(http, "GET", f"{exchange.url}/api/v3/account", pair.a, {})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uid"] == pair.attacker.user_id
    balances = {b["asset"]: (b["free"], b["locked"]) for b in body["balances"]}
    assert set(balances) == {"USDT"}  # the victim has ETH, the attacker never had any
    free, locked = (float(x) for x in balances["USDT"])
    assert free + locked == 1000


async def test_api_keys_of_another_user_cannot_be_listed_or_deleted(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair, accounts_url: str
) -> None:
    victim = bearer(await login(http, accounts_url, exchange, pair.victim.email))
    attacker = bearer(await login(http, accounts_url, exchange, pair.attacker.email))
    keys = (await http.get(f"{accounts_url}/cex/v1/api-keys", headers=victim)).json()
    victim_key = next(k for k in keys if k["apiKey"] == pair.victim.api_key)
    assert all("secret" not in k for k in keys)
    listed = (await http.get(f"{accounts_url}/cex/v1/api-keys", headers=attacker)).json()
    assert {k["apiKey"] for k in listed} == {pair.attacker.api_key}
    response = await http.delete(f"{accounts_url}/cex/v1/api-keys/{victim_key['id']}",
                                 headers=attacker)  # fmt: skip
    assert (response.status_code, error(response)) == (404, -9021)
    still = await signed(http, "GET", f"{exchange.url}/api/v3/account", pair.v, {})
    assert still.status_code == 200, still.text
    assert victim_key in (await http.get(f"{accounts_url}/cex/v1/api-keys", headers=victim)).json()


async def test_withdrawals_and_balances_of_another_user_are_invisible_and_operator_only(
    exchange: Exchange, http: httpx.AsyncClient, pair: Pair, accounts_url: str
) -> None:
    victim = bearer(await login(http, accounts_url, exchange, pair.victim.email))
    attacker = bearer(await login(http, accounts_url, exchange, pair.attacker.email))
    made = await http.post(f"{accounts_url}/cex/v1/withdrawals", headers=victim,
                           json={"asset": "USDT", "amount": "10", "address": "addr-1"})  # fmt: skip
    assert made.status_code == 200, made.text
    wid = made.json()["id"]
    balances_before = (await http.get(f"{accounts_url}/cex/v1/balances", headers=victim)).json()
    assert [w["id"] for w in (await http.get(f"{accounts_url}/cex/v1/withdrawals",
                                             headers=attacker)).json()] == []  # fmt: skip
    mine = (await http.get(f"{accounts_url}/cex/v1/balances", headers=attacker)).json()
    assert {b["asset"] for b in mine} == {"USDT"}
    assert sum(float(b["free"]) + float(b["locked"]) for b in mine) == 1000
    # Operator endpoints refuse a trader's session, no token, and a wrong token.
    for headers in (attacker, victim, {}, bearer(exchange.operator_token + "x")):
        for action in ("complete", "reject"):
            refused = await http.post(
                f"{accounts_url}/cex/v1/operator/withdrawals/{wid}/{action}", headers=headers
            )
            assert (refused.status_code, error(refused)) == (401, -9041)
        deposit = await http.post(f"{accounts_url}/cex/v1/operator/deposits", headers=headers,
                                  json={"userId": pair.attacker.user_id, "asset": "USDT",
                                        "amount": "1000000", "externalId": "steal"})  # fmt: skip
        assert (deposit.status_code, error(deposit)) == (401, -9041)
        listing = await http.get(f"{accounts_url}/cex/v1/operator/withdrawals", headers=headers)
        assert (listing.status_code, error(listing)) == (401, -9041)
    listed = (await http.get(f"{accounts_url}/cex/v1/withdrawals", headers=victim)).json()
    assert [(w["id"], w["status"]) for w in listed] == [(wid, "PENDING")]
    assert (await http.get(f"{accounts_url}/cex/v1/balances", headers=victim)).json() == (
        balances_before)  # fmt: skip
    assert (await http.get(f"{accounts_url}/cex/v1/balances", headers=attacker)).json() == mine


# --------------------------------------------------------------------------- signed requests


@pytest.fixture(scope="module")
async def signing_trader(exchange: Exchange) -> Trader:
    return await exchange.trader("sec-signing@example.com", {"USDT": "1000"})


def _order(**extra: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001", "price": "10000", "newOrderRespType": "ACK", **extra}  # fmt: skip


async def test_timestamps_outside_the_window_or_ahead_are_refused(
    exchange: Exchange, http: httpx.AsyncClient, signing_trader: Trader
) -> None:
    who, url = signer(signing_trader), f"{exchange.url}/api/v3/account"
    cases = [
        (now_ms() - 6_000, {}, -1021),  # default recvWindow 5,000
        (now_ms() - 3_000, {"recvWindow": 2_000}, -1021),
        (now_ms() + 3_000, {}, -1021),  # more than 1 s ahead
        (now_ms() + 3_000, {"recvWindow": 60_000}, -1021),  # the window only looks back
        (now_ms(), {"recvWindow": 60_001}, -1131),
    ]
    for timestamp, extra, code in cases:
        response = await http.get(f"{url}?{who.query(extra, timestamp)}", headers=who.headers)
        assert (response.status_code, error(response)) == (400, code), (timestamp, extra)
    ok = await http.get(f"{url}?{who.query({'recvWindow': 60_000}, now_ms() - 30_000)}",
                        headers=who.headers)  # fmt: skip
    assert ok.status_code == 200, ok.text
    before = await order_count(exchange, signing_trader.user_id)
    stale = who.form(_order(), now_ms() - 10_000)
    response = await http.post(f"{exchange.url}/api/v3/order", content=stale,
                               headers=who.headers | FORM)  # fmt: skip
    assert error(response) == -1021
    assert await order_count(exchange, signing_trader.user_id) == before


async def test_tampered_signature_or_parameter_is_refused_and_places_nothing(
    exchange: Exchange, http: httpx.AsyncClient, signing_trader: Trader
) -> None:
    who, url = signer(signing_trader), f"{exchange.url}/api/v3/order"
    before = await order_count(exchange, signing_trader.user_id)
    body = who.form(_order())
    flipped = body[:-1] + ("0" if body[-1] != "0" else "1")
    tampered = body.replace("quantity=0.001", "quantity=0.002")
    moved = body.replace("price=10000", "price=10000.0")
    for content in (flipped, tampered, moved, body.rsplit("&signature=", 1)[0] + "&signature="):
        response = await http.post(url, content=content, headers=who.headers | FORM)
        assert (response.status_code, error(response)) in ((400, -1022), (400, -1105)), content
    # Signed as a body, sent as a query string with a different body: still the same text?
    # No: the payload is query + body, so a parameter added in the query breaks it.
    response = await http.post(f"{url}?quantity=5", content=body, headers=who.headers | FORM)
    assert response.status_code == 400
    assert await order_count(exchange, signing_trader.user_id) == before


async def test_a_replayed_signed_order_is_refused_and_only_one_order_exists(
    exchange: Exchange, http: httpx.AsyncClient, signing_trader: Trader
) -> None:
    who, url = signer(signing_trader), f"{exchange.url}/api/v3/order"
    before = await order_count(exchange, signing_trader.user_id)
    body = who.form(_order(newClientOrderId="replayed-once"))
    first = await http.post(url, content=body, headers=who.headers | FORM)
    assert first.status_code == 200, first.text
    second = await http.post(url, content=body, headers=who.headers | FORM)
    assert (second.status_code, error(second)) == (400, -1022)
    # A replayed cancel is refused too.
    cancel = who.form({"symbol": "BTCUSDT", "orderId": first.json()["orderId"],
                       "recvWindow": 60_000})  # still valid when replayed  # fmt: skip
    done = await http.request("DELETE", url, content=cancel, headers=who.headers | FORM)
    assert done.status_code == 200, done.text
    again = await http.request("DELETE", url, content=cancel, headers=who.headers | FORM)
    assert (again.status_code, error(again)) == (400, -1022)
    assert await order_count(exchange, signing_trader.user_id) == before + 1


async def test_missing_or_unknown_api_key_is_refused(
    exchange: Exchange, http: httpx.AsyncClient, signing_trader: Trader
) -> None:
    who, url = signer(signing_trader), f"{exchange.url}/api/v3/account"
    query = who.query({})
    missing = await http.get(f"{url}?{query}")
    assert (missing.status_code, error(missing)) == (401, -2014)
    unknown = await http.get(f"{url}?{query}", headers={"X-MBX-APIKEY": "A" * 64})
    assert (unknown.status_code, error(unknown)) == (401, -2015)
    forged = Signer.hmac("A" * 64, signing_trader.secret)
    response = await http.get(f"{url}?{forged.query({})}", headers=forged.headers)
    assert (response.status_code, error(response)) == (401, -2015)


async def _refused_within(http: httpx.AsyncClient, url: str, who: Signer, seconds: float) -> float:
    """Seconds until a signed GET /account is refused with -2015 (fails after `seconds`)."""
    start = time.monotonic()
    async with asyncio.timeout(seconds):
        while True:
            response = await signed(http, "GET", f"{url}/api/v3/account", who, {})
            if response.status_code == 401:
                assert error(response) == -2015
                return time.monotonic() - start
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.1)


async def test_a_key_deleted_in_the_database_stops_working_at_once(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    trader = await exchange.trader("sec-deleted-db@example.com", {"USDT": "100"})
    who = signer(trader)
    assert (await signed(http, "GET", f"{exchange.url}/api/v3/account", who, {})).status_code == 200
    conn = await asyncpg.connect(exchange.dsn)
    try:
        key_id = await conn.fetchval("SELECT id FROM api_keys WHERE api_key = $1", trader.api_key)
        assert await apikeys.delete(conn, trader.user_id, key_id)
    finally:
        await conn.close()
    await _refused_within(http, exchange.url, who, 6)
    placed = await signed(http, "POST", f"{exchange.url}/api/v3/order", who, _order())
    assert (placed.status_code, error(placed)) == (401, -2015)
    assert await order_count(exchange, trader.user_id) == 0


async def test_a_key_deleted_through_the_api_stops_working(
    exchange: Exchange, http: httpx.AsyncClient, accounts_url: str
) -> None:
    trader = await exchange.trader("sec-deleted-api@example.com", {"USDT": "100"})
    who = signer(trader)
    session = bearer(await login(http, accounts_url, exchange, trader.email))
    keys = (await http.get(f"{accounts_url}/cex/v1/api-keys", headers=session)).json()
    assert (await signed(http, "GET", f"{exchange.url}/api/v3/account", who, {})).status_code == 200
    deleted = await http.delete(f"{accounts_url}/cex/v1/api-keys/{keys[0]['id']}", headers=session)
    assert deleted.status_code == 200, deleted.text
    # The other API process drops its cache on NOTIFY (at the latest after 5 s).
    await _refused_within(http, exchange.url, who, 6)
    await _refused_within(http, accounts_url, who, 1)


async def test_a_read_only_key_cannot_trade(exchange: Exchange, http: httpx.AsyncClient) -> None:
    trader = await exchange.trader("sec-read-only@example.com", {"USDT": "1000"},
                                   permissions=["read"])  # fmt: skip
    who = signer(trader)
    account = await signed(http, "GET", f"{exchange.url}/api/v3/account", who, {})
    assert account.status_code == 200, account.text
    assert account.json()["canTrade"] is False
    for path, params in (("/api/v3/order", _order()), ("/api/v3/order/test", _order()),
                         ("/api/v3/order/cancelReplace", _order(
                             cancelReplaceMode="ALLOW_FAILURE", cancelOrderId="1"))):  # fmt: skip
        response = await signed(http, "POST", f"{exchange.url}{path}", who, params)
        assert (response.status_code, error(response)) == (401, -2015), path
    response = await signed(http, "DELETE", f"{exchange.url}/api/v3/openOrders", who,
                            {"symbol": "BTCUSDT"})  # fmt: skip
    assert (response.status_code, error(response)) == (401, -2015)
    assert await order_count(exchange, trader.user_id) == 0


async def test_ed25519_keys_sign_and_another_keys_signature_fails(
    exchange: Exchange, http: httpx.AsyncClient, accounts_url: str
) -> None:
    trader = await exchange.trader("sec-ed25519@example.com", {"USDT": "1000"})
    signer(trader)
    session = bearer(await login(http, accounts_url, exchange, trader.email))
    private = Ed25519PrivateKey.generate()
    created = await http.post(f"{accounts_url}/cex/v1/api-keys", headers=session,
                              json={"type": "ED25519", "publicKey": public_pem(private),
                                    "permissions": ["read", "trade"]})  # fmt: skip
    assert created.status_code == 200, created.text
    assert created.json()["secret"] is None
    who = Signer.ed25519(created.json()["apiKey"], private)
    account = await signed(http, "GET", f"{exchange.url}/api/v3/account", who, {})
    assert account.status_code == 200, account.text
    assert account.json()["uid"] == trader.user_id
    # Many orders, so some signature has '+' or '/' in its base64.
    for i in range(4):
        placed = await signed(http, "POST", f"{exchange.url}/api/v3/order", who,
                              _order(newClientOrderId=f"ed-{i}"))  # fmt: skip
        assert placed.status_code == 200, placed.text
    impostor = Signer.ed25519(who.api_key, Ed25519PrivateKey.generate())
    for method, path, params in (("GET", "/api/v3/account", {}),
                                 ("POST", "/api/v3/order", _order())):  # fmt: skip
        response = await signed(http, method, f"{exchange.url}{path}", impostor, params)
        assert (response.status_code, error(response)) == (400, -1022)
    # An HMAC signature made with the key name as secret does not pass for an Ed25519 key.
    hmac_like = Signer.hmac(who.api_key, who.api_key)
    response = await signed(http, "GET", f"{exchange.url}/api/v3/account", hmac_like, {})
    assert (response.status_code, error(response)) == (400, -1022)
    assert await order_count(exchange, trader.user_id) == 4


# --------------------------------------------------------------------------- login codes


async def test_wrong_login_codes_burn_the_code(
    exchange: Exchange, http: httpx.AsyncClient, accounts_url: str
) -> None:
    email = "sec-brute@example.com"
    sent = await http.post(f"{accounts_url}/cex/v1/auth/otp", json={"email": email})
    assert sent.status_code == 200, sent.text
    code = latest_code(exchange, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    verify = f"{accounts_url}/cex/v1/auth/verify"
    for left in (4, 3, 2, 1):  # api_otp_max_attempts = 5
        response = await http.post(verify, json={"email": email, "code": wrong})
        assert (response.status_code, error(response)) == (400, -9005)
        assert f"{left} attempt(s) left" in response.json()["msg"]
    burned = await http.post(verify, json={"email": email, "code": wrong})
    assert (burned.status_code, error(burned)) == (400, -9006)
    late = await http.post(verify, json={"email": email, "code": code})
    assert (late.status_code, error(late)) == (400, -9003)
    assert "token" not in late.json()
    assert "cex_session" not in late.cookies
    # A new code works.
    await login(http, accounts_url, exchange, email)


async def test_login_codes_are_rate_limited_per_email(
    exchange: Exchange, http: httpx.AsyncClient, accounts_url: str
) -> None:
    email = "sec-flood@example.com"
    for _ in range(5):  # api_otp_per_email
        sent = await http.post(f"{accounts_url}/cex/v1/auth/otp", json={"email": email})
        assert sent.status_code == 200, sent.text
    codes = exchange.otp_outbox.read_text().count(f'"{email}"')
    refused = await http.post(f"{accounts_url}/cex/v1/auth/otp", json={"email": email.upper()})
    assert (refused.status_code, error(refused)) == (429, -9001)
    assert exchange.otp_outbox.read_text().count(f'"{email}"') == codes  # none sent


@pytest.fixture(scope="module")
async def limited_url(exchange: Exchange) -> str:
    """An API process with small limits and counters of its own."""
    return await exchange.extra_api(
        "api-limited", CEX_API_WEIGHT_PER_MINUTE="30", CEX_API_ORDERS_PER_10S="3",
        CEX_API_AUTH_PER_IP="4", CEX_REDIS_PREFIX=f"{exchange.redis_prefix}-limited",
    )  # fmt: skip


async def test_login_requests_are_rate_limited_per_ip(
    exchange: Exchange, http: httpx.AsyncClient, limited_url: str
) -> None:
    for i in range(4):  # CEX_API_AUTH_PER_IP
        sent = await http.post(f"{limited_url}/cex/v1/auth/otp",
                               json={"email": f"sec-ip-{i}@example.com"})  # fmt: skip
        assert sent.status_code == 200, sent.text
    email = "sec-ip-0@example.com"
    code = latest_code(exchange, email)
    SECRETS.add(code)
    refused = await http.post(f"{limited_url}/cex/v1/auth/otp", json={"email": "x@example.com"})
    assert (refused.status_code, error(refused)) == (429, -9002)
    verify = await http.post(f"{limited_url}/cex/v1/auth/verify",
                             json={"email": email, "code": code})  # fmt: skip
    assert (verify.status_code, error(verify)) == (429, -9002)
    assert "token" not in verify.json()


# --------------------------------------------------------------------------- rate limits


async def _align() -> None:
    """Start the checks early in a fixed minute and a fixed 10 s window."""
    if now_ms() % 60_000 > 40_000:
        await asyncio.sleep((60_000 - now_ms() % 60_000) / 1000 + 0.05)
    if now_ms() % 10_000 > 5_000:
        await asyncio.sleep((10_000 - now_ms() % 10_000) / 1000 + 0.05)


async def test_rate_limits_count_the_documented_weights_and_refuse_past_them(
    exchange: Exchange, http: httpx.AsyncClient, limited_url: str
) -> None:
    trader = await exchange.trader("sec-limits@example.com", {"USDT": "1000"})
    who = signer(trader)
    url = limited_url
    await _align()

    info = await http.get(f"{url}/api/v3/exchangeInfo")
    assert info.status_code == 200
    assert info.json()["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 30},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200_000},
    ]
    assert info.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # exchangeInfo weighs 20
    assert (await http.get(f"{url}/api/v3/time")).headers["X-MBX-USED-WEIGHT-1M"] == "21"
    assert (await http.get(f"{url}/api/v3/ping")).headers["X-MBX-USED-WEIGHT-1M"] == "22"

    ids = []
    for i in range(1, 4):  # an order weighs 1 and counts 1
        placed = await signed(http, "POST", f"{url}/api/v3/order", who, _order())
        assert placed.status_code == 200, placed.text
        assert placed.headers["X-MBX-USED-WEIGHT-1M"] == str(22 + i)
        assert placed.headers["X-MBX-ORDER-COUNT-10S"] == str(i)
        ids.append(placed.json()["orderId"])
    fourth = await signed(http, "POST", f"{url}/api/v3/order", who, _order())
    assert (fourth.status_code, error(fourth)) == (429, -1015)
    assert fourth.headers["X-MBX-ORDER-COUNT-10S"] == "4"
    assert fourth.headers["X-MBX-USED-WEIGHT-1M"] == "26"
    assert await order_count(exchange, trader.user_id) == 3

    # openOrders with a symbol weighs 6: 32 > 30, refused; refused requests count too.
    opened = await signed(http, "GET", f"{url}/api/v3/openOrders", who, {"symbol": "BTCUSDT"})
    assert (opened.status_code, error(opened)) == (429, -1003)
    assert opened.headers["X-MBX-USED-WEIGHT-1M"] == "32"
    cancel_all = await signed(http, "DELETE", f"{url}/api/v3/openOrders", who,
                              {"symbol": "BTCUSDT"})  # fmt: skip
    assert (cancel_all.status_code, error(cancel_all)) == (429, -1003)
    assert cancel_all.headers["X-MBX-USED-WEIGHT-1M"] == "33"
    placed = await signed(http, "POST", f"{url}/api/v3/order", who, _order())
    assert (placed.status_code, error(placed)) == (429, -1003)
    # Nothing changed: the same three orders, all still open.
    conn = await asyncpg.connect(exchange.dsn)
    try:
        rows = await conn.fetch("SELECT id, status FROM orders WHERE user_id = $1 ORDER BY id",
                                trader.user_id)  # fmt: skip
    finally:
        await conn.close()
    assert [r["id"] for r in rows] == ids
    assert {r["status"] for r in rows} <= {"PENDING", "NEW"}


async def test_bad_numbers_are_refused_and_place_nothing(
    exchange: Exchange, http: httpx.AsyncClient
) -> None:
    trader = await exchange.trader("sec-numbers@example.com", {"BTC": "1", "USDT": "1000"})
    who = signer(trader)
    url = f"{exchange.url}/api/v3/order"
    cases = [
        ({"side": "SELL", "price": "99999999999999999999", "quantity": "0.001"}, -1013),
        ({"side": "SELL", "price": str(2**64), "quantity": "0.001"}, -1013),
        ({"side": "BUY", "price": "10000", "quantity": "0." + "0" * 29 + "1"}, -1100),
        ({"side": "BUY", "price": "10000", "quantity": "-1"}, -1100),
        ({"side": "BUY", "price": "-10000", "quantity": "0.001"}, -1100),
        ({"side": "BUY", "price": "10000", "quantity": "1e3"}, -1100),
    ]
    for extra, code in cases:
        params = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", **extra}
        response = await signed(http, "POST", url, who, params)
        assert (response.status_code, error(response)) == (400, code), (extra, response.text)
    assert await order_count(exchange, trader.user_id) == 0
    account = await signed(http, "GET", f"{exchange.url}/api/v3/account", who, {})
    assert {b["asset"]: b["locked"] for b in account.json()["balances"]} == {
        "BTC": "0.00000000", "USDT": "0.000000"}  # fmt: skip


# --------------------------------------------------------------------------- last: the logs


async def test_no_secret_appears_in_any_log(exchange: Exchange) -> None:
    lines = [json.loads(line) for line in exchange.otp_outbox.read_text().splitlines()]
    secrets = SECRETS | {line["code"] for line in lines}
    assert len(secrets) > 10
    logs = sorted(exchange.log_dir.glob("*.log"))
    assert {p.stem for p in logs} >= {"api", "api-accounts", "api-limited", "trading"}
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in secrets:
            if len(secret) == 6:  # a code: six digits could occur by chance in a number
                assert f"code {secret}" not in text
                assert f'"{secret}"' not in text
                assert f"={secret}" not in text
                assert f": {secret}" not in text
            else:
                assert secret not in text, f"a secret in {path.name}"

"""GET /api/v3/myPreventedMatches through ccxt's own signed request path: a user's crossing
orders with EXPIRE_TAKER and EXPIRE_MAKER are listed with the right ids, price, quantity and
mode, by order and by id, paged, as the published schema says; another user sees none of
them; Binance's parameter combinations are enforced."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import httpx
import jsonschema_rs
import pytest

from .clients import ccxt_binance
from .conftest import Exchange

SYMBOL = "ETHUSDT"
TICK = Decimal("0.01")
QTY = "0.01"  # ETH; notional ≥ 5 USDT for any price ≥ 500


async def _gap_price(client: ccxt_async.binance) -> Decimal:
    """A price inside the book's spread, as high as possible: an ask there rests, and a buy
    limited to it can only meet that ask (other tests may have left orders on the book)."""
    book = await client.public_get_depth({"symbol": SYMBOL, "limit": 5000})
    bid = Decimal(book["bids"][0][0]) if book["bids"] else Decimal(0)
    ask = Decimal(book["asks"][0][0]) if book["asks"] else None
    price = ask - TICK if ask is not None else max(bid, Decimal(2000)) + 100
    assert price > bid, f"no room between the best bid {bid} and the best ask"
    assert price * Decimal(QTY) >= 5
    return price


async def _order(client: ccxt_async.binance, side: str, price: Decimal, stp: str,
                 tif: str = "GTC") -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = await client.private_post_order({
        "symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": tif, "quantity": QTY,
        "price": str(price), "selfTradePreventionMode": stp, "newOrderRespType": "RESULT",
    })  # fmt: skip
    return result


async def _prevented(client: ccxt_async.binance, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await client.private_get_mypreventedmatches(
        {"symbol": SYMBOL, **params}
    )
    return found


async def test_my_prevented_matches_lists_exactly_the_callers(exchange: Exchange) -> None:
    alice = await exchange.trader("prevented-alice@example.com", {"ETH": "1", "USDT": "1000"})
    bob = await exchange.trader("prevented-bob@example.com", {"USDT": "100"})
    a, b = ccxt_binance(exchange.url, alice), ccxt_binance(exchange.url, bob)
    try:
        price = await _gap_price(a)
        maker = (await _order(a, "SELL", price, "NONE"))["orderId"]
        # EXPIRE_TAKER: the buy expires, the maker stays whole; EXPIRE_MAKER: the maker
        # expires and the IOC buy, left with nothing to meet, expires too.
        taker1 = (await _order(a, "BUY", price, "EXPIRE_TAKER"))["orderId"]
        taker2 = (await _order(a, "BUY", price, "EXPIRE_MAKER", tif="IOC"))["orderId"]

        async with asyncio.timeout(15):  # settled shortly after the engine answered
            while len(rows := await _prevented(a, orderId=maker)) < 2:
                await asyncio.sleep(0.1)
        assert [(r["takerOrderId"], r["makerOrderId"], r["selfTradePreventionMode"])
                for r in rows] == [(taker1, maker, "EXPIRE_TAKER"),
                                   (taker2, maker, "EXPIRE_MAKER")]  # fmt: skip
        first, second = rows
        assert first["preventedMatchId"] < second["preventedMatchId"]
        for row in rows:
            assert row["symbol"] == row["makerSymbol"] == SYMBOL
            assert row["tradeGroupId"] == -1
            assert Decimal(row["price"]) == price
            assert Decimal(row["makerPreventedQuantity"]) == Decimal(QTY)
            assert isinstance(row["transactTime"], int)
        assert set(rows[0]) == {
            "symbol", "preventedMatchId", "takerOrderId", "makerSymbol", "makerOrderId",
            "tradeGroupId", "selfTradePreventionMode", "price", "makerPreventedQuantity",
            "transactTime",
        }  # fmt: skip
        async with httpx.AsyncClient(base_url=exchange.url) as http:
            spec = (await http.get("/openapi.json")).json()
        operation = spec["paths"]["/api/v3/myPreventedMatches"]["get"]
        schema = dict(operation["responses"]["200"]["content"]["application/json"]["schema"])
        schema["components"] = spec["components"]
        errors = list(jsonschema_rs.Draft202012Validator(schema).iter_errors(rows))
        assert not errors, [e.message for e in errors]

        # By one order (as taker), by id, and paged from an id.
        assert await _prevented(a, orderId=taker1) == [first]
        assert await _prevented(a, orderId=taker2) == [second]
        assert await _prevented(a, preventedMatchId=second["preventedMatchId"]) == [second]
        assert await _prevented(
            a, orderId=maker, fromPreventedMatchId=second["preventedMatchId"]
        ) == [second]
        assert await _prevented(a, orderId=maker, fromPreventedMatchId=0, limit=1) == [first]
        # Nothing left on the book: both makers' and takers' orders ended.
        assert await a.private_get_openorders({"symbol": SYMBOL}) == []

        # Another user sees none of them.
        assert await _prevented(b, orderId=maker) == []
        assert await _prevented(b, orderId=taker1) == []
        assert await _prevented(b, preventedMatchId=first["preventedMatchId"]) == []

        # Binance's combinations: preventedMatchId, or orderId [+ fromPreventedMatchId].
        with pytest.raises(ccxt_async.ExchangeError, match="-1102"):
            await _prevented(a)
        with pytest.raises(ccxt_async.ExchangeError, match="-1128"):
            await _prevented(a, preventedMatchId=first["preventedMatchId"], orderId=maker)
        with pytest.raises(ccxt_async.ExchangeError, match="-1128"):
            await _prevented(a, preventedMatchId=1, fromPreventedMatchId=1)
    finally:
        await a.close()
        await b.close()

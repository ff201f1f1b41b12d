"""Order endpoints beyond what ccxt's unified methods reach, sent through ccxt's own signed
request path: test orders, response types, amend keeping priority, the order rate limits."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest

from .clients import ccxt_binance
from .conftest import Exchange


async def test_order_test_validates_without_placing(exchange: Exchange) -> None:
    trader = await exchange.trader("orders-test@example.com", {"USDT": "100"})
    client = ccxt_binance(exchange.url, trader)
    try:
        order = {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.01", "price": "1000"}  # fmt: skip
        assert await client.private_post_order_test(order) == {}
        rates = await client.private_post_order_test(order | {"computeCommissionRates": "true"})
        assert rates["standardCommissionForOrder"] == {"maker": "0.00100000",
                                                       "taker": "0.00100000"}  # fmt: skip
        with pytest.raises(ccxt_async.InvalidOrder):  # off the tick grid: PRICE_FILTER
            await client.private_post_order_test(order | {"price": "1000.001"})
        # Nothing was placed and nothing locked.
        assert await client.private_get_openorders({"symbol": "ETHUSDT"}) == []
        balances = (await client.private_get_account())["balances"]
        assert Decimal({b["asset"]: b["locked"] for b in balances}["USDT"]) == 0
    finally:
        await client.close()


async def test_result_response_and_amend_keep_priority(exchange: Exchange) -> None:
    trader = await exchange.trader("orders-amend@example.com", {"USDT": "1000"})
    client = ccxt_binance(exchange.url, trader)
    try:
        placed = await client.private_post_order({
            "symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.5", "price": "1001", "newOrderRespType": "RESULT",
            "newClientOrderId": "amend-me"})  # fmt: skip
        assert placed["status"] == "NEW"
        assert "fills" not in placed
        assert (Decimal(placed["origQty"]), Decimal(placed["executedQty"])) == (Decimal("0.5"), 0)
        amended = await client.request(
            "order/amend/keepPriority",
            ["private"],
            "PUT",
            {"symbol": "ETHUSDT", "origClientOrderId": "amend-me", "newQty": "0.2"},
        )
        assert Decimal(amended["amendedOrder"]["qty"]) == Decimal("0.2")
        assert amended["amendedOrder"]["orderId"] == placed["orderId"]
        # The amend released what the smaller order no longer needs: 0.3 × 1001 USDT.
        balances = {b["asset"]: b for b in (await client.private_get_account())["balances"]}
        assert Decimal(balances["USDT"]["locked"]) == Decimal("200.2")
        assert Decimal(balances["USDT"]["free"]) == Decimal("799.8")
        with pytest.raises(ccxt_async.ExchangeError, match="-2038"):  # increases lose priority
            await client.request("order/amend/keepPriority", ["private"], "PUT",
                                 {"symbol": "ETHUSDT", "orderId": placed["orderId"],
                                  "newQty": "0.9"})  # fmt: skip
        limits = await client.private_get_ratelimit_order()
        # The new order counts; amends do not (Binance: unfilled order count 0).
        assert [(r["interval"], r["count"]) for r in limits] == [("SECOND", 1), ("DAY", 1)]
    finally:
        await client.close()


async def test_a_post_only_order_that_would_take_is_refused_even_with_ack(
    exchange: Exchange,
) -> None:
    maker = await exchange.trader("orders-ack-maker@example.com", {"ETH": "1"})
    taker = await exchange.trader("orders-ack-taker@example.com", {"USDT": "1000"})
    m, t = ccxt_binance(exchange.url, maker), ccxt_binance(exchange.url, taker)
    try:
        await m.private_post_order(
            {
                "symbol": "ETHUSDT",
                "side": "SELL",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.1",
                "price": "1444",
            }
        )
        with pytest.raises(ccxt_async.OrderImmediatelyFillable):
            await t.private_post_order(
                {
                    "symbol": "ETHUSDT",
                    "side": "BUY",
                    "type": "LIMIT_MAKER",
                    "quantity": "0.1",
                    "price": "1444",
                    "newOrderRespType": "ACK",
                }
            )
        acked = await t.private_post_order(
            {
                "symbol": "ETHUSDT",
                "side": "BUY",
                "type": "LIMIT_MAKER",
                "quantity": "0.1",
                "price": "1443",
                "newOrderRespType": "ACK",
            }
        )
        assert set(acked) == {"symbol", "orderId", "orderListId", "clientOrderId",
                              "transactTime"}  # fmt: skip
        await m.cancel_all_orders("ETH/USDT")
        await t.cancel_all_orders("ETH/USDT")
    finally:
        await m.close()
        await t.close()

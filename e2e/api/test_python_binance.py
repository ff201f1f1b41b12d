"""python-binance (`binance.AsyncClient` and `binance.Client`), unmodified, pointed at the
local exchange through the instance's `API_URL`, trading ETHUSDT between two accounts:
exchange info, book, trades, tickers, balances, every order type and time in force,
LIMIT_MAKER refusal, FOK expiry, market by quote quantity, queries, cancel, cancel-all,
cancel-replace, my trades, test orders, and `BinanceAPIException` with Binance's codes.

Prices are in a band of their own (around 1,800 USDT) and every order is cancelled by the
end, so other tests on ETHUSDT see none of them."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from tests.fixtures import unique

from .clients import AsyncClient, BinanceAPIException, Client, ed25519_key, python_binance
from .conftest import Exchange, Trader

ETH = "ETHUSDT"


def D(value: object) -> Decimal:
    return Decimal(str(value))


def _email(role: str) -> str:
    return f"{unique('pybinance-' + role)}@example.com"


async def _balances(client: AsyncClient) -> dict[str, tuple[Decimal, Decimal]]:
    account = await client.get_account()
    return {b["asset"]: (D(b["free"]), D(b["locked"])) for b in account["balances"]}


def _stalled(exchange: Exchange) -> str:
    errors = [line for line in exchange.log("relay").splitlines() if '"ERROR"' in line]
    return "the warm-up order was not settled within 60 s; relay errors:\n" + "\n".join(
        line[:600] for line in errors[-3:])  # fmt: skip


async def _warm_up(exchange: Exchange, client: AsyncClient) -> None:
    """The first orders through a freshly started pipeline can be slow (RESULT, FULL and
    cancels wait at most 2 s for settlement): one far below the market, cancelled, until the
    cancel is settled (a pipeline that never settles it fails here, with the relay's log)."""
    order = await client.order_limit_buy(symbol=ETH, quantity="0.01", price="600",
                                         newOrderRespType="ACK")  # fmt: skip
    await client.cancel_order(symbol=ETH, orderId=order["orderId"])
    deadline = time.monotonic() + 60
    while (await client.get_order(symbol=ETH, orderId=order["orderId"]))["status"] != "CANCELED":
        assert time.monotonic() < deadline, _stalled(exchange)
        await asyncio.sleep(0.1)


def _fills(order: dict[str, Any]) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    return [(D(f["price"]), D(f["qty"]), D(f["commission"]), f["commissionAsset"])
            for f in order["fills"]]  # fmt: skip


async def test_a_trading_session_between_two_accounts(exchange: Exchange) -> None:
    maker_t = await exchange.trader(_email("maker"), {"ETH": "10", "USDT": "1000"})
    taker_t = await exchange.trader(_email("taker"), {"USDT": "100000"})
    m, t = python_binance(exchange.url, maker_t), python_binance(exchange.url, taker_t)
    try:
        # General and market metadata.
        assert await m.ping() == {}
        assert (await m.get_server_time())["serverTime"] > 1_700_000_000_000
        info = await m.get_exchange_info()
        assert {ETH, "BTCUSDT"} <= {s["symbol"] for s in info["symbols"]}
        symbol = await m.get_symbol_info(ETH)
        assert symbol is not None
        assert (symbol["baseAsset"], symbol["quoteAsset"], symbol["status"]) == (
            "ETH", "USDT", "TRADING")  # fmt: skip
        filters = {f["filterType"]: f for f in symbol["filters"]}
        assert D(filters["PRICE_FILTER"]["tickSize"]) == D("0.01")
        assert D(filters["LOT_SIZE"]["stepSize"]) == D("0.0001")
        assert D(filters["NOTIONAL"]["minNotional"]) == D("5")

        await _warm_up(exchange, t)

        # A resting ask, then a crossing IOC buy from the other account taking part of it.
        ask = await m.order_limit_sell(symbol=ETH, quantity="2", price="1800")
        assert (ask["status"], D(ask["executedQty"]), ask["fills"]) == ("NEW", 0, [])
        assert ask["clientOrderId"].startswith(Client.SPOT_ORDER_PREFIX)  # its own ids pass
        take = await t.order_limit_buy(symbol=ETH, quantity="0.5", price="1800.50",
                                       timeInForce=Client.TIME_IN_FORCE_IOC)  # fmt: skip
        assert (take["status"], D(take["executedQty"]), D(take["cummulativeQuoteQty"])) == (
            "FILLED", D("0.5"), D("900"))  # fmt: skip
        assert _fills(take) == [(D("1800"), D("0.5"), D("0.0005"), "ETH")]

        # Balances, exactly: the taker paid 900 USDT and received 0.5 ETH less 0.1 %.
        assert (await _balances(t))["USDT"] == (D("99100"), 0)
        assert (await _balances(t))["ETH"] == (D("0.4995"), 0)
        maker_balances = await _balances(m)
        assert maker_balances["ETH"] == (D("8"), D("1.5"))  # 1.5 ETH still on the book
        assert maker_balances["USDT"] == (D("1899.1"), 0)  # 1000 + 900 − 0.9 fee
        eth = await m.get_asset_balance(asset="ETH")
        assert (D(eth["free"]), D(eth["locked"])) == (D("8"), D("1.5"))

        # The maker's order is partly filled.
        fetched = await m.get_order(symbol=ETH, orderId=ask["orderId"])
        assert (fetched["status"], D(fetched["executedQty"]), D(fetched["origQty"])) == (
            "PARTIALLY_FILLED", D("0.5"), D("2"))  # fmt: skip
        by_client_id = await m.get_order(symbol=ETH, origClientOrderId=ask["clientOrderId"])
        assert by_client_id["orderId"] == ask["orderId"]

        # Market data: the book (our level only), trades, tickers, average price.
        book = await t.get_order_book(symbol=ETH, limit=100)
        assert [D(q) for p, q in book["asks"] if D(p) == D("1800")] == [D("1.5")]
        assert isinstance(book["lastUpdateId"], int)
        last = (await t.get_recent_trades(symbol=ETH))[-1]
        assert (D(last["price"]), D(last["qty"]), last["isBuyerMaker"]) == (
            D("1800"), D("0.5"), False)  # fmt: skip
        assert (await t.get_historical_trades(symbol=ETH, limit=5))[-1]["id"] == last["id"]
        agg = (await t.get_aggregate_trades(symbol=ETH))[-1]
        assert (D(agg["p"]), D(agg["q"]), agg["m"]) == (D("1800"), D("0.5"), False)
        assert D((await t.get_symbol_ticker(symbol=ETH))["price"]) == D("1800")
        day = await t.get_ticker(symbol=ETH)
        assert (D(day["lastPrice"]), D(day["askPrice"])) == (D("1800"), D("1800"))
        top = await t.get_orderbook_ticker(symbol=ETH)
        assert (D(top["askPrice"]), D(top["askQty"])) == (D("1800"), D("1.5"))
        assert D((await t.get_symbol_ticker_window(symbol=ETH))["lastPrice"]) == D("1800")
        assert D((await t.get_avg_price(symbol=ETH))["price"]) > 0
        every_price = {p["symbol"] for p in await t.get_all_tickers()}
        assert ETH in every_price

        # LIMIT_MAKER that would take is refused (RESULT: the default for it is ACK, which our
        # API answers before the engine decides); FOK that cannot fill expires.
        with pytest.raises(BinanceAPIException) as refused:
            await t.create_order(symbol=ETH, side="BUY", type="LIMIT_MAKER", quantity="0.1",
                                 price="1800", newOrderRespType="RESULT")  # fmt: skip
        assert (refused.value.status_code, refused.value.code, refused.value.message) == (
            400, -2010, "Order would immediately match and take.")  # fmt: skip
        fok = await t.order_limit_buy(symbol=ETH, quantity="5", price="1800",
                                      timeInForce=Client.TIME_IN_FORCE_FOK)  # fmt: skip
        assert (fok["status"], D(fok["executedQty"]), fok["fills"]) == ("EXPIRED", 0, [])

        # Market buy by quote quantity: 720 USDT buys 0.4 ETH of the ask.
        by_quote = await t.order_market_buy(symbol=ETH, quoteOrderQty="720")
        assert (by_quote["status"], D(by_quote["executedQty"])) == ("FILLED", D("0.4"))
        assert D(by_quote["cummulativeQuoteQty"]) == D("720")
        assert _fills(by_quote) == [(D("1800"), D("0.4"), D("0.0004"), "ETH")]
        # Market sell by quantity against a resting bid of the taker's.
        bid = await t.order_limit_buy(symbol=ETH, quantity="0.2", price="1700")
        sold = await m.order_market_sell(symbol=ETH, quantity="0.2")
        assert (sold["status"], D(sold["executedQty"]), D(sold["cummulativeQuoteQty"])) == (
            "FILLED", D("0.2"), D("340"))  # fmt: skip
        assert _fills(sold) == [(D("1700"), D("0.2"), D("0.34"), "USDT")]
        assert (await t.get_order(symbol=ETH, orderId=bid["orderId"]))["status"] == "FILLED"
        # Taker: 99100 − 720 − 340 USDT; 0.4995 + 0.4 − 0.0004 + 0.2 − 0.0002 ETH.
        assert (await _balances(t))["USDT"] == (D("98040"), 0)
        assert (await _balances(t))["ETH"] == (D("1.0989"), 0)
        # Maker: 1899.1 + 720 − 0.72 + 340 − 0.34 USDT; 10 − 1.1 ETH, 1.1 of it on the book.
        assert (await _balances(m))["USDT"] == (D("2958.04"), 0)
        assert (await _balances(m))["ETH"] == (D("7.8"), D("1.1"))

        # Resting orders of other kinds, open orders, cancel-replace, cancel and cancel-all.
        stop = await m.create_order(symbol=ETH, side="SELL", type="STOP_LOSS_LIMIT",
                                    timeInForce="GTC", quantity="0.1", price="1500",
                                    stopPrice="1550")  # fmt: skip
        assert stop["orderId"] > 0
        gtc = await m.order_limit_sell(symbol=ETH, quantity="0.01", price="1900")
        maker_only = await m.create_order(symbol=ETH, side="SELL", type="LIMIT_MAKER",
                                          quantity="0.01", price="1910")  # fmt: skip
        open_ids = {o["orderId"] for o in await m.get_open_orders(symbol=ETH)}
        assert open_ids == {ask["orderId"], stop["orderId"], gtc["orderId"],
                            maker_only["orderId"]}  # fmt: skip
        replaced = await m.cancel_replace_order(
            symbol=ETH, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.02",
            price="1950", cancelReplaceMode="STOP_ON_FAILURE", cancelOrderId=gtc["orderId"],
        )  # fmt: skip
        assert (replaced["cancelResult"], replaced["newOrderResult"]) == ("SUCCESS", "SUCCESS")
        assert (replaced["cancelResponse"]["orderId"], replaced["cancelResponse"]["status"]) == (
            gtc["orderId"], "CANCELED")  # fmt: skip
        new_id = replaced["newOrderResponse"]["orderId"]
        assert D(replaced["newOrderResponse"]["price"]) == D("1950")
        assert (await m.get_order(symbol=ETH, orderId=gtc["orderId"]))["status"] == "CANCELED"
        cancelled = await m.cancel_order(symbol=ETH, orderId=maker_only["orderId"])
        assert (cancelled["orderId"], cancelled["status"]) == (maker_only["orderId"], "CANCELED")
        swept = await m.cancel_all_open_orders(symbol=ETH)
        assert {o["orderId"] for o in swept} == {ask["orderId"], stop["orderId"], new_id}
        assert {o["status"] for o in swept} == {"CANCELED"}
        assert await m.get_open_orders(symbol=ETH) == []
        assert (await _balances(m))["ETH"] == (D("8.9"), 0)  # nothing locked any more
        all_orders = {o["orderId"]: o["status"] for o in await m.get_all_orders(symbol=ETH)}
        assert all_orders == {ask["orderId"]: "CANCELED", sold["orderId"]: "FILLED",
                              stop["orderId"]: "CANCELED", gtc["orderId"]: "CANCELED",
                              maker_only["orderId"]: "CANCELED", new_id: "CANCELED"}  # fmt: skip

        # My trades on both sides, fees in the asset received.
        mine = [(tr["orderId"], tr["isBuyer"], tr["isMaker"], D(tr["qty"]), D(tr["commission"]),
                 tr["commissionAsset"]) for tr in await m.get_my_trades(symbol=ETH)]  # fmt: skip
        assert mine == [
            (ask["orderId"], False, True, D("0.5"), D("0.9"), "USDT"),
            (ask["orderId"], False, True, D("0.4"), D("0.72"), "USDT"),
            (sold["orderId"], False, False, D("0.2"), D("0.34"), "USDT"),
        ]
        theirs = [(tr["isBuyer"], tr["isMaker"], tr["commissionAsset"])
                  for tr in await t.get_my_trades(symbol=ETH)]  # fmt: skip
        assert theirs == [(True, False, "ETH"), (True, False, "ETH"), (True, True, "ETH")]

        # Test orders and the order count.
        dry = {"symbol": ETH, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "quantity": "0.1", "price": "1000"}  # fmt: skip
        assert await t.create_test_order(**dry) == {}
        rates = await t.create_test_order(**dry, computeCommissionRates="true")
        assert D(rates["standardCommissionForOrder"]["maker"]) == D("0.001")
        assert (await _balances(t))["USDT"] == (D("98040"), 0)  # nothing placed
        counts = await t.get_current_order_count()
        assert {(c["rateLimitType"], c["interval"]) for c in counts} >= {("ORDERS", "SECOND")}

        # BinanceAPIException carries Binance's HTTP status, code and message.
        with pytest.raises(BinanceAPIException) as unknown_order:
            await t.get_order(symbol=ETH, orderId=999_999_999)
        assert (unknown_order.value.code, unknown_order.value.message) == (
            -2013, "Order does not exist.")  # fmt: skip
        with pytest.raises(BinanceAPIException) as poor:
            await t.order_limit_buy(symbol=ETH, quantity="1000", price="1800")
        assert poor.value.code == -2010
        with pytest.raises(BinanceAPIException) as lot:
            await t.order_limit_buy(symbol=ETH, quantity="0.00001", price="1800")
        assert (lot.value.code, lot.value.message) == (-1013, "Filter failure: LOT_SIZE")
        with pytest.raises(BinanceAPIException) as tick:
            await t.order_limit_buy(symbol=ETH, quantity="0.1", price="1800.001")
        assert (tick.value.code, tick.value.message) == (-1013, "Filter failure: PRICE_FILTER")
        with pytest.raises(BinanceAPIException) as bad_symbol:
            await t.get_symbol_ticker(symbol="NOSUCHPAIR")
        assert (bad_symbol.value.status_code, bad_symbol.value.code) == (400, -1121)
        with pytest.raises(BinanceAPIException) as cancel_unknown:
            await t.cancel_order(symbol=ETH, orderId=999_999_999)
        assert cancel_unknown.value.code == -2011
    finally:
        await m.close_connection()
        await t.close_connection()


async def test_authentication_errors(exchange: Exchange) -> None:
    trader = await exchange.trader(_email("auth"), {"USDT": "100"})
    wrong = python_binance(exchange.url, Trader(trader.user_id, trader.email, trader.api_key,
                                                "0" * 64))  # fmt: skip
    unknown = python_binance(exchange.url, Trader(trader.user_id, trader.email, "A" * 64,
                                                  trader.secret))  # fmt: skip
    read_only_t = await exchange.trader(_email("ro"), {"USDT": "100"}, permissions=["read"])
    read_only = python_binance(exchange.url, read_only_t)
    try:
        with pytest.raises(BinanceAPIException) as bad_signature:
            await wrong.get_account()
        assert (bad_signature.value.status_code, bad_signature.value.code) == (400, -1022)
        with pytest.raises(BinanceAPIException) as unknown_key:
            await unknown.get_account()
        assert (unknown_key.value.status_code, unknown_key.value.code) == (401, -2015)
        with pytest.raises(BinanceAPIException) as refused:
            await read_only.order_limit_buy(symbol=ETH, quantity="0.01", price="1000")
        assert (refused.value.status_code, refused.value.code) == (401, -2015)
        assert (await _balances(read_only))["USDT"] == (D("100"), 0)
    finally:
        for client in (wrong, unknown, read_only):
            await client.close_connection()


def _sync_session(url: str, trader: Trader) -> None:
    """The synchronous `Client`: `ping=False` (its constructor would ping api.binance.com
    before `API_URL` can be set), then the same attribute."""
    client = Client(trader.api_key, trader.secret, ping=False)
    client.API_URL = f"{url}/api"
    try:
        assert client.ping() == {}
        assert client.get_symbol_info(ETH)["symbol"] == ETH
        placed = client.order_limit_buy(symbol=ETH, quantity="0.05", price="1234.56",
                                        newClientOrderId="sync-client-bid")  # fmt: skip
        assert (placed["status"], placed["clientOrderId"]) == ("NEW", "sync-client-bid")
        usdt = client.get_asset_balance(asset="USDT")
        assert (D(usdt["free"]), D(usdt["locked"])) == (D("438.272"), D("61.728"))
        assert [o["orderId"] for o in client.get_open_orders(symbol=ETH)] == [placed["orderId"]]
        cancelled = client.cancel_order(symbol=ETH, origClientOrderId="sync-client-bid")
        assert cancelled["status"] == "CANCELED"
        usdt = client.get_asset_balance(asset="USDT")
        assert (D(usdt["free"]), D(usdt["locked"])) == (D("500"), 0)
        with pytest.raises(BinanceAPIException) as gone:
            client.cancel_order(symbol=ETH, orderId=placed["orderId"])
        assert gone.value.code == -2011
    finally:
        client.close_connection()


async def test_the_synchronous_client(exchange: Exchange) -> None:
    trader = await exchange.trader(_email("sync"), {"USDT": "500"})
    # On this thread: in a thread of its own, the client would create an event loop it never
    # closes (binance.helpers.get_loop); its calls block this loop, which runs nothing else.
    _sync_session(exchange.url, trader)


async def test_an_ed25519_key_signs_orders(exchange: Exchange) -> None:
    """python-binance's `private_key` (Ed25519, PEM): GET signed in the query string, POST and
    DELETE in the form body."""
    trader = await exchange.trader(_email("ed25519"), {"USDT": "500"})
    api_key, private_pem = await ed25519_key(exchange, trader.user_id)
    client = AsyncClient(api_key, private_key=private_pem)
    client.API_URL = f"{exchange.url}/api"
    try:
        assert (await _balances(client))["USDT"] == (D("500"), 0)
        placed = await client.order_limit_buy(symbol=ETH, quantity="0.25", price="1111.11",
                                              newClientOrderId="pb-ed25519-bid")  # fmt: skip
        assert (placed["status"], placed["clientOrderId"]) == ("NEW", "pb-ed25519-bid")
        assert (await _balances(client))["USDT"] == (D("222.2225"), D("277.7775"))
        cancelled = await client.cancel_order(symbol=ETH, origClientOrderId="pb-ed25519-bid")
        assert cancelled["status"] == "CANCELED"
        assert (await _balances(client))["USDT"] == (D("500"), 0)
    finally:
        await client.close_connection()

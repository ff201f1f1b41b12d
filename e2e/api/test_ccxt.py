"""ccxt's `binance` class, unmodified, trading between two accounts on the local exchange:
markets, book, trades, ticker, balances, every order type and time in force, post-only
refusal, market buy by cost, queries, cancel, cancel-all, edit, my trades, and the
exceptions ccxt raises where Binance would make it raise them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest

from .clients import ccxt_binance
from .conftest import Exchange

BTC = "BTC/USDT"


def D(value: object) -> Decimal:
    return Decimal(str(value))


async def _balances(client: ccxt_async.binance) -> dict[str, tuple[Decimal, Decimal]]:
    raw = await client.private_get_account()
    return {b["asset"]: (D(b["free"]), D(b["locked"])) for b in raw["balances"]}


async def test_a_trading_session_between_two_accounts(exchange: Exchange) -> None:
    maker = await exchange.trader("ccxt-maker@example.com", {"BTC": "2", "USDT": "1000"})
    taker = await exchange.trader("ccxt-taker@example.com", {"USDT": "100000"})
    m, t = ccxt_binance(exchange.url, maker), ccxt_binance(exchange.url, taker)
    try:
        markets = await m.load_markets()
        assert {BTC, "ETH/USDT"} <= set(markets)
        market = markets[BTC]
        assert (market["base"], market["quote"], market["spot"]) == ("BTC", "USDT", True)
        assert D(market["precision"]["price"]) == D("0.1")
        assert D(market["precision"]["amount"]) == D("0.00001")
        assert D(market["limits"]["cost"]["min"]) == D("5")

        # A resting ask, then a crossing IOC buy that takes part of it.
        ask = await m.create_order(BTC, "limit", "sell", 0.5, 30000)
        assert ask["status"] == "open"
        assert D(ask["filled"]) == 0
        await t.load_markets()
        take = await t.create_order(BTC, "limit", "buy", 0.2, 30010, {"timeInForce": "IOC"})
        assert take["status"] == "closed"
        assert (D(take["filled"]), D(take["average"])) == (D("0.2"), D("30000"))
        assert D(take["cost"]) == D("6000")
        assert len(take["trades"]) == 1
        assert take["fee"]["currency"] == "BTC"
        assert D(take["fee"]["cost"]) == D("0.0002")

        # Balances, exactly: the taker paid 6,000 USDT and received 0.2 BTC less 0.1 %.
        assert (await _balances(t))["USDT"] == (D("94000"), D("0"))
        assert (await _balances(t))["BTC"] == (D("0.1998"), D("0"))
        maker_balances = await _balances(m)
        assert maker_balances["BTC"] == (D("1.5"), D("0.3"))  # 0.3 BTC still on the book
        assert maker_balances["USDT"] == (D("6994"), D("0"))  # 1000 + 6000 − 6 fee
        balance = await m.fetch_balance()
        assert (D(balance["BTC"]["free"]), D(balance["BTC"]["used"])) == (D("1.5"), D("0.3"))

        # The maker's order is partly filled; my trades on both sides.
        fetched = await m.fetch_order(ask["id"], BTC)
        assert (fetched["status"], D(fetched["filled"]), D(fetched["remaining"])) == (
            "open", D("0.2"), D("0.3"))  # fmt: skip
        maker_trades = await m.fetch_my_trades(BTC)
        taker_trades = await t.fetch_my_trades(BTC)
        assert [(tr["side"], tr["takerOrMaker"], D(tr["amount"])) for tr in maker_trades] == [
            ("sell", "maker", D("0.2"))]  # fmt: skip
        assert [(tr["side"], tr["takerOrMaker"]) for tr in taker_trades] == [("buy", "taker")]
        assert D(maker_trades[0]["fee"]["cost"]) == D("6")
        assert maker_trades[0]["fee"]["currency"] == "USDT"

        # Market data: the book, trades, ticker.
        book = await t.fetch_order_book(BTC)
        assert [D(level[0]) for level in book["asks"]] == [D("30000")]
        assert D(book["asks"][0][1]) == D("0.3")
        assert book["bids"] == []
        trades = await t.fetch_trades(BTC)
        assert [(D(tr["price"]), D(tr["amount"]), tr["side"]) for tr in trades][-1] == (
            D("30000"), D("0.2"), "buy")  # fmt: skip
        ticker = await t.fetch_ticker(BTC)
        assert D(ticker["last"]) == D("30000")
        assert D(ticker["ask"]) == D("30000")

        # Post-only that would take is refused; FOK that cannot fill expires.
        with pytest.raises(ccxt_async.OrderImmediatelyFillable):
            await t.create_order(BTC, "limit", "buy", 0.1, 30000, {"postOnly": True})
        fok = await t.create_order(BTC, "limit", "buy", 1, 30000, {"timeInForce": "FOK"})
        assert fok["status"] == "expired"
        assert D(fok["filled"]) == 0

        # Market buy by cost (quoteOrderQty) sweeps what is left of the ask.
        by_cost = await t.create_market_buy_order_with_cost(BTC, 3000)
        assert by_cost["status"] == "closed"
        assert (D(by_cost["filled"]), D(by_cost["cost"])) == (D("0.1"), D("3000"))
        # Market sell by quantity against a resting bid.
        bid = await t.create_order(BTC, "limit", "buy", 0.05, 29000, {"timeInForce": "GTC"})
        sold = await m.create_order(BTC, "market", "sell", 0.05)
        assert (sold["status"], D(sold["filled"]), D(sold["cost"])) == (
            "closed", D("0.05"), D("1450"))  # fmt: skip
        assert (await t.fetch_order(bid["id"], BTC))["status"] == "closed"

        # Resting orders of every kind, open orders, edit, cancel and cancel-all.
        gtc = await m.create_order(BTC, "limit", "sell", 0.01, 40000)
        maker_only = await m.create_order(BTC, "limit", "sell", 0.01, 41000, {"postOnly": True})
        stop = await m.create_order(BTC, "STOP_LOSS_LIMIT", "sell", 0.01, 20000,
                                    {"stopPrice": 20500, "timeInForce": "GTC"})  # fmt: skip
        open_ids = {o["id"] for o in await m.fetch_open_orders(BTC)}
        assert {gtc["id"], maker_only["id"], stop["id"], ask["id"]} <= open_ids
        edited = await m.edit_order(gtc["id"], BTC, "limit", "sell", 0.02, 40500)
        assert edited["id"] != gtc["id"]
        assert D(edited["price"]) == D("40500")
        assert (await m.fetch_order(gtc["id"], BTC))["status"] == "canceled"
        cancelled = await m.cancel_order(maker_only["id"], BTC)
        assert cancelled["status"] == "canceled"
        await m.cancel_all_orders(BTC)
        assert await m.fetch_open_orders(BTC) == []
        assert (await _balances(m))["BTC"][1] == 0  # nothing locked any more
        all_orders = await m.fetch_orders(BTC)
        assert {o["id"] for o in all_orders} >= {ask["id"], gtc["id"], edited["id"], stop["id"]}

        # What ccxt raises where Binance would make it raise.
        with pytest.raises(ccxt_async.InsufficientFunds):
            await t.create_order(BTC, "limit", "buy", 100, 30000)
        with pytest.raises(ccxt_async.OrderNotFound):
            await t.fetch_order("999999999", BTC)
        with pytest.raises(ccxt_async.InvalidOrder):
            await t.create_order(BTC, "limit", "buy", 0.000001, 30000)  # below LOT_SIZE
        with pytest.raises(ccxt_async.BadSymbol):
            await t.public_get_ticker_price({"symbol": "NOSUCHPAIR"})
    finally:
        await m.close()
        await t.close()


async def test_authentication_errors(exchange: Exchange) -> None:
    trader = await exchange.trader("ccxt-auth@example.com", {"USDT": "100"})
    wrong = ccxt_binance(exchange.url, trader)
    wrong.secret = "0" * 64
    unknown = ccxt_binance(exchange.url, trader)
    unknown.apiKey = "A" * 64
    try:
        with pytest.raises(ccxt_async.AuthenticationError):
            await wrong.private_get_account()
        with pytest.raises(ccxt_async.AuthenticationError):
            await unknown.private_get_account()
    finally:
        await wrong.close()
        await unknown.close()


async def test_read_only_key_cannot_trade(exchange: Exchange) -> None:
    trader = await exchange.trader("ccxt-ro@example.com", {"USDT": "100"}, permissions=["read"])
    client = ccxt_binance(exchange.url, trader)
    try:
        await client.load_markets()
        # First (ccxt reads a later -2015 as a temporary ban: DDoSProtection, as on Binance).
        with pytest.raises(ccxt_async.AuthenticationError):
            await client.create_order(BTC, "limit", "buy", 0.001, 10000)
        assert "USDT" in (await client.fetch_balance())
        assert await client.fetch_open_orders(BTC) == []
    finally:
        await client.close()


async def test_concurrent_clients_do_not_disturb_each_other(exchange: Exchange) -> None:
    traders = [await exchange.trader(f"ccxt-many-{i}@example.com", {"USDT": "1000"})
               for i in range(5)]  # fmt: skip
    clients = [ccxt_binance(exchange.url, trader) for trader in traders]
    try:
        await asyncio.gather(*(c.load_markets() for c in clients))
        placed = await asyncio.gather(*(
            c.create_order(BTC, "limit", "buy", 0.01, 10000 + i) for i, c in enumerate(clients)
        ))  # fmt: skip
        for i, (client, order) in enumerate(zip(clients, placed, strict=True)):
            mine = await client.fetch_open_orders(BTC)
            assert [o["id"] for o in mine] == [order["id"]]
            assert D(mine[0]["price"]) == 10000 + i
    finally:
        for client in clients:
            await client.close()


async def test_rate_limits_raise_ccxts_rate_limit_classes(exchange: Exchange) -> None:
    """Binance answers a request over its limits with HTTP 429 (-1003, -1015); ccxt reads any
    429 as DDoSProtection (RateLimitExceeded's parent) before looking at the code, against
    Binance itself too. An API of this exchange with small limits and its own counters."""
    url = await exchange.extra_api(
        "api-ccxt-limited", CEX_API_WEIGHT_PER_MINUTE="25", CEX_API_ORDERS_PER_10S="2",
        CEX_REDIS_PREFIX=f"{exchange.redis_prefix}-ccxt-limited",
    )  # fmt: skip
    trader = await exchange.trader("ccxt-limited@example.com", {"USDT": "100"})
    client = ccxt_binance(url, trader)
    try:
        await client.load_markets()  # exchangeInfo: 20 of the 25
        # ACK: this API's own Redis prefix hears no settlement outcome to wait for.
        ack = {"newOrderRespType": "ACK"}
        for price in (10000, 10001):
            await client.create_order(BTC, "limit", "buy", 0.001, price, ack)
        with pytest.raises(ccxt_async.DDoSProtection, match="-1015"):
            await client.create_order(BTC, "limit", "buy", 0.001, 10002, ack)
        with pytest.raises(ccxt_async.DDoSProtection, match="-1003"):
            for _ in range(5):
                await client.fetch_time()
    finally:
        await client.close()

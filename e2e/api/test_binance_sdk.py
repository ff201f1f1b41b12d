"""The official `binance-sdk-spot` REST client, unmodified, configured with our URL as its
`base_path`, trading ETHUSDT between two accounts: exchange info, book, trades, tickers,
balances, every order type and time in force, LIMIT_MAKER refusal, FOK expiry, market by
quote quantity, queries, cancel, cancel-all, cancelReplace, my trades, test orders, the
SDK's own error classes with Binance's codes; and an Ed25519 key signing with the SDK's
`private_key` support.

Every response must parse into the SDK's strict pydantic model: when one does not, the SDK
logs a warning and relaxes the model (or hands back the raw payload), which `_no_model_slack`
turns into a failure. The SDK is synchronous (requests); its calls block the test's loop,
which runs nothing else (the exchange is other processes)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from binance_common.errors import BadRequestError, UnauthorizedError
from binance_sdk_spot.rest_api import SpotRestAPI, models
from binance_sdk_spot.rest_api.models import (
    DeleteOrderResponse,
    ExchangeInfoResponse,
    GetAccountResponse,
    GetOrderResponse,
    NewOrderResponse,
    OrderCancelReplaceResponse,
)
from tests.fixtures import unique

from .clients import binance_sdk_spot, ed25519_key
from .conftest import Exchange, Trader

ETH = "ETHUSDT"
Side, Type, Tif = models.NewOrderSideEnum, models.NewOrderTypeEnum, models.NewOrderTimeInForceEnum
RespType = models.NewOrderNewOrderRespTypeEnum
ReplaceSide, ReplaceType = models.OrderCancelReplaceSideEnum, models.OrderCancelReplaceTypeEnum
ReplaceMode = models.OrderCancelReplaceCancelReplaceModeEnum
ReplaceTif = models.OrderCancelReplaceTimeInForceEnum
DrySide, DryType = models.OrderTestSideEnum, models.OrderTestTypeEnum


def D(value: object) -> Decimal:
    return Decimal(str(value))


@pytest.fixture
def _no_model_slack(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail when a response did not fit the SDK's model (it says so with a logged warning)."""
    with caplog.at_level(logging.WARNING):
        yield
    messages = [record.getMessage() for record in caplog.records]
    assert [m for m in messages if "did not match" in m or "Failed to parse" in m] == []


def _balances(client: SpotRestAPI) -> dict[str, tuple[Decimal, Decimal]]:
    account = client.get_account().data()
    assert isinstance(account, GetAccountResponse)
    return {b.asset: (D(b.free), D(b.locked)) for b in account.balances or []}


def _email(role: str) -> str:
    return f"{unique('sdk-' + role)}@example.com"


def _error(excinfo: pytest.ExceptionInfo[Any]) -> tuple[Any, str]:
    return excinfo.value.status_code, excinfo.value.error_message


def _stalled(exchange: Exchange) -> str:
    errors = [line for line in exchange.log("relay").splitlines() if '"ERROR"' in line]
    return "the warm-up order was not settled within 60 s; relay errors:\n" + "\n".join(
        line[:600] for line in errors[-3:])  # fmt: skip


def _warm_up(exchange: Exchange, client: SpotRestAPI) -> None:
    """The first orders through a freshly started pipeline can be slow (RESULT, FULL and
    cancels wait at most 2 s for settlement): one far below the market, cancelled, until the
    cancel is settled (a pipeline that never settles it fails here, with the relay's log)."""
    order = client.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=0.01, price=600,
                             new_order_resp_type=RespType.ACK).data()  # fmt: skip
    client.delete_order(ETH, order_id=order.order_id)
    deadline = time.monotonic() + 60
    while client.get_order(ETH, order_id=order.order_id).data().status != "CANCELED":
        assert time.monotonic() < deadline, _stalled(exchange)
        time.sleep(0.1)


@pytest.mark.usefixtures("_no_model_slack")
async def test_a_trading_session_between_two_accounts(exchange: Exchange) -> None:
    maker_t = await exchange.trader(_email("maker"), {"ETH": "10", "USDT": "1000"})
    taker_t = await exchange.trader(_email("taker"), {"USDT": "100000"})
    m, t = binance_sdk_spot(exchange.url, maker_t), binance_sdk_spot(exchange.url, taker_t)

    # General and market metadata.
    assert m.ping().status == 200
    server_time = m.time().data().server_time
    assert server_time > 1_700_000_000_000
    info = m.exchange_info(symbol=ETH).data()
    assert isinstance(info, ExchangeInfoResponse)
    (symbol,) = info.symbols or []
    assert (symbol.symbol, symbol.base_asset, symbol.quote_asset, symbol.status) == (
        ETH, "ETH", "USDT", "TRADING")  # fmt: skip
    filters = {f.actual_instance.filter_type: f.actual_instance for f in symbol.filters or []}
    assert D(filters["PRICE_FILTER"].tick_size) == D("0.01")
    assert D(filters["LOT_SIZE"].step_size) == D("0.0001")
    assert D(filters["NOTIONAL"].min_notional) == D("5")
    everything = m.exchange_info().data()
    assert {ETH, "BTCUSDT"} <= {s.symbol for s in everything.symbols or []}

    _warm_up(exchange, t)

    # A resting ask (FULL is the default for LIMIT), then a crossing IOC buy taking part of it.
    ask = m.new_order(ETH, Side.SELL, Type.LIMIT, Tif.GTC, quantity=2, price=2500).data()
    assert isinstance(ask, NewOrderResponse)
    assert (ask.status, D(ask.executed_qty), ask.fills) == ("NEW", 0, [])
    take = t.new_order(ETH, Side.BUY, Type.LIMIT, Tif.IOC, quantity=0.5, price=2500.5).data()
    assert (take.status, D(take.executed_qty), D(take.cummulative_quote_qty)) == (
        "FILLED", D("0.5"), D("1250"))  # fmt: skip
    assert [(D(f.price), D(f.qty), D(f.commission), f.commission_asset) for f in take.fills] == [
        (D("2500"), D("0.5"), D("0.0005"), "ETH")]  # fmt: skip

    # Balances, exactly: the taker paid 1,250 USDT and received 0.5 ETH less 0.1 %.
    assert _balances(t)["USDT"] == (D("98750"), 0)
    assert _balances(t)["ETH"] == (D("0.4995"), 0)
    maker_balances = _balances(m)
    assert maker_balances["ETH"] == (D("8"), D("1.5"))  # 1.5 ETH still on the book
    assert maker_balances["USDT"] == (D("2248.75"), 0)  # 1000 + 1250 − 1.25 fee

    # The maker's order is partly filled.
    fetched = m.get_order(ETH, order_id=ask.order_id).data()
    assert isinstance(fetched, GetOrderResponse)
    assert (fetched.status, D(fetched.executed_qty), D(fetched.orig_qty)) == (
        "PARTIALLY_FILLED", D("0.5"), D("2"))  # fmt: skip
    by_client_id = m.get_order(ETH, orig_client_order_id=ask.client_order_id).data()
    assert by_client_id.order_id == ask.order_id

    # Market data: the book (our level only), trades, tickers, average price.
    book = t.depth(ETH, limit=100).data()
    assert [D(q) for p, q in book.asks if D(p) == D("2500")] == [D("1.5")]
    assert isinstance(book.last_update_id, int)
    trades = t.get_trades(ETH).data()
    last = trades[-1]
    assert (D(last.price), D(last.qty), last.is_buyer_maker) == (D("2500"), D("0.5"), False)
    historical = t.historical_trades(ETH, limit=5).data()
    assert historical[-1].id == last.id
    agg = t.agg_trades(ETH).data()
    assert (D(agg[-1].p), D(agg[-1].q)) == (D("2500"), D("0.5"))
    price = t.ticker_price(symbol=ETH).data().actual_instance
    assert (price.symbol, D(price.price)) == (ETH, D("2500"))
    day = t.ticker24hr(symbol=ETH).data().actual_instance
    assert (D(day.last_price), D(day.ask_price)) == (D("2500"), D("2500"))
    top = t.ticker_book_ticker(symbol=ETH).data().actual_instance
    assert (D(top.ask_price), D(top.ask_qty)) == (D("2500"), D("1.5"))
    rolling = t.ticker(symbol=ETH).data().actual_instance
    assert D(rolling.last_price) == D("2500")
    assert D(t.avg_price(ETH).data().price) > 0

    # LIMIT_MAKER that would take is refused; FOK that cannot fill expires. (LIMIT_MAKER
    # defaults to ACK, which our API answers before the engine decides: RESULT waits for it.)
    with pytest.raises(BadRequestError) as refused:
        t.new_order(ETH, Side.BUY, Type.LIMIT_MAKER, quantity=0.1, price=2500,
                    new_order_resp_type=RespType.RESULT)  # fmt: skip
    assert _error(refused) == (-2010, "Order would immediately match and take.")
    fok = t.new_order(ETH, Side.BUY, Type.LIMIT, Tif.FOK, quantity=5, price=2500).data()
    assert (fok.status, D(fok.executed_qty), fok.fills) == ("EXPIRED", 0, [])

    # Market buy by quote quantity: 1,000 USDT buys 0.4 ETH of the ask.
    by_quote = t.new_order(ETH, Side.BUY, Type.MARKET, quote_order_qty=1000).data()
    assert (by_quote.status, D(by_quote.executed_qty), D(by_quote.cummulative_quote_qty)) == (
        "FILLED", D("0.4"), D("1000"))  # fmt: skip
    assert D(by_quote.orig_quote_order_qty) == D("1000")
    # Market sell by quantity against a resting bid of the taker's.
    bid = t.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=0.2, price=2400).data()
    sold = m.new_order(ETH, Side.SELL, Type.MARKET, quantity=0.2).data()
    assert (sold.status, D(sold.executed_qty), D(sold.cummulative_quote_qty)) == (
        "FILLED", D("0.2"), D("480"))  # fmt: skip
    assert t.get_order(ETH, order_id=bid.order_id).data().status == "FILLED"
    # Taker: 98750 − 1000 − 480 USDT; 0.4995 + 0.4 − 0.0004 + 0.2 − 0.0002 ETH.
    assert _balances(t)["USDT"] == (D("97270"), 0)
    assert _balances(t)["ETH"] == (D("1.0989"), 0)
    # Maker: 2248.75 + 1000 − 1 + 480 − 0.48 USDT; 10 − 0.5 − 0.4 − 0.2 ETH, 1.1 on the book.
    assert _balances(m)["USDT"] == (D("3727.27"), 0)
    assert _balances(m)["ETH"] == (D("7.8"), D("1.1"))

    # Resting orders of other kinds, open orders, cancelReplace, cancel and cancel-all.
    stop = m.new_order(ETH, Side.SELL, Type.STOP_LOSS_LIMIT, Tif.GTC, quantity=0.1,
                       price=2000, stop_price=2050).data()  # fmt: skip
    assert stop.order_id > 0
    gtc = m.new_order(ETH, Side.SELL, Type.LIMIT, Tif.GTC, quantity=0.01, price=2600).data()
    maker_only = m.new_order(ETH, Side.SELL, Type.LIMIT_MAKER, quantity=0.01, price=2610).data()
    assert (maker_only.status, maker_only.transact_time > 0) == (None, True)  # ACK, its default
    open_ids = {o.order_id for o in m.get_open_orders(symbol=ETH).data()}
    assert open_ids == {ask.order_id, stop.order_id, gtc.order_id, maker_only.order_id}
    replaced = m.order_cancel_replace(ETH, ReplaceSide.SELL, ReplaceType.LIMIT,
                                      ReplaceMode.STOP_ON_FAILURE, ReplaceTif.GTC,
                                      quantity=0.02, price=2650,
                                      cancel_order_id=gtc.order_id).data()  # fmt: skip
    assert isinstance(replaced, OrderCancelReplaceResponse)
    assert (replaced.cancel_result, replaced.new_order_result) == ("SUCCESS", "SUCCESS")
    assert replaced.cancel_response.order_id == gtc.order_id
    assert replaced.cancel_response.status == "CANCELED"
    new_id = replaced.new_order_response.order_id
    assert D(replaced.new_order_response.price) == D("2650")
    assert m.get_order(ETH, order_id=gtc.order_id).data().status == "CANCELED"
    cancelled = m.delete_order(ETH, order_id=maker_only.order_id).data()
    assert isinstance(cancelled, DeleteOrderResponse)
    assert (cancelled.order_id, cancelled.status) == (maker_only.order_id, "CANCELED")
    swept = m.delete_open_orders(ETH).data()
    assert {o.order_id for o in swept} == {ask.order_id, stop.order_id, new_id}
    assert {o.status for o in swept} == {"CANCELED"}
    assert m.get_open_orders(symbol=ETH).data() == []
    assert _balances(m)["ETH"] == (D("8.9"), 0)  # nothing locked any more
    all_orders = {o.order_id: o.status for o in m.all_orders(ETH).data()}
    assert all_orders == {ask.order_id: "CANCELED", sold.order_id: "FILLED",
                          stop.order_id: "CANCELED", gtc.order_id: "CANCELED",
                          maker_only.order_id: "CANCELED", new_id: "CANCELED"}  # fmt: skip

    # My trades on both sides, fees in the asset received.
    mine = [(tr.order_id, tr.is_buyer, tr.is_maker, D(tr.qty), D(tr.commission),
             tr.commission_asset) for tr in m.my_trades(ETH).data()]  # fmt: skip
    assert mine == [
        (ask.order_id, False, True, D("0.5"), D("1.25"), "USDT"),
        (ask.order_id, False, True, D("0.4"), D("1"), "USDT"),
        (sold.order_id, False, False, D("0.2"), D("0.48"), "USDT"),
    ]
    theirs = [(tr.is_buyer, tr.is_maker, tr.commission_asset) for tr in t.my_trades(ETH).data()]
    assert theirs == [(True, False, "ETH"), (True, False, "ETH"), (True, True, "ETH")]

    # Test orders, commission rates, the order count.
    plain = t.order_test(ETH, DrySide.BUY, DryType.MARKET, quantity=0.1)
    assert plain.data().standard_commission_for_order is None  # {}
    rates = t.order_test(ETH, DrySide.BUY, DryType.MARKET, quantity=0.1,
                         compute_commission_rates=True).data()  # fmt: skip
    assert D(rates.standard_commission_for_order.taker) == D("0.001")
    assert D(rates.tax_commission_for_order.taker) == 0
    commission = t.account_commission(ETH).data()
    assert D(commission.standard_commission.maker) == D("0.001")
    assert D(commission.standard_commission.taker) == D("0.001")
    counts = {(c.rate_limit_type, c.interval) for c in t.rate_limit_order().data()}
    assert ("ORDERS", "SECOND") in counts

    # The SDK's error classes carry Binance's codes.
    with pytest.raises(BadRequestError) as unknown_order:
        t.get_order(ETH, order_id=999_999_999)
    assert _error(unknown_order) == (-2013, "Order does not exist.")
    with pytest.raises(BadRequestError) as poor:
        t.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=1000, price=2500)
    assert poor.value.status_code == -2010
    with pytest.raises(BadRequestError) as lot:  # below LOT_SIZE (a Decimal is sent as is)
        t.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=D("0.00001"), price=2500)
    assert _error(lot) == (-1013, "Filter failure: LOT_SIZE")
    with pytest.raises(BadRequestError) as exponent:  # the SDK sends the float 0.00001 as 1e-05
        t.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=0.00001, price=2500)
    assert exponent.value.status_code == -1100
    with pytest.raises(BadRequestError) as bad_symbol:
        t.ticker_price(symbol="NOSUCHPAIR")
    assert bad_symbol.value.status_code == -1121
    with pytest.raises(BadRequestError) as cancel_unknown:
        t.delete_order(ETH, order_id=999_999_999)
    assert cancel_unknown.value.status_code == -2011


async def test_authentication_errors(exchange: Exchange) -> None:
    trader = await exchange.trader(_email("auth"), {"USDT": "100"})
    wrong_secret = binance_sdk_spot(exchange.url, Trader(
        trader.user_id, trader.email, trader.api_key, "0" * 64))  # fmt: skip
    with pytest.raises(BadRequestError) as bad_signature:
        wrong_secret.get_account()
    assert bad_signature.value.status_code == -1022
    unknown_key = binance_sdk_spot(exchange.url, Trader(
        trader.user_id, trader.email, "A" * 64, trader.secret))  # fmt: skip
    with pytest.raises(UnauthorizedError) as unknown:
        unknown_key.get_account()
    assert unknown.value.status_code == -2015
    read_only = await exchange.trader(_email("ro"), {"USDT": "100"}, permissions=["read"])
    client = binance_sdk_spot(exchange.url, read_only)
    with pytest.raises(UnauthorizedError) as refused:
        client.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=0.01, price=1000)
    assert refused.value.status_code == -2015
    assert "USDT" in _balances(client)


@pytest.mark.usefixtures("_no_model_slack")
async def test_ed25519_key_signs_orders(exchange: Exchange) -> None:
    trader = await exchange.trader(_email("ed25519"), {"USDT": "500"})
    api_key, private_pem = await ed25519_key(exchange, trader.user_id)
    client = binance_sdk_spot(exchange.url, api_key=api_key, private_key=private_pem)
    assert client.configuration.api_secret is None

    assert _balances(client)["USDT"] == (D("500"), 0)
    placed = client.new_order(ETH, Side.BUY, Type.LIMIT, Tif.GTC, quantity=0.25,
                              price=1111.11, new_client_order_id="ed25519-bid").data()  # fmt: skip
    assert (placed.status, placed.client_order_id) == ("NEW", "ed25519-bid")
    assert _balances(client)["USDT"] == (D("222.2225"), D("277.7775"))
    fetched = client.get_order(ETH, orig_client_order_id="ed25519-bid").data()
    assert (fetched.order_id, D(fetched.price)) == (placed.order_id, D("1111.11"))
    cancelled = client.delete_order(ETH, order_id=placed.order_id).data()
    assert cancelled.status == "CANCELED"
    assert _balances(client)["USDT"] == (D("500"), 0)

    # Another key's signature does not pass for this key.
    _, other_pem = await ed25519_key(exchange, trader.user_id)
    impostor = binance_sdk_spot(exchange.url, api_key=api_key, private_key=other_pem)
    with pytest.raises(BadRequestError) as refused:
        impostor.get_account()
    assert refused.value.status_code == -1022

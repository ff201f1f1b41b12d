"""The pure market-data arithmetic (`cex.core.tickers`): percentages, averages, window
sizes, the ticker shapes and the aggregation of trades."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cex.core.market import MarketConfig
from cex.core.tickers import (
    AggTrade,
    Book,
    Fill,
    WindowStats,
    aggregate,
    average_places,
    average_price,
    percent_change,
    price_at_average_places,
    rolling_open_time,
    rolling_ticker,
    window_ms,
)

BTC = MarketConfig.create(
    symbol="BTCUSDT", name="btc-usdt", base="BTC", quote="USDT", base_precision=8,
    quote_precision=6, tick_size="0.1", lot_size="0.00001", min_qty="0.00001", max_qty="9000",
    min_notional="5", maker_fee="0.001", taker_fee="0.001",
)  # fmt: skip
#: A market whose tick is finer than its quote asset's unit (lots of 10 units).
FINE = MarketConfig.create(
    symbol="ABCUSDT", name="abc-usdt", base="ABC", quote="USDT", base_precision=0,
    quote_precision=6, tick_size="0.0000001", lot_size="10", min_qty="10", max_qty="1000",
    min_notional="0", maker_fee="0", taker_fee="0",
)  # fmt: skip


@pytest.mark.parametrize(
    ("open_ticks", "last_ticks", "expected"),
    [
        (500000, 512345, "2.469"),
        (520000, 512345, "-1.472"),
        (8000, 8001, "0.013"),  # 0.0125: half up, not half even (0.012)
        (8000, 7999, "-0.013"),
        (2000, 2001, "0.050"),
        (3, 4, "33.333"),
        (7, 7, "0.000"),
        (0, 5, "0.000"),
    ],
)
def test_percent_change(open_ticks: int, last_ticks: int, expected: str) -> None:
    assert percent_change(open_ticks, last_ticks) == expected


def test_average_price_is_exact_then_rounded_at_the_quote_precision() -> None:
    # 19342.345 USDT over 0.38 BTC = 50900.9078947368…
    assert average_price(BTC, 19_342_345_000, 38_000) == "50900.907895"
    # 1500.002 / 0.03 = 50000.0666…
    assert average_price(BTC, 1_500_002_000, 3_000) == "50000.066667"
    assert average_price(BTC, 0, 0) == "0.000000"
    assert average_places(BTC) == 6


def test_average_price_keeps_a_tick_finer_than_the_quote_unit() -> None:
    assert average_places(FINE) == 7
    # 1 unit (0.000001 USDT) over 20 ABC = 0.00000005
    assert average_price(FINE, 1, 2) == "0.0000001"  # 0.00000005 rounds half up
    assert price_at_average_places(FINE, 3) == "0.0000003"
    assert price_at_average_places(BTC, 512345) == "51234.500000"


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1m", 60_000), ("59m", 59 * 60_000), ("1h", 3_600_000), ("23h", 23 * 3_600_000),
     ("1d", 86_400_000), ("7d", 7 * 86_400_000)],
)  # fmt: skip
def test_window_sizes(text: str, ms: int) -> None:
    assert window_ms(text) == ms


@pytest.mark.parametrize(
    "text", ["0m", "60m", "24h", "8d", "01m", "1", "m", "1w", "1d2h", "1M", "-1m", "1.5h", "١m"]
)
def test_window_sizes_refused(text: str) -> None:
    assert window_ms(text) is None


def test_rolling_open_time_starts_on_a_minute() -> None:
    close = 1_800_000_030_123
    assert rolling_open_time(close, 3_600_000) == 1_799_996_400_000
    assert rolling_open_time(1_800_000_000_000, 60_000) == 1_799_999_940_000


STATS = WindowStats(
    count=4, first_id=2, last_id=5, open_ticks=500000, high_ticks=520000, low_ticks=490000,
    last_ticks=512345, last_lots=1000, volume_lots=38_000, quote_units=19_342_345_000,
    prev_close_ticks=400000,
)  # fmt: skip


def test_full_24hr_ticker() -> None:
    ticker = rolling_ticker(
        BTC, STATS, open_time=10, close_time=20, kind="24hr", type_="FULL",
        book=Book(bid=(510000, 50_000), ask=(513000, 25_000)),
    )  # fmt: skip
    assert list(ticker.items()) == [
        ("symbol", "BTCUSDT"), ("priceChange", "1234.5"), ("priceChangePercent", "2.469"),
        ("weightedAvgPrice", "50900.907895"), ("prevClosePrice", "40000.0"),
        ("lastPrice", "51234.5"), ("lastQty", "0.01000"), ("bidPrice", "51000.0"),
        ("bidQty", "0.50000"), ("askPrice", "51300.0"), ("askQty", "0.25000"),
        ("openPrice", "50000.0"), ("highPrice", "52000.0"), ("lowPrice", "49000.0"),
        ("volume", "0.38000"), ("quoteVolume", "19342.345000"), ("openTime", 10),
        ("closeTime", 20), ("firstId", 2), ("lastId", 5), ("count", 4),
    ]  # fmt: skip


def test_mini_and_rolling_shapes() -> None:
    mini = rolling_ticker(BTC, STATS, open_time=1, close_time=2, kind="24hr", type_="MINI")
    assert list(mini) == [
        "symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume",
        "openTime", "closeTime", "firstId", "lastId", "count",
    ]  # fmt: skip
    assert rolling_ticker(BTC, STATS, open_time=1, close_time=2, kind="rolling",
                          type_="MINI") == mini  # fmt: skip
    full = rolling_ticker(BTC, STATS, open_time=1, close_time=2, kind="rolling", type_="FULL")
    assert list(full) == [
        "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "openPrice",
        "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime",
        "firstId", "lastId", "count",
    ]  # fmt: skip


def test_a_window_without_trades_has_the_zero_shape_and_the_last_price() -> None:
    empty = WindowStats(0, None, None, 0, 0, 0, 0, 0, 0, 0, prev_close_ticks=400000)
    ticker = rolling_ticker(BTC, empty, open_time=1, close_time=2, kind="24hr", type_="FULL")
    assert ticker == {
        "symbol": "BTCUSDT", "priceChange": "0.0", "priceChangePercent": "0.000",
        "weightedAvgPrice": "0.000000", "prevClosePrice": "40000.0", "lastPrice": "40000.0",
        "lastQty": "0.00000", "bidPrice": "0.0", "bidQty": "0.00000", "askPrice": "0.0",
        "askQty": "0.00000", "openPrice": "0.0", "highPrice": "0.0", "lowPrice": "0.0",
        "volume": "0.00000", "quoteVolume": "0.000000", "openTime": 1, "closeTime": 2,
        "firstId": -1, "lastId": -1, "count": 0,
    }  # fmt: skip
    never = WindowStats(0, None, None, 0, 0, 0, 0, 0, 0, 0, prev_close_ticks=None)
    ticker = rolling_ticker(BTC, never, open_time=1, close_time=2, kind="24hr", type_="FULL")
    assert ticker["lastPrice"] == ticker["prevClosePrice"] == "0.0"


def fill(trade_id: int, taker: int, price: int = 100, qty: int = 1, ts: int = 5,
         buyer_maker: bool = False) -> Fill:  # fmt: skip
    return Fill(trade_id, price, qty, ts, buyer_maker, taker)


def test_aggregate_groups_consecutive_trades_of_one_taker_order_at_one_price_and_time() -> None:
    fills = [
        fill(1, 10, qty=1), fill(2, 10, qty=2),  # one aggregate
        fill(3, 10, price=101),  # another price
        fill(4, 11, price=101),  # another taker order
        fill(5, 12, ts=6, buyer_maker=True), fill(6, 12, ts=6, qty=4, buyer_maker=True),
        fill(7, 12, ts=7),  # same order and price, another time
        fill(9, 12, ts=7),  # not consecutive: trade 8 is not in the list
    ]  # fmt: skip
    assert aggregate(fills) == [
        AggTrade(1, 100, 3, 1, 2, 5, False),
        AggTrade(3, 101, 1, 3, 3, 5, False),
        AggTrade(4, 101, 1, 4, 4, 5, False),
        AggTrade(5, 100, 5, 5, 6, 6, True),
        AggTrade(7, 100, 1, 7, 7, 7, False),
        AggTrade(9, 100, 1, 9, 9, 7, False),
    ]
    assert aggregate([]) == []


def test_agg_trade_in_binance_fields() -> None:
    agg = AggTrade(7, 512345, 1500, 7, 9, 123, True)
    assert agg.to_binance(BTC) == {
        "a": 7, "p": "51234.5", "q": "0.01500", "f": 7, "l": 9, "T": 123, "m": True, "M": True,
    }  # fmt: skip


def test_no_float_anywhere() -> None:
    ticker = rolling_ticker(BTC, STATS, open_time=1, close_time=2, kind="24hr", type_="FULL")
    assert not any(isinstance(v, float | Decimal) for v in ticker.values())

"""The kline message written directly is byte for byte what ``json.dumps`` makes of
``kline_json``'s objects (the documented form), for any candle and market precision."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cex.core import candles
from cex.core.market import MarketConfig
from cex.core.money import format_units
from cex.infra import redis as keys
from tests.core.helpers import config as market_config

STEPS = [Decimal(s) for s in ("0.1", "0.01", "0.05", "0.00001", "0.25", "1", "5", "1E+1", "10")]


def reference(config: MarketConfig, klines: list[candles.Candle], seq: int, ts: int) -> bytes:
    message = {
        "market": config.name,
        "symbol": config.symbol,
        "seq": seq,
        "E": ts,
        "klines": [keys.kline_json(config, c) for c in klines],
    }
    return json.dumps(message, separators=(",", ":")).encode()


amounts = st.integers(min_value=0, max_value=10**30)
candle_strategy = st.builds(
    candles.Candle,
    interval=st.sampled_from(candles.INTERVALS),
    open_time=st.integers(0, 2**42), close_time=st.integers(0, 2**42),
    open=amounts, high=amounts, low=amounts, close=amounts, volume=amounts,
    quote_volume=amounts, trades=st.integers(1, 10**9), taker_buy_volume=amounts,
    taker_buy_quote=amounts, first_trade_id=st.integers(1, 2**62),
    last_trade_id=st.integers(1, 2**62), last_seq=st.integers(1, 2**62), closed=st.booleans(),
)  # fmt: skip


#: (tick size, lot size, quote precision) of valid markets.
PRECISIONS = [("0.1", "0.00001", 6), ("0.05", "0.001", 8), ("0.00001", "0.1", 10), ("1", "0.1", 6)]


@given(
    st.lists(candle_strategy, max_size=33),
    st.sampled_from(PRECISIONS),
    st.integers(0, 2**62),
    st.integers(0, 2**42),
)
def test_the_payload_is_the_reference_json(
    klines: list[candles.Candle], precisions: tuple[str, str, int], seq: int, ts: int
) -> None:
    tick, lot, quote_precision = precisions
    config = market_config(tick_size=tick, lot_size=lot, min_qty=lot,
                           quote_precision=quote_precision)  # fmt: skip
    assert keys.kline_payload(config, klines, seq=seq, event_ts=ts) == reference(
        config, klines, seq, ts
    )


@given(st.sampled_from(STEPS), st.integers(-(10**40), 10**40))
def test_fixed_point_formats_as_format_units(step: Decimal, units: int) -> None:
    assert keys.fixed_point(step)(units) == format_units(units, step)


def test_an_empty_and_a_closed_candle() -> None:
    config = market_config()
    candle = candles.Candle("1M", 0, 2_678_399_999, 1, 2, 0, 1, 0, 0, 1, 0, 0, 7, 7, 9, True)
    for klines in ([], [candle]):
        assert keys.kline_payload(config, klines, seq=9, event_ts=5) == reference(
            config, klines, 9, 5
        )

"""Candle rules (`cex.core.candles`): interval alignment, aggregation, idempotency."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cex.core import candles as cc
from cex.core.events import Side, TradeExecuted

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def trade(seq: int, trade_id: int, ts: int, price: int, qty: int, side: Side) -> TradeExecuted:
    return TradeExecuted(
        "BTCUSDT", seq, seq, ts, trade_id, price, qty, price * qty * 3, qty, side,
        1, 1, 2, 2, 0, 0,
    )  # fmt: skip


# --------------------------------------------------------------------------- alignment

T = ms(2024, 2, 29, 13, 47, 31) + 123  # a Thursday in a leap year


@pytest.mark.parametrize(
    ("interval", "opened", "closes"),
    [
        ("1s", ms(2024, 2, 29, 13, 47, 31), ms(2024, 2, 29, 13, 47, 32)),
        ("1m", ms(2024, 2, 29, 13, 47), ms(2024, 2, 29, 13, 48)),
        ("3m", ms(2024, 2, 29, 13, 45), ms(2024, 2, 29, 13, 48)),
        ("5m", ms(2024, 2, 29, 13, 45), ms(2024, 2, 29, 13, 50)),
        ("15m", ms(2024, 2, 29, 13, 45), ms(2024, 2, 29, 14)),
        ("30m", ms(2024, 2, 29, 13, 30), ms(2024, 2, 29, 14)),
        ("1h", ms(2024, 2, 29, 13), ms(2024, 2, 29, 14)),
        ("2h", ms(2024, 2, 29, 12), ms(2024, 2, 29, 14)),
        ("4h", ms(2024, 2, 29, 12), ms(2024, 2, 29, 16)),
        ("6h", ms(2024, 2, 29, 12), ms(2024, 2, 29, 18)),
        ("8h", ms(2024, 2, 29, 8), ms(2024, 2, 29, 16)),
        ("12h", ms(2024, 2, 29, 12), ms(2024, 3, 1)),
        ("1d", ms(2024, 2, 29), ms(2024, 3, 1)),
        # 19782 days since the epoch; 19782 = 3 × 6594: a 3d period opens that day.
        ("3d", ms(2024, 2, 29), ms(2024, 3, 3)),
        ("1w", ms(2024, 2, 26), ms(2024, 3, 4)),  # Monday
        ("1M", ms(2024, 2, 1), ms(2024, 3, 1)),
    ],
)
def test_open_and_close_times_in_utc(interval: str, opened: int, closes: int) -> None:
    assert cc.open_time(interval, T) == opened
    assert cc.close_time(interval, opened) == closes - 1
    assert cc.open_time(interval, opened) == opened
    assert cc.open_time(interval, closes - 1) == opened
    assert cc.open_time(interval, closes) == closes


def test_months_roll_over_years_and_keep_their_lengths() -> None:
    assert cc.next_open("1M", ms(2023, 12, 1)) == ms(2024, 1, 1)
    assert cc.next_open("1M", ms(2024, 1, 1)) == ms(2024, 2, 1)
    assert cc.close_time("1M", ms(2023, 2, 1)) == ms(2023, 3, 1) - 1
    assert cc.open_time("1M", ms(1969, 12, 31, 23)) == ms(1969, 12, 1)


def test_a_time_zone_moves_the_boundaries_not_the_clock() -> None:
    eight = cc.parse_time_zone("+8")
    assert eight == 8 * cc.HOUR
    # 13:47 UTC is 21:47 in UTC+8: that local day opened at 16:00 UTC the day before.
    assert cc.open_time("1d", T, eight) == ms(2024, 2, 28, 16)
    assert cc.open_time("1M", T, eight) == ms(2024, 1, 31, 16)
    assert cc.open_time("1w", T, eight) == ms(2024, 2, 25, 16)
    assert cc.open_time("1h", T, eight) == ms(2024, 2, 29, 13)
    minus = cc.parse_time_zone("-1:30")
    assert minus == -90 * cc.MINUTE
    assert cc.open_time("1h", T, minus) == ms(2024, 2, 29, 13, 30)
    assert cc.close_time("1M", cc.open_time("1M", T, minus), minus) == ms(2024, 3, 1, 1, 30) - 1


@pytest.mark.parametrize("text", ["0", "8", "+8", "-12", "14", "05:45", "-1:30", "+14:00"])
def test_time_zones_binance_accepts(text: str) -> None:
    assert cc.parse_time_zone(text) is not None


@pytest.mark.parametrize("text", ["", "15", "-13", "+14:01", "1:60", "a", "8h", "1:5"])
def test_time_zones_binance_refuses(text: str) -> None:
    assert cc.parse_time_zone(text) is None


# --------------------------------------------------------------------------- aggregation


def test_one_minute_of_trades() -> None:
    t0 = ms(2024, 1, 1, 0, 0)
    state = cc.new_state()
    update = cc.apply(state, [
        trade(5, 1, t0 + 1000, 100, 2, Side.BUY),
        trade(6, 2, t0 + 2000, 120, 1, Side.SELL),
        trade(9, 3, t0 + 59_999, 90, 4, Side.BUY),
    ])  # fmt: skip
    # Seconds 1 and 2 closed; second 59 is open.
    assert [(c.interval, c.open_time) for c in update.closed] == [
        ("1s", t0 + 1000),
        ("1s", t0 + 2000),
    ]
    one_minute = state.current["1m"]
    assert one_minute == cc.Candle(
        "1m", t0, t0 + 59_999, open=100, high=120, low=90, close=90, volume=7,
        quote_volume=(200 + 120 + 360) * 3, trades=3, taker_buy_volume=6,
        taker_buy_quote=(200 + 360) * 3, first_trade_id=1, last_trade_id=3, last_seq=9,
    )  # fmt: skip
    assert [c.open_time for c in update.current if c.interval == "1s"] == [t0 + 59_000]
    assert state.last_seq == 9

    # The next minute closes the 1m (and 1s) candles, nothing else.
    update = cc.apply(state, [trade(10, 4, t0 + 60_000, 95, 1, Side.SELL)])
    assert {c.interval for c in update.closed} == {"1s", "1m"}
    assert next(c for c in update.closed if c.interval == "1m") == cc.Candle(
        **{**_fields(one_minute), "closed": True}
    )
    assert state.current["1m"].open_time == t0 + 60_000
    assert state.current["3m"].trades == 4


def _fields(candle: cc.Candle) -> dict[str, object]:
    return {f: getattr(candle, f) for f in candle.__struct_fields__}


def test_a_redelivered_or_older_trade_changes_nothing() -> None:
    t0 = ms(2024, 1, 1)
    state = cc.new_state()
    cc.apply(state, [trade(3, 1, t0, 100, 1, Side.BUY), trade(4, 2, t0 + 5, 110, 1, Side.BUY)])
    before = cc.encode_state(state)
    update = cc.apply(
        state, [trade(4, 2, t0 + 5, 110, 1, Side.BUY), trade(1, 9, t0, 1, 9, Side.SELL)]
    )
    assert update.closed == []
    assert update.current == []
    assert cc.encode_state(state) == before


def test_regroup_rebuilds_coarser_candles_in_a_time_zone() -> None:
    t0 = ms(2024, 1, 1)
    trades = [trade(i + 1, i + 1, t0 + i * 37 * cc.MINUTE, 100 + i % 7, 1 + i % 3, Side.BUY)
              for i in range(200)]  # fmt: skip
    offset = 8 * cc.HOUR
    hours = [c for (i, _), c in cc.aggregate(trades).items() if i == "1h"]
    expected: dict[int, list[TradeExecuted]] = {}
    for t in trades:
        expected.setdefault(cc.open_time("1d", t.ts, offset), []).append(t)
    days = cc.regroup("1d", hours, offset)
    assert [d.open_time for d in days] == sorted(expected)
    for day in days:
        own = expected[day.open_time]
        assert day.trades == len(own)
        assert day.volume == sum(t.qty for t in own)
        assert (day.open, day.close) == (own[0].price, own[-1].price)
        assert day.high == max(t.price for t in own)
        assert day.close_time == day.open_time + cc.DAY - 1


def test_state_round_trips_with_unbounded_quote_volumes() -> None:
    state = cc.new_state()
    big = TradeExecuted("X", 1, 1, 0, 1, 2**62, 2**62, 2**124, 1, Side.BUY, 1, 1, 2, 2, 0, 0)
    cc.apply(state, [big, msgspec_replace(big, seq=2, trade_id=2)])
    assert cc.decode_state(cc.encode_state(state)) == state
    assert state.current["1d"].quote_volume == 2**125


def test_applying_to_a_copy_leaves_the_state_as_it_was() -> None:
    state = cc.new_state()
    first = TradeExecuted("X", 1, 1, 0, 1, 5, 2, 10, 1, Side.BUY, 1, 1, 2, 2, 0, 0)
    cc.apply(state, [first])
    stored = cc.encode_state(state)
    copy = cc.copy_state(state)
    cc.apply(copy, [msgspec_replace(first, seq=2, trade_id=2, ts=cc.DAY, price=7)])
    assert cc.encode_state(state) == stored
    assert copy.last_seq == 2
    assert copy.current["1m"].open == 7


def msgspec_replace(t: TradeExecuted, **changes: int) -> TradeExecuted:
    import msgspec

    return msgspec.structs.replace(t, **changes)


# --------------------------------------------------------------------------- properties


@st.composite
def trade_streams(draw: st.DrawFn) -> list[TradeExecuted]:
    n = draw(st.integers(0, 60))
    t = ms(2024, 1, 30, 23, 58)
    seq = draw(st.integers(1, 5))
    out = []
    for i in range(n):
        t += draw(st.sampled_from([0, 1, 400, 999, 1000, 59_000, 61_000, cc.HOUR, 3 * cc.DAY]))
        seq += draw(st.integers(1, 3))  # other events in between
        out.append(trade(seq, i + 1, t, draw(st.integers(1, 50)), draw(st.integers(1, 9)),
                         draw(st.sampled_from([Side.BUY, Side.SELL]))))  # fmt: skip
    return out


@SETTINGS
@given(trade_streams(), st.lists(st.integers(0, 60), max_size=6), st.data())
def test_any_chunking_with_restarts_and_redelivery_equals_one_pass(
    trades: list[TradeExecuted], cuts: list[int], data: st.DataObject
) -> None:
    whole = cc.new_state()
    reference = cc.aggregate(trades)
    cc.apply(whole, trades)

    state = cc.new_state()
    seen: dict[tuple[str, int], cc.Candle] = {}
    bounds = sorted({0, len(trades), *(c for c in cuts if c <= len(trades))})
    for lo, hi in itertools.pairwise(bounds):
        # A restart: the state goes through its codec; the consumer re-reads some trades.
        state = cc.decode_state(cc.encode_state(state))
        back = data.draw(st.integers(0, lo))
        update = cc.apply(state, trades[back:hi])
        for candle in update.candles:
            key = (candle.interval, candle.open_time)
            assert key not in seen or seen[key].last_seq <= candle.last_seq
            seen[key] = candle
    assert state == whole
    assert seen == reference


@SETTINGS
@given(trade_streams())
def test_every_interval_sums_to_the_trades(trades: list[TradeExecuted]) -> None:
    candles = cc.aggregate(trades)
    for interval in cc.INTERVALS:
        own = [c for (i, _), c in candles.items() if i == interval]
        assert sum(c.volume for c in own) == sum(t.qty for t in trades)
        assert sum(c.quote_volume for c in own) == sum(t.quote_amount for t in trades)
        assert sum(c.trades for c in own) == len(trades)
        assert sum(c.taker_buy_volume for c in own) == sum(
            t.qty for t in trades if t.taker_side is Side.BUY
        )
        for c in own:
            assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
            assert c.open_time <= c.close_time
            assert c.last_trade_id - c.first_trade_id + 1 == c.trades
        # Only the latest candle of an interval is open.
        assert sum(not c.closed for c in own) == (1 if trades else 0)

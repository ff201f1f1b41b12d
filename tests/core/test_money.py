from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cex.core.errors import (
    AmountError,
    AmountOutOfBounds,
    MalformedAmount,
    NegativeAmount,
    OffGridAmount,
    TooManyDigits,
    ZeroAmount,
)
from cex.core.money import MAX_DIGITS, ceil_div, format_units, parse_ppm, parse_units

TICK = Decimal("0.01")


@pytest.mark.parametrize(
    ("text", "units"),
    [("1", 100), ("1.5", 150), ("0.01", 1), (".05", 5), ("7.", 700), ("123.450", 12345)],
)
def test_parse_units_on_grid(text: str, units: int) -> None:
    assert parse_units(text, TICK, field="price") == units


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1e5", MalformedAmount),
        ("NaN", MalformedAmount),
        ("inf", MalformedAmount),
        (" 1", MalformedAmount),
        ("1 ", MalformedAmount),
        ("+1", MalformedAmount),
        ("", MalformedAmount),
        (".", MalformedAmount),
        ("1,5", MalformedAmount),
        ("0x10", MalformedAmount),
        ("-1", NegativeAmount),
        ("-0.01", NegativeAmount),
        ("0", ZeroAmount),
        ("0.000", ZeroAmount),
        ("1.005", OffGridAmount),
        ("1" * (MAX_DIGITS + 1), TooManyDigits),
    ],
)
def test_parse_units_refuses(text: str, error: type[AmountError]) -> None:
    with pytest.raises(error) as info:
        parse_units(text, TICK, field="price")
    assert info.value.field == "price"
    assert info.value.value == text


def test_parse_units_bounds_and_zero() -> None:
    assert parse_units("0", TICK, field="fee", allow_zero=True) == 0
    assert parse_units("2", TICK, field="q", minimum=200, maximum=200) == 200
    with pytest.raises(AmountOutOfBounds, match=r"below the minimum 1\.00"):
        parse_units("0.5", TICK, field="q", minimum=100)
    with pytest.raises(AmountOutOfBounds, match=r"above the maximum 1\.00"):
        parse_units("1.01", TICK, field="q", maximum=100)


def test_parse_units_refuses_non_strings() -> None:
    with pytest.raises(MalformedAmount):
        parse_units(1.5, TICK, field="price")  # type: ignore[arg-type]
    with pytest.raises(MalformedAmount):
        parse_units(Decimal("NaN"), TICK, field="price")


def test_format_units() -> None:
    assert format_units(12345, TICK) == "123.45"
    assert format_units(3, Decimal("1E-8")) == "0.00000003"
    assert format_units(7, Decimal("1")) == "7"
    assert format_units(0, Decimal("0.001")) == "0.000"


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=18))
def test_format_parse_round_trip(units: int, decimals: int) -> None:
    step = Decimal(1).scaleb(-decimals)
    assert parse_units(format_units(units, step), step, field="x", allow_zero=True) == units


def test_parse_ppm() -> None:
    assert parse_ppm("0.001", field="fee") == 1000
    assert parse_ppm("0", field="fee") == 0
    assert parse_ppm(250, field="fee") == 250
    with pytest.raises(OffGridAmount):
        parse_ppm("0.0000001", field="fee")
    with pytest.raises(AmountOutOfBounds):
        parse_ppm("0.2", field="fee", maximum=100_000)
    with pytest.raises(NegativeAmount):
        parse_ppm(-1, field="fee")
    with pytest.raises(MalformedAmount):
        parse_ppm(True, field="fee")


@given(st.integers(min_value=0, max_value=10**20), st.integers(min_value=1, max_value=10**9))
def test_ceil_div(n: int, d: int) -> None:
    q = ceil_div(n, d)
    assert q * d >= n > (q - 1) * d or (n == 0 and q == 0)

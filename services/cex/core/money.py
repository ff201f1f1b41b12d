"""Fixed-point money: decimal strings at the edges, integers on a grid inside.

Inside ``cex.core`` every price is an ``int`` number of ticks, every quantity an ``int``
number of lots and every asset amount an ``int`` number of the asset's smallest unit
(``10**-precision``). ``Decimal`` appears only here, when text comes in from a user, a
Market resource or a config file, and when integers go back out as text.

Parsing is strict ("corrupt data is worse than no data"): a value is accepted only if it is
a plain decimal string (``"123"``, ``"0.001"``, ``"-1"`` is *recognised* but refused as
negative), has at most :data:`MAX_DIGITS` significant digits, and is a whole multiple of its
step. Each failure raises its own :class:`~cex.core.errors.AmountError` subclass.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

from cex.core.errors import (
    AmountOutOfBounds,
    MalformedAmount,
    NegativeAmount,
    OffGridAmount,
    TooManyDigits,
    ZeroAmount,
)

__all__ = [
    "MAX_DIGITS",
    "PPM",
    "asset_step",
    "ceil_div",
    "format_units",
    "parse_decimal",
    "parse_ppm",
    "parse_units",
]

#: Most significant digits accepted in a decimal string; matches Postgres NUMERIC(38, 0).
MAX_DIGITS = 38
#: Parts per million: fee rates are integers in ``0..PPM``.
PPM = 1_000_000

_DECIMAL_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_decimal(text: str | Decimal, *, field: str) -> Decimal:
    """Parse a plain decimal string (or check a ``Decimal``) without rounding.

    Accepts ``"1"``, ``"1.50"``, ``".5"``, ``"5."``; refuses exponents, whitespace, ``+``,
    NaN, infinities, the empty string and more than :data:`MAX_DIGITS` significant digits.
    Negative values are *parsed*; callers refuse them (see :func:`parse_units`).
    """
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise MalformedAmount(field, text, "not a finite number")
        value = text
    elif isinstance(text, str):
        if len(text) > 2 * MAX_DIGITS + 2 or _DECIMAL_RE.fullmatch(text) is None:
            raise MalformedAmount(field, text, "not a plain decimal string")
        try:
            value = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex already refused it
            raise MalformedAmount(field, text, "not a plain decimal string") from exc
    else:
        raise MalformedAmount(field, text, "expected a decimal string")
    digits = "".join(map(str, value.as_tuple().digits)).strip("0")
    if len(digits) > MAX_DIGITS:
        raise TooManyDigits(field, text, f"more than {MAX_DIGITS} significant digits")
    return value


def asset_step(precision: int) -> Decimal:
    """The smallest unit of an asset with ``precision`` decimals, e.g. 8 → ``1E-8``."""
    return Decimal(1).scaleb(-precision)


def parse_units(
    text: str | Decimal,
    step: Decimal,
    *,
    field: str,
    allow_zero: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """Parse ``text`` into a whole number of ``step`` (ticks, lots or asset units).

    Raises ``MalformedAmount``, ``TooManyDigits``, ``NegativeAmount``, ``ZeroAmount`` (unless
    ``allow_zero``), ``OffGridAmount`` when ``text`` is not a multiple of ``step``, and
    ``AmountOutOfBounds`` when the result is outside ``[minimum, maximum]`` (in units).
    """
    value = parse_decimal(text, field=field)
    if value < 0:
        raise NegativeAmount(field, text, "must not be negative")
    if value == 0 and not allow_zero:
        raise ZeroAmount(field, text, "must be greater than zero")
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS + 10
        ratio = value / step
        units = int(ratio)
        if ratio != units:
            raise OffGridAmount(field, text, f"must be a multiple of {step}")
    if minimum is not None and units < minimum:
        raise AmountOutOfBounds(field, text, f"below the minimum {format_units(minimum, step)}")
    if maximum is not None and units > maximum:
        raise AmountOutOfBounds(field, text, f"above the maximum {format_units(maximum, step)}")
    return units


def format_units(units: int, step: Decimal) -> str:
    """Format a whole number of ``step`` as a decimal string with ``step``'s decimals.

    ``format_units(12345, Decimal("0.01")) == "123.45"``; never uses exponent notation.
    """
    exponent = step.as_tuple().exponent
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_DIGITS + 10
        value = Decimal(units) * step
        return f"{value:.{places}f}"


def parse_ppm(text: str | Decimal | int, *, field: str, maximum: int = PPM) -> int:
    """Parse a rate into integer parts-per-million.

    Decimal strings are rates (``"0.001"`` → 1000, at most 6 decimals); ``int`` values are
    already ppm. The result must lie in ``0..maximum``.
    """
    if isinstance(text, bool):
        raise MalformedAmount(field, text, "expected a decimal string or integer ppm")
    if isinstance(text, int):
        ppm = text
        if ppm < 0:
            raise NegativeAmount(field, text, "must not be negative")
    else:
        ppm = parse_units(text, Decimal("0.000001"), field=field, allow_zero=True)
    if ppm > maximum:
        raise AmountOutOfBounds(field, text, f"above the maximum {maximum} ppm")
    return ppm


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounding up (for non-negative numerator, positive denominator)."""
    return -(-numerator // denominator)

"""Market configuration: the grid a market trades on, its bounds and fees.

A :class:`MarketConfig` is immutable and validated at construction, so that everything the
engine computes from it is exact:

* a price is ``price_ticks × tick_size`` quote, a quantity ``qty_lots × lot_size`` base;
* ``lot_size × 10**base_precision`` is a whole number of base units per lot
  (:attr:`MarketConfig.base_units_per_lot`);
* ``tick_size × lot_size × 10**quote_precision`` is a whole number of quote units per
  (tick × lot) (:attr:`MarketConfig.quote_units_per_tick_lot`), hence every notional
  ``price × quantity`` is exact in the quote asset's smallest unit;
* fees are integer parts-per-million, rounded *up* (in the exchange's favour) and charged in
  the asset received: the buyer pays in base, the seller in quote.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec

from cex.core.errors import AmountError, MarketConfigError
from cex.core.events import (
    Command,
    ConfigUpdateV2,
    MarketControl,
    MarketControlAction,
    MarketStatus,
)
from cex.core.money import PPM, asset_step, format_units, parse_decimal, parse_ppm, parse_units

__all__ = [
    "MAX_AMOUNT",
    "MAX_FEE_PPM",
    "MAX_INT64",
    "MAX_PRECISION",
    "MarketConfig",
    "config_update",
    "fee",
    "transition_commands",
]

#: Highest fee rate accepted: 10 %.
MAX_FEE_PPM = 100_000
#: Most decimals an asset's smallest unit may have.
MAX_PRECISION = 18

#: Prices (ticks) and quantities (lots) are 64-bit integers in the database and on the wire.
MAX_INT64 = 2**63 - 1
#: Amounts of money are ``numeric(38, 0)`` in the ledger.
MAX_AMOUNT = 10**38

_CRD_STATUS = {
    "Trading": MarketStatus.TRADING,
    "Halted": MarketStatus.HALTED,
    "CancelOnly": MarketStatus.CANCEL_ONLY,
}


def fee(amount: int, ppm: int) -> int:
    """The fee on ``amount`` at ``ppm`` parts-per-million, rounded up."""
    return -(-amount * ppm // PPM)


def _is_dns_label(name: str) -> bool:
    if not 1 <= len(name) <= 63 or name[0] == "-" or name[-1] == "-":
        return False
    return all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in name)


def _is_asset(code: str) -> bool:
    return 1 <= len(code) <= 16 and all(c.isascii() and (c.isupper() or c.isdigit()) for c in code)


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One market's immutable configuration (from its ``Market`` resource).

    Sizes are ``Decimal`` (build one from strings with :meth:`create` or :meth:`from_spec`),
    fees are ppm ``int``. Construction raises :class:`MarketConfigError` if the market
    could not be traded exactly. Derived integers are properties computed on demand (the
    engine caches them): ``base_units_per_lot``, ``quote_units_per_tick_lot``,
    ``min_qty_lots``, ``max_qty_lots``, ``min_notional_units``.
    """

    symbol: str
    name: str
    base: str
    quote: str
    base_precision: int
    quote_precision: int
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee_ppm: int
    taker_fee_ppm: int
    status: MarketStatus = MarketStatus.TRADING

    def __post_init__(self) -> None:
        try:
            self._validate()
        except AmountError as exc:
            raise MarketConfigError(str(exc)) from exc

    def _validate(self) -> None:
        if not _is_asset(self.base) or not _is_asset(self.quote):
            raise MarketConfigError("base and quote must be upper-case asset codes")
        if self.base == self.quote:
            raise MarketConfigError("base and quote must differ")
        if self.symbol != self.base + self.quote:
            raise MarketConfigError(f"symbol must be {self.base + self.quote!r}")
        if not _is_dns_label(self.name):
            raise MarketConfigError(f"name {self.name!r} is not a DNS label")
        for field, precision in (
            ("base_precision", self.base_precision),
            ("quote_precision", self.quote_precision),
        ):
            if isinstance(precision, bool) or not 0 <= precision <= MAX_PRECISION:
                raise MarketConfigError(f"{field} must be in 0..{MAX_PRECISION}")
        for field in ("tick_size", "lot_size", "min_qty", "max_qty", "min_notional"):
            parse_decimal(getattr(self, field), field=field)
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise MarketConfigError("tick_size and lot_size must be positive")
        base_per_lot = self.lot_size.scaleb(self.base_precision)
        if base_per_lot != int(base_per_lot):
            raise MarketConfigError(
                f"lot_size {self.lot_size} is finer than the base asset's unit "
                f"(precision {self.base_precision})"
            )
        quote_per_tick_lot = (self.tick_size * self.lot_size).scaleb(self.quote_precision)
        if quote_per_tick_lot != int(quote_per_tick_lot):
            raise MarketConfigError(
                f"tick_size × lot_size = {self.tick_size * self.lot_size} is finer than the "
                f"quote asset's unit (precision {self.quote_precision}): notionals not exact"
            )
        min_lots = parse_units(self.min_qty, self.lot_size, field="min_qty")
        max_lots = parse_units(self.max_qty, self.lot_size, field="max_qty")
        if max_lots < min_lots:
            raise MarketConfigError("max_qty must not be below min_qty")
        if max_lots > MAX_INT64:
            raise MarketConfigError(f"max_qty is {max_lots} lots, more than a 64-bit quantity")
        largest_notional = MAX_INT64 * max_lots * self.quote_units_per_tick_lot
        if largest_notional >= MAX_AMOUNT:
            raise MarketConfigError(
                "max_qty × the largest price does not fit the ledger's 38-digit amounts;"
                " use a coarser lot_size or a smaller max_qty"
            )
        parse_units(
            self.min_notional,
            asset_step(self.quote_precision),
            field="min_notional",
            allow_zero=True,
        )
        for field, ppm in (
            ("maker_fee_ppm", self.maker_fee_ppm),
            ("taker_fee_ppm", self.taker_fee_ppm),
        ):
            if isinstance(ppm, bool) or not 0 <= ppm <= MAX_FEE_PPM:
                raise MarketConfigError(f"{field} must be in 0..{MAX_FEE_PPM}")

    # ------------------------------------------------------------------ derived integers

    @property
    def base_units_per_lot(self) -> int:
        """Base smallest units in one lot."""
        return int(self.lot_size.scaleb(self.base_precision))

    @property
    def quote_units_per_tick_lot(self) -> int:
        """Quote smallest units in (one tick × one lot): ``notional = p × q × this``."""
        return int((self.tick_size * self.lot_size).scaleb(self.quote_precision))

    @property
    def min_qty_lots(self) -> int:
        return int(self.min_qty / self.lot_size)

    @property
    def max_qty_lots(self) -> int:
        return int(self.max_qty / self.lot_size)

    @property
    def min_notional_units(self) -> int:
        return int(self.min_notional.scaleb(self.quote_precision))

    def notional(self, price_ticks: int, qty_lots: int) -> int:
        """``price × quantity`` in quote smallest units (always exact)."""
        return price_ticks * qty_lots * self.quote_units_per_tick_lot

    def base_units(self, qty_lots: int) -> int:
        """``quantity`` in base smallest units."""
        return qty_lots * self.base_units_per_lot

    def maker_fee(self, amount: int) -> int:
        """The maker fee on ``amount`` (in the asset the maker receives), rounded up."""
        return fee(amount, self.maker_fee_ppm)

    def taker_fee(self, amount: int) -> int:
        """The taker fee on ``amount`` (in the asset the taker receives), rounded up."""
        return fee(amount, self.taker_fee_ppm)

    # ------------------------------------------------------------------ edges

    def price_to_ticks(self, text: str | Decimal, *, field: str = "price") -> int:
        """A decimal price string → ticks; refuses malformed, ≤ 0 and off-tick values."""
        return parse_units(text, self.tick_size, field=field)

    def qty_to_lots(self, text: str | Decimal, *, field: str = "quantity") -> int:
        """A decimal quantity string → lots, within ``[min_qty, max_qty]``."""
        return parse_units(
            text, self.lot_size, field=field, minimum=self.min_qty_lots, maximum=self.max_qty_lots
        )

    def quote_to_units(self, text: str | Decimal, *, field: str = "quoteOrderQty") -> int:
        """A decimal quote amount → quote smallest units (must be > 0 and on the unit grid)."""
        return parse_units(text, asset_step(self.quote_precision), field=field)

    def base_to_units(self, text: str | Decimal, *, field: str = "amount") -> int:
        """A decimal base amount → base smallest units (must be > 0 and on the unit grid)."""
        return parse_units(text, asset_step(self.base_precision), field=field)

    def format_price(self, ticks: int) -> str:
        return format_units(ticks, self.tick_size)

    def format_qty(self, lots: int) -> str:
        return format_units(lots, self.lot_size)

    def format_quote(self, units: int) -> str:
        return format_units(units, asset_step(self.quote_precision))

    def format_base(self, units: int) -> str:
        return format_units(units, asset_step(self.base_precision))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def create(
        cls,
        *,
        symbol: str,
        name: str,
        base: str,
        quote: str,
        base_precision: int,
        quote_precision: int,
        tick_size: str | Decimal,
        lot_size: str | Decimal,
        min_qty: str | Decimal,
        max_qty: str | Decimal,
        min_notional: str | Decimal,
        maker_fee: str | Decimal | int,
        taker_fee: str | Decimal | int,
        status: MarketStatus = MarketStatus.TRADING,
    ) -> MarketConfig:
        """Build from decimal strings; fees as rates (``"0.001"``) or ``int`` ppm."""
        try:
            return cls(
                symbol=symbol,
                name=name,
                base=base,
                quote=quote,
                base_precision=base_precision,
                quote_precision=quote_precision,
                tick_size=parse_decimal(tick_size, field="tick_size"),
                lot_size=parse_decimal(lot_size, field="lot_size"),
                min_qty=parse_decimal(min_qty, field="min_qty"),
                max_qty=parse_decimal(max_qty, field="max_qty"),
                min_notional=parse_decimal(min_notional, field="min_notional"),
                maker_fee_ppm=parse_ppm(maker_fee, field="maker_fee", maximum=MAX_FEE_PPM),
                taker_fee_ppm=parse_ppm(taker_fee, field="taker_fee", maximum=MAX_FEE_PPM),
                status=status,
            )
        except AmountError as exc:
            raise MarketConfigError(str(exc)) from exc

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> MarketConfig:
        """Build from a ``Market`` resource's ``spec`` (camelCase, decimal strings)."""
        try:
            status_text = spec.get("status", "Trading")
            if status_text not in _CRD_STATUS:
                raise MarketConfigError(f"status must be one of {sorted(_CRD_STATUS)}")
            return cls.create(
                symbol=spec["symbol"],
                name=name,
                base=spec["base"],
                quote=spec["quote"],
                base_precision=spec["basePrecision"],
                quote_precision=spec["quotePrecision"],
                tick_size=spec["tickSize"],
                lot_size=spec["lotSize"],
                min_qty=spec["minQty"],
                max_qty=spec["maxQty"],
                min_notional=spec["minNotional"],
                maker_fee=spec["makerFee"],
                taker_fee=spec["takerFee"],
                status=_CRD_STATUS[status_text],
            )
        except KeyError as exc:
            raise MarketConfigError(f"spec is missing {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise MarketConfigError(f"spec has a field of the wrong type: {exc}") from exc

    def with_fees(self, maker_fee_ppm: int, taker_fee_ppm: int) -> MarketConfig:
        """A copy with new fee rates (validated)."""
        return self._replace(maker_fee_ppm=maker_fee_ppm, taker_fee_ppm=taker_fee_ppm)

    def with_limits(
        self, *, min_qty_lots: int, max_qty_lots: int, min_notional_units: int
    ) -> MarketConfig:
        """A copy with new order limits given in market units (validated: raises
        :class:`MarketConfigError` for limits off the grid or out of bounds)."""
        for field, value in (
            ("min_qty_lots", min_qty_lots),
            ("max_qty_lots", max_qty_lots),
            ("min_notional_units", min_notional_units),
        ):
            if isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT:
                raise MarketConfigError(f"{field} must be in 0..{MAX_AMOUNT}")
        return self._replace(
            min_qty=Decimal(self.format_qty(min_qty_lots)),
            max_qty=Decimal(self.format_qty(max_qty_lots)),
            min_notional=Decimal(self.format_quote(min_notional_units)),
        )

    def with_status(self, status: MarketStatus) -> MarketConfig:
        """A copy with another trading status."""
        return self._replace(status=status)

    def _replace(self, **changes: Any) -> MarketConfig:
        # Through the constructor, so that __post_init__ validates the copy.
        return type(self)(**{**msgspec.structs.asdict(self), **changes})


_CONTROL_ACTION = {
    MarketStatus.TRADING: MarketControlAction.RESUME,
    MarketStatus.HALTED: MarketControlAction.HALT,
    MarketStatus.CANCEL_ONLY: MarketControlAction.CANCEL_ONLY,
}


def _mutable(config: MarketConfig) -> tuple[int, int, int, int, int]:
    """The config fields a market may change while it trades (besides its status), in
    market units: what :class:`ConfigUpdateV2` carries."""
    return (
        config.maker_fee_ppm,
        config.taker_fee_ppm,
        config.min_qty_lots,
        config.max_qty_lots,
        config.min_notional_units,
    )


def config_update(config: MarketConfig, ts: int) -> ConfigUpdateV2:
    """The command that brings an engine to every mutable field of ``config``."""
    return ConfigUpdateV2(
        market=config.symbol,
        ts=ts,
        maker_fee_ppm=config.maker_fee_ppm,
        taker_fee_ppm=config.taker_fee_ppm,
        min_qty_lots=config.min_qty_lots,
        max_qty_lots=config.max_qty_lots,
        min_notional_units=config.min_notional_units,
    )


def transition_commands(old: MarketConfig, new: MarketConfig, ts: int) -> list[Command]:
    """The commands that bring a running engine from ``old`` to ``new``: the config (fees
    and limits, all of them in one CONFIG_UPDATE) first, then the status (so that a market
    resumed with new fees or limits never trades under the old ones). Only those can
    change; the identity and grid of a market are fixed for its life."""
    commands: list[Command] = []
    if _mutable(old) != _mutable(new):
        commands.append(config_update(new, ts))
    if old.status != new.status:
        commands.append(MarketControl(market=new.symbol, ts=ts, action=_CONTROL_ACTION[new.status]))
    return commands

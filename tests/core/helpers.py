"""Builders and a harness for the engine tests: commands with sensible defaults."""

from __future__ import annotations

from typing import Any

import msgspec

from cex.core.events import (
    CancelAll,
    Command,
    ConfigUpdate,
    Event,
    MarketControl,
    MarketControlAction,
    OrderAmend,
    OrderCancel,
    OrderCreate,
    OrderExpire,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
)
from cex.core.market import MarketConfig
from cex.core.matching import MatchingEngine

SYMBOL = "BTCUSDT"
TS = 1_000
BUY = Side.BUY
SELL = Side.SELL
K = 10  # quote units (1e-6 USDT) per tick (0.01) × lot (0.001)
B = 100_000  # base units (1e-8 BTC) per lot (0.001)


def config(**changes: Any) -> MarketConfig:
    values: dict[str, Any] = {
        "symbol": SYMBOL,
        "name": "btc-usdt",
        "base": "BTC",
        "quote": "USDT",
        "base_precision": 8,
        "quote_precision": 6,
        "tick_size": "0.01",
        "lot_size": "0.001",
        "min_qty": "0.001",
        "max_qty": "1000",
        "min_notional": "0",
        "maker_fee": "0.001",
        "taker_fee": "0.002",
    }
    values.update(changes)
    return MarketConfig.create(**values)


def needed(side: Side, price: int | None, qty: int) -> int:
    """What the trading API locks for a limit order."""
    if side is BUY:
        assert price is not None
        return price * qty * K
    return qty * B


def limit(
    oid: int,
    side: Side,
    price: int,
    qty: int,
    *,
    user: int = 1,
    tif: TimeInForce = TimeInForce.GTC,
    stp: StpMode = StpMode.NONE,
    locked: int | None = None,
    cid: str | None = None,
    ts: int = TS,
    expire_at: int | None = None,
    type: OrderType = OrderType.LIMIT,
    stop: int | None = None,
) -> OrderCreate:
    if expire_at is not None:
        tif = TimeInForce.GTT
    return OrderCreate(
        SYMBOL, ts, oid, f"c{oid}" if cid is None else cid, user, side, type, tif, price, qty,
        None, stop, expire_at, stp, needed(side, price, qty) if locked is None else locked,
    )  # fmt: skip


def maker_only(oid: int, side: Side, price: int, qty: int, **kw: Any) -> OrderCreate:
    return limit(oid, side, price, qty, type=OrderType.LIMIT_MAKER, **kw)


def stop_limit(oid: int, side: Side, stop: int, price: int, qty: int, **kw: Any) -> OrderCreate:
    return limit(oid, side, price, qty, type=OrderType.STOP_LOSS_LIMIT, stop=stop, **kw)


def market(
    oid: int,
    side: Side,
    *,
    qty: int | None = None,
    qoq: int | None = None,
    locked: int,
    user: int = 1,
    stp: StpMode = StpMode.NONE,
    ts: int = TS,
    stop: int | None = None,
) -> OrderCreate:
    return OrderCreate(
        SYMBOL, ts, oid, f"c{oid}", user, side,
        OrderType.MARKET if stop is None else OrderType.STOP_LOSS, TimeInForce.IOC, None, qty,
        qoq, stop, None, stp, locked,
    )  # fmt: skip


def cancel(user: int, oid: int | None = None, cid: str | None = None, ts: int = TS) -> OrderCancel:
    return OrderCancel(SYMBOL, ts, user, oid, cid)


def cancel_all(user: int, ts: int = TS) -> CancelAll:
    return CancelAll(SYMBOL, ts, user)


def amend(
    user: int,
    oid: int,
    *,
    qty: int | None = None,
    price: int | None = None,
    add: int = 0,
    ts: int = TS,
) -> OrderAmend:
    return OrderAmend(SYMBOL, ts, user, oid, qty, price, add)


def expire(oid: int, ts: int = TS) -> OrderExpire:
    return OrderExpire(SYMBOL, ts, oid)


def control(action: MarketControlAction, ts: int = TS) -> MarketControl:
    return MarketControl(SYMBOL, ts, action)


def fees(maker: int, taker: int, ts: int = TS) -> ConfigUpdate:
    return ConfigUpdate(SYMBOL, ts, maker, taker)


def brief(event: Event) -> dict[str, Any]:
    """An event as a dict without the fields every event repeats (market, offset, ts)."""
    d = msgspec.structs.asdict(event)
    del d["market"], d["offset"], d["ts"]
    d["kind"] = type(event).__name__
    return {k: (v.value if hasattr(v, "value") else v) for k, v in d.items()}


class Harness:
    """Feeds commands with increasing offsets and checks the engine after each one."""

    def __init__(self, engine: MatchingEngine | None = None) -> None:
        self.engine = engine or MatchingEngine(config())
        self.offset = 0
        self.log: list[Event] = []

    def send(self, command: Command) -> list[Event]:
        self.offset += 1
        out = self.engine.apply(command, self.offset)
        self.engine.check_invariants()
        self.log.extend(out)
        return out

    def brief(self, command: Command) -> list[dict[str, Any]]:
        return [brief(e) for e in self.send(command)]

    def kinds(self, command: Command) -> list[str]:
        return [type(e).__name__ for e in self.send(command)]

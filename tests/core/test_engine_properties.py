"""Property tests: random command streams against a simple reference model and invariants."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cex.core.events import (
    Command,
    Event,
    MarketControlAction,
    MatchPrevented,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
    TradeExecuted,
    encode,
)
from cex.core.matching import MatchingEngine

from .helpers import (
    SYMBOL,
    B,
    K,
    amend,
    cancel,
    cancel_all,
    config,
    control,
    expire,
    fees,
    limit,
    market,
    stop_limit,
)
from .ledger import Ledger
from .reference import Reference

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TIFS = [TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]


def _steps(rnd: random.Random, n: int, full: bool = False) -> list[tuple[Any, ...]]:
    """A random stream of actions (turned into commands by ``_build``/``_build_full``).

    Drawn from a hypothesis-controlled ``Random`` with fixed weights: limit orders and amends
    dominate so that books build up and orders interact, over a narrow price band.
    """
    kinds = ["limit", "amend", "market", "cancel", "cancel_all"]
    weights = [10, 6, 2, 2, 1]
    if full:
        kinds += ["stop", "gtt", "quote", "expire", "control", "fees", "tick"]
        weights += [2, 2, 1, 1, 1, 1, 2]
    side = lambda: rnd.choice([Side.BUY, Side.SELL])  # noqa: E731
    price = lambda: rnd.randint(97, 103)  # noqa: E731
    qty = lambda: rnd.randint(1, 6)  # noqa: E731
    user = lambda: rnd.randint(1, 3)  # noqa: E731
    stp = lambda: rnd.choice(list(StpMode))  # noqa: E731
    mostly = lambda: rnd.random() < 0.8  # noqa: E731
    out: list[tuple[Any, ...]] = []
    for kind in rnd.choices(kinds, weights, k=n):
        if kind == "limit":  # buys mostly below sells: books build up, some orders cross
            s = side()
            p = rnd.randint(94, 101) if s is Side.BUY else rnd.randint(99, 106)
            tif = rnd.choice(TIFS)
            step: tuple[Any, ...] = (kind, s, p, qty(), user(), tif, stp(), rnd.random() < 0.2)
        elif kind == "amend":
            new_qty = qty() if rnd.random() < 0.5 else None
            new_price = price() if new_qty is None or rnd.random() < 0.5 else None
            step = (kind, rnd.randint(0, 60), new_qty, new_price, mostly(), mostly())
        elif kind == "market":
            step = (kind, side(), qty(), user(), stp(), rnd.randint(30, 130))
        elif kind == "cancel":
            step = (kind, rnd.randint(0, 60), mostly())
        elif kind == "cancel_all":
            step = (kind, user())
        elif kind == "stop":
            step = (kind, side(), price(), price(), qty(), user(), rnd.random() < 0.5)
        elif kind == "gtt":
            step = (kind, side(), price(), qty(), user(), rnd.randint(1, 30))
        elif kind == "quote":
            step = (kind, side(), rnd.randint(500, 8000), user(), stp())
        elif kind == "expire":
            step = (kind, rnd.randint(0, 60))
        elif kind == "control":
            step = (kind, rnd.choice([*MarketControlAction, *[MarketControlAction.RESUME] * 3]))
        elif kind == "fees":
            step = (kind, rnd.randint(0, 3000), rnd.randint(0, 3000))
        else:
            step = (kind, rnd.randint(1, 10))
        out.append(step)
    return out


# A seed (not ``st.randoms``) so that the weights above hold; hypothesis still shrinks the
# stream's length when a property fails.
streams = st.builds(
    lambda seed, n: _steps(random.Random(seed), n), st.integers(0, 2**32), st.integers(10, 120)
)
full_streams = st.builds(
    lambda seed, n: _steps(random.Random(seed), n, full=True),
    st.integers(0, 2**32),
    st.integers(10, 120),
)


def _build(steps: list[tuple[Any, ...]]) -> list[Command]:
    commands: list[Command] = []
    created: list[tuple[int, int, Side]] = []  # GTC orders, they may rest: (id, user, side)
    next_id = 0
    for step in steps:
        kind = step[0]
        oid = next_id + 1
        if kind == "limit":
            _, side, price, qty, user, tif, stp, post_only = step
            typ = OrderType.LIMIT_MAKER if post_only and tif is TimeInForce.GTC else OrderType.LIMIT
            commands.append(limit(oid, side, price, qty, user=user, tif=tif, stp=stp, type=typ))
            next_id = oid
            if tif is TimeInForce.GTC:
                created.append((oid, user, side))
        elif kind == "market":
            _, side, qty, user, stp, percent = step
            locked = qty * 100 * K * percent // 100 if side is Side.BUY else qty * B
            commands.append(market(oid, side, qty=qty, locked=locked, user=user, stp=stp))
            next_id = oid
        elif kind == "cancel" and created:
            target, user, _ = created[-1 - step[1] % min(len(created), 8)]  # mostly still open
            commands.append(cancel(user if step[2] else user + 1, target))
        elif kind == "cancel_all":
            commands.append(cancel_all(step[1]))
        elif kind == "amend" and created:
            _, index, qty, price, funded, own = step
            target, user, side = created[-1 - index % min(len(created), 8)]
            add = 0
            if funded:
                add = (price or 105) * (qty or 6) * K if side is Side.BUY else (qty or 6) * B
            commands.append(amend(user if own else user + 1, target, qty=qty, price=price, add=add))
    return commands


def _trades(events: list[Event]) -> list[tuple[int, ...]]:
    return [
        (e.price, e.qty, e.maker_order_id, e.taker_order_id, e.maker_fee, e.taker_fee)
        for e in events
        if isinstance(e, TradeExecuted)
    ]


def _prevented(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (e.taker_order_id, e.maker_order_id, e.price, e.prevented_qty, e.stp_mode)
        for e in events
        if isinstance(e, MatchPrevented)
    ]


@SETTINGS
@given(streams)
def test_engine_matches_the_reference_model(steps: list[tuple[Any, ...]]) -> None:
    cfg = config()
    engine = MatchingEngine(cfg)
    ref = Reference(K, B, cfg.maker_fee_ppm, cfg.taker_fee_ppm, cfg.max_qty_lots)
    ledger = Ledger(K, B)
    for offset, command in enumerate(_build(steps)):
        before, prevented_before = len(ref.trades), len(ref.prevented)
        events = engine.apply(command, offset)
        ref.apply(command)
        assert _trades(events) == ref.trades[before:], command
        assert _prevented(events) == ref.prevented[prevented_before:], command
        assert engine.book_orders(Side.BUY) == ref.side(Side.BUY)
        assert engine.book_orders(Side.SELL) == ref.side(Side.SELL)
        engine.check_invariants()  # includes: the book is never crossed
        ledger.check(command, offset, events)
    # locked funds of open orders are exactly what the engine holds
    held = {o["id"]: o["locked"] for o in engine.open_orders()}
    assert held == ledger.open_locked()


# ----------------------------------------------------------------- the full feature set


def _build_full(steps: list[tuple[Any, ...]]) -> list[Command]:
    """Like ``_build`` plus stops, GTT, quote-amount market orders, expiry, control, fees;
    commands carry increasing timestamps so GTT orders come due."""
    simple = _build(
        [s for s in steps if s[0] in ("limit", "market", "cancel", "cancel_all", "amend")]
    )
    import msgspec

    commands: list[Command] = []
    ts = 1_000
    next_id = 10_000
    simple_iter = iter(simple)
    for step in steps:
        kind = step[0]
        if kind in ("limit", "market", "cancel", "cancel_all", "amend"):
            cmd = next(simple_iter, None)
            if cmd is None:
                continue
            commands.append(msgspec.structs.replace(cmd, ts=ts))
            continue
        next_id += 1
        if kind == "stop":
            _, side, stop, price, qty, user, is_market = step
            if is_market and price % 2:  # stop-market by quote amount
                locked = price * 10 * K if side is Side.BUY else qty * B
                cmd = market(
                    next_id, side, qoq=price * 10 * K, locked=locked, user=user, stop=stop, ts=ts
                )
            elif is_market:
                locked = qty * 110 * K if side is Side.BUY else qty * B
                cmd = market(next_id, side, qty=qty, locked=locked, user=user, stop=stop, ts=ts)
            else:
                cmd = stop_limit(next_id, side, stop, price, qty, user=user, ts=ts)
            commands.append(cmd)
        elif kind == "gtt":
            _, side, price, qty, user, life = step
            commands.append(limit(next_id, side, price, qty, user=user, ts=ts, expire_at=ts + life))
        elif kind == "quote":
            _, side, qoq, user, stp = step
            locked = qoq if side is Side.BUY else 5 * B
            commands.append(
                market(next_id, side, qoq=qoq, locked=locked, user=user, stp=stp, ts=ts)
            )
        elif kind == "expire":
            commands.append(expire(10_001 + step[1], ts=ts))
        elif kind == "control":
            commands.append(control(step[1], ts=ts))
        elif kind == "fees":
            commands.append(fees(step[1], step[2], ts=ts))
        elif kind == "tick":
            ts += step[1]
    return commands


def _run(engine: MatchingEngine, commands: list[Command], start: int = 0) -> list[bytes]:
    return [encode(e) for i, c in enumerate(commands[start:], start) for e in engine.apply(c, i)]


@SETTINGS
@given(full_streams)
def test_invariants_hold_with_every_feature(steps: list[tuple[Any, ...]]) -> None:
    engine = MatchingEngine(config())
    ledger = Ledger(K, B)
    for offset, command in enumerate(_build_full(steps)):
        events = engine.apply(command, offset)
        engine.check_invariants()
        ledger.check(command, offset, events)
    held = {o["id"]: o["locked"] for o in engine.open_orders()}
    assert held == ledger.open_locked()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(full_streams, st.integers(min_value=0))
def test_determinism_and_snapshot_restore(steps: list[tuple[Any, ...]], cut: int) -> None:
    commands = _build_full(steps)
    first, second = MatchingEngine(config()), MatchingEngine(config())
    out_first = _run(first, commands)
    assert _run(second, commands) == out_first  # byte-identical events
    assert first.snapshot() == second.snapshot()  # byte-identical snapshots

    cut %= len(commands) + 1
    head = MatchingEngine(config())
    out_head = _run(head, commands[:cut])
    restored = MatchingEngine.restore(head.snapshot())
    assert restored.snapshot() == head.snapshot()
    out_tail = _run(restored, commands, cut)
    assert out_head + out_tail == out_first
    assert restored.snapshot() == first.snapshot()
    assert restored.last_offset == first.last_offset
    assert restored.config.symbol == SYMBOL

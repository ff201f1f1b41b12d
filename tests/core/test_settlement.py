"""Settlement's money rules (`cex.core.settlement`): property tests on random engine streams.

The trading API's part (the lock at entry, the lock of an amend that raises what an order
needs) and the engine are real (`cex.core.ledger`, the matching engine); the balances are
a dict. After every command, the invariants of DESIGN.md §6 hold: per asset, balances
(available + locked, fee account included) equal deposits; each user's locked funds equal
what their open orders still hold, which is what the engine counts; nothing is negative;
a terminal order holds nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cex.core.events import (
    CancelReason,
    Command,
    Event,
    MarketControlAction,
    MarketStatus,
    OrderCancelled,
    OrderCreate,
    OrderStatus,
    Side,
    TimeInForce,
)
from cex.core.ledger import (
    Journal,
    amend_lock_reference,
    balance_deltas,
    check_balanced,
    locked_asset,
    order_lock_journal,
)
from cex.core.orders import TERMINAL
from cex.core.settlement import (
    InconsistentEvent,
    OrderState,
    UnknownOrder,
    check_leftovers,
    expire_unpublished,
    order_ids_of,
    replay,
)

from .helpers import B, Harness, K, amend, cancel, cancel_all, control, limit, market

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEE_USER = 99
USERS = (1, 2, 3)
DEPOSIT = {"BTC": 50 * 10 * B, "USDT": 50 * 100 * 10 * K}  # ~50 orders' worth each


@dataclass(frozen=True)
class Market:
    name: str = "btc-usdt"
    symbol: str = "BTCUSDT"
    base: str = "BTC"
    quote: str = "USDT"


MARKET = Market()


class Exchange:
    """The trading API's ledger side, the engine and settlement's replay, in memory."""

    def __init__(self) -> None:
        self.engine = Harness()
        self.balances: dict[tuple[int, str], list[int]] = {
            (u, a): [amount, 0] for u in USERS for a, amount in DEPOSIT.items()
        }
        self.orders: dict[int, OrderState] = {}
        #: Each order as the trading API left it, every lock it took included (what a
        #: settlement that lags everything would find).
        self.entry: dict[int, OrderState] = {}
        self.engine_locked: dict[int, int] = {}  # what the engine last said each order holds
        self.statuses: list[MarketStatus] = []
        self.next_id = 0
        self.command_seq = 0

    def post(self, journals: list[Journal]) -> None:
        for journal in journals:
            check_balanced(journal)
        for key, (available, locked) in balance_deltas(journals).items():
            pair = self.balances.setdefault(key, [0, 0])
            pair[0] += available
            pair[1] += locked

    def available(self, user: int, asset: str) -> int:
        return self.balances.get((user, asset), [0, 0])[0]

    def place(self, create: OrderCreate) -> None:
        """The trading API: lock what the order needs (or refuse it), store it PENDING."""
        asset = locked_asset(create.side, MARKET)
        if not 0 < create.locked <= self.available(create.user_id, asset):
            return
        self.post([order_lock_journal(f"order:{create.order_id}", create.user_id, asset,
                                      create.locked)])  # fmt: skip
        self.orders[create.order_id] = OrderState(
            id=create.order_id, market=MARKET.name, user_id=create.user_id, side=create.side,
            status=OrderStatus.PENDING, locked_asset=asset, locked_remaining=create.locked,
            filled_qty=0, cumulative_quote=0, price=create.price, quantity=create.quantity,
        )  # fmt: skip
        self.entry[create.order_id] = replace(self.orders[create.order_id])
        self.send(create)

    def amend(self, order_id: int, qty: int | None, price: int | None, add: int) -> None:
        """The trading API's amend: an open order; an increase locks ``add`` more."""
        order = self.orders[order_id]
        if order.status in TERMINAL or order.status is OrderStatus.PENDING:
            return
        if add > self.available(order.user_id, order.locked_asset):
            add = 0
        self.command_seq += 1
        if add:
            self.post([order_lock_journal(amend_lock_reference(order_id, self.command_seq),
                                          order.user_id, order.locked_asset, add)])  # fmt: skip
            order.locked_remaining += add
            self.entry[order_id].locked_remaining += add
        self.send(amend(order.user_id, order_id, qty=qty, price=price, add=add))

    def send(self, command: Command) -> None:
        events = self.engine.send(command)
        self.settle(events)

    def settle(self, events: list[Event]) -> None:
        assert order_ids_of(events) <= set(self.orders)
        done = replay([(MARKET, e) for e in events], self.orders, FEE_USER)
        assert not done.leftovers  # the engine saw every amend: nothing is left behind
        self.post(done.journals)
        self.statuses.extend(done.statuses.values())
        for e in events:
            if hasattr(e, "locked_remaining"):
                self.engine_locked[e.order_id] = e.locked_remaining  # type: ignore[attr-defined]
        self.check()

    def check(self) -> None:
        totals: dict[str, int] = {}
        for (_, asset), (available, locked) in self.balances.items():
            assert available >= 0, "a negative balance"
            assert locked >= 0, "a negative balance"
            totals[asset] = totals.get(asset, 0) + available + locked
        assert totals == {a: amount * len(USERS) for a, amount in DEPOSIT.items()}
        held: dict[tuple[int, str], int] = {}
        for order in self.orders.values():
            assert order.locked_remaining >= 0
            if order.status in TERMINAL:
                assert order.locked_remaining == 0, "a terminal order holds funds"
            else:
                key = (order.user_id, order.locked_asset)
                held[key] = held.get(key, 0) + order.locked_remaining
                if order.status is not OrderStatus.PENDING:
                    assert order.locked_remaining == self.engine_locked[order.id]
        for key, (_, locked) in self.balances.items():
            assert locked == held.get(key, 0), ("locked != what open orders hold", key)


def _steps(rnd: random.Random, n: int) -> list[tuple[Any, ...]]:
    kinds = ["limit", "amend", "market", "cancel", "cancel_all", "control"]
    out: list[tuple[Any, ...]] = []
    for kind in rnd.choices(kinds, [10, 5, 2, 2, 1, 1], k=n):
        side = rnd.choice([Side.BUY, Side.SELL])
        user = rnd.choice(USERS)
        if kind == "limit":  # buys mostly below sells: books build up, some orders cross
            price = rnd.randint(94, 101) if side is Side.BUY else rnd.randint(99, 106)
            tif = rnd.choice([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK])
            out.append((kind, side, price, rnd.randint(1, 6), user, tif))
        elif kind == "amend":
            qty = rnd.randint(1, 8) if rnd.random() < 0.6 else None
            price = rnd.randint(95, 105) if qty is None or rnd.random() < 0.4 else None
            out.append((kind, rnd.randint(0, 20), qty, price, rnd.random() < 0.7))
        elif kind == "market":
            out.append((kind, side, rnd.randint(1, 6), user, rnd.randint(30, 130)))
        elif kind == "cancel":
            out.append((kind, rnd.randint(0, 20)))
        elif kind == "cancel_all":
            out.append((kind, user))
        else:
            out.append((kind, rnd.choice([*MarketControlAction, MarketControlAction.RESUME])))
    return out


streams = st.builds(
    lambda seed, n: _steps(random.Random(seed), n), st.integers(0, 2**32), st.integers(10, 120)
)


def run(steps: list[tuple[Any, ...]]) -> Exchange:
    ex = Exchange()
    for step in steps:
        kind = step[0]
        resting = [o for o in ex.orders.values() if o.status not in TERMINAL]
        if kind == "limit":
            _, side, price, qty, user, tif = step
            ex.next_id += 1
            ex.place(limit(ex.next_id, side, price, qty, user=user, tif=tif))
        elif kind == "market":
            _, side, qty, user, percent = step
            ex.next_id += 1
            locked = max(1, qty * 100 * K * percent // 100) if side is Side.BUY else qty * B
            ex.place(market(ex.next_id, side, qty=qty, locked=locked, user=user))
        elif kind == "amend" and resting:
            _, index, qty, price, funded = step
            order = resting[-1 - index % len(resting)]
            add = 0
            if funded:
                new_qty, new_price = qty or 8, price or 105
                add = new_price * new_qty * K if order.side is Side.BUY else new_qty * B
            ex.amend(order.id, qty, price, add)
        elif kind == "cancel" and resting:
            order = resting[-1 - step[1] % len(resting)]
            ex.send(cancel(order.user_id, order.id))
        elif kind == "cancel_all":
            ex.send(cancel_all(step[1]))
        elif kind == "control":
            ex.send(control(step[1]))
    return ex


@SETTINGS
@given(streams)
def test_replay_keeps_every_money_invariant(steps: list[tuple[Any, ...]]) -> None:
    ex = run(steps)
    # Everything cancelled: every fund is back in the users' available balances.
    ex.send(control(MarketControlAction.RESUME))
    for user in USERS:
        ex.send(cancel_all(user))
    assert all(locked == 0 for _, locked in ex.balances.values())
    assert all(o.status in TERMINAL for o in ex.orders.values())


@SETTINGS
@given(streams, st.data())
def test_replay_in_any_batches_gives_the_same_result(
    steps: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    """Settlement replays what Kafka gives it in batches of any size, maybe long after the
    trading API took the locks: the same outcome, and the same as live."""
    ex = run(steps)
    events = [(MARKET, e) for e in ex.engine.log]
    one_go = {i: replace(o) for i, o in ex.entry.items()}
    whole = replay(events, one_go, FEE_USER)
    batched = {i: replace(o) for i, o in ex.entry.items()}
    journals: list[Journal] = []
    start = 0
    while start < len(events):
        size = data.draw(st.integers(1, 50))
        journals += replay(events[start : start + size], batched, FEE_USER).journals
        start += size
    assert batched == one_go == ex.orders
    assert balance_deltas(journals) == balance_deltas(whole.journals)


def test_a_contradicting_event_is_refused() -> None:
    ex = Exchange()
    ex.place(limit(1, Side.BUY, 100, 2, user=1))
    order = ex.orders[1]
    assert order.status is OrderStatus.NEW
    held = order.locked_remaining
    cancel_event = OrderCancelled("BTCUSDT", 99, 0, 0, 1, 1, Side.BUY, OrderStatus.CANCELED,
                                  0, 0, 0, held - 1, CancelReason.USER)  # fmt: skip
    done = replay([(MARKET, cancel_event)], {1: replace(order)}, FEE_USER)
    assert done.leftovers == {1: 1}  # one unit would stay locked on a cancelled order
    with pytest.raises(InconsistentEvent, match="still locked"):
        check_leftovers(done.leftovers, {})
    check_leftovers(done.leftovers, {1: 1})  # an amend lock the engine had not seen
    with pytest.raises(UnknownOrder):
        replay([(MARKET, cancel_event)], {}, FEE_USER)
    with pytest.raises(InconsistentEvent):  # another user's order
        replay([(MARKET, cancel_event)], {1: replace(order, user_id=2)}, FEE_USER)
    with pytest.raises(InconsistentEvent):  # releases more than it holds
        replay(
            [(MARKET, msgspec.structs.replace(cancel_event, released=held + 1))],
            {1: replace(order)},
            FEE_USER,
        )


def test_a_stale_pending_order_is_expired_and_released() -> None:
    order = OrderState(id=7, market="btc-usdt", user_id=1, side=Side.BUY,
                       status=OrderStatus.PENDING, locked_asset="USDT", locked_remaining=500,
                       filled_qty=0, cumulative_quote=0)  # fmt: skip
    journal = expire_unpublished(order)
    assert journal is not None
    assert balance_deltas([journal]) == {(1, "USDT"): (500, -500)}
    assert (order.status, order.locked_remaining, order.reason) == (
        OrderStatus.EXPIRED, 0, "STALE_PENDING",
    )  # fmt: skip
    with pytest.raises(InconsistentEvent):  # an order the engine opened is not stale
        expire_unpublished(replace(order, status=OrderStatus.NEW))

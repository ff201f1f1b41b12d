"""Named examples: every order type, time in force, STP mode and command, exact events."""

from __future__ import annotations

import pytest

from cex.core.events import (
    MarketControlAction,
    MarketStatus,
    MatchPrevented,
    OrderType,
    StpMode,
    TimeInForce,
)
from cex.core.matching import MatchingEngine

from .expect import (
    cancelled,
    command_rejected,
    delta,
    expired,
    opened,
    prevented,
    rejected,
    trade,
    updated,
)
from .helpers import (
    BUY,
    SELL,
    SYMBOL,
    B,
    Harness,
    amend,
    cancel,
    cancel_all,
    config,
    control,
    expire,
    fees,
    limit,
    maker_only,
    market,
    stop_limit,
)


@pytest.fixture
def h() -> Harness:
    return Harness()


# --------------------------------------------------------------------------- LIMIT / TIF


def test_gtc_limit_rests(h: Harness) -> None:
    assert h.brief(limit(1, SELL, 100, 5)) == [
        opened(1, 1, SELL, 100, 5, 5 * B),
        delta(2, SELL, 100, 5),
    ]
    assert h.engine.depth(SELL) == [(100, 5)]


def test_gtc_limit_sweeps_levels_keeps_price_improvement_locked_until_cancel(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    h.send(limit(2, SELL, 101, 2))
    assert h.brief(limit(3, BUY, 102, 5, user=2)) == [
        trade(5, 1, 100, 2, BUY, maker=1, taker=3),
        updated(6, 1, SELL, 100, filled=2, remaining=0, locked=0),
        delta(7, SELL, 100, 0),
        trade(8, 2, 101, 2, BUY, maker=2, taker=3),
        updated(9, 2, SELL, 101, filled=2, remaining=0, locked=0),
        delta(10, SELL, 101, 0),
        # 5100 locked - 2000 - 2020 spent: 1080 stay locked for 1 lot at 102 (needs 1020)
        opened(11, 3, BUY, 102, 1, 1080, filled=4, user=2),
        delta(12, BUY, 102, 1),
    ]
    assert h.brief(cancel(2, 3)) == [
        cancelled(13, 3, BUY, filled=4, released=1080, user=2),
        delta(14, BUY, 102, 0),
    ]


def test_trade_fees_are_exact_and_rounded_up(h: Harness) -> None:
    h.send(limit(1, SELL, 333, 1))
    t = h.send(limit(2, BUY, 333, 1, user=2))[0]
    # quote 3330 × 0.1 % = 3.33 → 4 (seller, maker); base 100000 × 0.2 % = 200 (buyer, taker)
    assert (t.quote_amount, t.base_amount, t.maker_fee, t.taker_fee) == (3330, 100_000, 4, 200)  # type: ignore[union-attr]


def test_ioc_fills_what_it_can_and_expires_the_rest(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    assert h.brief(limit(2, BUY, 100, 5, user=2, tif=TimeInForce.IOC)) == [
        trade(3, 1, 100, 2, BUY, maker=1, taker=2),
        updated(4, 1, SELL, 100, filled=2, remaining=0, locked=0),
        delta(5, SELL, 100, 0),
        expired(6, 2, BUY, filled=2, released=3000, reason="IOC", user=2),
    ]


def test_ioc_that_cannot_trade_expires_without_touching_the_book(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    assert h.brief(limit(2, BUY, 99, 1, user=2, tif=TimeInForce.IOC)) == [
        expired(3, 2, BUY, released=990, reason="IOC", user=2),
    ]


def test_fok_not_fillable_is_rejected_and_changes_nothing(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    h.send(limit(2, SELL, 102, 2))
    before = h.engine.snapshot()
    assert h.brief(limit(3, BUY, 101, 3, user=2, tif=TimeInForce.FOK)) == [
        rejected(5, 3, BUY, released=3030, reason="FOK_NOT_FILLABLE", user=2),
    ]
    assert h.engine.book_orders(SELL) == [(100, 1, 2), (102, 2, 2)]
    assert h.engine.snapshot() != before  # only the seq moved on
    assert h.engine.next_seq == 6


def test_fok_fillable_fills_completely(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    h.send(limit(2, SELL, 101, 2))
    assert h.brief(limit(3, BUY, 101, 3, user=2, tif=TimeInForce.FOK)) == [
        trade(5, 1, 100, 2, BUY, maker=1, taker=3),
        updated(6, 1, SELL, 100, filled=2, remaining=0, locked=0),
        delta(7, SELL, 100, 0),
        trade(8, 2, 101, 1, BUY, maker=2, taker=3),
        updated(9, 2, SELL, 101, filled=1, remaining=1, locked=B),
        delta(10, SELL, 101, 1),
        updated(11, 3, BUY, 101, filled=3, remaining=0, locked=0, released=20, user=2),
    ]


def test_gtt_expires_when_a_later_command_reaches_its_time(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5, expire_at=2_000))
    assert h.brief(limit(2, BUY, 90, 1, user=2, ts=1_999)) == [
        opened(3, 2, BUY, 90, 1, 900, user=2),
        delta(4, BUY, 90, 1),
    ]
    assert h.brief(cancel(2, 2, ts=2_000)) == [
        expired(5, 1, SELL, released=5 * B, reason="GTT"),
        delta(6, SELL, 100, 0),
        cancelled(7, 2, BUY, released=900, user=2),
        delta(8, BUY, 90, 0),
    ]


def test_order_expire_command_from_the_lifecycle_worker(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5, expire_at=5_000))
    h.send(limit(2, SELL, 101, 5))
    assert h.brief(expire(1, ts=5_000)) == [
        expired(5, 1, SELL, released=5 * B, reason="GTT"),
        delta(6, SELL, 100, 0),
    ]
    assert h.brief(expire(1, ts=5_001)) == [
        command_rejected(7, "ORDER_EXPIRE", "UNKNOWN_ORDER", oid=1),
    ]
    assert h.brief(expire(2))[0]["reason"] == "EXPIRE_COMMAND"


def test_gtt_already_expired_is_rejected(h: Harness) -> None:
    assert h.brief(limit(1, SELL, 100, 5, expire_at=1_000, ts=1_000)) == [
        rejected(1, 1, SELL, released=5 * B, reason="GTT_EXPIRED"),
    ]


# --------------------------------------------------------------------------- MARKET


def test_market_buy_by_quantity_stops_when_its_locked_funds_run_out(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    h.send(limit(2, SELL, 110, 5))
    assert h.brief(market(3, BUY, qty=5, locked=2000 + 1100 + 5, user=2)) == [
        trade(5, 1, 100, 2, BUY, maker=1, taker=3),
        updated(6, 1, SELL, 100, filled=2, remaining=0, locked=0),
        delta(7, SELL, 100, 0),
        trade(8, 2, 110, 1, BUY, maker=2, taker=3),
        updated(9, 2, SELL, 110, filled=1, remaining=4, locked=4 * B),
        delta(10, SELL, 110, 4),
        expired(11, 3, BUY, filled=3, released=5, reason="LOCKED_EXHAUSTED", user=2),
    ]


def test_market_sell_on_an_empty_book_expires(h: Harness) -> None:
    assert h.brief(market(1, SELL, qty=2, locked=2 * B)) == [
        expired(1, 1, SELL, released=2 * B, reason="MARKET_NO_LIQUIDITY"),
    ]


def test_market_sell_by_quantity_fills(h: Harness) -> None:
    h.send(limit(1, BUY, 100, 3, user=2))
    assert h.brief(market(2, SELL, qty=2, locked=2 * B)) == [
        trade(3, 1, 100, 2, SELL, maker=1, taker=2, maker_user=2, taker_user=1),
        updated(4, 1, BUY, 100, filled=2, remaining=1, locked=1000, user=2),
        delta(5, BUY, 100, 1),
        updated(6, 2, SELL, None, filled=2, remaining=0, locked=0),
    ]


def test_market_buy_by_quote_amount_spends_its_budget(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 3))
    assert h.brief(market(2, BUY, qoq=2500, locked=2500, user=2)) == [
        trade(3, 1, 100, 2, BUY, maker=1, taker=2),
        updated(4, 1, SELL, 100, filled=2, remaining=1, locked=B),
        delta(5, SELL, 100, 1),
        updated(6, 2, BUY, None, filled=2, remaining=0, locked=0, released=500, user=2),
    ]


def test_market_sell_by_quote_amount(h: Harness) -> None:
    h.send(limit(1, BUY, 100, 5, user=2))
    assert h.brief(market(2, SELL, qoq=2500, locked=3 * B)) == [
        trade(3, 1, 100, 2, SELL, maker=1, taker=2, maker_user=2, taker_user=1),
        updated(4, 1, BUY, 100, filled=2, remaining=3, locked=3000, user=2),
        delta(5, BUY, 100, 3),
        updated(6, 2, SELL, None, filled=2, remaining=0, locked=0, released=B),
    ]


def test_market_by_quote_amount_runs_out_of_book(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1))
    assert h.brief(market(2, BUY, qoq=5000, locked=5000, user=2))[-1] == expired(
        6, 2, BUY, filled=1, released=4000, reason="MARKET_NO_LIQUIDITY", user=2
    )


# --------------------------------------------------------------------------- LIMIT_MAKER


def test_limit_maker_rejected_if_it_would_take(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1))
    assert h.brief(maker_only(2, BUY, 100, 1, user=2)) == [
        rejected(3, 2, BUY, released=1000, reason="POST_ONLY_WOULD_TAKE", user=2),
    ]
    assert h.brief(maker_only(3, BUY, 99, 1, user=2)) == [
        opened(4, 3, BUY, 99, 1, 990, user=2),
        delta(5, BUY, 99, 1),
    ]
    assert h.brief(amend(2, 3, price=100, add=10)) == [
        command_rejected(6, "ORDER_AMEND", "POST_ONLY_WOULD_TAKE", oid=3, user=2, released=10),
    ]


# --------------------------------------------------------------------------- stops


def test_stop_loss_limit_rests_then_triggers_on_the_last_trade_price(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1))
    h.send(limit(2, BUY, 99, 5, user=3))
    assert h.brief(stop_limit(3, SELL, 100, 99, 2, user=4)) == [
        opened(5, 3, SELL, 99, 2, 2 * B, user=4, working=False),
    ]
    assert h.engine.book_orders(SELL) == [(100, 1, 1)]  # a stop is not on the book
    assert h.brief(limit(4, BUY, 100, 1, user=2)) == [
        trade(6, 1, 100, 1, BUY, maker=1, taker=4),
        updated(7, 1, SELL, 100, filled=1, remaining=0, locked=0),
        delta(8, SELL, 100, 0),
        updated(9, 4, BUY, 100, filled=1, remaining=0, locked=0, user=2),
        # last trade 100 ≤ stop 100: the stop triggers and trades as a taker
        updated(
            10, 3, SELL, 99, filled=0, remaining=2, locked=2 * B, cause="STOP_TRIGGERED", user=4
        ),
        trade(11, 2, 99, 2, SELL, maker=2, taker=3, maker_user=3, taker_user=4),
        updated(12, 2, BUY, 99, filled=2, remaining=3, locked=2970, user=3),
        delta(13, BUY, 99, 3),
        updated(14, 3, SELL, 99, filled=2, remaining=0, locked=0, user=4),
    ]
    assert h.engine.last_price == 99
    assert h.brief(stop_limit(5, SELL, 100, 98, 1)) == [
        rejected(15, 5, SELL, released=B, reason="STOP_WOULD_TRIGGER"),
    ]


def test_stop_market_buy_triggers_when_last_reaches_the_stop(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1))
    h.send(limit(2, SELL, 105, 2))
    assert h.brief(market(3, BUY, qty=2, locked=2100, stop=100, user=4)) == [
        opened(5, 3, BUY, None, 2, 2100, user=4, working=False),
    ]
    events = h.brief(limit(4, BUY, 100, 1, user=2))
    assert events[4:] == [
        updated(
            10, 3, BUY, None, filled=0, remaining=2, locked=2100, cause="STOP_TRIGGERED", user=4
        ),
        trade(11, 2, 105, 2, BUY, maker=2, taker=3, maker_user=1, taker_user=4),
        updated(12, 2, SELL, 105, filled=2, remaining=0, locked=0),
        delta(13, SELL, 105, 0),
        updated(14, 3, BUY, None, filled=2, remaining=0, locked=0, released=0, user=4),
    ]


def test_triggered_stops_run_in_acceptance_order_and_cascade(h: Harness) -> None:
    h.send(limit(1, BUY, 100, 1, user=9))
    h.send(limit(2, BUY, 95, 1, user=9))
    h.send(limit(3, BUY, 90, 1, user=9))
    h.send(market(10, SELL, qty=1, locked=B, stop=95, user=4))  # accepted first
    h.send(market(11, SELL, qty=1, locked=B, stop=100, user=5))
    events = h.send(market(12, SELL, qty=1, locked=B, user=6))  # trades at 100
    triggered = [
        (e.order_id, e.seq)
        for e in events
        if type(e).__name__ == "OrderUpdated" and e.cause == "STOP_TRIGGERED"  # type: ignore[union-attr]
    ]
    # at 100 only order 11 triggers; it trades at 95, which then triggers order 10
    assert [oid for oid, _ in triggered] == [11, 10]
    prices = [e.price for e in events if type(e).__name__ == "TradeExecuted"]  # type: ignore[union-attr]
    assert prices == [100, 95, 90]


# --------------------------------------------------------------------------- STP


def _stp_book(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2, user=1))  # the taker's own order, first in line
    h.send(limit(2, SELL, 100, 2, user=2))


def test_stp_expire_taker(h: Harness) -> None:
    _stp_book(h)
    assert h.brief(limit(3, BUY, 100, 3, stp=StpMode.EXPIRE_TAKER)) == [
        prevented(5, taker=3, maker=1, price=100, qty=2, mode="EXPIRE_TAKER"),
        expired(6, 3, BUY, released=3000, reason="STP"),
    ]
    assert h.engine.depth(SELL) == [(100, 4)]


def test_stp_expire_maker(h: Harness) -> None:
    _stp_book(h)
    assert h.brief(limit(3, BUY, 100, 3, stp=StpMode.EXPIRE_MAKER)) == [
        prevented(5, taker=3, maker=1, price=100, qty=2, mode="EXPIRE_MAKER"),
        expired(6, 1, SELL, released=2 * B, reason="STP"),
        trade(7, 1, 100, 2, BUY, maker=2, taker=3, maker_user=2, taker_user=1),
        updated(8, 2, SELL, 100, filled=2, remaining=0, locked=0, user=2),
        delta(9, SELL, 100, 0),
        opened(10, 3, BUY, 100, 1, 1000, filled=2),
        delta(11, BUY, 100, 1),
    ]


def test_stp_expire_both(h: Harness) -> None:
    _stp_book(h)
    assert h.brief(limit(3, BUY, 100, 3, stp=StpMode.EXPIRE_BOTH)) == [
        prevented(5, taker=3, maker=1, price=100, qty=2, mode="EXPIRE_BOTH"),
        expired(6, 1, SELL, released=2 * B, reason="STP"),
        delta(7, SELL, 100, 2),
        expired(8, 3, BUY, released=3000, reason="STP"),
    ]


def test_stp_decrement_smaller_maker_expires(h: Harness) -> None:
    _stp_book(h)
    assert h.brief(limit(3, BUY, 100, 3, stp=StpMode.DECREMENT)) == [
        prevented(5, taker=3, maker=1, price=100, qty=2, mode="DECREMENT"),
        expired(6, 1, SELL, released=2 * B, reason="STP"),
        trade(7, 1, 100, 1, BUY, maker=2, taker=3, maker_user=2, taker_user=1),
        updated(8, 2, SELL, 100, filled=1, remaining=1, locked=B, user=2),
        delta(9, SELL, 100, 1),
        updated(10, 3, BUY, 100, filled=1, remaining=0, locked=0, released=2000),
    ]


def test_stp_decrement_smaller_taker_expires(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5, user=1))
    assert h.brief(limit(2, BUY, 100, 3, stp=StpMode.DECREMENT)) == [
        prevented(3, taker=2, maker=1, price=100, qty=3, mode="DECREMENT"),
        updated(
            4,
            1,
            SELL,
            100,
            filled=0,
            remaining=2,
            locked=2 * B,
            released=3 * B,
            cause="STP_DECREMENT",
        ),
        delta(5, SELL, 100, 2),
        expired(6, 2, BUY, released=3000, reason="STP"),
    ]


def test_stp_decrement_equal_both_expire(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 3, user=1))
    assert h.brief(limit(2, BUY, 100, 3, stp=StpMode.DECREMENT)) == [
        prevented(3, taker=2, maker=1, price=100, qty=3, mode="DECREMENT"),
        expired(4, 1, SELL, released=3 * B, reason="STP"),
        delta(5, SELL, 100, 0),
        expired(6, 2, BUY, released=3000, reason="STP"),
    ]


def test_stp_one_prevented_match_per_maker_met(h: Harness) -> None:
    """EXPIRE_MAKER across two of the taker's own orders on two levels, then a trade: one
    MATCH_PREVENTED per maker, each right before that maker's expiry; seqs gap-free."""
    h.send(limit(1, SELL, 100, 2, user=1))
    h.send(limit(2, SELL, 101, 1, user=1))
    h.send(limit(3, SELL, 101, 2, user=2))
    assert h.brief(limit(4, BUY, 101, 3, stp=StpMode.EXPIRE_MAKER)) == [
        prevented(7, taker=4, maker=1, price=100, qty=2, mode="EXPIRE_MAKER"),
        expired(8, 1, SELL, released=2 * B, reason="STP"),
        delta(9, SELL, 100, 0),
        prevented(10, taker=4, maker=2, price=101, qty=1, mode="EXPIRE_MAKER"),
        expired(11, 2, SELL, released=B, reason="STP"),
        trade(12, 1, 101, 2, BUY, maker=3, taker=4, maker_user=2, taker_user=1),
        updated(13, 3, SELL, 101, filled=2, remaining=0, locked=0, user=2),
        delta(14, SELL, 101, 0),
        opened(15, 4, BUY, 101, 1, 1010, filled=2),
        delta(16, BUY, 101, 1),
    ]


def test_stp_decrement_by_quote_amount_prevents_what_the_budget_pays(h: Harness) -> None:
    """A market buy by quote amount: the prevented quantity is what its budget could buy."""
    h.send(limit(1, SELL, 100, 5, user=1))
    events = h.send(market(2, BUY, qoq=2500, locked=2500, stp=StpMode.DECREMENT))
    found = [e for e in events if isinstance(e, MatchPrevented)]
    assert [(e.maker_order_id, e.price, e.prevented_qty, e.stp_mode) for e in found] == [
        (1, 100, 2, StpMode.DECREMENT)
    ]
    assert events.index(found[0]) == 0
    assert h.engine.book_orders(SELL) == [(100, 1, 3)]


def test_stp_budget_too_small_for_a_lot_prevents_nothing(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5, user=1))
    events = h.send(market(2, BUY, qoq=500, locked=500, stp=StpMode.DECREMENT))
    assert not [e for e in events if isinstance(e, MatchPrevented)]
    assert h.engine.book_orders(SELL) == [(100, 1, 5)]


def test_stp_none_trades_with_yourself(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1, user=1))
    assert h.brief(limit(2, BUY, 100, 1, stp=StpMode.NONE)) == [
        trade(3, 1, 100, 1, BUY, maker=1, taker=2, maker_user=1, taker_user=1),
        updated(4, 1, SELL, 100, filled=1, remaining=0, locked=0),
        delta(5, SELL, 100, 0),
        updated(6, 2, BUY, 100, filled=1, remaining=0, locked=0),
    ]


def test_stp_is_decided_by_the_taker_mode_only(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1, user=1, stp=StpMode.EXPIRE_BOTH))
    kinds = h.kinds(limit(2, BUY, 100, 1, user=1, stp=StpMode.NONE))
    assert kinds[0] == "TradeExecuted"


def test_fok_counts_stp(h: Harness) -> None:
    _stp_book(h)
    # EXPIRE_MAKER: own 2 lots would expire, only 2 others are fillable
    assert h.kinds(limit(3, BUY, 100, 3, tif=TimeInForce.FOK, stp=StpMode.EXPIRE_MAKER)) == [
        "OrderRejected"
    ]
    assert h.kinds(limit(4, BUY, 100, 2, tif=TimeInForce.FOK, stp=StpMode.EXPIRE_MAKER))[:3] == [
        "MatchPrevented",
        "OrderExpired",
        "TradeExecuted",
    ]


# --------------------------------------------------------------------------- cancels


def test_cancel_by_client_order_id_unknown_and_foreign(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 1, cid="mine"))
    assert h.brief(cancel(2, 1)) == [
        command_rejected(3, "ORDER_CANCEL", "UNKNOWN_ORDER", oid=1, user=2),
    ]
    assert h.brief(cancel(1, cid="nope")) == [
        command_rejected(4, "ORDER_CANCEL", "UNKNOWN_ORDER", user=1),
    ]
    assert h.brief(cancel(1, cid="mine")) == [
        cancelled(5, 1, SELL, released=B),
        delta(6, SELL, 100, 0),
    ]
    # the client order id is free again
    assert h.kinds(limit(2, SELL, 100, 1, cid="mine")) == ["OrderOpened", "BookDelta"]


def test_cancel_all_cancels_one_users_orders_in_acceptance_order(h: Harness) -> None:
    h.send(limit(1, SELL, 101, 1))
    h.send(limit(2, SELL, 100, 1, user=2))
    h.send(limit(3, BUY, 90, 1))
    h.send(stop_limit(4, SELL, 80, 79, 1))
    assert h.brief(cancel_all(1)) == [
        cancelled(8, 1, SELL, released=B, reason="CANCEL_ALL"),
        delta(9, SELL, 101, 0),
        cancelled(10, 3, BUY, released=900, reason="CANCEL_ALL"),
        delta(11, BUY, 90, 0),
        cancelled(12, 4, SELL, released=B, reason="CANCEL_ALL"),
    ]
    assert h.brief(cancel_all(1)) == [command_rejected(13, "CANCEL_ALL", "UNKNOWN_ORDER", user=1)]
    assert h.engine.book_orders(SELL) == [(100, 2, 1)]


# --------------------------------------------------------------------------- amend


def test_amend_quantity_decrease_keeps_priority(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5))
    h.send(limit(2, SELL, 100, 5, user=3))
    assert h.brief(amend(1, 1, qty=3)) == [
        updated(
            5, 1, SELL, 100, filled=0, remaining=3, locked=3 * B, released=2 * B, cause="AMEND"
        ),
        delta(6, SELL, 100, 8),
    ]
    assert h.send(limit(3, BUY, 100, 3, user=2))[0].maker_order_id == 1  # type: ignore[union-attr]


def test_amend_price_change_loses_priority(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5))
    h.send(limit(2, SELL, 101, 5, user=3))
    assert h.brief(amend(1, 1, price=101)) == [
        updated(5, 1, SELL, 101, filled=0, remaining=5, locked=5 * B, cause="AMEND"),
        delta(6, SELL, 100, 0),
        delta(7, SELL, 101, 10),
    ]
    assert h.engine.book_orders(SELL) == [(101, 2, 5), (101, 1, 5)]


def test_amend_quantity_increase_needs_more_locked_funds(h: Harness) -> None:
    h.send(limit(1, BUY, 100, 2))
    h.send(limit(2, BUY, 100, 1, user=3))
    assert h.brief(amend(1, 1, qty=3, add=999)) == [
        command_rejected(5, "ORDER_AMEND", "INSUFFICIENT_LOCKED", oid=1, user=1, released=999),
    ]
    assert h.brief(amend(1, 1, qty=3, add=1500)) == [
        updated(
            6,
            1,
            BUY,
            100,
            filled=0,
            remaining=3,
            locked=3000,
            released=500,
            cause="AMEND",
            added=1500,
        ),
        delta(7, BUY, 100, 1),
        delta(8, BUY, 100, 4),
    ]
    assert h.engine.book_orders(BUY) == [(100, 2, 1), (100, 1, 3)]


def test_amend_that_crosses_trades_at_once(h: Harness) -> None:
    h.send(limit(1, BUY, 99, 2))
    h.send(limit(2, SELL, 100, 1, user=2))
    assert h.brief(amend(1, 1, price=100, add=20)) == [
        updated(5, 1, BUY, 100, filled=0, remaining=2, locked=2000, cause="AMEND", added=20),
        delta(6, BUY, 99, 0),
        trade(7, 1, 100, 1, BUY, maker=2, taker=1, maker_user=2, taker_user=1),
        updated(8, 2, SELL, 100, filled=1, remaining=0, locked=0, user=2),
        delta(9, SELL, 100, 0),
        updated(10, 1, BUY, 100, filled=1, remaining=1, locked=1000),
        delta(11, BUY, 100, 1),
    ]


def test_amend_lowering_a_buy_price_releases_the_excess(h: Harness) -> None:
    h.send(limit(1, BUY, 100, 2))
    assert h.brief(amend(1, 1, price=90))[0] == updated(
        3, 1, BUY, 90, filled=0, remaining=2, locked=1800, released=200, cause="AMEND"
    )


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (amend(1, 99, qty=1), "UNKNOWN_ORDER"),
        (amend(2, 1, qty=1), "UNKNOWN_ORDER"),
        (amend(1, 1, qty=5), "INVALID_AMEND"),  # nothing changes
        (amend(1, 1, qty=2), "INVALID_AMEND"),  # not above the filled quantity
        (amend(1, 1, qty=1_000_001), "QTY_OUT_OF_BOUNDS"),
        (amend(1, 1, price=0), "OFF_GRID"),
        (amend(1, 1, qty=4, add=-1), "MALFORMED_COMMAND"),
        (amend(1, 2, price=50), "INVALID_AMEND"),  # a waiting stop
    ],
)
def test_invalid_amends_change_nothing(h: Harness, command: object, reason: str) -> None:
    h.send(limit(1, SELL, 100, 5))
    h.send(stop_limit(2, SELL, 90, 89, 1))
    h.send(limit(3, BUY, 100, 2, user=2))  # order 1 now filled 2 of 5
    before = h.engine.open_orders()
    events = h.brief(command)  # type: ignore[arg-type]
    assert [e["kind"] for e in events] == ["CommandRejected"]
    assert events[0]["reason"] == reason
    assert h.engine.open_orders() == before


# --------------------------------------------------------------------------- market control, fees


def test_halt_refuses_orders_and_amends_but_accepts_cancels(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5))
    assert h.brief(control(MarketControlAction.HALT)) == [
        {"kind": "MarketStatusChanged", "seq": 3, "status": "HALTED"}
    ]
    assert h.engine.status is MarketStatus.HALTED
    assert h.brief(limit(2, BUY, 100, 1, user=2)) == [
        rejected(4, 2, BUY, released=1000, reason="MARKET_HALTED", user=2),
    ]
    assert h.brief(amend(1, 1, qty=4, add=7)) == [
        command_rejected(5, "ORDER_AMEND", "MARKET_HALTED", oid=1, user=1, released=7),
    ]
    assert h.kinds(cancel(1, 1)) == ["OrderCancelled", "BookDelta"]


def test_cancel_only_accepts_decreases_and_resume_trades_again(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5))
    h.send(control(MarketControlAction.CANCEL_ONLY))
    assert h.brief(limit(2, BUY, 100, 1, user=2))[0]["reason"] == "MARKET_CANCEL_ONLY"
    assert h.brief(amend(1, 1, qty=6))[0]["reason"] == "MARKET_CANCEL_ONLY"
    assert h.brief(amend(1, 1, price=101))[0]["reason"] == "MARKET_CANCEL_ONLY"
    assert h.kinds(amend(1, 1, qty=4)) == ["OrderUpdated", "BookDelta"]
    h.send(control(MarketControlAction.RESUME))
    assert h.kinds(limit(3, BUY, 100, 1, user=2))[0] == "TradeExecuted"


def test_fee_update_applies_from_its_place_in_the_stream(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2))
    assert h.brief(fees(0, 5000)) == [
        {"kind": "ConfigUpdated", "seq": 3, "maker_fee_ppm": 0, "taker_fee_ppm": 5000}
    ]
    assert h.brief(limit(2, BUY, 100, 1, user=2))[0] == trade(
        4, 1, 100, 1, BUY, maker=1, taker=2, maker_ppm=0, taker_ppm=5000
    )
    assert h.brief(fees(0, 100_001)) == [
        command_rejected(8, "CONFIG_UPDATE", "INVALID_CONFIG"),
    ]
    assert h.engine.config.taker_fee_ppm == 5000


# --------------------------------------------------------------------------- create validation


def test_duplicate_order_id_is_a_command_reject_not_an_order_reject(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 5))
    assert h.brief(limit(1, SELL, 101, 1)) == [
        command_rejected(3, "ORDER_CREATE", "DUPLICATE_ORDER_ID", oid=1, user=1),
    ]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"price": 0}, "OFF_GRID"),
        ({"qty": 0}, "OFF_GRID"),
        ({"qty": 1_000_001}, "QTY_OUT_OF_BOUNDS"),
        ({"locked": 999}, "INSUFFICIENT_LOCKED"),
        ({"cid": "taken"}, "DUPLICATE_CLIENT_ORDER_ID"),
        ({"locked": -1}, "MALFORMED_COMMAND"),
        ({"stop": 5}, "MALFORMED_COMMAND"),  # a stop price on a plain LIMIT
        ({"tif": TimeInForce.GTT}, "MALFORMED_COMMAND"),  # GTT without expire_at
        ({"type": OrderType.LIMIT_MAKER, "tif": TimeInForce.IOC}, "MALFORMED_COMMAND"),
    ],
)
def test_create_rejections(h: Harness, kwargs: dict[str, object], reason: str) -> None:
    h.send(limit(1, SELL, 100, 5, cid="taken"))
    args = {"price": 100, "qty": 1} | kwargs
    price, qty = args.pop("price"), args.pop("qty")
    events = h.brief(limit(2, BUY, price, qty, **args))  # type: ignore[arg-type]
    assert [(e["kind"], e["reason"]) for e in events] == [("OrderRejected", reason)]
    assert h.engine.book_orders(SELL) == [(100, 1, 5)]


def test_min_notional() -> None:
    h = Harness(MatchingEngine(config(min_notional="1")))  # 1 USDT = 1e6 units
    assert h.brief(limit(1, BUY, 100, 999))[0]["reason"] == "MIN_NOTIONAL"  # 0.999 USDT
    assert h.kinds(limit(2, BUY, 100, 1000)) == ["OrderOpened", "BookDelta"]


def test_market_order_shapes(h: Harness) -> None:
    assert h.brief(market(1, BUY, locked=10))[0]["reason"] == "MALFORMED_COMMAND"  # no qty
    assert h.brief(market(2, BUY, qty=1, qoq=5, locked=10))[0]["reason"] == "MALFORMED_COMMAND"
    assert h.brief(market(3, BUY, qoq=50, locked=10))[0]["reason"] == "INSUFFICIENT_LOCKED"
    assert h.brief(market(4, SELL, qty=2, locked=B))[0]["reason"] == "INSUFFICIENT_LOCKED"


def test_wrong_market_and_malformed_input(h: Harness) -> None:
    import msgspec

    other = msgspec.structs.replace(limit(1, SELL, 100, 5), market="ETHUSDT")
    assert h.brief(other) == [
        command_rejected(1, "ORDER_CREATE", "WRONG_MARKET", oid=1, user=1),
    ]
    out = h.engine.reject_malformed(77)
    assert [(e.seq, e.offset, e.ts) for e in out] == [(2, 77, 1_000)]
    assert h.engine.last_offset == 77


def test_every_event_carries_the_commands_offset_and_ts_and_seq_is_gap_free(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2, ts=5))
    h.offset = 40
    out = h.send(limit(2, BUY, 100, 1, user=2, ts=9))
    assert {(e.market, e.offset, e.ts) for e in out} == {(SYMBOL, 41, 9)}
    assert [e.seq for e in h.log] == list(range(1, len(h.log) + 1))


# --------------------------------------------------------------------------- snapshots


def test_snapshot_round_trips_book_stops_gtt_counters_and_status(h: Harness) -> None:
    h.send(limit(1, SELL, 100, 2, expire_at=5_000))
    h.send(limit(2, BUY, 90, 1, user=2))
    h.send(stop_limit(3, BUY, 101, 102, 1, user=3))
    h.send(limit(4, BUY, 100, 1, user=2))  # trades: last price, trade id
    h.send(fees(5, 7))
    h.send(control(MarketControlAction.CANCEL_ONLY))
    data = h.engine.snapshot()
    copy = MatchingEngine.restore(data)
    assert copy.snapshot() == data
    assert copy.open_orders() == h.engine.open_orders()
    assert (copy.next_seq, copy.last_trade_id, copy.last_price) == (h.engine.next_seq, 1, 100)
    assert (copy.status, copy.config.taker_fee_ppm) == (MarketStatus.CANCEL_ONLY, 7)
    assert copy.next_offset == h.offset + 1
    # the GTT order still expires on time after a restore
    out = copy.apply(cancel(2, 2, ts=5_000), h.offset + 1)
    assert [type(e).__name__ for e in out][:2] == ["OrderExpired", "BookDelta"]


def test_restore_refuses_garbage() -> None:
    from cex.core.errors import SchemaError
    from cex.core.events import encode

    with pytest.raises(SchemaError):
        MatchingEngine.restore(b"not a snapshot")
    with pytest.raises(SchemaError):
        MatchingEngine.restore(encode(limit(1, SELL, 100, 1)))  # a command, not a snapshot


def test_check_invariants_catches_a_corrupted_book(h: Harness) -> None:
    from cex.core.errors import EngineStateError

    h.send(limit(1, SELL, 100, 2))
    h.send(limit(2, BUY, 99, 2, user=2))
    h.engine._ask_qty[100] += 1  # the aggregate no longer matches its orders
    with pytest.raises(EngineStateError, match="aggregate"):
        h.engine.check_invariants()
    h.engine._ask_qty[100] -= 1
    h.engine._bids[101] = h.engine._bids.pop(99)  # crossed, and the order misplaced
    h.engine._bid_qty[101] = h.engine._bid_qty.pop(99)
    with pytest.raises(EngineStateError):
        h.engine.check_invariants()

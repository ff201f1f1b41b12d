"""The ledger rules: postings per event, balance per asset, aggregation per account."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cex.core.events import (
    CancelReason,
    CommandKind,
    CommandRejected,
    ExpireReason,
    MarketStatus,
    MarketStatusChanged,
    OrderCancelled,
    OrderExpired,
    OrderStatus,
    OrderUpdated,
    RejectReason,
    Side,
    TradeExecuted,
    UpdateCause,
)
from cex.core.ledger import (
    Bucket,
    Journal,
    JournalKind,
    LedgerError,
    Posting,
    amend_lock_reference,
    balance_deltas,
    check_balanced,
    imbalances,
    journal_for,
    order_lock_journal,
    trade_journal,
    transfer_journal,
)
from cex.core.market import MarketConfig

MARKET = MarketConfig.create(
    symbol="BTCUSDT",
    name="btc-usdt",
    base="BTC",
    quote="USDT",
    base_precision=8,
    quote_precision=8,
    tick_size="0.01",
    lot_size="0.00001",
    min_qty="0.00001",
    max_qty="1000",
    min_notional="1",
    maker_fee="0.001",
    taker_fee="0.002",
)
FEE = 1
MAKER, TAKER = 10, 20
A, L = Bucket.AVAILABLE, Bucket.LOCKED


def trade(taker_side: Side, *, quote: int = 5_000_000, base: int = 10_000, maker_fee: int = 7,
          taker_fee: int = 11, trade_id: int = 3) -> TradeExecuted:  # fmt: skip
    return TradeExecuted(
        "BTCUSDT", 9, 4, 1000, trade_id, 50_00, 10, quote, base, taker_side,
        100, MAKER, 200, TAKER, maker_fee, taker_fee,
    )  # fmt: skip


def test_a_buy_taker_pays_quote_from_locked_and_receives_base_minus_its_fee() -> None:
    journal = trade_journal(trade(Side.BUY), MARKET, FEE)

    assert journal.kind is JournalKind.TRADE
    assert journal.reference == "trade:BTCUSDT:3"
    assert set(journal.postings) == {
        Posting(TAKER, L, "USDT", -5_000_000),  # buyer pays
        Posting(MAKER, A, "USDT", 5_000_000 - 7),  # seller (maker) receives minus maker fee
        Posting(FEE, A, "USDT", 7),
        Posting(MAKER, L, "BTC", -10_000),  # seller delivers
        Posting(TAKER, A, "BTC", 10_000 - 11),  # buyer (taker) receives minus taker fee
        Posting(FEE, A, "BTC", 11),
    }
    check_balanced(journal)


def test_a_sell_taker_swaps_the_roles_and_fees() -> None:
    journal = trade_journal(trade(Side.SELL), MARKET, FEE)

    assert set(journal.postings) == {
        Posting(MAKER, L, "USDT", -5_000_000),  # the maker buys
        Posting(TAKER, A, "USDT", 5_000_000 - 11),  # the taker sells, pays the taker fee
        Posting(FEE, A, "USDT", 11),
        Posting(TAKER, L, "BTC", -10_000),
        Posting(MAKER, A, "BTC", 10_000 - 7),
        Posting(FEE, A, "BTC", 7),
    }


def test_zero_fees_give_no_zero_postings() -> None:
    journal = trade_journal(trade(Side.BUY, maker_fee=0, taker_fee=0), MARKET, FEE)

    assert len(journal.postings) == 4
    assert all(p.amount for p in journal.postings)
    check_balanced(journal)


def test_a_self_trade_still_balances_and_nets_per_account() -> None:
    t = TradeExecuted(
        "BTCUSDT", 9, 4, 1000, 1, 50_00, 10, 500, 100, Side.BUY, 1, MAKER, 2, MAKER, 1, 2
    )
    deltas = balance_deltas([trade_journal(t, MARKET, FEE)])

    assert deltas[MAKER, "USDT"] == (500 - 1, -500)
    assert deltas[MAKER, "BTC"] == (100 - 2, -100)
    assert deltas[FEE, "USDT"] == (1, 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"quote": 0},
        {"base": -1},
        {"maker_fee": -1},
        {"taker_fee": 10_001},  # buyer's fee above the base received
    ],
)
def test_impossible_trades_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(LedgerError):
        trade_journal(trade(Side.BUY, **bad), MARKET, FEE)


def test_a_release_moves_locked_back_to_available_in_the_locked_asset() -> None:
    buy = OrderCancelled(
        "BTCUSDT", 5, 2, 1000, 7, TAKER, Side.BUY, OrderStatus.CANCELED, 0, 0, 0, 1234,
        CancelReason.USER,
    )  # fmt: skip
    sell = OrderExpired(
        "BTCUSDT", 6, 2, 1000, 8, MAKER, Side.SELL, OrderStatus.EXPIRED, 0, 0, 0, 99,
        ExpireReason.IOC,
    )  # fmt: skip

    buy_journal = journal_for(buy, MARKET, FEE)
    sell_journal = journal_for(sell, MARKET, FEE)

    assert buy_journal == Journal(
        JournalKind.ORDER_RELEASE,
        "release:BTCUSDT:5",
        (Posting(TAKER, L, "USDT", -1234), Posting(TAKER, A, "USDT", 1234)),
    )
    assert sell_journal is not None
    assert sell_journal.postings == (Posting(MAKER, L, "BTC", -99), Posting(MAKER, A, "BTC", 99))


def test_events_that_release_nothing_have_no_journal() -> None:
    update = OrderUpdated(
        "BTCUSDT", 5, 2, 1000, 7, TAKER, Side.BUY, OrderStatus.PARTIALLY_FILLED, 1, 1, 10, 0,
        UpdateCause.TRADE, 5000, 0,
    )  # fmt: skip
    status = MarketStatusChanged("BTCUSDT", 6, 3, 1000, MarketStatus.HALTED)

    assert journal_for(update, MARKET, FEE) is None
    assert journal_for(status, MARKET, FEE) is None


def test_a_refused_amend_returns_its_additional_lock_given_the_orders_side() -> None:
    refused = CommandRejected(
        "BTCUSDT", 5, 2, 1000, CommandKind.ORDER_AMEND, RejectReason.UNKNOWN_ORDER, 7, TAKER, 50
    )

    with pytest.raises(LedgerError):
        journal_for(refused, MARKET, FEE)  # the side is unknown: cannot tell the asset
    journal = journal_for(refused, MARKET, FEE, order_side=Side.SELL)

    assert journal is not None
    assert journal.postings == (Posting(TAKER, L, "BTC", -50), Posting(TAKER, A, "BTC", 50))


def test_check_balanced_refuses_unbalanced_and_malformed_journals() -> None:
    unbalanced = Journal(
        JournalKind.TRADE, "x", (Posting(1, A, "BTC", 5), Posting(2, L, "BTC", -4))
    )
    zero = Journal(JournalKind.TRADE, "y", (Posting(1, A, "BTC", 0),))
    external_user = Journal(
        JournalKind.DEPOSIT, "z", (Posting(1, Bucket.EXTERNAL, "BTC", -5), Posting(1, A, "BTC", 5))
    )

    with pytest.raises(LedgerError, match="does not balance"):
        check_balanced(unbalanced)
    with pytest.raises(LedgerError, match="zero posting"):
        check_balanced(zero)
    with pytest.raises(LedgerError, match="bad account"):
        check_balanced(external_user)
    assert imbalances(unbalanced.postings) == {"BTC": 1}


def test_balance_deltas_leave_external_out_and_drop_netted_accounts() -> None:
    deposit = Journal(
        JournalKind.DEPOSIT,
        "d",
        (Posting(None, Bucket.EXTERNAL, "BTC", -5), Posting(1, A, "BTC", 5)),
    )
    round_trip = Journal(
        JournalKind.ORDER_LOCK,
        "r",
        (Posting(2, A, "BTC", -3), Posting(2, A, "BTC", 3)),
    )

    assert balance_deltas([deposit, round_trip]) == {(1, "BTC"): (5, 0)}


@given(
    taker_side=st.sampled_from(list(Side)),
    quote=st.integers(1, 10**30),
    base=st.integers(1, 10**30),
    maker_ppm=st.integers(0, 100_000),
    taker_ppm=st.integers(0, 100_000),
    self_trade=st.booleans(),
)
def test_every_trade_journal_balances_per_asset(
    taker_side: Side, quote: int, base: int, maker_ppm: int, taker_ppm: int, self_trade: bool
) -> None:
    maker_receives, taker_receives = (quote, base) if taker_side is Side.BUY else (base, quote)
    t = TradeExecuted(
        "BTCUSDT", 1, 0, 0, 1, 1, 1, quote, base, taker_side, 1, MAKER, 2,
        MAKER if self_trade else TAKER,
        -(-maker_receives * maker_ppm // 1_000_000), -(-taker_receives * taker_ppm // 1_000_000),
    )  # fmt: skip
    journal = trade_journal(t, MARKET, FEE)

    check_balanced(journal)
    deltas = balance_deltas([journal])
    assert sum(a + lk for (_, asset), (a, lk) in deltas.items() if asset == "BTC") == 0
    assert sum(a + lk for (_, asset), (a, lk) in deltas.items() if asset == "USDT") == 0


def test_the_trading_api_and_account_journals() -> None:
    lock = order_lock_journal("order:7", 1, "USDT", 300)
    check_balanced(lock)
    assert (lock.kind, lock.reference) == (JournalKind.ORDER_LOCK, "order:7")
    assert balance_deltas([lock]) == {(1, "USDT"): (-300, 300)}
    assert order_lock_journal(amend_lock_reference(7, 12), 1, "USDT", 5).reference == ("amend:7:12")

    deposit = transfer_journal(JournalKind.DEPOSIT, "tx-1", 1, "BTC", 10)
    withdrawal = transfer_journal(JournalKind.WITHDRAWAL, "tx-2", 1, "BTC", 4)
    for journal in (deposit, withdrawal):
        check_balanced(journal)
    assert deposit.postings == (
        Posting(None, Bucket.EXTERNAL, "BTC", -10),
        Posting(1, Bucket.AVAILABLE, "BTC", 10),
    )
    assert balance_deltas([deposit, withdrawal]) == {(1, "BTC"): (6, 0)}

    for bad in (0, -1):
        with pytest.raises(LedgerError):
            order_lock_journal("order:8", 1, "USDT", bad)
        with pytest.raises(LedgerError):
            transfer_journal(JournalKind.DEPOSIT, "tx-3", 1, "BTC", bad)
    with pytest.raises(LedgerError):
        transfer_journal(JournalKind.TRADE, "tx-4", 1, "BTC", 1)

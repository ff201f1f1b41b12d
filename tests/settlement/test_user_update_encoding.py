"""Settlement publishes each event as it read it from Kafka and encodes each user's list
once for both channels: the messages are byte for byte those of encoding the events
(``cex.infra.redis``: :func:`encoded_by_user`, :func:`encode_user_update`). Pure code."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cex.core.events import (
    BookDelta,
    CommandKind,
    CommandRejected,
    Event,
    OrderOpened,
    OrderStatus,
    OrderUpdated,
    RejectReason,
    Side,
    TradeExecuted,
    UpdateCause,
    encode,
)
from cex.infra import redis as keys

users = st.integers(1, 6)
amounts = st.integers(0, 2**63 - 1)


def trade(seq: int, maker: int, taker: int, fee: int) -> TradeExecuted:
    return TradeExecuted("BTCUSDT", seq, seq, 1_700_000_000_000 + seq, trade_id=seq,
                         price=300_000, qty=3, quote_amount=fee, base_amount=3_000,
                         taker_side=Side.BUY, maker_order_id=10 + maker, maker_user_id=maker,
                         taker_order_id=20 + taker, taker_user_id=taker, maker_fee=fee,
                         taker_fee=3)  # fmt: skip


def opened(seq: int, user: int, locked: int) -> OrderOpened:
    return OrderOpened("BTCUSDT", seq, seq, seq, order_id=seq, user_id=user, side=Side.SELL,
                       status=OrderStatus.NEW, filled_qty=0, remaining_qty=5,
                       locked_remaining=locked, released=0, client_order_id=f"c-{seq}\t\u00e9",
                       price=None if locked % 2 else 300_000, working=True)  # fmt: skip


def updated(seq: int, user: int, locked: int) -> OrderUpdated:
    return OrderUpdated("BTCUSDT", seq, seq, seq, order_id=seq, user_id=user, side=Side.BUY,
                        status=OrderStatus.PARTIALLY_FILLED, filled_qty=2, remaining_qty=3,
                        locked_remaining=locked, released=1, cause=UpdateCause.TRADE,
                        price=300_000, locked_added=0)  # fmt: skip


def market_wide(seq: int, _user: int, qty: int) -> BookDelta:
    return BookDelta("BTCUSDT", seq, seq, seq, side=Side.BUY, price=300_000, qty=qty)


def refused(seq: int, user: int, released: int) -> CommandRejected:
    return CommandRejected("BTCUSDT", seq, seq, seq, command=CommandKind.ORDER_CANCEL,
                           reason=RejectReason.UNKNOWN_ORDER, order_id=None,
                           user_id=None if released % 3 == 0 else user,
                           released=0)  # fmt: skip


def batch_of(kinds: list[tuple[int, int, int, int]]) -> list[Event]:
    makers = (opened, updated, market_wide, refused)
    events: list[Event] = []
    for seq, (kind, a, b, amount) in enumerate(kinds, start=1):
        events.append(trade(seq, a, b, amount) if kind == 4 else makers[kind](seq, a, amount))
    return events


kinds_of_events = st.lists(st.tuples(st.integers(0, 4), users, users, amounts), max_size=40)
order_states = st.lists(
    st.tuples(st.integers(1, 99), st.sampled_from(["NEW", "FILLED"]), amounts), max_size=3
)
balance_states = st.lists(st.tuples(st.sampled_from(["BTC", "USDT"]), amounts, amounts), max_size=2)


@given(kinds_of_events, order_states, balance_states)
def test_the_messages_are_those_of_encoding_the_events(
    kinds: list[tuple[int, int, int, int]],
    order_rows: list[tuple[int, str, int]],
    balance_rows: list[tuple[str, int, int]],
) -> None:
    events = batch_of(kinds)
    orders = [keys.OrderState(i, status, 1, quote) for i, status, quote in order_rows]
    balances = [keys.BalanceState(asset, a, b) for asset, a, b in balance_rows]

    by_user = keys.events_by_user(events)
    encoded = keys.encoded_by_user(events, [encode(e) for e in events])

    assert list(encoded) == list(by_user)  # the same users, in the same order
    for user, user_events in by_user.items():
        account = keys.encode_events(encoded[user])
        assert account == keys.encode_events(user_events)
        userdata = keys.encode_user_update(1_700_000_000_123, account, orders, balances)
        assert userdata == keys.encode_user_data(
            keys.UserUpdate(1_700_000_000_123, user_events, orders, balances)
        )
        decoded = keys.decode_user_data(userdata)
        assert isinstance(decoded, keys.UserUpdate)
        assert decoded.events == user_events

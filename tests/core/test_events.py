import msgspec
import pytest

from cex.core import events as ev
from cex.core.errors import SchemaError

from .helpers import BUY, SELL, amend, cancel, cancel_all, control, expire, fees, limit, market

COMMANDS = [
    limit(1, BUY, 100, 5),
    market(2, SELL, qoq=1000, locked=10),
    cancel(1, 1),
    cancel(1, cid="c1"),
    cancel_all(1),
    amend(1, 1, qty=3, price=99, add=5),
    expire(1),
    control(ev.MarketControlAction.HALT),
    fees(1, 2),
]

EVENTS: list[ev.Event] = [
    ev.OrderOpened("BTCUSDT", 1, 7, 9, 1, 2, BUY, ev.OrderStatus.NEW, 0, 5, 500, 0, "c", 10, True),
    ev.OrderUpdated(
        "BTCUSDT",
        2,
        7,
        9,
        1,
        2,
        BUY,
        ev.OrderStatus.FILLED,
        5,
        0,
        0,
        3,
        ev.UpdateCause.TRADE,
        10,
        0,
    ),
    ev.OrderCancelled(
        "BTCUSDT", 3, 7, 9, 1, 2, SELL, ev.OrderStatus.CANCELED, 0, 0, 0, 5, ev.CancelReason.USER
    ),
    ev.OrderExpired(
        "BTCUSDT", 4, 7, 9, 1, 2, SELL, ev.OrderStatus.EXPIRED, 0, 0, 0, 5, ev.ExpireReason.GTT
    ),
    ev.OrderRejected(
        "BTCUSDT",
        5,
        7,
        9,
        1,
        2,
        SELL,
        ev.OrderStatus.REJECTED,
        0,
        0,
        0,
        5,
        ev.RejectReason.OFF_GRID,
    ),
    ev.CommandRejected(
        "BTCUSDT", 6, 7, 9, ev.CommandKind.ORDER_AMEND, ev.RejectReason.UNKNOWN_ORDER, 1, 2, 3
    ),
    ev.TradeExecuted("BTCUSDT", 7, 7, 9, 1, 100, 2, 2000, 200, BUY, 1, 2, 3, 4, 2, 1),
    ev.BookDelta("BTCUSDT", 8, 7, 9, SELL, 100, 0),
    ev.MarketStatusChanged("BTCUSDT", 9, 7, 9, ev.MarketStatus.HALTED),
    ev.ConfigUpdated("BTCUSDT", 10, 7, 9, 1, 2),
    ev.MatchPrevented("BTCUSDT", 11, 7, 9, 5, 2, 3, 2, 100, 4, ev.StpMode.EXPIRE_MAKER),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_commands_round_trip(command: ev.Command) -> None:
    data = ev.encode(command)
    assert ev.decode_command(data) == command
    assert ev.encode(ev.decode_command(data)) == data


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_round_trip(event: ev.Event) -> None:
    data = ev.encode(event)
    assert ev.decode_event(data) == event


def test_every_tag_is_versioned_and_unique() -> None:
    tags = [type(x).__struct_config__.tag for x in [*COMMANDS, *EVENTS]]
    assert all(isinstance(t, str) and t.endswith(".v1") for t in tags)
    classes = {type(x) for x in [*COMMANDS, *EVENTS]}
    assert len(set(tags)) == len(classes) == 18


def test_events_are_immutable() -> None:
    with pytest.raises(AttributeError):
        EVENTS[0].seq = 5  # type: ignore[misc]


def test_wrong_kind_and_garbage_are_schema_errors() -> None:
    with pytest.raises(SchemaError):
        ev.decode_event(ev.encode(COMMANDS[0]))
    with pytest.raises(SchemaError):
        ev.decode_command(ev.encode(EVENTS[0]))
    with pytest.raises(SchemaError):
        ev.decode_command(b"\xc1")
    with pytest.raises(SchemaError):  # a field of the wrong type
        ev.decode_command(msgspec.msgpack.encode(["ORDER_EXPIRE.v1", "BTCUSDT", 1, "x"]))


def test_appended_fields_are_ignored_by_old_readers() -> None:
    """Forward compatibility: a newer writer appending a field does not break this reader."""
    row = msgspec.msgpack.decode(ev.encode(COMMANDS[6]))
    assert ev.decode_command(msgspec.msgpack.encode([*row, "future"])) == COMMANDS[6]


def test_trade_fee_helpers() -> None:
    t = EVENTS[6]
    assert isinstance(t, ev.TradeExecuted)
    assert (t.buyer_fee, t.seller_fee) == (1, 2)  # taker bought: buyer pays the taker fee
    sell = msgspec.structs.replace(t, taker_side=SELL)
    assert (sell.buyer_fee, sell.seller_fee) == (2, 1)


def test_json_for_humans() -> None:
    assert ev.to_json(COMMANDS[6]) == b'["ORDER_EXPIRE.v1","BTCUSDT",1000,1]'


def test_match_prevented_wire_layout() -> None:
    """The tag, then the common fields, then the STP fields in declaration order."""
    assert ev.to_json(EVENTS[10]) == (
        b'["MATCH_PREVENTED.v1","BTCUSDT",11,7,9,5,2,3,2,100,4,"EXPIRE_MAKER"]'
    )


CONFIG_V2 = [
    ev.ConfigUpdateV2(
        market="BTCUSDT",
        ts=1000,
        maker_fee_ppm=1,
        taker_fee_ppm=2,
        min_qty_lots=3,
        max_qty_lots=4,
        min_notional_units=5,
    ),
    ev.ConfigUpdatedV2(
        market="BTCUSDT",
        seq=12,
        offset=7,
        ts=9,
        maker_fee_ppm=1,
        taker_fee_ppm=2,
        min_qty_lots=3,
        max_qty_lots=4,
        min_notional_units=5,
    ),
]


def test_config_update_v2_carries_every_mutable_field_beside_v1() -> None:
    """v2 is a new tag (an old engine answers it as MALFORMED rather than ignoring the
    limits); v1 still decodes, so older input replays unchanged."""
    command, event = CONFIG_V2
    assert ev.to_json(command) == b'["CONFIG_UPDATE.v2","BTCUSDT",1000,1,2,3,4,5]'
    assert ev.to_json(event) == b'["CONFIG_UPDATED.v2","BTCUSDT",12,7,9,1,2,3,4,5]'
    assert ev.decode_command(ev.encode(command)) == command
    assert ev.decode_event(ev.encode(event)) == event
    assert ev.command_kind(command) is ev.CommandKind.CONFIG_UPDATE
    assert ev.to_json(fees(1, 2)) == b'["CONFIG_UPDATE.v1","BTCUSDT",1000,1,2]'

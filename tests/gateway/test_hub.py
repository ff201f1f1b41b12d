"""The hub's fan-out: one encoding and one frame per shape written to every listener, no
write to a connection that is not open, slow listeners dropped without slowing the
others (fake connections: the hub only reads ``protocol.state`` and the transport)."""

from __future__ import annotations

from typing import Any, cast

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame
from websockets.protocol import State
from websockets.streams import StreamReader

from cex.gateway.hub import Client, Hub


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.written: list[bytes] = []
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


class FakeProtocol:
    def __init__(self, state: State = State.OPEN) -> None:
        self.state = state


class FakeConnection:
    def __init__(self, transport: FakeTransport, state: State = State.OPEN) -> None:
        self.transport = transport
        self.protocol = FakeProtocol(state)


def client(combined: bool = False, buffered: int = 0, state: State = State.OPEN) -> Client:
    ws = FakeConnection(FakeTransport(buffered), state)
    return Client(cast(ServerConnection, ws), "10.0.0.1", combined)


def frames(data: list[bytes]) -> list[Any]:
    """The payloads of the frames written (server frames: unmasked)."""
    out = []
    for chunk in data:
        reader = StreamReader()
        reader.feed_data(chunk)
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
        except StopIteration as done:
            out.append(done.value.data)
    return out


def written(c: Client) -> list[bytes]:
    return cast(FakeTransport, c.transport).written


def test_one_frame_per_shape_shared_by_every_listener() -> None:
    hub = Hub()
    raw = [client() for _ in range(3)]
    wrapped = [client(combined=True) for _ in range(2)]
    for c in raw + wrapped:
        hub.subscribe(c, "btcusdt@trade")
    hub.publish("btcusdt@trade", {"e": "trade", "t": 7})
    assert frames(written(raw[0])) == [b'{"e":"trade","t":7}']
    assert frames(written(wrapped[0])) == [b'{"stream":"btcusdt@trade","data":{"e":"trade","t":7}}']
    # The very same bytes object for every listener of a shape (encoded and framed once).
    assert len({id(written(c)[0]) for c in raw}) == 1
    assert len({id(written(c)[0]) for c in wrapped}) == 1


def test_no_write_unless_open_and_no_listener_no_work() -> None:
    hub = Hub()
    closing = client(state=State.CLOSING)
    hub.subscribe(closing, "btcusdt@trade")
    hub.publish("btcusdt@trade", {"t": 1})
    hub.publish("ethusdt@trade", {"t": 1})
    assert written(closing) == []


def test_a_slow_listener_is_dropped_the_others_still_get_the_payload() -> None:
    hub = Hub(max_buffer=1000)
    fast = [client() for _ in range(3)]
    slow = client(buffered=1001)
    for c in [*fast, slow]:
        hub.subscribe(c, "btcusdt@trade")
        hub.subscribe(c, "btcusdt@depth")
    hub.publish("btcusdt@trade", {"t": 1})
    assert all(len(written(c)) == 1 for c in fast)
    assert written(slow) == []
    assert cast(FakeTransport, slow.transport).aborted
    assert slow not in hub.listeners["btcusdt@trade"]
    assert slow not in hub.listeners["btcusdt@depth"]
    assert not slow.streams
    hub.publish("btcusdt@depth", {"u": 2})
    assert all(len(written(c)) == 2 for c in fast)


def test_send_and_push_to_one_client() -> None:
    hub = Hub(max_buffer=1000)
    c = client(combined=True)
    hub.subscribe(c, "btcusdt@depth5")
    hub.send(c, "btcusdt@depth5", {"lastUpdateId": 3})
    assert frames(written(c)) == [b'{"stream":"btcusdt@depth5","data":{"lastUpdateId":3}}']
    cast(FakeTransport, c.transport).buffered = 1001
    hub.send(c, "btcusdt@depth5", {"lastUpdateId": 4})
    assert len(written(c)) == 1
    assert cast(FakeTransport, c.transport).aborted
    assert not hub.has("btcusdt@depth5")

"""Who listens to which stream, and the fan-out of each payload to them.

A payload is encoded to JSON once and framed once per shape (raw, or wrapped in the
combined ``{"stream", "data"}`` envelope); the same frame bytes are then written to every
listener's transport. Server frames are unmasked and the gateway negotiates no extension
(no compression), so a frame is identical for every connection.

Each connection's send queue is its transport's write buffer, bounded by
``max_buffer`` bytes: a client that does not read fast enough is disconnected
(``transport.abort()``) when its buffer is over the bound, and never slows the others.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from cex.gateway import metrics

__all__ = ["Client", "Hub", "frame"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
OPEN = State.OPEN


def frame(data: bytes) -> bytes:
    """An unmasked, final text frame carrying ``data``."""
    return Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


class Client:
    """One stream connection: its streams, its mode and its incoming-message budget."""

    __slots__ = ("combined", "ip", "protocol", "received", "streams", "transport", "ws")

    def __init__(self, ws: ServerConnection, ip: str, combined: bool, rate: int = 5) -> None:
        self.ws = ws
        #: The connection's sans-I/O protocol and transport, looked up once (the fan-out
        #: reads them for every frame).
        self.protocol = ws.protocol
        self.transport = ws.transport
        self.ip = ip
        self.combined = combined
        #: The streams in subscription order (a dict used as an ordered set).
        self.streams: dict[str, None] = {}
        #: Monotonic times of the latest ``rate + 1`` incoming messages.
        self.received: deque[float] = deque(maxlen=rate + 1)


class Hub:
    """Streams → listening clients (see the module docstring)."""

    def __init__(self, *, max_buffer: int = 256 * 1024) -> None:
        self.max_buffer = max_buffer
        self.listeners: dict[str, set[Client]] = {}
        #: Called with a stream name when its first listener arrives (e.g. to push a
        #: partial book at once).
        self.on_first_listener: Callable[[str], None] | None = None

    def has(self, stream: str) -> bool:
        return stream in self.listeners

    def subscribe(self, client: Client, stream: str) -> None:
        if stream in client.streams:
            return
        client.streams[stream] = None
        listeners = self.listeners.get(stream)
        if listeners is None:
            self.listeners[stream] = {client}
            metrics.STREAMS.set(len(self.listeners))
        else:
            listeners.add(client)

    def unsubscribe(self, client: Client, stream: str) -> None:
        client.streams.pop(stream, None)
        listeners = self.listeners.get(stream)
        if listeners is not None:
            listeners.discard(client)
            if not listeners:
                del self.listeners[stream]
                metrics.STREAMS.set(len(self.listeners))

    def remove(self, client: Client) -> None:
        for stream in list(client.streams):
            self.unsubscribe(client, stream)

    def publish(self, stream: str, payload: Any) -> None:
        """Send ``payload`` (JSON-encodable) to every listener of ``stream``.

        The hot loop of the gateway (one pass per payload over every listener): each
        listener costs a state check, a buffer-size check and one ``transport.write`` of
        shared bytes (the event loop sends the writes of one iteration together, one
        system call per connection); slow listeners are dropped after the pass."""
        listeners = self.listeners.get(stream)
        if not listeners:
            return
        data = _encode(payload)
        raw: bytes | None = None
        combined: bytes | None = None
        max_buffer = self.max_buffer
        slow: list[Client] | None = None
        sent = 0
        for client in listeners:
            if client.protocol.state is not OPEN:
                continue
            transport = client.transport
            if transport.get_write_buffer_size() > max_buffer:
                if slow is None:
                    slow = []
                slow.append(client)
                continue
            if client.combined:
                if combined is None:
                    combined = frame(b'{"stream":"%s","data":%s}' % (stream.encode(), data))
                transport.write(combined)
            else:
                if raw is None:
                    raw = frame(data)
                transport.write(raw)
            sent += 1
        if sent:
            metrics.SENT.inc(sent)
        if slow is not None:
            for client in slow:
                self._drop(client)
        metrics.PUBLISHED.inc()

    def send(self, client: Client, stream: str, payload: Any) -> None:
        """Send one payload of ``stream`` to one client (in its mode)."""
        data = _encode(payload)
        if client.combined:
            data = b'{"stream":"%s","data":%s}' % (stream.encode(), data)
        self.push(client, frame(data))

    def push(self, client: Client, data: bytes) -> None:
        """Write one frame to one client, or disconnect it if it is too far behind."""
        if client.protocol.state is not OPEN:
            return
        transport = client.transport
        if transport.get_write_buffer_size() > self.max_buffer:
            self._drop(client)
            return
        transport.write(data)
        metrics.SENT.inc()

    def _drop(self, client: Client) -> None:
        """Disconnect a client whose send queue is over the bound."""
        metrics.SLOW_DISCONNECTS.inc()
        log.info("disconnecting a slow client", extra={"ip": client.ip})
        self.remove(client)
        client.transport.abort()

"""A lean HTTP/1.1 keep-alive client for the load generators (`cex bench orders`, `cex
bench e2e`): they share the machine's cores with the services they measure, so what the
client spends per request is taken from the server."""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

__all__ = ["KeepAlive"]


class KeepAlive(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator, one request at a time:
    requests are prepared bytes, responses parsed by httptools (uvicorn's parser). aiohttp's
    client took as much CPU per order as the server it measured (~0.15 ms), on the same two
    cores; this takes a tenth of that."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._host = b"127.0.0.1"

    @classmethod
    async def open(cls, host: str, port: int) -> KeepAlive:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        protocol._host = host.encode()
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._answer is not None
        self._answer.set_result((self._parser.get_status_code(), b"".join(self._body)))

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        """The response's status and body; ConnectionError once the server closed it."""
        if self._transport is None:
            raise ConnectionError("the server closed the connection")
        self._answer = asyncio.get_running_loop().create_future()
        self._body = []
        self._transport.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path, self._host, len(body), body)
        )
        return await self._answer

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

"""The hop to the internal trading API: one keep-alive connection pool, JSON both ways.

New orders go in batches: whatever placements are waiting when a sender is free travel in
one `POST /internal/v1/orders/batch` (never waiting for more), with a few batches in flight
at once. Under load this cuts the HTTP work per order on both sides; alone, an order goes
at once in a batch of one.

The trading API answers errors with Binance's `{"code", "msg"}` already: they are raised
here as `ApiError` unchanged, so the public API passes them through.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import msgspec

from cex.api import errors

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class TradingClient:
    def __init__(
        self, base_url: str, *, connections: int = 64, senders: int = 4, max_batch: int = 256
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._waiting: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._sender_count = senders
        self._senders: list[asyncio.Task[None]] = []
        self.max_batch = max_batch

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            self.base_url,
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self._senders = [
            asyncio.create_task(self._send_batches(), name=f"order-batches-{i}")
            for i in range(self._sender_count)
        ]

    async def close(self) -> None:
        for sender in self._senders:
            sender.cancel()
        for sender in self._senders:
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if self._session is not None:
            await self._session.close()

    async def place(self, order: dict[str, Any]) -> dict[str, Any]:
        """Place one order (in the next batch); the order as stored, or its ApiError."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.put_nowait((order, future))
        return await future  # type: ignore[no-any-return]

    async def _send_batches(self) -> None:
        while True:
            batch = [await self._waiting.get()]
            while len(batch) < self.max_batch and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            try:
                outcomes = await self.call(
                    "POST", "/internal/v1/orders/batch",
                    body=[{k: v for k, v in o.items() if v is not None} for o, _ in batch],
                )  # fmt: skip
            except errors.ApiError as exc:
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, errors.ApiError):
                    future.set_exception(outcome)
                elif "code" in outcome and "orderId" not in outcome:
                    status = int(outcome.get("status", 400))
                    future.set_exception(errors.ApiError(
                        int(outcome["code"]), str(outcome["msg"]), status if status < 500 else 500
                    ))  # fmt: skip
                else:
                    future.set_result(outcome)

    async def call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None,
        body: dict[str, Any] | list[Any] | None = None,
    ) -> Any:  # fmt: skip
        assert self._session is not None, "TradingClient.start() first"
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if v is not None}
        data = None if body is None else _encode(body)
        try:
            async with self._session.request(
                method, path, params=params, data=data,
                headers={"content-type": "application/json"} if data is not None else None,
            ) as response:  # fmt: skip
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise errors.disconnected() from exc
        try:
            decoded = _decode(payload)
        except msgspec.DecodeError:
            raise errors.unknown_error() from None
        if status >= 400:
            if isinstance(decoded, dict) and "code" in decoded and "msg" in decoded:
                raise errors.ApiError(int(decoded["code"]), str(decoded["msg"]),
                                      status if status < 500 else 500)  # fmt: skip
            raise errors.unknown_error()
        return decoded

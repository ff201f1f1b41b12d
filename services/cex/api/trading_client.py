"""The hop to the internal trading API: one keep-alive connection pool, JSON both ways.

The trading API answers errors with Binance's `{"code", "msg"}` already: they are raised
here as `ApiError` unchanged, so the public API passes them through.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from cex.api import errors

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class TradingClient:
    def __init__(self, base_url: str, *, connections: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            self.base_url,
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        assert self._session is not None, "TradingClient.start() first"
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        data = None if body is None else _encode({k: v for k, v in body.items() if v is not None})
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

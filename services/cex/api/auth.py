"""Signed requests as Binance checks them (SIGNED endpoints).

1. `X-MBX-APIKEY` names a live key (-2014 when absent or malformed, -2015 when unknown).
2. `timestamp` within `recvWindow` (≤ 60,000 ms, default 5,000) of the server's clock, and
   at most 1 s ahead of it (-1021).
3. `signature` over the query string concatenated with the body, `signature` left out:
   HMAC-SHA256 in hex, or Ed25519 in base64 (-1022). Compared in constant time.
4. The key has the permission the endpoint needs (-2015).
5. A request that changes something may be sent once: its signature is remembered in Redis
   for as long as its timestamp is valid, so a captured request cannot be replayed (-1022;
   `cex.api.ratelimit` does it in the same round trip as the rate limits).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

import asyncpg
from cryptography.exceptions import InvalidSignature

from cex.api import errors
from cex.api.params import Params
from cex.infra import apikeys
from cex.infra.secretbox import SecretBox

log = logging.getLogger(__name__)

DEFAULT_RECV_WINDOW = 5_000
MAX_RECV_WINDOW = 60_000
#: A timestamp may be this far ahead of the server's clock (Binance: 1 s).
MAX_AHEAD_MS = 1_000
#: Keys are cached this long; a deleted key is dropped at once on `cex_api_keys` NOTIFY.
KEY_CACHE_S = 5.0
KEYS_CHANNEL = "cex_api_keys"


@dataclass(frozen=True)
class Caller:
    """Who sent an authenticated request."""

    user_id: int
    key: apikeys.ApiKey | None  # None for a web session


class KeyCache:
    """Live API keys by name, for a few seconds; cleared whenever a key is deleted."""

    def __init__(self, pool: asyncpg.Pool, box: SecretBox) -> None:
        self.pool = pool
        self.box = box
        self._cached: dict[str, tuple[float, apikeys.ApiKey | None]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow_deletes(), name="api-key-deletes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def get(self, api_key: str) -> apikeys.ApiKey | None:
        now = time.monotonic()
        hit = self._cached.get(api_key)
        if hit is not None and now - hit[0] < KEY_CACHE_S:
            return hit[1]
        key = await apikeys.find(self.pool, self.box, api_key)
        if len(self._cached) > 100_000:
            self._cached.clear()
        self._cached[api_key] = (now, key)
        return key

    def _on_change(self, *_: object) -> None:
        self._cached.clear()

    async def _follow_deletes(self) -> None:
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await conn.add_listener(KEYS_CHANNEL, self._on_change)
                    try:
                        self._cached.clear()  # what changed while we were not listening
                        await asyncio.Event().wait()
                    finally:
                        await conn.remove_listener(KEYS_CHANNEL, self._on_change)
            except (OSError, asyncpg.PostgresError) as exc:
                self._cached.clear()
                log.warning("listening for key changes failed; retrying", exc_info=exc)
                await asyncio.sleep(1)


def check_timestamp(params: Params, now_ms: int) -> int:
    """The request's recvWindow after checking its timestamp against `now_ms`."""
    recv_window = params.integer("recvWindow", low=0)
    if recv_window is None:
        recv_window = DEFAULT_RECV_WINDOW
    elif recv_window > MAX_RECV_WINDOW:
        raise errors.recv_window_too_big()
    timestamp = params.required_integer("timestamp", low=0)
    if timestamp - now_ms > MAX_AHEAD_MS:
        raise errors.timestamp_ahead(timestamp - now_ms)
    if now_ms - timestamp > recv_window:
        raise errors.timestamp_outside_window()
    return recv_window


def verify_signature(key: apikeys.ApiKey, payload: str, signature: str) -> None:
    """Raise -1022 unless `signature` signs `payload` with `key`."""
    message = payload.encode()
    if key.kind == "HMAC":
        assert key.secret is not None
        expected = hmac.new(key.secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.bad_signature()
        return
    assert key.public_key is not None
    try:
        # A '+' sent unescaped arrives as a space after form decoding.
        raw = base64.b64decode(signature.replace(" ", "+"), validate=True)
        key.public_key.verify(raw, message)
    except (binascii.Error, ValueError, InvalidSignature):
        raise errors.bad_signature() from None


async def authenticate(
    keys: KeyCache,
    api_key_header: str | None,
    params: Params,
    now_ms: int,
    permission: str,
) -> tuple[Caller, int]:
    """The caller of a signed request and its recvWindow; raises Binance's error otherwise."""
    if not api_key_header or len(api_key_header) > 128 or not api_key_header.isascii():
        raise errors.bad_api_key_format()
    key = await keys.get(api_key_header)
    if key is None:
        raise errors.rejected_api_key()
    recv_window = check_timestamp(params, now_ms)
    signature = params.text("signature", required=True, max_len=512)
    assert signature is not None
    verify_signature(key, params.signed_payload, signature)
    if permission not in key.permissions:
        raise errors.rejected_api_key()
    return Caller(key.user_id, key), recv_window

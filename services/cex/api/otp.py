"""Email one-time-password login: delivery (pluggable `Sender`), the server pepper, and
the Redis rate limits.

Senders
-------
* `FileSender` (when `api_otp_outbox` is set: dev stacks and tests) appends one JSON line
  ``{"email": ..., "code": ...}`` per code to that file.
* `ConsoleSender` (dev, no outbox) prints the code to the process's stderr for the
  developer at the terminal; it never goes through `logging`.
* `LogSender` (anything else, until a mail provider is wired) logs that a code was sent,
  to a masked address, never the code.

A deployment plugs its own by setting ``app.state.otp_sender`` to any `Sender`. No sender
logs a code.

Pepper
------
Codes are stored as HMAC-SHA256 keyed by a pepper derived from the current
secrets-at-rest key (`CEX_SECRETS_KEYS[CEX_SECRETS_KEY_ID]`), so a database dump alone
cannot brute-force the 10⁶ codes. Rotating that key invalidates codes in flight (they live
five minutes).

Rate limits (fixed windows of `api_otp_window_s`, Redis counters under `redis_prefix`)
-----------------------------------------------------------------------------------
* codes sent per email: `api_otp_per_email` (-9001);
* login requests (codes and verifications) per client IP: `api_auth_per_ip` (-9002).

Refused requests count too. Emails are hashed in the Redis keys.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import sys
from pathlib import Path
from typing import Protocol

import anyio
import redis.asyncio as aioredis
from fastapi import Request

from cex.api.settings import ApiSettings
from cex.infra.secretbox import SecretsSettings

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, email: str, code: str) -> None: ...


def mask(email: str) -> str:
    """``a***@example.com``: enough to tell addresses apart in logs."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class FileSender:
    """Appends ``{"email", "code"}`` JSON lines to a file (dev stacks and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = anyio.Lock()

    async def send(self, email: str, code: str) -> None:
        line = json.dumps({"email": email, "code": code}) + "\n"
        async with self._lock:
            await anyio.to_thread.run_sync(self._append, line)
        log.info("login code for %s written to the OTP outbox", mask(email))

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)


class ConsoleSender:
    """Prints the code on stderr (dev only; not through logging)."""

    async def send(self, email: str, code: str) -> None:
        print(f"[dev] login code for {email}: {code}", file=sys.stderr, flush=True)


class LogSender:
    """Logs that a code was sent, never the code."""

    async def send(self, email: str, code: str) -> None:
        log.warning("login code for %s not delivered: no mail sender is configured", mask(email))


@functools.cache
def _default_sender(environment: str, outbox: Path | None) -> Sender:
    if outbox is not None:
        return FileSender(outbox)
    if environment == "dev":
        return ConsoleSender()
    return LogSender()


def sender(request: Request, settings: ApiSettings) -> Sender:
    plugged: Sender | None = getattr(request.app.state, "otp_sender", None)
    if plugged is not None:
        return plugged
    return _default_sender(settings.environment, settings.api_otp_outbox)


@functools.cache
def pepper() -> bytes:
    """The server pepper of login-code hashes (see the module docstring)."""
    secrets = SecretsSettings()
    key = base64.b64decode(secrets.secrets_keys[secrets.secrets_key_id])
    return hmac.new(key, b"cex login-code pepper v1", "sha256").digest()


# --------------------------------------------------------------------------- rate limits

_COUNT = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"""


async def count(
    client: aioredis.Redis, settings: ApiSettings, kind: str, who: str, now_ms: int
) -> int:
    """Count one event of `kind` by `who` in the current window; the count so far."""
    window_ms = settings.api_otp_window_s * 1000
    key = f"{settings.redis_prefix}:auth:{kind}:{who}:{now_ms // window_ms}"
    return int(await client.eval(_COUNT, 1, key, window_ms + 1000))


def email_key(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]

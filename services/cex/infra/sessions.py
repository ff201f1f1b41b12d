"""Email one-time-password codes and web sessions, stored as hashes only (DESIGN.md §7).

Login codes
-----------
Six random digits, one live code per email (`login_codes`): a new request replaces the
old one. Stored as ``HMAC-SHA256(pepper, salt ‖ email ‖ code)``: the pepper is a server
secret that never reaches the database (the API derives it from its secrets-at-rest key),
the salt is random per code. A code expires after its TTL; each wrong guess counts, and
the last allowed wrong guess burns the code. Comparisons are constant-time.

Sessions
--------
An opaque random token (256 bits, URL-safe base64) per login, stored as its SHA-256 in
`sessions` beside the SHA-256 of the session's CSRF token (the double-submit token of
cookie-authenticated requests). Expiry is absolute (`expires_ms`); logout revokes. The
token is looked up by its hash, so no comparison ever touches the token itself.

`user_for_session_token` is the one call the WebSocket gateway needs. Nothing here logs a
code or a token.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool

CODE_DIGITS = 6


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def normalise_email(email: str) -> str | None:
    """The email lower-cased and stripped, or None when it is not a plausible address."""
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or domain.startswith(".")
        or domain.endswith(".")
        or "@" in domain
        or len(email) > 254
        or any(c.isspace() or not c.isprintable() for c in email)
    ):
        return None
    return email


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


# --------------------------------------------------------------------------- login codes


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(pepper: bytes, salt: bytes, email: str, code: str) -> bytes:
    return hmac.new(pepper, salt + email.encode() + b"\0" + code.encode(), "sha256").digest()


async def issue_code(conn: Db, pepper: bytes, email: str, now_ms: int, ttl_ms: int) -> str:
    """A new code for `email` (replacing any live one); the caller sends it, we keep its
    hash only."""
    code = new_code()
    salt = secrets.token_bytes(16)
    await conn.execute(
        "INSERT INTO login_codes (email, salt, code_hash, attempts, created_ms, expires_ms)"
        " VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (email) DO UPDATE SET salt = $2,"
        " code_hash = $3, attempts = 0, created_ms = $4, expires_ms = $5",
        email, salt, code_hash(pepper, salt, email, code), now_ms, now_ms + ttl_ms,
    )  # fmt: skip
    return code


class Verdict(enum.StrEnum):
    OK = "OK"
    NO_CODE = "NO_CODE"
    EXPIRED = "EXPIRED"
    WRONG = "WRONG"
    BURNED = "BURNED"


@dataclass(frozen=True)
class Checked:
    verdict: Verdict
    #: Wrong guesses still allowed (WRONG only).
    attempts_left: int = 0


async def check_code(
    conn: asyncpg.Connection,
    pepper: bytes,
    email: str,
    code: str,
    now_ms: int,
    max_attempts: int,
) -> Checked:
    """Check `code` for `email` and consume it when right. Call inside a transaction that
    commits whatever the verdict (a wrong guess must be counted)."""
    row = await conn.fetchrow(
        "SELECT salt, code_hash, attempts, expires_ms FROM login_codes WHERE email = $1 FOR UPDATE",
        email,
    )
    if row is None:
        return Checked(Verdict.NO_CODE)
    if now_ms >= row["expires_ms"]:
        await conn.execute("DELETE FROM login_codes WHERE email = $1", email)
        return Checked(Verdict.EXPIRED)
    if hmac.compare_digest(code_hash(pepper, row["salt"], email, code), row["code_hash"]):
        await conn.execute("DELETE FROM login_codes WHERE email = $1", email)
        return Checked(Verdict.OK)
    attempts = row["attempts"] + 1
    if attempts >= max_attempts:
        await conn.execute("DELETE FROM login_codes WHERE email = $1", email)
        return Checked(Verdict.BURNED)
    await conn.execute("UPDATE login_codes SET attempts = $2 WHERE email = $1", email, attempts)
    return Checked(Verdict.WRONG, max_attempts - attempts)


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class NewSession:
    id: int
    user_id: int
    #: The bearer/cookie token and the CSRF token: given to the client once, stored hashed.
    token: str
    csrf_token: str
    expires_ms: int


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int
    email: str
    csrf_hash: bytes
    expires_ms: int

    def csrf_matches(self, csrf_token: str) -> bool:
        return hmac.compare_digest(sha256(csrf_token), self.csrf_hash)


async def create_session(conn: Db, user_id: int, now_ms: int, ttl_ms: int) -> NewSession:
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    expires_ms = now_ms + ttl_ms
    session_id = await conn.fetchval(
        "INSERT INTO sessions (user_id, token_hash, csrf_hash, created_ms, expires_ms)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        user_id, sha256(token), sha256(csrf_token), now_ms, expires_ms,
    )  # fmt: skip
    return NewSession(int(session_id), user_id, token, csrf_token, expires_ms)


async def session_for_token(conn: Db, token: str, now_ms: int) -> Session | None:
    """The live session of `token`, or None (unknown, revoked or expired)."""
    if not token or len(token) > 256:
        return None
    row = await conn.fetchrow(
        "SELECT s.id, s.user_id, u.email, s.csrf_hash, s.expires_ms FROM sessions s"
        " JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_ms > $2",
        sha256(token), now_ms,
    )  # fmt: skip
    if row is None:
        return None
    return Session(row["id"], row["user_id"], row["email"], row["csrf_hash"], row["expires_ms"])


async def user_for_session_token(conn: Db, token: str, now_ms: int | None = None) -> int | None:
    """The user id of a live session token, or None. (The WebSocket gateway's check.)"""
    session = await session_for_token(conn, token, wall_clock_ms() if now_ms is None else now_ms)
    return session.user_id if session is not None else None


async def revoke_session(conn: Db, session_id: int) -> None:
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", session_id
    )

"""API keys: HMAC-SHA256 keys (secret made here, shown once, sealed at rest) and Ed25519
keys (the user keeps the private key; we store the public key, as Binance recommends).

Permissions: `read` (account and order queries), `trade` (place, amend, cancel orders),
`withdraw` (withdrawal requests). A deleted key is gone for every request from then on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal, TypeAlias

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cex.infra.secretbox import SecretBox

PERMISSIONS = ("read", "trade", "withdraw")
Kind = Literal["HMAC", "ED25519"]
Db: TypeAlias = asyncpg.Connection | asyncpg.Pool
#: Binance's keys are 64 characters of [A-Za-z0-9].
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class ApiKeyError(ValueError):
    """Bad input for a key (unknown permission, unreadable public key…); nothing changed."""


@dataclass(frozen=True)
class ApiKey:
    id: int
    user_id: int
    api_key: str
    kind: Kind
    label: str
    permissions: frozenset[str]
    #: HMAC: the shared secret (opened from its sealed form). Ed25519: None.
    secret: bytes | None
    #: Ed25519: the public key. HMAC: None.
    public_key: Ed25519PublicKey | None


@dataclass(frozen=True)
class Created:
    id: int
    api_key: str
    #: The HMAC secret, returned once and never again; None for Ed25519 keys.
    secret: str | None


def _random_key() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(64))


def _check_permissions(permissions: list[str]) -> list[str]:
    unknown = set(permissions) - set(PERMISSIONS)
    if unknown or not permissions:
        raise ApiKeyError(f"permissions must be some of {', '.join(PERMISSIONS)}")
    return [p for p in PERMISSIONS if p in permissions]


def load_public_key(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ApiKeyError("public key is not a PEM-encoded Ed25519 public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ApiKeyError("public key is not an Ed25519 key")
    return key


async def create(
    conn: Db,
    box: SecretBox,
    user_id: int,
    *,
    label: str = "",
    permissions: list[str] | None = None,
    public_key_pem: str | None = None,
) -> Created:
    """A new key: HMAC (a fresh secret) or, given a public key, Ed25519."""
    if len(label) > 64:
        raise ApiKeyError("label is longer than 64 characters")
    perms = _check_permissions(permissions if permissions is not None else ["read", "trade"])
    api_key = _random_key()
    if public_key_pem is not None:
        load_public_key(public_key_pem)
        key_id = await conn.fetchval(
            "INSERT INTO api_keys (user_id, api_key, kind, label, permissions, public_key)"
            " VALUES ($1, $2, 'ED25519', $3, $4, $5) RETURNING id",
            user_id, api_key, label, perms, public_key_pem.strip(),
        )  # fmt: skip
        return Created(int(key_id), api_key, None)
    secret = _random_key()
    sealed, box_key_id = box.seal(secret.encode(), api_key.encode())
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (user_id, api_key, kind, label, permissions, secret_sealed,"
        " secret_key_id) VALUES ($1, $2, 'HMAC', $3, $4, $5, $6) RETURNING id",
        user_id, api_key, label, perms, sealed, box_key_id,
    )  # fmt: skip
    return Created(int(key_id), api_key, secret)


async def find(conn: Db, box: SecretBox, api_key: str) -> ApiKey | None:
    """The live key `api_key`, or None (unknown or deleted)."""
    row = await conn.fetchrow(
        "SELECT id, user_id, api_key, kind, label, permissions, secret, secret_sealed,"
        " secret_key_id, public_key FROM api_keys WHERE api_key = $1 AND revoked_at IS NULL",
        api_key,
    )
    if row is None:
        return None
    secret: bytes | None = None
    public_key = None
    if row["kind"] == "HMAC":
        if row["secret_sealed"] is not None:
            secret = box.open(row["secret_sealed"], row["secret_key_id"], api_key.encode())
        else:
            secret = row["secret"].encode()
    else:
        public_key = load_public_key(row["public_key"])
    return ApiKey(
        id=row["id"], user_id=row["user_id"], api_key=row["api_key"], kind=row["kind"],
        label=row["label"], permissions=frozenset(row["permissions"]), secret=secret,
        public_key=public_key,
    )  # fmt: skip


async def list_keys(conn: Db, user_id: int) -> list[dict[str, object]]:
    """The user's live keys, without any secret."""
    rows = await conn.fetch(
        "SELECT id, api_key, kind, label, permissions, created_at FROM api_keys"
        " WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
        user_id,
    )
    return [
        {"id": r["id"], "apiKey": r["api_key"], "type": r["kind"], "label": r["label"],
         "permissions": list(r["permissions"]),
         "createTime": int(r["created_at"].timestamp() * 1000)}
        for r in rows
    ]  # fmt: skip


async def delete(conn: Db, user_id: int, key_id: int) -> bool:
    """Revoke the user's key `key_id`; False when the user has no such live key. The secret
    is wiped: a deleted key can never sign again. (Wiped to empty bytes, not NULL: the
    `api_keys_material` CHECK wants an HMAC row to keep sealed material.)"""
    done = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now(), secret = NULL,"
        " secret_sealed = CASE WHEN kind = 'HMAC' THEN '\\x'::bytea END,"
        " secret_key_id = CASE WHEN kind = 'HMAC' THEN coalesce(secret_key_id, 'wiped') END"
        " WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id",
        key_id, user_id,
    )  # fmt: skip
    if done is not None:
        await conn.execute("SELECT pg_notify('cex_api_keys', $1)", str(key_id))
    return done is not None


async def seal_plaintext(conn: Db, box: SecretBox) -> int:
    """Seal the plain-text HMAC secrets of keys made before secrets were sealed."""
    rows = await conn.fetch(
        "SELECT id, api_key, secret FROM api_keys WHERE secret IS NOT NULL AND kind = 'HMAC'"
    )
    for row in rows:
        sealed, key_id = box.seal(row["secret"].encode(), row["api_key"].encode())
        await conn.execute(
            "UPDATE api_keys SET secret_sealed = $2, secret_key_id = $3, secret = NULL"
            " WHERE id = $1",
            row["id"], sealed, key_id,
        )  # fmt: skip
    return len(rows)

"""API key management (`/cex/v1/api-keys`) by logged-in users, on real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cex.infra import apikeys

from .test_accounts import Harness, api_harness, error


@pytest.fixture
async def api(exchange_dsn: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path) as harness:
        yield harness


async def bearer(api: Harness, email: str) -> httpx.AsyncClient:
    """A client of `email` authenticated by bearer token only (no cookies)."""
    session = await api.login(email)
    client = api.client()
    client.headers["Authorization"] = f"Bearer {session['token']}"
    return client


def public_pem() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


async def test_hmac_secret_is_shown_once_and_sealed_at_rest(api: Harness) -> None:
    alice = await bearer(api, "alice@example.com")
    created = await alice.post(
        "/cex/v1/api-keys", json={"label": "bot", "permissions": ["trade", "read", "trade"]}
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["type"] == "HMAC"
    assert body["permissions"] == ["read", "trade"]
    assert len(body["apiKey"]) == 64
    assert len(body["secret"]) == 64
    listed = (await alice.get("/cex/v1/api-keys")).json()
    assert [k["apiKey"] for k in listed] == [body["apiKey"]]
    assert "secret" not in listed[0]
    assert body["secret"] not in str(listed)
    assert listed[0]["label"] == "bot"
    conn = await api.db()
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE api_key = $1", body["apiKey"])
        assert row["secret"] is None
        assert body["secret"].encode() not in bytes(row["secret_sealed"])
        # The sealed secret opens to the one shown: the key can sign.
        found = await apikeys.find(conn, api.state.box, body["apiKey"])
        assert found is not None
        assert found.secret == body["secret"].encode()
        assert found.permissions == {"read", "trade"}
    finally:
        await conn.close()


async def test_ed25519_keys_register_a_public_key(api: Harness) -> None:
    alice = await bearer(api, "alice@example.com")
    pem = public_pem()
    created = await alice.post(
        "/cex/v1/api-keys",
        json={"type": "ED25519", "publicKey": pem, "permissions": ["read", "withdraw"]},
    )
    assert created.status_code == 200, created.text
    assert created.json()["secret"] is None
    assert created.json()["permissions"] == ["read", "withdraw"]
    for bad in (
        {"type": "ED25519"},
        {"type": "ED25519", "publicKey": "-----BEGIN PUBLIC KEY-----\nnope\n"},
        {"type": "HMAC", "publicKey": pem},
    ):
        refused = await alice.post("/cex/v1/api-keys", json=bad)
        assert error(refused) == (400, -9020), bad
    for bad in ({"permissions": ["admin"]}, {"permissions": []}, {"type": "RSA"},
                {"label": "x" * 65}):  # fmt: skip
        refused = await alice.post("/cex/v1/api-keys", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["code"] in (-1130, -1102), bad
    assert len((await alice.get("/cex/v1/api-keys")).json()) == 1


async def test_users_only_see_and_delete_their_own_keys(api: Harness) -> None:
    alice = await bearer(api, "alice@example.com")
    bob = await bearer(api, "bob@example.com")
    mine = (await alice.post("/cex/v1/api-keys", json={"label": "a"})).json()
    theirs = (await bob.post("/cex/v1/api-keys", json={"label": "b"})).json()
    assert [k["id"] for k in (await bob.get("/cex/v1/api-keys")).json()] == [theirs["id"]]

    stolen = await bob.delete(f"/cex/v1/api-keys/{mine['id']}")
    assert error(stolen) == (404, -9021)
    unknown = await bob.delete("/cex/v1/api-keys/999999")
    assert error(unknown) == (404, -9021)
    assert error(await bob.delete("/cex/v1/api-keys/not-a-number")) == (400, -1130)
    conn = await api.db()
    try:
        assert await apikeys.find(conn, api.state.box, mine["apiKey"]) is not None
    finally:
        await conn.close()
    assert [k["id"] for k in (await alice.get("/cex/v1/api-keys")).json()] == [mine["id"]]

    deleted = await alice.delete(f"/cex/v1/api-keys/{mine['id']}")
    assert deleted.json() == {"id": mine["id"], "deleted": True}
    assert (await alice.get("/cex/v1/api-keys")).json() == []
    assert error(await alice.delete(f"/cex/v1/api-keys/{mine['id']}")) == (404, -9021)
    conn = await api.db()
    try:
        assert await apikeys.find(conn, api.state.box, mine["apiKey"]) is None
        wiped = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", mine["id"])
        assert wiped["revoked_at"] is not None
        assert wiped["secret"] is None
        assert bytes(wiped["secret_sealed"]) == b""
        assert await apikeys.find(conn, api.state.box, theirs["apiKey"]) is not None
    finally:
        await conn.close()


async def test_key_management_needs_a_session(api: Harness) -> None:
    client = api.client()
    assert error(await client.get("/cex/v1/api-keys")) == (401, -9010)
    assert error(await client.post("/cex/v1/api-keys", json={})) == (401, -9010)
    assert error(await client.delete("/cex/v1/api-keys/1")) == (401, -9010)

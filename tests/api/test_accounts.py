"""Email OTP login and web sessions (`/cex/v1/auth/...`) on real Postgres and Redis.

`api_harness` (used by the other `test_accounts*` / `test_wallet*` modules too) runs the
real app in-process against this test's database and Redis prefix, with a clock the test
moves and a file OTP outbox it reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cex.api.app import create_app
from cex.api.settings import ApiSettings
from cex.api.state import ApiState
from cex.infra import sessions

T0 = 1_750_000_000_000
OPERATOR_TOKEN = "operator-token-for-tests-0123456789"


@dataclass
class Harness:
    app: Any
    state: ApiState
    settings: ApiSettings
    outbox: Path
    dsn: str
    now_ms: int = T0
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        self.clients.append(client)
        return client

    def codes(self, email: str) -> list[str]:
        if not self.outbox.exists():
            return []
        lines = [json.loads(line) for line in self.outbox.read_text().splitlines()]
        return [line["code"] for line in lines if line["email"] == email]

    async def login(self, email: str, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
        """Log `email` in through the real endpoints; the client keeps the cookies."""
        client = client or self.client()
        sent = await client.post("/cex/v1/auth/otp", json={"email": email})
        assert sent.status_code == 200, sent.text
        code = self.codes(email)[-1]
        verified = await client.post("/cex/v1/auth/verify", json={"email": email, "code": code})
        assert verified.status_code == 200, verified.text
        body: dict[str, Any] = verified.json()
        body["client"] = client
        return body

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)


@asynccontextmanager
async def api_harness(
    exchange_dsn: str, redis_prefix: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Harness]:
    values: dict[str, Any] = {
        "postgres_dsn": exchange_dsn,
        "redis_prefix": redis_prefix,
        "api_otp_outbox": tmp_path / "otp-outbox.jsonl",
        "api_faucet_enabled": True,
        "api_operator_token": OPERATOR_TOKEN,
        "api_auth_per_ip": 1000,
        "api_otp_per_email": 50,
    }
    values.update(overrides)
    settings = ApiSettings(**values)
    state = await ApiState.open(settings)
    harness = Harness(create_app(settings, state=state), state, settings,
                      settings.api_otp_outbox or tmp_path, exchange_dsn)  # fmt: skip
    state.clock_ms = lambda: harness.now_ms
    try:
        yield harness
    finally:
        for client in harness.clients:
            await client.aclose()
        await state.close()


@pytest.fixture
async def api(exchange_dsn: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path) as harness:
        yield harness


def error(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


# --------------------------------------------------------------------------- login


async def test_login_with_emailed_code_creates_user_and_session(api: Harness) -> None:
    client = api.client()
    sent = await client.post("/cex/v1/auth/otp", json={"email": " Alice@Example.com "})
    assert sent.status_code == 200
    assert sent.json() == {"sent": True, "expiresInS": 300}
    [code] = api.codes("alice@example.com")
    assert len(code) == 6
    assert code.isdigit()

    conn = await api.db()
    try:
        row = await conn.fetchrow("SELECT * FROM login_codes WHERE email = 'alice@example.com'")
        assert row is not None
        assert code.encode() not in bytes(row["code_hash"])
        assert len(row["code_hash"]) == 32
        assert code not in json.dumps({k: str(v) for k, v in dict(row).items()})
        assert await conn.fetchval("SELECT count(*) FROM users WHERE email LIKE 'alice%'") == 0
    finally:
        await conn.close()

    verified = await client.post(
        "/cex/v1/auth/verify", json={"email": "alice@example.com", "code": code}
    )
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["email"] == "alice@example.com"
    assert body["expiresAt"] == T0 + api.settings.api_session_ttl_s * 1000
    cookies = verified.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("cex_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("cex_csrf="))
    assert f"cex_session={body['token']};" in session_cookie
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    assert f"cex_csrf={body['csrfToken']};" in csrf_cookie
    assert "HttpOnly" not in csrf_cookie

    whoami = await client.get("/cex/v1/auth/session")  # by cookie
    assert whoami.json() == {"userId": body["userId"], "email": "alice@example.com",
                             "expiresAt": body["expiresAt"]}  # fmt: skip

    conn = await api.db()
    try:
        assert await conn.fetchval(
            "SELECT id FROM users WHERE email = 'alice@example.com'"
        ) == body["userId"]  # fmt: skip
        stored = await conn.fetchrow("SELECT token_hash, csrf_hash FROM sessions")
        assert bytes(stored["token_hash"]) == hashlib.sha256(body["token"].encode()).digest()
        assert bytes(stored["csrf_hash"]) == hashlib.sha256(body["csrfToken"].encode()).digest()
        assert await conn.fetchval("SELECT count(*) FROM login_codes") == 0
        # The gateway's check.
        assert await sessions.user_for_session_token(conn, body["token"], T0) == body["userId"]
        assert await sessions.user_for_session_token(conn, body["token"][:-1] + "x", T0) is None
    finally:
        await conn.close()

    # The code was used up; a second login makes a new session for the same user.
    again = await client.post(
        "/cex/v1/auth/verify", json={"email": "alice@example.com", "code": code}
    )
    assert error(again) == (400, -9003)
    second = await api.login("alice@example.com")
    assert second["userId"] == body["userId"]
    assert second["token"] != body["token"]


async def test_wrong_codes_burn_the_code(api: Harness) -> None:
    client = api.client()
    await client.post("/cex/v1/auth/otp", json={"email": "bob@example.com"})
    [code] = api.codes("bob@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        answer = await client.post(
            "/cex/v1/auth/verify", json={"email": "bob@example.com", "code": wrong}
        )
        assert error(answer) == (400, -9005)
        assert f"{left} attempt(s) left" in answer.json()["msg"]
    burned = await client.post(
        "/cex/v1/auth/verify", json={"email": "bob@example.com", "code": wrong}
    )
    assert error(burned) == (400, -9006)
    # Even the right code is useless now.
    right = await client.post(
        "/cex/v1/auth/verify", json={"email": "bob@example.com", "code": code}
    )
    assert error(right) == (400, -9003)
    conn = await api.db()
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM users WHERE email = 'bob@example.com'") == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
    finally:
        await conn.close()


async def test_a_new_code_replaces_the_old_one(api: Harness) -> None:
    client = api.client()
    await client.post("/cex/v1/auth/otp", json={"email": "carol@example.com"})
    await client.post("/cex/v1/auth/otp", json={"email": "carol@example.com"})
    first, second = api.codes("carol@example.com")
    if first != second:
        old = await client.post(
            "/cex/v1/auth/verify", json={"email": "carol@example.com", "code": first}
        )
        assert error(old) == (400, -9005)
    new = await client.post(
        "/cex/v1/auth/verify", json={"email": "carol@example.com", "code": second}
    )
    assert new.status_code == 200


async def test_codes_expire_after_five_minutes(api: Harness) -> None:
    client = api.client()
    await client.post("/cex/v1/auth/otp", json={"email": "dave@example.com"})
    [code] = api.codes("dave@example.com")
    api.now_ms = T0 + 300_000
    late = await client.post(
        "/cex/v1/auth/verify", json={"email": "dave@example.com", "code": code}
    )
    assert error(late) == (400, -9004)
    again = await client.post(
        "/cex/v1/auth/verify", json={"email": "dave@example.com", "code": code}
    )
    assert error(again) == (400, -9003)
    # Just inside the lifetime works.
    await client.post("/cex/v1/auth/otp", json={"email": "dave@example.com"})
    api.now_ms += 299_999
    code = api.codes("dave@example.com")[-1]
    ok = await client.post("/cex/v1/auth/verify", json={"email": "dave@example.com", "code": code})
    assert ok.status_code == 200


async def test_codes_are_rate_limited_per_email(
    exchange_dsn: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path, api_otp_per_email=3) as api:
        client = api.client()
        for _ in range(3):
            ok = await client.post("/cex/v1/auth/otp", json={"email": "eve@example.com"})
            assert ok.status_code == 200
        refused = await client.post("/cex/v1/auth/otp", json={"email": "EVE@example.com"})
        assert error(refused) == (429, -9001)
        assert len(api.codes("eve@example.com")) == 3
        # The last code sent is still the live one; another email is not limited.
        other = await client.post("/cex/v1/auth/otp", json={"email": "frank@example.com"})
        assert other.status_code == 200
        # The next window allows codes again.
        api.now_ms += api.settings.api_otp_window_s * 1000
        assert (await client.post("/cex/v1/auth/otp", json={"email": "eve@example.com"})).is_success


async def test_login_requests_are_rate_limited_per_ip(
    exchange_dsn: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path, api_auth_per_ip=4) as api:
        client = api.client("10.0.0.1")
        for i in range(4):
            ok = await client.post("/cex/v1/auth/otp", json={"email": f"u{i}@example.com"})
            assert ok.status_code == 200
        refused = await client.post(
            "/cex/v1/auth/verify", json={"email": "u0@example.com", "code": "000000"}
        )
        assert error(refused) == (429, -9002)
        # The refused guess did not count against the code.
        code = api.codes("u0@example.com")[-1]
        other_ip = api.client("10.0.0.2")
        ok = await other_ip.post(
            "/cex/v1/auth/verify", json={"email": "u0@example.com", "code": code}
        )
        assert ok.status_code == 200


async def test_bad_emails_and_the_fee_account_cannot_log_in(api: Harness) -> None:
    client = api.client()
    for bad in ("not-an-email", "a@b", "@example.com", "a b@example.com", "a@@example.com"):
        answer = await client.post("/cex/v1/auth/otp", json={"email": bad})
        assert error(answer) == (400, -9000), bad
    missing = await client.post("/cex/v1/auth/otp", json={})
    assert error(missing) == (400, -1102)
    await client.post("/cex/v1/auth/otp", json={"email": "fees@cex.internal"})
    [code] = api.codes("fees@cex.internal")
    refused = await client.post(
        "/cex/v1/auth/verify", json={"email": "fees@cex.internal", "code": code}
    )
    assert error(refused) == (400, -9000)
    conn = await api.db()
    try:
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
    finally:
        await conn.close()


# --------------------------------------------------------------------------- sessions


async def test_cookie_requests_need_the_csrf_token_and_bearer_does_not(api: Harness) -> None:
    alice = await api.login("alice@example.com")
    client: httpx.AsyncClient = alice["client"]
    no_csrf = await client.post("/cex/v1/api-keys", json={"label": "x"})
    assert error(no_csrf) == (401, -9012)
    wrong = await client.post(
        "/cex/v1/api-keys", json={"label": "x"}, headers={"X-CSRF-Token": "nope"}
    )
    assert error(wrong) == (401, -9012)
    # The session token is not the CSRF token.
    swapped = await client.post(
        "/cex/v1/api-keys", json={"label": "x"}, headers={"X-CSRF-Token": alice["token"]}
    )
    assert error(swapped) == (401, -9012)
    conn = await api.db()
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
    finally:
        await conn.close()
    ok = await client.post(
        "/cex/v1/api-keys", json={"label": "x"}, headers={"X-CSRF-Token": alice["csrfToken"]}
    )
    assert ok.status_code == 200, ok.text
    # GET needs no CSRF token.
    assert (await client.get("/cex/v1/api-keys")).status_code == 200

    bare = api.client()  # no cookies
    by_bearer = await bare.post(
        "/cex/v1/api-keys", json={"label": "y"},
        headers={"Authorization": f"Bearer {alice['token']}"},
    )  # fmt: skip
    assert by_bearer.status_code == 200, by_bearer.text
    assert error(await bare.get("/cex/v1/api-keys")) == (401, -9010)
    bad = await bare.get("/cex/v1/api-keys", headers={"Authorization": "Bearer nonsense"})
    assert error(bad) == (401, -9011)
    basic = await bare.get("/cex/v1/api-keys", headers={"Authorization": "Basic eDp5"})
    assert error(basic) == (401, -9011)


async def test_logout_kills_the_session(api: Harness) -> None:
    alice = await api.login("alice@example.com")
    client: httpx.AsyncClient = alice["client"]
    refused = await client.post("/cex/v1/auth/logout")
    assert error(refused) == (401, -9012)
    assert (await client.get("/cex/v1/auth/session")).status_code == 200
    out = await client.post("/cex/v1/auth/logout", headers={"X-CSRF-Token": alice["csrfToken"]})
    assert out.status_code == 200
    cleared = out.headers.get_list("set-cookie")
    assert any(c.startswith('cex_session=""') or "cex_session=;" in c or
               ("cex_session=" in c and "Max-Age=0" in c) for c in cleared)  # fmt: skip
    bare = api.client()
    gone = await bare.get(
        "/cex/v1/auth/session", headers={"Authorization": f"Bearer {alice['token']}"}
    )
    assert error(gone) == (401, -9011)
    conn = await api.db()
    try:
        assert await sessions.user_for_session_token(conn, alice["token"], T0) is None
    finally:
        await conn.close()


async def test_sessions_expire(api: Harness) -> None:
    alice = await api.login("alice@example.com")
    bearer = {"Authorization": f"Bearer {alice['token']}"}
    client = api.client()
    api.now_ms = alice["expiresAt"] - 1
    assert (await client.get("/cex/v1/auth/session", headers=bearer)).status_code == 200
    api.now_ms = alice["expiresAt"]
    assert error(await client.get("/cex/v1/auth/session", headers=bearer)) == (401, -9011)


async def test_codes_tokens_and_secrets_never_reach_the_logs(
    api: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await api.login("alice@example.com")
    client: httpx.AsyncClient = alice["client"]
    csrf = {"X-CSRF-Token": alice["csrfToken"]}
    created = await client.post("/cex/v1/api-keys", json={"label": "bot"}, headers=csrf)
    secret = created.json()["secret"]
    # Wrong codes and refused tokens are not logged either.
    await client.post("/cex/v1/auth/otp", json={"email": "alice@example.com"})
    await client.post("/cex/v1/auth/verify", json={"email": "alice@example.com", "code": "999999x"})
    await client.post("/cex/v1/auth/logout", headers=csrf)
    codes = api.codes("alice@example.com")
    assert codes
    assert secret
    assert caplog.records
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for value in [*codes, alice["token"], alice["csrfToken"], secret]:
        assert value not in text
    assert "alice@example.com" not in text  # only masked addresses

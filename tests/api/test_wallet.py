"""Balances, faucet, operator deposits and withdrawal requests (`/cex/v1/...`) on real
Postgres, with `cex check`'s ledger invariants after every step."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cex.audit.check import run as audit
from cex.core.money import asset_step, format_units

from .test_accounts import OPERATOR_TOKEN, Harness, api_harness, error

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
async def api(exchange_dsn: str, redis_prefix: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path) as harness:
        yield harness


async def trader(api: Harness, email: str) -> tuple[httpx.AsyncClient, int]:
    session = await api.login(email)
    client = api.client()
    client.headers["Authorization"] = f"Bearer {session['token']}"
    return client, int(session["userId"])


async def balances(client: httpx.AsyncClient) -> dict[str, tuple[str, str]]:
    answer = await client.get("/cex/v1/balances")
    assert answer.status_code == 200, answer.text
    return {b["asset"]: (b["free"], b["locked"]) for b in answer.json()}


async def no_violations(api: Harness) -> None:
    assert [str(v) for v in await audit(api.dsn)] == []


async def deposit(api: Harness, **body: Any) -> httpx.Response:
    return await api.client().post("/cex/v1/operator/deposits", json=body, headers=OPERATOR)


async def test_operator_deposits_are_idempotent_on_external_id(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    first = await deposit(
        api, email="Alice@example.com", asset="BTC", amount="1.5", externalId="tx-1"
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"id": first.json()["id"], "externalId": "tx-1", "userId": alice_id,
                            "asset": "BTC", "amount": "1.50000000", "created": True}  # fmt: skip
    again = await deposit(api, userId=alice_id, asset="BTC", amount="1.50", externalId="tx-1")
    assert again.json()["created"] is False
    assert again.json()["id"] == first.json()["id"]
    assert await balances(alice) == {"BTC": ("1.50000000", "0.00000000")}
    conflict = await deposit(api, userId=alice_id, asset="BTC", amount="2", externalId="tx-1")
    assert error(conflict) == (409, -9034)
    await no_violations(api)


async def test_bad_deposits_change_nothing(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    for amount in ("1e5", "-1", "0", "0.000000001", "abc", "", " 1", "1" * 60, "NaN"):
        refused = await deposit(api, userId=alice_id, asset="BTC", amount=amount, externalId="t")
        assert error(refused) == (400, -9031), amount
    assert error(await deposit(api, userId=alice_id, asset="BTC", amount=1, externalId="t"))[1] in (
        -1130,
        -9031,
    )  # a JSON number is not a decimal string
    assert error(await deposit(api, userId=alice_id, asset="DOGE", amount="1", externalId="t")) == (
        400, -9030,
    )  # fmt: skip
    assert error(await deposit(api, userId=alice_id, asset="btc", amount="1", externalId="t")) == (
        400, -9030,
    )  # fmt: skip
    unknown = await deposit(
        api, email="nobody@example.com", asset="BTC", amount="1", externalId="t"
    )
    assert error(unknown) == (404, -9033)
    assert error(await deposit(api, userId=987654, asset="BTC", amount="1", externalId="t")) == (
        404, -9033,
    )  # fmt: skip
    both = await deposit(
        api, email="alice@example.com", userId=alice_id, asset="BTC", amount="1", externalId="t"
    )
    assert both.status_code == 400
    assert await balances(alice) == {}
    conn = await api.db()
    try:
        assert await conn.fetchval("SELECT count(*) FROM deposits") == 0
    finally:
        await conn.close()


async def test_operator_endpoints_need_the_operator_token(
    exchange_dsn: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path) as api:
        alice, alice_id = await trader(api, "alice@example.com")
        body = {"userId": alice_id, "asset": "BTC", "amount": "1", "externalId": "x"}
        client = api.client()
        assert error(await client.post("/cex/v1/operator/deposits", json=body)) == (401, -9041)
        wrong = await client.post(
            "/cex/v1/operator/deposits", json=body,
            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}x"},
        )  # fmt: skip
        assert error(wrong) == (401, -9041)
        # A trader's session token is not the operator's.
        as_trader = await alice.post("/cex/v1/operator/deposits", json=body)
        assert error(as_trader) == (401, -9041)
        assert error(await alice.post("/cex/v1/operator/withdrawals/1/complete")) == (401, -9041)
        assert await balances(alice) == {}
    async with api_harness(
        exchange_dsn, redis_prefix, tmp_path, api_operator_token=None
    ) as disabled:
        refused = await disabled.client().post(
            "/cex/v1/operator/deposits", json=body, headers=OPERATOR
        )
        assert error(refused) == (403, -9040)


async def test_faucet_is_bounded_and_can_be_disabled(
    exchange_dsn: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with api_harness(exchange_dsn, redis_prefix, tmp_path, api_faucet_max="1000") as api:
        alice, _ = await trader(api, "alice@example.com")
        ok = await alice.post("/cex/v1/faucet", json={"asset": "USDT", "amount": "1000"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["amount"] == "1000.000000"
        too_much = await alice.post(
            "/cex/v1/faucet", json={"asset": "USDT", "amount": "1000.000001"}
        )
        assert error(too_much) == (400, -9031)
        assert "maximum" in too_much.json()["msg"]
        await alice.post("/cex/v1/faucet", json={"asset": "USDT", "amount": "0.5"})
        assert await balances(alice) == {"USDT": ("1000.500000", "0.000000")}
        anonymous = await api.client().post("/cex/v1/faucet", json={"asset": "USDT", "amount": "1"})
        assert error(anonymous) == (401, -9010)
        await no_violations(api)
    async with api_harness(
        exchange_dsn, redis_prefix, tmp_path, api_faucet_enabled=False
    ) as closed:
        bob, _ = await trader(closed, "bob@example.com")
        refused = await bob.post("/cex/v1/faucet", json={"asset": "USDT", "amount": "1"})
        assert error(refused) == (403, -9035)
        assert await balances(bob) == {}


async def cli(api: Harness, *args: str) -> tuple[int, str]:
    """`cex admin withdrawal ARGS --dsn …` as a process: (exit code, stdout + stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "cex"), "admin", "withdrawal", *args, "--dsn", api.dsn,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def withdraw(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    body.setdefault("address", "bc1qexampleaddress")
    return await client.post("/cex/v1/withdrawals", json=body)


async def test_withdrawal_locks_then_completes_once(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    await deposit(api, userId=alice_id, asset="BTC", amount="2", externalId="tx-1")

    requested = await withdraw(alice, asset="BTC", amount="0.75", clientId="w-1")
    assert requested.status_code == 200, requested.text
    w = requested.json()
    assert (w["status"], w["amount"], w["clientId"]) == ("PENDING", "0.75000000", "w-1")
    assert await balances(alice) == {"BTC": ("1.25000000", "0.75000000")}
    await no_violations(api)

    # The same clientId again: the same request, nothing locked twice.
    repeat = await withdraw(alice, asset="BTC", amount="0.750", clientId="w-1")
    assert repeat.json()["id"] == w["id"]
    assert await balances(alice) == {"BTC": ("1.25000000", "0.75000000")}
    conflict = await withdraw(alice, asset="BTC", amount="0.5", clientId="w-1")
    assert error(conflict) == (409, -9034)

    path = f"/cex/v1/operator/withdrawals/{w['id']}"
    operator = api.client()
    done = await operator.post(f"{path}/complete", headers=OPERATOR)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED"
    assert await balances(alice) == {"BTC": ("1.25000000", "0.00000000")}
    await no_violations(api)
    again = await operator.post(f"{path}/complete", headers=OPERATOR)
    assert again.json() == done.json()
    assert await balances(alice) == {"BTC": ("1.25000000", "0.00000000")}
    assert error(await operator.post(f"{path}/reject", headers=OPERATOR)) == (409, -9037)

    conn = await api.db()
    try:
        rows = await conn.fetch("SELECT external_id, amount FROM withdrawals")
        assert [(r["external_id"], int(r["amount"])) for r in rows] == [
            (f"withdrawal-request:{w['id']}", 75_000_000)
        ]
        kinds = await conn.fetch("SELECT kind FROM journals ORDER BY id")
        assert [r["kind"] for r in kinds] == ["DEPOSIT", "WITHDRAWAL_LOCK", "WITHDRAWAL"]
    finally:
        await conn.close()
    listed = (await alice.get("/cex/v1/withdrawals")).json()
    assert [(x["id"], x["status"]) for x in listed] == [(w["id"], "COMPLETED")]
    await no_violations(api)


async def test_rejected_withdrawal_gives_the_funds_back_once(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    await deposit(api, userId=alice_id, asset="USDT", amount="100", externalId="tx-1")
    first = (await withdraw(alice, asset="USDT", amount="40")).json()
    second = (await withdraw(alice, asset="USDT", amount="60")).json()
    assert await balances(alice) == {"USDT": ("0.000000", "100.000000")}
    assert error(await withdraw(alice, asset="USDT", amount="0.000001")) == (400, -9032)
    await no_violations(api)

    operator = api.client()
    path = f"/cex/v1/operator/withdrawals/{first['id']}"
    rejected = await operator.post(
        f"{path}/reject", json={"reason": "address blocked"}, headers=OPERATOR
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("REJECTED", "address blocked")
    assert await balances(alice) == {"USDT": ("40.000000", "60.000000")}
    again = await operator.post(f"{path}/reject", headers=OPERATOR)
    assert again.json()["status"] == "REJECTED"
    assert await balances(alice) == {"USDT": ("40.000000", "60.000000")}
    assert error(await operator.post(f"{path}/complete", headers=OPERATOR)) == (409, -9037)
    await no_violations(api)

    # The CLI completes the other one, idempotently too.
    for changed in (True, False):
        code, output = await cli(api, "complete", str(second["id"]))
        assert code == 0, output
        assert '"status": "COMPLETED"' in output
        assert f'"changed": {"true" if changed else "false"}' in output
    code, output = await cli(api, "reject", str(second["id"]))
    assert code == 1
    assert "is COMPLETED; it cannot be rejected" in output
    code, output = await cli(api, "reject", "424242")
    assert code == 1
    assert "no withdrawal request 424242" in output
    assert await balances(alice) == {"USDT": ("40.000000", "0.000000")}
    assert error(await operator.post("/cex/v1/operator/withdrawals/424242/complete",
                                     headers=OPERATOR)) == (404, -9036)  # fmt: skip
    await no_violations(api)


async def test_bad_withdrawals_change_nothing(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    await deposit(api, userId=alice_id, asset="BTC", amount="1", externalId="tx-1")
    for body, expected in [
        ({"asset": "BTC", "amount": "1.000000001"}, (400, -9031)),
        ({"asset": "BTC", "amount": "0"}, (400, -9031)),
        ({"asset": "BTC", "amount": "-0.1"}, (400, -9031)),
        ({"asset": "BTC", "amount": "1e-1"}, (400, -9031)),
        ({"asset": "BTC", "amount": "1.00000001"}, (400, -9032)),
        ({"asset": "XYZ", "amount": "1"}, (400, -9030)),
        ({"asset": "BTC", "amount": "0.1", "address": "has space"}, (400, -9038)),
        ({"asset": "BTC", "amount": "0.1", "address": ""}, (400, -9038)),
    ]:
        assert error(await withdraw(alice, **body)) == expected, body
    assert await balances(alice) == {"BTC": ("1.00000000", "0.00000000")}
    assert (await alice.get("/cex/v1/withdrawals")).json() == []
    # Other users never see my requests.
    mine = (await withdraw(alice, asset="BTC", amount="0.1")).json()
    bob, _ = await trader(api, "bob@example.com")
    assert (await bob.get("/cex/v1/withdrawals")).json() == []
    assert [x["id"] for x in (await alice.get("/cex/v1/withdrawals")).json()] == [mine["id"]]
    await no_violations(api)


async def test_racing_operators_move_the_money_once(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    await deposit(api, userId=alice_id, asset="BTC", amount="1", externalId="tx-1")
    # Concurrent requests never lock more than is available.
    answers = await asyncio.gather(*(withdraw(alice, asset="BTC", amount="0.3") for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 400, 400]
    ids = [a.json()["id"] for a in answers if a.status_code == 200]
    assert await balances(alice) == {"BTC": ("0.10000000", "0.90000000")}
    # Each request gets completes and rejects at once: one of them wins, once.
    operator = api.client()
    calls = [
        operator.post(f"/cex/v1/operator/withdrawals/{i}/{action}", headers=OPERATOR)
        for i in ids
        for action in ("complete", "reject", "complete", "reject")
    ]
    results = await asyncio.gather(*calls)
    finals: dict[int, str] = {}
    for result in results:
        if result.status_code == 200:
            body = result.json()
            assert finals.setdefault(body["id"], body["status"]) == body["status"]
        else:
            assert error(result) == (409, -9037)
    assert sorted(finals) == sorted(ids)
    completed = sum(1 for status in finals.values() if status == "COMPLETED")
    free = 10_000_000 + 30_000_000 * (3 - completed)
    assert await balances(alice) == {"BTC": (format_units(free, asset_step(8)), "0.00000000")}
    conn = await api.db()
    try:
        assert await conn.fetchval("SELECT count(*) FROM withdrawals") == completed
    finally:
        await conn.close()
    await no_violations(api)


async def test_account_endpoints_are_documented(api: Harness) -> None:
    schema = (await api.client().get("/openapi.json")).json()
    paths = schema["paths"]
    expected = {
        "/cex/v1/auth/otp": "post", "/cex/v1/auth/verify": "post",
        "/cex/v1/auth/logout": "post", "/cex/v1/auth/session": "get",
        "/cex/v1/api-keys": "post", "/cex/v1/api-keys/{key_id}": "delete",
        "/cex/v1/balances": "get", "/cex/v1/faucet": "post", "/cex/v1/withdrawals": "post",
        "/cex/v1/operator/deposits": "post",
        "/cex/v1/operator/withdrawals/{withdrawal_id}/complete": "post",
        "/cex/v1/operator/withdrawals/{withdrawal_id}/reject": "post",
    }  # fmt: skip
    for path, method in expected.items():
        assert method in paths[path], path
        assert paths[path][method]["summary"]
    assert "requestBody" in paths["/cex/v1/withdrawals"]["post"]
    assert "WithdrawalRequest" in schema["components"]["schemas"]


async def test_operators_list_requests_to_process(api: Harness) -> None:
    alice, alice_id = await trader(api, "alice@example.com")
    bob, bob_id = await trader(api, "bob@example.com")
    for user_id in (alice_id, bob_id):
        await deposit(api, userId=user_id, asset="BTC", amount="1", externalId=f"tx-{user_id}")
    first = (await withdraw(alice, asset="BTC", amount="0.1")).json()
    second = (await withdraw(bob, asset="BTC", amount="0.2")).json()
    operator = api.client()
    await operator.post(f"/cex/v1/operator/withdrawals/{first['id']}/reject", headers=OPERATOR)

    async def listed(**query: Any) -> list[tuple[int, int, str]]:
        answer = await operator.get("/cex/v1/operator/withdrawals", params=query, headers=OPERATOR)
        assert answer.status_code == 200, answer.text
        return [(w["id"], w["userId"], w["status"]) for w in answer.json()]

    assert await listed() == [
        (second["id"], bob_id, "PENDING"),
        (first["id"], alice_id, "REJECTED"),
    ]
    assert await listed(status="PENDING") == [(second["id"], bob_id, "PENDING")]
    assert await listed(userId=alice_id) == [(first["id"], alice_id, "REJECTED")]
    bad = await operator.get(
        "/cex/v1/operator/withdrawals", params={"status": "LOST"}, headers=OPERATOR
    )
    assert error(bad) == (400, -1130)
    assert error(await alice.get("/cex/v1/operator/withdrawals")) == (401, -9041)

    code, output = await cli(api, "list", "--status", "PENDING")
    assert code == 0, output
    assert [json.loads(line)["withdrawal_id"] for line in output.splitlines()] == [second["id"]]

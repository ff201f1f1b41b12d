"""Deposits and withdrawals on the real Postgres: idempotent on their external id, never
below zero, and booked as balanced journals against the EXTERNAL side of the ledger."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cex.infra import accounts

USDT = 1_000_000


async def test_deposit_is_idempotent_on_its_external_id(exchange_dsn: str) -> None:
    conn = await asyncpg.connect(exchange_dsn)
    try:
        user = await accounts.create_user(conn, "Dep@Example.com")
        assert await accounts.create_user(conn, "dep@example.com") == user

        first = await accounts.deposit(conn, user, "USDT", 50 * USDT, "chain-tx-1")
        again = await accounts.deposit(conn, user, "USDT", 50 * USDT, "chain-tx-1")

        assert (first.created, again.created, again.id) == (True, False, first.id)
        assert (
            await conn.fetchval(
                "SELECT available FROM balances WHERE user_id = $1 AND asset = 'USDT'", user
            )
            == 50 * USDT
        )
        with pytest.raises(accounts.ConflictingRequest):
            await accounts.deposit(conn, user, "USDT", 51 * USDT, "chain-tx-1")
    finally:
        await conn.close()


async def test_concurrent_repeats_of_one_deposit_credit_once(exchange_dsn: str) -> None:
    pool = await asyncpg.create_pool(exchange_dsn, min_size=4, max_size=8)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            user = await accounts.create_user(conn, "race@example.com")

        async def repeat() -> accounts.Transfer:
            async with pool.acquire() as conn:
                return await accounts.deposit(conn, user, "USDT", 7 * USDT, "bank-ref-9")

        transfers = await asyncio.gather(*(repeat() for _ in range(8)))
        assert sum(t.created for t in transfers) == 1
        assert await pool.fetchval("SELECT count(*) FROM deposits") == 1
        assert (
            await pool.fetchval("SELECT available FROM balances WHERE user_id = $1", user)
            == 7 * USDT
        )
    finally:
        await pool.close()


async def test_withdrawal_never_goes_below_zero_and_the_ledger_balances(
    exchange_dsn: str,
) -> None:
    conn = await asyncpg.connect(exchange_dsn)
    try:
        user = await accounts.create_user(conn, "wd@example.com")
        await accounts.deposit(conn, user, "USDT", 10 * USDT, "in-1")

        with pytest.raises(accounts.InsufficientFunds):
            await accounts.withdraw(conn, user, "USDT", 11 * USDT, "out-1")
        assert await conn.fetchval("SELECT count(*) FROM withdrawals") == 0

        await accounts.withdraw(conn, user, "USDT", 4 * USDT, "out-2")
        await accounts.withdraw(conn, user, "USDT", 4 * USDT, "out-2")  # a repeat: no-op

        assert (
            await conn.fetchval("SELECT available FROM balances WHERE user_id = $1", user)
            == 6 * USDT
        )
        # Per journal and asset, debits equal credits; EXTERNAL mirrors deposits − withdrawals.
        unbalanced = await conn.fetchval(
            "SELECT count(*) FROM (SELECT journal_id, asset FROM ledger_entries"
            " GROUP BY 1, 2 HAVING sum(amount) <> 0) u"
        )
        external = await conn.fetchval(
            "SELECT sum(amount) FROM ledger_entries WHERE bucket = 'EXTERNAL'"
        )
        assert (unbalanced, external) == (0, -6 * USDT)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("asset", "amount", "error"),
    [
        ("USDT", 0, accounts.AccountError),
        ("USDT", -5, accounts.AccountError),
        ("DOGE", 5, accounts.UnknownAsset),
    ],
)
async def test_bad_transfers_change_nothing(
    exchange_dsn: str, asset: str, amount: int, error: type[Exception]
) -> None:
    conn = await asyncpg.connect(exchange_dsn)
    try:
        user = await accounts.create_user(conn, "bad@example.com")
        with pytest.raises(error):
            await accounts.deposit(conn, user, asset, amount, "x-1")
        assert await conn.fetchval("SELECT count(*) FROM journals") == 0
        assert await conn.fetchval("SELECT count(*) FROM deposits") == 0
    finally:
        await conn.close()

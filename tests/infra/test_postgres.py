"""Smoke tests on the real PostgreSQL: a transaction that fails leaves nothing behind."""

from __future__ import annotations

import asyncpg
import pytest


async def test_transaction_rolls_back_on_error(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "CREATE TABLE balances (account text PRIMARY KEY,"
            " amount numeric(38, 0) NOT NULL CHECK (amount >= 0))"
        )
        await conn.execute("INSERT INTO balances VALUES ('alice', 100), ('bob', 0)")

        # A transfer whose second statement violates the CHECK must undo the first.
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                await conn.execute("UPDATE balances SET amount = amount + 150 WHERE account='bob'")
                await conn.execute(
                    "UPDATE balances SET amount = amount - 150 WHERE account='alice'"
                )

        rows = await conn.fetch("SELECT account, amount FROM balances ORDER BY account")
        assert [(r["account"], r["amount"]) for r in rows] == [("alice", 100), ("bob", 0)]

        # And the same transfer within funds commits both sides.
        async with conn.transaction():
            await conn.execute("UPDATE balances SET amount = amount + 60 WHERE account='bob'")
            await conn.execute("UPDATE balances SET amount = amount - 60 WHERE account='alice'")
        rows = await conn.fetch("SELECT account, amount FROM balances ORDER BY account")
        assert [(r["account"], r["amount"]) for r in rows] == [("alice", 40), ("bob", 60)]
    finally:
        await conn.close()


async def test_each_test_gets_an_empty_database(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()

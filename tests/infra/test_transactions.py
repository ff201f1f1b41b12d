"""The lock order and the retry predicate (`cex.infra.transactions`), on real Postgres."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cex.infra import accounts
from cex.infra.transactions import (
    LockOrderError,
    RowLocks,
    is_conflict,
    is_retryable,
    retrying,
)


async def test_a_real_deadlock_is_a_conflict_and_retryable(exchange_dsn: str) -> None:
    a, b = await asyncpg.connect(exchange_dsn), await asyncpg.connect(exchange_dsn)
    try:
        user = await accounts.create_user(a, "dl@example.com")
        for asset in ("BTC", "USDT"):
            await accounts.deposit(a, user, asset, 10, external_id=f"d-{asset}")
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        lock = "SELECT 1 FROM balances WHERE user_id = $1 AND asset = $2 FOR UPDATE"
        await a.execute(lock, user, "BTC")
        await b.execute(lock, user, "USDT")
        results = await asyncio.gather(
            a.execute(lock, user, "USDT"), b.execute(lock, user, "BTC"), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1
        assert isinstance(errors[0], asyncpg.DeadlockDetectedError)
        assert is_conflict(errors[0])
        assert is_retryable(errors[0])
        await ta.rollback()
        await tb.rollback()
    finally:
        await a.close()
        await b.close()


def test_a_lost_connection_is_retried_only_by_idempotent_work() -> None:
    lost = ConnectionResetError("peer reset")
    assert not is_retryable(lost)
    assert is_retryable(lost, idempotent=True)
    refused = asyncpg.CheckViolationError("balance would go negative")
    assert not is_retryable(refused)
    assert not is_retryable(refused, idempotent=True)
    assert is_retryable(asyncpg.SerializationError("could not serialize"))


async def test_retrying_runs_again_after_a_conflict_and_gives_up_with_the_last_error() -> None:
    runs: list[int] = []
    retried: list[BaseException] = []
    async for attempt in retrying(attempts=3, initial_wait=0.001, on_retry=retried.append):
        with attempt:
            runs.append(1)
            if len(runs) < 2:
                raise asyncpg.DeadlockDetectedError("deadlock")
    assert len(runs) == 2
    assert len(retried) == 1

    runs.clear()
    with pytest.raises(asyncpg.SerializationError):
        async for attempt in retrying(attempts=3, initial_wait=0.001):
            with attempt:
                runs.append(1)
                raise asyncpg.SerializationError("again")
    assert len(runs) == 3

    runs.clear()
    with pytest.raises(asyncpg.CheckViolationError):  # permanent: never retried
        async for attempt in retrying(attempts=3, initial_wait=0.001):
            with attempt:
                runs.append(1)
                raise asyncpg.CheckViolationError("no")
    assert len(runs) == 1


async def test_row_locks_refuse_a_step_out_of_order(exchange_dsn: str) -> None:
    conn = await asyncpg.connect(exchange_dsn)
    try:
        user = await accounts.create_user(conn, "order@example.com")
        async with conn.transaction():
            locks = RowLocks(conn)
            created = await locks.balances([], create=[(user, "USDT")])
            assert created == {(user, "USDT"): (0, 0)}
            markets = await locks.markets(["eth-usdt", "btc-usdt"], "name, status")
            assert [m["name"] for m in markets] == ["btc-usdt", "eth-usdt"]
            with pytest.raises(LockOrderError, match="balances after markets"):
                await locks.balances([(user, "USDT")])
            with pytest.raises(LockOrderError, match="orders after markets"):
                await locks.orders([1])
    finally:
        await conn.close()


async def test_markets_are_locked_without_blocking_rows_that_reference_them(
    exchange_dsn: str,
) -> None:
    """A market locked by one transaction never blocks another inserting a row that
    references it (its foreign key takes FOR KEY SHARE, which FOR UPDATE would block)."""
    a, b = await asyncpg.connect(exchange_dsn), await asyncpg.connect(exchange_dsn)
    try:
        async with a.transaction():
            await RowLocks(a).markets(["btc-usdt"])
            async with b.transaction():
                await asyncio.wait_for(
                    b.execute(
                        "INSERT INTO settlement_progress (market, last_seq, next_offset)"
                        " VALUES ('btc-usdt', 0, 0)"
                    ),
                    timeout=5,
                )
    finally:
        await a.close()
        await b.close()

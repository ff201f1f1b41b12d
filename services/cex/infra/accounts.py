"""Users, API keys, deposits and withdrawals: internal operations on the ledger.

Every movement of money is a journal of balanced ledger entries written in the same
transaction as the balance it changes. Deposits and withdrawals are idempotent on their
external id (the chain transaction, the bank reference…): a repeat returns the first one.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


class AccountError(ValueError):
    """Bad input to an account operation; nothing was changed."""


class UnknownUser(AccountError):
    pass


class UnknownAsset(AccountError):
    pass


class InsufficientFunds(AccountError):
    pass


class ConflictingRequest(AccountError):
    """An external id reused with different user, asset or amount."""


@dataclass(frozen=True)
class Transfer:
    id: int
    external_id: str
    user_id: int
    asset: str
    amount: int
    created: bool  # False when the external id had been seen before


async def create_user(conn: asyncpg.Connection, email: str) -> int:
    """The user's id; creating an existing email returns its id."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise AccountError(f"not an email address: {email!r}")
    user_id = await conn.fetchval(
        "INSERT INTO users (email) VALUES ($1) ON CONFLICT (email) DO NOTHING RETURNING id", email
    )
    if user_id is None:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
    return int(user_id)


async def user_id_by_email(conn: asyncpg.Connection, email: str) -> int:
    user_id = await conn.fetchval(
        "SELECT id FROM users WHERE email = $1 AND kind = 'USER'", email.strip().lower()
    )
    if user_id is None:
        raise UnknownUser(f"no user with email {email!r}")
    return int(user_id)


async def asset_precision(conn: asyncpg.Connection, asset: str) -> int:
    precision = await conn.fetchval("SELECT precision FROM assets WHERE code = $1", asset)
    if precision is None:
        raise UnknownAsset(f"unknown asset {asset!r}")
    return int(precision)


async def deposit(
    conn: asyncpg.Connection, user_id: int, asset: str, amount: int, external_id: str
) -> Transfer:
    """Credit `amount` (smallest units) to the user's available balance."""
    return await _transfer(conn, "DEPOSIT", user_id, asset, amount, external_id)


async def withdraw(
    conn: asyncpg.Connection, user_id: int, asset: str, amount: int, external_id: str
) -> Transfer:
    """Debit `amount` from the user's available balance (never below zero)."""
    return await _transfer(conn, "WITHDRAWAL", user_id, asset, amount, external_id)


async def _transfer(
    conn: asyncpg.Connection, kind: str, user_id: int, asset: str, amount: int, external_id: str
) -> Transfer:
    if amount <= 0:
        raise AccountError("amount must be positive")
    if not external_id:
        raise AccountError("external id is required")
    table = "deposits" if kind == "DEPOSIT" else "withdrawals"
    async with conn.transaction():
        await asset_precision(conn, asset)
        if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
            raise UnknownUser(f"no user {user_id}")
        # Serialise requests with the same external id: the second waits and finds the first.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{table}:{external_id}")
        seen = await conn.fetchrow(
            f"SELECT id, user_id, asset, amount FROM {table} WHERE external_id = $1", external_id
        )
        if seen is not None:
            if (seen["user_id"], seen["asset"], int(seen["amount"])) != (user_id, asset, amount):
                raise ConflictingRequest(
                    f"{kind.lower()} {external_id!r} already exists with other values"
                )
            return Transfer(seen["id"], external_id, user_id, asset, amount, created=False)
        sign = 1 if kind == "DEPOSIT" else -1
        await conn.execute(
            "INSERT INTO balances (user_id, asset) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user_id,
            asset,
        )
        available = await conn.fetchval(
            "SELECT available FROM balances WHERE user_id = $1 AND asset = $2 FOR UPDATE",
            user_id,
            asset,
        )
        if sign < 0 and available < amount:
            raise InsufficientFunds(f"available {available} < {amount}")
        await conn.execute(
            "UPDATE balances SET available = available + $3 WHERE user_id = $1 AND asset = $2",
            user_id,
            asset,
            sign * amount,
        )
        journal_id = await conn.fetchval(
            "INSERT INTO journals (kind, reference) VALUES ($1, $2) RETURNING id",
            kind,
            external_id,
        )
        await conn.executemany(
            "INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (journal_id, None, "EXTERNAL", asset, -sign * amount),
                (journal_id, user_id, "AVAILABLE", asset, sign * amount),
            ],
        )
        transfer_id = await conn.fetchval(
            f"INSERT INTO {table} (external_id, user_id, asset, amount, journal_id)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            external_id,
            user_id,
            asset,
            amount,
            journal_id,
        )
        return Transfer(transfer_id, external_id, user_id, asset, amount, created=True)

"""Users, API keys, deposits and withdrawals: internal operations on the ledger.

Every movement of money is a journal of balanced ledger entries written in the same
transaction as the balance it changes. Deposits and withdrawals are idempotent on their
external id (the chain transaction, the bank reference…): a repeat returns the first one.

Withdrawal *requests* (the public API's flow) go through an operator: requesting locks the
funds (available → locked) and records the request as PENDING; completing it sends the
locked funds out (a `withdrawals` row, external id ``withdrawal-request:<id>``), rejecting
it gives them back. The rules (states, postings) are `cex.core.withdrawals` and
`cex.core.ledger` (deposits, withdrawals); balances are locked through
`cex.infra.transactions`; this adapter
loads rows, asks the core and writes what it says. `withdraw` (immediate, no request) stays
for operators and older callers.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from cex.core import ledger
from cex.core import withdrawals as rules
from cex.core.errors import InvalidTransition
from cex.infra.transactions import RowLocks


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


class UnknownWithdrawal(AccountError):
    pass


class InvalidAddress(AccountError):
    pass


class WithdrawalFinalised(AccountError):
    """Completing a rejected withdrawal request, or rejecting a completed one."""


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


async def login_user(conn: asyncpg.Connection, email: str) -> int:
    """The id of the trader logging in as `email`, created if new. Accounts of another kind
    (the fee account) can never log in: `UnknownUser`."""
    user_id = await create_user(conn, email)
    kind = await conn.fetchval("SELECT kind FROM users WHERE id = $1", user_id)
    if kind != "USER":
        raise UnknownUser(f"{email!r} is not a trader's account")
    return user_id


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


async def asset_precisions(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Every asset's precision, by code."""
    rows = await conn.fetch("SELECT code, precision FROM assets")
    return {r["code"]: r["precision"] for r in rows}


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
        journal = ledger.transfer_journal(
            ledger.JournalKind(kind), external_id, user_id, asset, amount
        )
        key = (user_id, asset)
        available, _ = (await RowLocks(conn).balances([key], create=[key]))[key]
        if journal.postings[1].amount < 0 and available < amount:
            raise InsufficientFunds(f"available {available} < {amount}")
        journal_id = await _post(conn, journal)
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


@dataclass(frozen=True)
class Balance:
    asset: str
    precision: int
    available: int
    locked: int


async def balances(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[Balance]:
    """The user's balances (smallest units), by asset code."""
    rows = await conn.fetch(
        "SELECT b.asset, a.precision, b.available, b.locked FROM balances b"
        " JOIN assets a ON a.code = b.asset WHERE b.user_id = $1 ORDER BY b.asset",
        user_id,
    )
    return [Balance(r["asset"], r["precision"], int(r["available"]), int(r["locked"]))
            for r in rows]  # fmt: skip


@dataclass(frozen=True)
class WithdrawalRequest:
    id: int
    user_id: int
    asset: str
    amount: int
    address: str
    client_id: str | None
    status: rules.Status
    reason: str | None
    created_ms: int
    updated_ms: int
    #: False when nothing changed: a repeated client id, or a repeated final action.
    changed: bool = True


_REQUEST_COLUMNS = (
    "id, user_id, asset, amount, address, client_id, status, reason,"
    " (extract(epoch FROM created_at) * 1000)::bigint AS created_ms,"
    " (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms"
)


def _request(row: asyncpg.Record, changed: bool = True) -> WithdrawalRequest:
    return WithdrawalRequest(
        id=row["id"], user_id=row["user_id"], asset=row["asset"], amount=int(row["amount"]),
        address=row["address"], client_id=row["client_id"], status=rules.Status(row["status"]),
        reason=row["reason"], created_ms=row["created_ms"], updated_ms=row["updated_ms"],
        changed=changed,
    )  # fmt: skip


async def _post(conn: asyncpg.Connection, journal: rules.WithdrawalJournal | ledger.Journal) -> int:
    """Write `journal` and apply it to the balances (their CHECKs refuse a negative)."""
    journal_id = await conn.fetchval(
        "INSERT INTO journals (kind, reference) VALUES ($1, $2) RETURNING id",
        journal.kind.value,
        journal.reference,
    )
    await conn.executemany(
        "INSERT INTO ledger_entries (journal_id, user_id, bucket, asset, amount)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(journal_id, p.user_id, p.bucket.value, p.asset, p.amount) for p in journal.postings],
    )
    for (user_id, asset), (available, locked) in ledger.balance_deltas([journal]).items():
        await conn.execute(
            "UPDATE balances SET available = available + $3, locked = locked + $4"
            " WHERE user_id = $1 AND asset = $2",
            user_id, asset, available, locked,
        )  # fmt: skip
    return int(journal_id)


def _check_address(address: str) -> str:
    if (
        not 1 <= len(address) <= 256
        or not address.isprintable()
        or any(c.isspace() for c in address)
    ):
        raise InvalidAddress("address must be 1 to 256 printable characters without spaces")
    return address


async def request_withdrawal(
    conn: asyncpg.Connection,
    user_id: int,
    asset: str,
    amount: int,
    address: str,
    client_id: str | None = None,
) -> WithdrawalRequest:
    """Lock `amount` of the user's available `asset` for a PENDING withdrawal request.

    Idempotent on (user, `client_id`) when one is given: a repeat with the same asset,
    amount and address returns the first request (`changed` False); other values raise
    `ConflictingRequest`. Raises `InsufficientFunds` when available < amount.
    """
    if amount <= 0:
        raise AccountError("amount must be positive")
    _check_address(address)
    if client_id is not None and not 1 <= len(client_id) <= 64:
        raise AccountError("client id must be 1 to 64 characters")
    async with conn.transaction():
        await asset_precision(conn, asset)
        if not await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
            raise UnknownUser(f"no user {user_id}")
        if client_id is not None:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"withdrawal:{user_id}:{client_id}"
            )
            seen = await conn.fetchrow(
                f"SELECT {_REQUEST_COLUMNS} FROM withdrawal_requests"
                " WHERE user_id = $1 AND client_id = $2",
                user_id, client_id,
            )  # fmt: skip
            if seen is not None:
                if (seen["asset"], int(seen["amount"]), seen["address"]) != (
                    asset, amount, address,
                ):  # fmt: skip
                    raise ConflictingRequest(
                        f"withdrawal {client_id!r} already exists with other values"
                    )
                return _request(seen, changed=False)
        key = (user_id, asset)
        available, _ = (await RowLocks(conn).balances([key], create=[key]))[key]
        if available < amount:
            raise InsufficientFunds(f"available {available} < {amount}")
        request_id = int(
            await conn.fetchval(
                "SELECT nextval(pg_get_serial_sequence('withdrawal_requests', 'id'))"
            )
        )
        journal = rules.lock_journal(rules.reference(request_id), user_id, asset, amount)
        journal_id = await _post(conn, journal)
        row = await conn.fetchrow(
            "INSERT INTO withdrawal_requests (id, user_id, asset, amount, address, client_id,"
            f" lock_journal_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_REQUEST_COLUMNS}",
            request_id, user_id, asset, amount, address, client_id, journal_id,
        )  # fmt: skip
        return _request(row)


async def complete_withdrawal(conn: asyncpg.Connection, request_id: int) -> WithdrawalRequest:
    """Send a PENDING request's locked funds out (locked → EXTERNAL, a `withdrawals` row).
    Completing a completed request returns it unchanged; a rejected one raises
    `WithdrawalFinalised`."""
    return await _finish(conn, request_id, rules.Action.COMPLETE, None)


async def reject_withdrawal(
    conn: asyncpg.Connection, request_id: int, reason: str | None = None
) -> WithdrawalRequest:
    """Give a PENDING request's locked funds back (locked → available). Rejecting a rejected
    request returns it unchanged; a completed one raises `WithdrawalFinalised`."""
    if reason is not None and len(reason) > 256:
        raise AccountError("reason is longer than 256 characters")
    return await _finish(conn, request_id, rules.Action.REJECT, reason)


async def _finish(
    conn: asyncpg.Connection, request_id: int, action: rules.Action, reason: str | None
) -> WithdrawalRequest:
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_REQUEST_COLUMNS} FROM withdrawal_requests WHERE id = $1 FOR UPDATE",
            request_id,
        )
        if row is None:
            raise UnknownWithdrawal(f"no withdrawal request {request_id}")
        request = _request(row)
        try:
            step = rules.transition(request.status, action)
        except InvalidTransition:
            verb = "completed" if action is rules.Action.COMPLETE else "rejected"
            raise WithdrawalFinalised(
                f"withdrawal {request_id} is {request.status.value}; it cannot be {verb}"
            ) from None
        if not step.moves_money:
            return _request(row, changed=False)
        ref = rules.reference(request_id)
        journal = rules.journal_for(action, ref, request.user_id, request.asset, request.amount)
        journal_id = await _post(conn, journal)
        withdrawal_id = None
        if action is rules.Action.COMPLETE:
            withdrawal_id = await conn.fetchval(
                "INSERT INTO withdrawals (external_id, user_id, asset, amount, journal_id)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                ref, request.user_id, request.asset, request.amount, journal_id,
            )  # fmt: skip
        row = await conn.fetchrow(
            "UPDATE withdrawal_requests SET status = $2, final_journal_id = $3,"
            " withdrawal_id = $4, reason = $5, updated_at = now() WHERE id = $1"
            f" RETURNING {_REQUEST_COLUMNS}",
            request_id, step.status.value, journal_id, withdrawal_id, reason,
        )  # fmt: skip
        return _request(row)


async def withdrawal_requests(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int | None = None,
    *,
    status: rules.Status | None = None,
    limit: int = 500,
) -> list[WithdrawalRequest]:
    """Withdrawal requests, newest first: one user's (or everyone's, for operators),
    optionally only those in `status`."""
    rows = await conn.fetch(
        f"SELECT {_REQUEST_COLUMNS} FROM withdrawal_requests"
        " WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)"
        " ORDER BY id DESC LIMIT $3",
        user_id, status.value if status else None, limit,
    )  # fmt: skip
    return [_request(r) for r in rows]
